#!/usr/bin/env bash
# Prepares a Debian host (as root) for nsbox's tests and demo, idempotently:
#  - installs the packages the tests use, if missing;
#  - makes /dev/net/tun mode 0666, as stock distributions ship it;
#  - lets every group open ICMP echo sockets (net.ipv4.ping_group_range
#    "0 2147483647", systemd's default) where nobody may ("1 0"), so
#    --net user can forward ping;
#  - creates the unprivileged test user with /etc/subuid and /etc/subgid
#    ranges, if absent;
#  - makes sure the Docker daemon runs (tests/docker_test.go), starting it
#    if it does not answer.
#  - creates a second test user WITHOUT subordinate ids (the real-root
#    tests run nsbox as it with runuser), and removes any range it got;
#  - creates a delegated cgroup v2 for the test user, as systemd's
#    Delegate=yes does (see hack/delegated-cgroup.sh), which hack/test.sh
#    runs the integration tests in.
# Usage: hack/setup-host.sh [USER]   (default user: nsbox-test)
set -euo pipefail
user=${1:-${NSBOX_TEST_USER:-nsbox-test}}
nosub=${NSBOX_NOSUB_USER:-nsbox-nosub}
[ "$(id -u)" = 0 ] || { echo "setup-host.sh: run as root" >&2; exit 1; }

packages=(uidmap iproute2 procps util-linux bsdutils busybox-static passt slirp4netns gcc libc6-dev musl-tools make git python3 python3-venv jq bubblewrap mmdebstrap)
command -v docker >/dev/null || packages+=(docker.io)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup-host: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -e /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi

if [ "$(tr -s '\t ' ' ' </proc/sys/net/ipv4/ping_group_range)" = "1 0" ]; then
	echo "setup-host: net.ipv4.ping_group_range=0 2147483647"
	echo "0 2147483647" >/proc/sys/net/ipv4/ping_group_range
fi

if ! id "$user" >/dev/null 2>&1; then
	echo "setup-host: creating user $user"
	useradd --create-home --shell /bin/bash "$user"
fi
uid=$(id -u "$user")
# useradd adds subordinate ranges on Debian; make sure, without clashing.
for f in /etc/subuid /etc/subgid; do
	touch "$f"
	if ! grep -qE "^($user|$uid):" "$f"; then
		start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$f")
		echo "$user:$start:65536" >>"$f"
		echo "setup-host: added $user:$start:65536 to $f"
	fi
done

if ! docker info >/dev/null 2>&1; then
	echo "setup-host: starting the Docker daemon"
	service docker start >/dev/null 2>&1 || (setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &)
	for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
	docker info >/dev/null 2>&1 || { echo "setup-host: the Docker daemon does not start (see /var/log/dockerd.log)" >&2; exit 1; }
fi
if ! id "$nosub" >/dev/null 2>&1; then
	echo "setup-host: creating user $nosub (no subordinate ids)"
	useradd --create-home --shell /bin/bash "$nosub"
fi
nosub_uid=$(id -u "$nosub")
for f in /etc/subuid /etc/subgid; do
	if grep -qE "^($nosub|$nosub_uid):" "$f"; then
		sed -i -E "/^($nosub|$nosub_uid):/d" "$f"
		echo "setup-host: removed $nosub's ranges from $f"
	fi
done

# Without a cgroup v2 hierarchy the freezer tests fail (under CI), the
# rest runs: a warning here, not a stop.
"$(dirname "$0")/delegated-cgroup.sh" "$user" >/dev/null || echo "setup-host: no delegated cgroup for $user: the freezer and cgroup limit tests will fail" >&2
