#!/usr/bin/env bash
# Creates (as root, idempotently) a cgroup v2 delegated to USER and prints
# its directory: what systemd's Delegate=yes gives a user's scope, on any
# host with a cgroup v2 hierarchy, pure v2 (/sys/fs/cgroup) or hybrid
# (/sys/fs/cgroup/unified, no controllers there):
#
#   <cgroup2 mount>/nsbox-ci/              root's, holds no process
#   <cgroup2 mount>/nsbox-ci/USER/         USER's: the directory,
#                                          cgroup.procs, cgroup.threads and
#                                          cgroup.subtree_control chowned
#
# One cgroup per user, so that test users running at once do not share
# one. The memory, pids and cpu controllers are passed down where the
# hierarchy has them (never one it cannot: a hybrid host binds them to
# cgroup v1), so --memory, --pids and --cpus work there too.
# Move a shell in with: echo $$ > "$(hack/delegated-cgroup.sh USER)/cgroup.procs"
# Usage: hack/delegated-cgroup.sh USER
set -euo pipefail
user=${1:?usage: delegated-cgroup.sh USER}
[ "$(id -u)" = 0 ] || { echo "delegated-cgroup.sh: run as root" >&2; exit 1; }
id "$user" >/dev/null
# mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE ...
mount=$(sed -n 's/^[0-9]* [0-9]* [^ ]* \/ \([^ ]*\) .* - cgroup2 .*/\1/p' /proc/self/mountinfo | head -1)
[ -n "$mount" ] || { echo "delegated-cgroup.sh: this host has no cgroup v2 hierarchy mounted" >&2; exit 1; }
top="$mount/nsbox-ci"
dir="$top/$user"
mkdir -p "$dir"
# Pass down what the hierarchy has of memory, pids and cpu: in the root
# (which may hold processes) and in nsbox-ci (which holds none).
for cg in "$mount" "$top"; do
	for c in memory pids cpu; do
		if grep -qw "$c" "$cg/cgroup.controllers" && ! grep -qw "$c" "$cg/cgroup.subtree_control"; then
			echo "+$c" >"$cg/cgroup.subtree_control" 2>/dev/null || echo "delegated-cgroup.sh: cannot enable $c in $cg (left out)" >&2
		fi
	done
done
chown "$user:" "$dir" "$dir/cgroup.procs" "$dir/cgroup.subtree_control" "$dir/cgroup.threads"
echo "$dir"
