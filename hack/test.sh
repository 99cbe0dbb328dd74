#!/usr/bin/env bash
# nsbox's test run, what `make test` and CI do.
#
# As root (CI runs this way on a clean clone):
#   1. hack/setup-host.sh: packages, /dev/net/tun, the test user with subids;
#   2. unit tests with -race (as root: they need no privilege, some use it);
#   3. build nsbox and the integration test binary, copy both where the
#      test user can read them, and run the integration tests AS THAT USER
#      (rootless behaviour is only proven by a non-root run), in a cgroup
#      v2 delegated to it (hack/delegated-cgroup.sh), once in each of the
#      fast path's modes (below);
#   4. run the real-root tests (TestRealRoot*) in each mode and the Docker
#      tests (TestDocker*: the daemon's socket is root's; the containers
#      run nsbox as a non-root user) once, as root.
# As a normal user: checks the host has what the tests need, then runs the
# unit tests, and the integration tests in each mode directly as you.
#
# The fast path's modes (sandbox/fastpath; docs/startup.md, "The replay,
# as built"): a run must behave exactly as the Go path, so the
# integration tests run three times: the default
# (the pre-forked stage, early namespaces, hand-off, replay of a planned
# run), NSBOX_FASTPATH=off (the Go launcher alone) and
# NSBOX_FASTPATH=replay (every run that can get a plan is replayed by the
# ELF constructor). A test that asserts one mode's mechanism (the
# hand-off, a replay) asserts the Go path's equivalent under off. Left out
# of the off and replay runs: the Docker tests, whose nsbox runs inside
# containers that do not get the variable, so they would run the default
# again. The three runs of the test user's suite take about 2-2.5 min
# each on a quiet 2-core VM (default 128 s, off 143 s, replay 144 s), and
# the whole of CI=true .ci/run 8-9 min (464-520 s), within CI's 15.
#
# With CI=true a skipped integration test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
user=${NSBOX_TEST_USER:-nsbox-test}
export CGO_ENABLED=1

if [ "$(id -u)" = 0 ]; then
	hack/setup-host.sh "$user"
else
	lacks=()
	command -v newuidmap >/dev/null || lacks+=("newuidmap/newgidmap (apt-get install uidmap)")
	me=$(id -un)
	grep -qE "^($me|$(id -u)):" /etc/subuid 2>/dev/null || lacks+=("an /etc/subuid entry for $me (usermod --add-subuids 100000-165535 $me)")
	grep -qE "^($me|$(id -u)):" /etc/subgid 2>/dev/null || lacks+=("an /etc/subgid entry for $me (usermod --add-subgids 100000-165535 $me)")
	unshare --user true 2>/dev/null || lacks+=("unprivileged user namespaces (sysctl -w user.max_user_namespaces=15000; kernel.unprivileged_userns_clone=1)")
	if [ ${#lacks[@]} -gt 0 ]; then
		echo "make test: this host lacks what the integration tests need:" >&2
		printf '  - %s\n' "${lacks[@]}" >&2
		echo "or run make test as root, which sets all of this up." >&2
		exit 1
	fi
fi

echo "== tracked files"
hack/tracked-files.sh

echo "== unit tests (uid $(id -u))"
# nsbox_configcheck links the stage's CONFIG writer into the tests that
# hold the protocol's two halves together (sandbox/internal/stage).
go test -race -count=1 -tags nsbox_configcheck $(go list ./... | grep -v /tests)
# hack/bench is a module of its own (its plotting dependencies stay out
# of the library's go.mod).
(cd hack/bench && go test -count=1 ./...)

echo "== build"
make --no-print-directory build
out=$(mktemp -d /var/tmp/nsbox-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
cp bin/nsbox "$out/nsbox"
go test -c -o "$out/integration.test" ./tests
go build -o "$out/embed" ./examples/embed
chmod 0755 "$out" "$out/nsbox" "$out/integration.test" "$out/embed"

# integration ARGS...: runs the test binary from $out with the given extra
# arguments, as whoever the caller arranges (prefix in $as), in the fast
# path's mode $fastpath: "" the default, or NSBOX_FASTPATH's value (off,
# replay).
fastpath=
integration() {
	(cd "$out" && "${as[@]}" env CI="${CI:-}" ${fastpath:+NSBOX_FASTPATH=$fastpath} NSBOX_BIN="$out/nsbox" NSBOX_EXAMPLE_EMBED="$out/embed" \
		PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$home" \
		./integration.test -test.v -test.count=1 -test.timeout=12m "$@") 2>&1 | hack/skip-check.sh
}
if [ "$(id -u)" = 0 ]; then
	echo "== integration tests as $user (uid $(id -u "$user"))"
	# In the user's delegated cgroup (setup-host.sh made it), as a
	# systemd user session would be: --cgroup own, the freezer and the
	# limits the hierarchy has get tested.
	as=(runuser -u "$user" --)
	if cg=$(hack/delegated-cgroup.sh "$user"); then
		as=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "${as[@]}")
	fi
	home=$(getent passwd "$user" | cut -d: -f6)
	integration -test.skip '^TestRealRoot|^TestDocker'
	for mode in off replay; do
		echo "== integration tests as $user again, NSBOX_FASTPATH=$mode"
		fastpath=$mode integration -test.skip '^TestRealRoot|^TestDocker'
	done
	echo "== integration tests as real root (and Docker)"
	# The .deb of this very binary, for TestDockerDebianPackage.
	NSBOX_DEB=$(hack/deb.sh "$out/nsbox" "$(dpkg --print-architecture)" "$out/deb" | grep '/nsbox_')
	export NSBOX_DEB
	as=() home=$HOME
	integration -test.run '^TestRealRoot|^TestDocker'
	for mode in off replay; do
		echo "== real-root tests again, NSBOX_FASTPATH=$mode"
		fastpath=$mode integration -test.run '^TestRealRoot'
	done
else
	as=() home=$HOME
	for mode in "" off replay; do
		echo "== integration tests as $(id -un) (uid $(id -u))${mode:+, NSBOX_FASTPATH=$mode}"
		fastpath=$mode integration -test.skip '^TestRealRoot|^TestDocker'
	done
fi
