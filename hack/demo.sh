#!/usr/bin/env bash
# `make demo`: from a fresh clone to sandboxed commands. As root it prepares
# the host (hack/setup-host.sh) and runs the demo as the unprivileged test
# user; as anyone else it runs it as you.
set -euo pipefail
cd "$(dirname "$0")/.."
user=${NSBOX_TEST_USER:-nsbox-test}
[ -n "${NSBOX:-}" ] || make --no-print-directory build
if [ "$(id -u)" = 0 ]; then
	hack/setup-host.sh "$user"
	dir=$(mktemp -d /var/tmp/nsbox-demo.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
	install -m 0755 bin/nsbox "$dir/nsbox"
	chown "$user" "$dir"
	exec runuser -u "$user" -- env PATH=/usr/local/bin:/usr/bin:/bin NSBOX="$dir/nsbox" "$0"
fi
nsbox=${NSBOX:-bin/nsbox}

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" || echo "(exit status $?)"; }
echo "nsbox demo as $(id -un) (uid $(id -u)), no privilege"
step "$nsbox" check
step "$nsbox" run -- id
step "$nsbox" run --root -- sh -c 'id; cat /proc/self/uid_map /proc/self/gid_map'
step "$nsbox" run -- sh -c 'echo "my pid: $$"; ls /proc | grep -c "^[0-9]"'
step "$nsbox" run --hostname box -- hostname
step "$nsbox" run -- cat /proc/net/dev
step "$nsbox" run -- sh -c 'exit 7'
step "$nsbox" run -- no-such-command
