#!/usr/bin/env bash
# nsbox's side-by-side benchmarks, what `make bench` does. Not part of
# make test; takes a few minutes.
#
# As root: installs the peers that are missing (bubblewrap, rootlesskit,
# slirp4netns, passt, iperf3, hyperfine, strace from Debian), prepares the
# test user (hack/setup-host.sh), builds nsbox and the harness
# (hack/bench/), and runs the harness AS THAT USER: rootless numbers only
# come from a rootless run. As a normal user: runs it directly as you.
# Either way it writes docs/benchmarks.md and docs/benchmarks.png.
#
# BENCH_ARGS=-quick gives a smoke run with few samples (not for publishing);
# BENCH_ARGS=-net (make bench-net) only the network workloads, written to
# docs/benchmarks-net.md and docs/benchmarks-net.png; add -rows to pick
# workloads (BENCH_ARGS="-net -rows tcp,udp,dns": the round trips alone);
# BENCH_ARGS=-startup (make bench-startup) only the startup workloads, to
# docs/benchmarks-startup.md and docs/benchmarks-startup.png;
# BENCH_ARGS=-image (make bench-image) only the image rows, to
# docs/benchmarks-image.md and docs/benchmarks-image.png: as root the
# harness itself stays root for Docker and runs every nsbox command as the
# test user (-as-user).
#
# As root, the startup rows also get a timeline of one start as the
# kernel sees it (bench -timeline-out: tracefs's scheduler events, every
# process, the setuid map helpers included), recorded before the
# unprivileged run that writes the report.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
user=${NSBOX_TEST_USER:-nsbox-test}
export CGO_ENABLED=1

if [ "$(id -u)" = 0 ]; then
	peers=(bubblewrap rootlesskit slirp4netns passt iperf3 hyperfine strace busybox-static uidmap)
	missing=()
	for p in "${peers[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "bench: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	hack/setup-host.sh "$user"
fi

make --no-print-directory build
out=$(mktemp -d /var/tmp/nsbox-bench.XXXXXX)
benchhome=
trap 'rm -rf "$out" ${benchhome:+"$benchhome"}' EXIT
cp bin/nsbox "$out/nsbox"
(cd hack/bench && go build -o "$out/bench" .)
(cd hack/bench && go build -trimpath -ldflags "-s -w -linkmode external -extldflags -static" -o "$out/emptygo" ./emptygo)
# The embedding row's program imports nsbox's sandbox package: it is built
# in the main module (hack/bench is a module of its own).
make --no-print-directory bin/embed && cp bin/embed "$out/embed"
mkdir "$out/docs" "$out/tmp"
chmod 0755 "$out" "$out/nsbox" "$out/bench" "$out/emptygo" "$out/embed"
chmod 0777 "$out/docs" "$out/tmp"
# The benchmark user's HOME, apart from $out: from a home, or a parent of
# one, nsbox binds nothing writable (a private home hides it), and the
# runs need $out writable as their working directory.
benchhome=$(mktemp -d /var/tmp/nsbox-bench-home.XXXXXX)
chmod 0777 "$benchhome"

path=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
image=
case " ${BENCH_ARGS:-} " in *" -image "*) image=1 ;; esac
if [ "$(id -u)" = 0 ] && [ -n "$image" ]; then
	echo "bench: image rows: docker as root, nsbox as $user (uid $(id -u "$user"))"
	(cd "$out" && env PATH="$path" TMPDIR="$out/tmp" \
		./bench -nsbox "$out/nsbox" -out "$out/docs" -as-user "$user" -user-home "$benchhome" ${BENCH_ARGS:-})
elif [ "$(id -u)" = 0 ]; then
	# The startup profile's timeline: the kernel's scheduler events
	# (tracefs, root's) while the test user starts nsbox and bubblewrap;
	# strace cannot follow the default map's setuid helpers.
	timeline=()
	case " ${BENCH_ARGS:-} " in *" -net "*|*" -quick "*) ;; *)
		echo "bench: startup timeline, traced as root, run as $user"
		(cd "$out" && env PATH="$path" TMPDIR="$out/tmp" \
			./bench -nsbox "$out/nsbox" -timeline-out "$out/docs/timeline.json" -as-user "$user" -user-home "$benchhome") &&
			timeline=(-timeline "$out/docs/timeline.json")
	esac
	echo "bench: running as $user (uid $(id -u "$user"))"
	(cd "$out" && runuser -u "$user" -- env PATH="$path" HOME="$benchhome" TMPDIR="$out/tmp" \
		./bench -nsbox "$out/nsbox" -empty-go "$out/emptygo" -embed "$out/embed" -out "$out/docs" "${timeline[@]}" ${BENCH_ARGS:-})
else
	(cd "$out" && env PATH="$path" TMPDIR="$out/tmp" ./bench -nsbox "$out/nsbox" -empty-go "$out/emptygo" -embed "$out/embed" -out "$out/docs" ${BENCH_ARGS:-})
fi
name=benchmarks
case " ${BENCH_ARGS:-} " in *" -net "*) name=benchmarks-net ;; *" -startup "*) name=benchmarks-startup ;; *" -image "*) name=benchmarks-image ;; esac
cp "$out/docs/$name.md" "$out/docs/$name.png" "$repo/docs/"
echo "bench: wrote docs/$name.md and docs/$name.png"
