#!/usr/bin/env bash
# The live-sandbox rows (make bench-live): nsbox mount's and nsbox port
# add's latency, nsbox cp's throughput against cp -a in the same run, and
# pause/resume of a sandbox of 100 processes, with signals (no cgroup of
# its own) and with the cgroup v2 freezer (--cgroup own). Writes
# docs/benchmarks-live.md. As root it runs the measurements as the test
# user (NSBOX_TEST_USER, default nsbox-test), in a cgroup delegated to it
# (hack/delegated-cgroup.sh):
# rootless numbers only come from a rootless run. Not part of make test.
#
# BENCH_LIVE_MIB sets the size of the copied tree (default 1024: 1 GiB in
# 1 MiB files, 16 directories); BENCH_LIVE_RUNS the samples (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
user=${NSBOX_TEST_USER:-nsbox-test}
mib=${BENCH_LIVE_MIB:-1024}
runs=${BENCH_LIVE_RUNS:-20}

if [ "${1:-}" != "--as-user" ]; then
	make --no-print-directory build bin/livebench
	out=$(mktemp -d /var/tmp/nsbox-bench-live.XXXXXX)
	trap 'rm -rf "$out"' EXIT
	cp bin/nsbox bin/livebench hack/bench-live.sh "$out/"
	# Writable for the user, but not the binaries: a binary ids inside could
	# write is copied for each stage (sandbox/stageexe.go), not measured here.
	chmod 0777 "$out"; chmod 0755 "$out/nsbox" "$out/livebench" "$out/bench-live.sh"
	if [ "$(id -u)" = 0 ]; then
		as=(runuser -u "$user" --)
		if cg=$(hack/delegated-cgroup.sh "$user"); then
			as=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "${as[@]}")
		fi
		"${as[@]}" env HOME="$out" XDG_RUNTIME_DIR="$out/run" BENCH_LIVE_MIB="$mib" BENCH_LIVE_RUNS="$runs" \
			bash "$out/bench-live.sh" --as-user "$out"
	else
		HOME="$out" XDG_RUNTIME_DIR="$out/run" bash "$out/bench-live.sh" --as-user "$out"
	fi
	cp "$out/benchmarks-live.md" docs/benchmarks-live.md
	cat docs/benchmarks-live.md
	exit 0
fi

# --- as the user -----------------------------------------------------------
out=$2
N=$out/nsbox
mkdir -p "$out/run" "$out/in" "$out/w"
cd "$out/w"
# now sets the variable named $1 to the time in microseconds, from a bash
# builtin: timing a command with $(date +%s%N) would also time the start
# of a date process (a millisecond on this machine's class).
now() { printf -v "$1" '%s' "${EPOCHREALTIME//[!0-9]/}"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.2f", ns/1e6}'; }

# The sandbox: a writable bind for the copies (the same disk as cp -a's),
# and 100 processes for pause.
$N run --detach --name bench --root --bind "$out/in:/in" -- sh -c 'for i in $(seq 99); do sleep 3600 & done; exec sleep 3600' >/dev/null
trap 'for s in bench bench-user bench-slirp; do $N kill $s >/dev/null 2>&1 || true; done' EXIT
until [ "$(pgrep -c -u "$(id -u)" -x sleep)" -ge 100 ]; do sleep 0.1; done

# 0-1. The CLI rows, taken in turns, round by round, so that each meets
# the machine as the others do (on a shared machine the load moves within
# seconds): /bin/true (what starting any process costs on the machine at
# the time), nsbox version (the CLI's start alone, the floor under every
# row), nsbox ps (with the state lookup of the running sandboxes), nsbox
# mount of a directory (umount after it, not timed), and nsbox port add
# of a host port (rm after it, not timed) on a --net user sandbox (the
# launcher's netstack) and a --net slirp4netns one (its API socket). The
# port is this run's, picked from its pid.
$N run --detach --name bench-user --net user -- sleep 3600 >/dev/null
slirp=
if command -v slirp4netns >/dev/null; then
	$N run --detach --name bench-slirp --net slirp4netns -- sleep 3600 >/dev/null && slirp=1
fi
sandboxes=$((2 + ${slirp:-0}))
hostport=$((20000 + $$ % 20000))
mkdir -p "$out/src"
timed() { local t0 t1; now t0; "$@" >/dev/null; now t1; echo $(((t1 - t0) * 1000)); }
for i in $(seq "$runs"); do
	echo "true $(timed /bin/true)"
	echo "version $(timed $N version)"
	echo "ps $(timed $N ps)"
	echo "mount $(timed $N mount bench "$out/src" /tmp/m --mkdir --ro)"
	$N umount bench /tmp/m
	echo "port-user $(timed $N port add bench-user "127.0.0.1:$hostport:80")"
	$N port rm bench-user "127.0.0.1:$hostport:80"
	if [ -n "$slirp" ]; then
		echo "port-slirp $(timed $N port add bench-slirp "127.0.0.1:$hostport:80")"
		$N port rm bench-slirp "127.0.0.1:$hostport:80"
	fi
done >"$out/cli"
cli() { awk -v k="$1" '$1 == k {print $2}' "$out/cli" | median; }
true_ns=$(cli true)
version_ns=$(cli version)
ps_ns=$(cli ps)
mount_ns=$(cli mount)
port_user_ns=$(cli port-user)
port_slirp=n/a
[ -z "$slirp" ] || port_slirp="$(ms "$(cli port-slirp)") ms"
$N kill bench-user >/dev/null
[ -z "$slirp" ] || $N kill bench-slirp >/dev/null

# 2. pause and resume, median over $runs.
pause_ns=$(for i in $(seq "$runs"); do now t0; $N pause bench; now t1; $N resume bench; echo $(((t1 - t0) * 1000)); done | median)
resume_ns=$(for i in $(seq "$runs"); do $N pause bench; now t0; $N resume bench; now t1; echo $(((t1 - t0) * 1000)); done | median)

# 2a. The same with the freezer: a sandbox of 100 processes in a cgroup
# of its own (needs a delegated cgroup v2; "n/a" without).
fz=n/a fz_pause_ns= fz_resume_ns= fz_api_pause= fz_api_resume=
if $N run --detach --name benchfz --cgroup own -- sh -c 'for i in $(seq 99); do sleep 3600 & done; exec sleep 3600' >/dev/null 2>"$out/fz.err"; then
	fz=yes
	trap 'for s in bench benchfz; do $N kill $s >/dev/null 2>&1 || true; done' EXIT
	until [ "$(pgrep -c -u "$(id -u)" -x sleep)" -ge 200 ]; do sleep 0.1; done
	fz_pause_ns=$(for i in $(seq "$runs"); do now t0; $N pause benchfz; now t1; $N resume benchfz; echo $(((t1 - t0) * 1000)); done | median)
	fz_resume_ns=$(for i in $(seq "$runs"); do $N pause benchfz; now t0; $N resume benchfz; now t1; echo $(((t1 - t0) * 1000)); done | median)
	$N inspect benchfz | "$out/livebench" "$out/src" "$runs" >"$out/api-fz"
	fz_api_pause=$(awk '$1 == "pause" {print $2 * 1e6}' "$out/api-fz" | median)
	fz_api_resume=$(awk '$1 == "resume" {print $2 * 1e6}' "$out/api-fz" | median)
	$N kill benchfz
fi
fzms() { if [ "$fz" = yes ]; then echo "$(ms "$1") ms"; else echo "n/a ($(head -c 120 "$out/fz.err"))"; fi; }

# 2b. The same through the API (sandbox.Lookup, Mount, Pause, Resume):
# the operations without the CLI's start.
$N inspect bench | "$out/livebench" "$out/src" "$runs" >"$out/api"
api_mount=$(awk '$1 == "mount" {print $2 * 1e6}' "$out/api" | median)
api_pause=$(awk '$1 == "pause" {print $2 * 1e6}' "$out/api" | median)
api_resume=$(awk '$1 == "resume" {print $2 * 1e6}' "$out/api" | median)

# 3. A tree of $mib MiB: cp -a on the host against nsbox cp in and out,
# alternating, six rounds; the median and the best time of each (the
# machine may be shared: the best is the least disturbed run).
mkdir -p "$out/tree"
for d in $(seq 16); do
	mkdir -p "$out/tree/d$d"
	for f in $(seq $((mib / 16))); do head -c 1048576 /dev/urandom >"$out/tree/d$d/f$f"; done
done
sync
# Each nsbox cp is compared with a cp -a of the same source to the same
# disk, in alternating order (odd rounds cp -a first), so both meet the
# page cache in the same state on average: an even number of rounds, so
# that each goes first as often.
cpa=() cpin=() cpaout=() cpout=()
for r in 1 2 3 4 5 6; do
	rm -rf "$out/cpa" "$out/in/tree" "$out/back" "$out/cpaout"; sync
	if [ $((r % 2)) = 1 ]; then
		cpa+=($(timed cp -a "$out/tree" "$out/cpa")); sync
		cpin+=($(timed $N cp "$out/tree" bench:/in)); sync
		cpaout+=($(timed cp -a "$out/in/tree" "$out/cpaout")); sync
		cpout+=($(timed $N cp bench:/in/tree "$out/back")); sync
	else
		cpin+=($(timed $N cp "$out/tree" bench:/in)); sync
		cpa+=($(timed cp -a "$out/tree" "$out/cpa")); sync
		cpout+=($(timed $N cp bench:/in/tree "$out/back")); sync
		cpaout+=($(timed cp -a "$out/in/tree" "$out/cpaout")); sync
	fi
done
cmp -s "$out/tree/d1/f1" "$out/back/d1/f1"
best() { sort -n | head -1; }
cpa_ns=$(printf '%s\n' "${cpa[@]}" | median)
cpin_ns=$(printf '%s\n' "${cpin[@]}" | median)
cpout_ns=$(printf '%s\n' "${cpout[@]}" | median)
cpa_best=$(printf '%s\n' "${cpa[@]}" | best)
cpaout_ns=$(printf '%s\n' "${cpaout[@]}" | median)
cpaout_best=$(printf '%s\n' "${cpaout[@]}" | best)
cpin_best=$(printf '%s\n' "${cpin[@]}" | best)
cpout_best=$(printf '%s\n' "${cpout[@]}" | best)
mbs() { awk -v ns="$1" -v mib="$mib" 'BEGIN {printf "%.0f", mib/(ns/1e9)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

cat >"$out/benchmarks-live.md" <<MD
# Live sandboxes: benchmarks

Written by \`make bench-live\` (hack/bench-live.sh) on $(uname -r), $(nproc) CPUs,
$(date -u +%Y-%m-%d). Medians; the CLI rows are taken in turns, round by
round (each meets the machine's load as the others do); the copy rows
alternate with \`cp -a\` in the
same run, on the same disk, from the page cache, timed until the command
returns (a \`sync\` after each, not timed: the disk's writeback is neither
tool's, and on a shared machine it is the noisiest part). Load average
at the end: $(cut -d' ' -f1-3 /proc/loadavg).

| what | median | target |
|---|---|---|
| \`/bin/true\` (for scale: any process's start and end, on this machine at the time) | $(ms "$true_ns") ms | |
| \`nsbox version\` (for scale: the CLI's start alone) | $(ms "$version_ns") ms | |
| \`nsbox ps\` (for scale: the CLI's start and the lookup of the $sandboxes running sandboxes) | $(ms "$ps_ns") ms | |
| \`nsbox mount\` (process start to return) | $(ms "$mount_ns") ms | < 5 ms |
| \`Sandbox.Mount\` (API, no CLI start) | $(ms "$api_mount") ms | < 5 ms |
| \`nsbox port add\`, --net user (process start to return) | $(ms "$port_user_ns") ms | < 5 ms |
| \`nsbox port add\`, --net slirp4netns | $port_slirp | < 5 ms |
| \`Sandbox.Pause\`, 100 processes (API) | $(ms "$api_pause") ms | < 20 ms |
| \`Sandbox.Resume\`, 100 processes (API) | $(ms "$api_resume") ms | < 20 ms |
| \`nsbox pause\`, 100 processes | $(ms "$pause_ns") ms | < 20 ms |
| \`nsbox resume\`, 100 processes | $(ms "$resume_ns") ms | < 20 ms |
| \`Sandbox.Pause\`, 100 processes, freezer (API, \`--cgroup own\`) | $(fzms "$fz_api_pause") | < 20 ms |
| \`Sandbox.Resume\`, 100 processes, freezer (API) | $(fzms "$fz_api_resume") | < 20 ms |
| \`nsbox pause\`, 100 processes, freezer | $(fzms "$fz_pause_ns") | < 20 ms |
| \`nsbox resume\`, 100 processes, freezer | $(fzms "$fz_resume_ns") | < 20 ms |
| \`cp -a\` of ${mib} MiB (host) | $(mbs "$cpa_ns") MiB/s (best $(mbs "$cpa_best")) | |
| \`nsbox cp\` in, ${mib} MiB | $(mbs "$cpin_ns") MiB/s, $(ratio "$cpa_ns" "$cpin_ns")× cp -a (best $(mbs "$cpin_best"), $(ratio "$cpa_best" "$cpin_best")×) | ≥ 0.8× |
| \`cp -a\` of the sandbox's copy (host, /in's directory) | $(mbs "$cpaout_ns") MiB/s (best $(mbs "$cpaout_best")) | |
| \`nsbox cp\` out, ${mib} MiB | $(mbs "$cpout_ns") MiB/s, $(ratio "$cpaout_ns" "$cpout_ns")× cp -a (best $(mbs "$cpout_best"), $(ratio "$cpaout_best" "$cpout_best")×) | ≥ 0.8× |
MD
