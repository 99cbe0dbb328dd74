package tests

// Hostile and unusual id-mapping conditions (issues 12 and 13), built
// without touching the host's files: NSBOX_SUBUID_FILE / NSBOX_SUBGID_FILE
// stand in for /etc/subuid and /etc/subgid, NSBOX_HELPER_DIR for where
// newuidmap lives, and unshare(1) gives a nested user namespace. The
// TestRealRoot* tests run as root (hack/test.sh) and use private mount
// namespaces and the test user without subordinate ids (nsbox-nosub,
// from hack/setup-host.sh).

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
	"gotest.tools/v3/icmd"
)

// userName is the caller's login name.
func userName(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-un").Output()
	assert.NilError(t, err)
	return strings.TrimSpace(string(out))
}

// withEnv returns the environment plus kv, with any earlier value of the
// same keys removed.
func withEnv(kv ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		keep := true
		for _, n := range kv {
			k, _, _ := strings.Cut(n, "=")
			if strings.HasPrefix(e, k+"=") {
				keep = false
			}
		}
		if keep {
			env = append(env, e)
		}
	}
	return append(env, kv...)
}

// An /etc/subuid line that includes host uid 0 (newuidmap would honour
// it) is refused, naming the line; nothing runs. --map single, which does
// not use it, still works.
func TestHostileSubuidHoldingHostRootRefused(t *testing.T) {
	requireUnprivileged(t)
	me := userName(t)
	dir := fs.NewDir(t, "subid",
		fs.WithFile("subuid", "other:200000:65536\n# an administrator's mistake:\n"+me+":0:65536\n"),
		fs.WithFile("subgid", me+":100000:65536\n"))
	marker := filepath.Join(dir.Path(), "ran")
	env := icmd.WithEnv(withEnv("NSBOX_SUBUID_FILE="+dir.Join("subuid"), "NSBOX_SUBGID_FILE="+dir.Join("subgid"))...)
	res := nsboxWith([]string{"run", "--root", "--bind", dir.Path(), "--", "touch", marker}, env)
	res.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Check(t, is.Contains(res.Stderr(), fmt.Sprintf("%s line 3 %q includes host uid 0", dir.Join("subuid"), me+":0:65536")))
	assert.Check(t, is.Contains(res.Stderr(), "fix: have an administrator move that range"))
	assert.Check(t, is.Contains(res.Stderr(), "--map single"))
	assert.Equal(t, strings.Count(strings.TrimSpace(res.Stderr()), "\n"), 0, res.Stderr())
	_, err := os.Stat(marker)
	assert.Check(t, os.IsNotExist(err), "the command ran")

	// The default layout (not --root) would map it too: refused as well.
	res = nsboxWith([]string{"run", "--", "true"}, env)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "includes host uid 0"})

	uids, _ := outsideMaps(t, withEnv("NSBOX_SUBUID_FILE="+dir.Join("subuid"), "NSBOX_SUBGID_FILE="+dir.Join("subgid")), "--map", "single", "--root")
	assert.Equal(t, uids, fmt.Sprintf("0 %d 1", os.Getuid()))
}

// runUnshare runs "unshare ARGS… nsbox NSBOXARGS…" with a state directory
// of its own (uid 0 inside must not share /tmp/nsbox-0 with others).
func runUnshare(t *testing.T, unshare []string, script string) *icmd.Result {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		cannotRun(t, "needs unshare(1) (util-linux)")
	}
	args := append(append([]string{}, unshare...), "sh", "-c", script, "sh", nsboxBin)
	return icmd.RunCmd(icmd.Command("unshare", args...),
		icmd.WithEnv(withEnv("XDG_RUNTIME_DIR="+t.TempDir())...))
}

// uid 0 inside unshare -r is not real root: nsbox maps the one id that
// exists there, directly.
func TestNestedUnshareRoot(t *testing.T) {
	requireUnprivileged(t)
	res := runUnshare(t, []string{"-r"}, `"$1" run -- sh -c 'id -u; cat /proc/self/uid_map /proc/self/gid_map'`)
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "0\n0 0 1\n0 0 1")
	assert.Equal(t, res.Stderr(), "")

	// /etc/subuid lists host ids, which do not exist in there: even a
	// hostile line bound over it (uid 0 is "root" in there) is not used.
	fake := fs.NewFile(t, "subuid", fs.WithContent("root:0:65536\nroot:100000:65536\n"))
	res = runUnshare(t, []string{"-rm"}, `mount --bind `+fake.Path()+` /etc/subuid && "$1" run --root -- cat /proc/self/uid_map`)
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "0 0 1")
}

// nsbox inside nsbox --root: root there holds CAP_SETUID over the 65537
// ids the outer sandbox maps, and maps them without helpers (split where
// the outer map's extents meet, as the kernel requires).
func TestNestedInRootSandbox(t *testing.T) {
	requireUnprivileged(t)
	subids(t, "/etc/subuid")
	res := nsbox("run", "--root", "--", nsboxBin, "run", "--", "sh", "-c", "id -u; cat /proc/self/uid_map")
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "0\n0 0 1\n1 1 65535")
	// An id that does not exist in there is refused before anything runs.
	res = nsbox("run", "--root", "--", nsboxBin, "run", "--map-users", "0:0:1", "--map-users", "1:70000:1", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "outer uid 70000 does not exist in this nested user namespace"})
	assert.Check(t, is.Contains(res.Stderr(), "fix: --map single"))
}

// A newuidmap that fails when it runs (here the real, setuid one, asked
// for ids /etc/subuid does not grant) makes --map auto fall back to the
// caller's own ids with one notice quoting the helper; --map subids fails.
func TestHelperFailingAtRunTimeFallsBack(t *testing.T) {
	requireUnprivileged(t)
	subids(t, "/etc/subuid")
	me := userName(t)
	dir := fs.NewDir(t, "subid",
		fs.WithFile("subuid", me+":3000000:65536\n"),
		fs.WithFile("subgid", me+":3000000:65536\n"))
	env := icmd.WithEnv(withEnv("NSBOX_SUBUID_FILE="+dir.Join("subuid"), "NSBOX_SUBGID_FILE="+dir.Join("subgid"))...)
	res := nsboxWith([]string{"run", "--", "sh", "-c", "id -u; cat /proc/self/uid_map"}, env)
	res.Assert(t, icmd.Success)
	// Single mapping, seen from the command's nested namespace (TestMapSingle).
	assert.Equal(t, normalizeMap(res.Stdout()), fmt.Sprintf("%d\n%d 0 1", os.Getuid(), os.Getuid()))
	lines := strings.Split(strings.TrimSpace(res.Stderr()), "\n")
	assert.Equal(t, len(lines), 1, res.Stderr())
	assert.Check(t, is.Contains(lines[0], "nsbox: cannot map subordinate ids: new"))
	assert.Check(t, is.Contains(lines[0], "not allowed"), "the helper's own message")
	assert.Check(t, is.Contains(lines[0], fmt.Sprintf("mapping only uid %d and gid %d", os.Getuid(), os.Getgid())))

	res = nsboxWith([]string{"run", "--map", "subids", "--", "true"}, env)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "newuidmap"})
	assert.Check(t, is.Contains(res.Stderr(), "not allowed"))
}

// The helpers are found at their standard paths whatever PATH is.
func TestHelpersFoundWithoutPATH(t *testing.T) {
	requireUnprivileged(t)
	subStart, _ := subids(t, "/etc/subuid")
	res := icmd.RunCmd(icmd.Command("env", "-i", nsboxBin, "run", "--root", "--", "/bin/true"))
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stderr(), "")
	uids, _ := outsideMaps(t, []string{}, "--root")
	assert.Equal(t, uids, fmt.Sprintf("0 %d 1\n1 %d 65536", os.Getuid(), subStart))
}

// A subgid line without a subuid line: one notice that says exactly that.
func TestSubgidWithoutSubuidNotice(t *testing.T) {
	requireUnprivileged(t)
	me := userName(t)
	dir := fs.NewDir(t, "subid",
		fs.WithFile("subuid", "someone:100000:65536\n"),
		fs.WithFile("subgid", me+":100000:65536\n"))
	env := icmd.WithEnv(withEnv("NSBOX_SUBUID_FILE="+dir.Join("subuid"), "NSBOX_SUBGID_FILE="+dir.Join("subgid"))...)
	res := nsboxWith([]string{"run", "--root", "--", "true"}, env)
	res.Assert(t, icmd.Success)
	uids, _ := outsideMaps(t, withEnv("NSBOX_SUBUID_FILE="+dir.Join("subuid"), "NSBOX_SUBGID_FILE="+dir.Join("subgid")), "--root")
	assert.Equal(t, uids, fmt.Sprintf("0 %d 1", os.Getuid()))
	want := fmt.Sprintf("nsbox: cannot map subordinate ids: you have subordinate gids (%s) but no subordinate uids (no line for %s in %s); fix: as root, usermod --add-subuids 165536-231071 %s; mapping only uid %d and gid %d (--map single silences this)\n",
		dir.Join("subgid"), me, dir.Join("subuid"), me, os.Getuid(), os.Getgid())
	assert.Equal(t, res.Stderr(), want)
}

// requireRoot: the test arranges users and mounts only root can.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		cannotRun(t, "runs as real root (make test runs it so)")
	}
}

// nosubUser is hack/setup-host.sh's user without subordinate ids.
func nosubUser(t *testing.T) string {
	t.Helper()
	name := os.Getenv("NSBOX_NOSUB_USER")
	if name == "" {
		name = "nsbox-nosub"
	}
	if err := exec.Command("id", name).Run(); err != nil {
		cannotRun(t, "no user %s: run hack/setup-host.sh", name)
	}
	return name
}

// withSubidFiles runs argv (as root) in a private mount namespace where
// /etc/subuid and /etc/subgid have the given contents.
func withSubidFiles(t *testing.T, subuid, subgid string, argv ...string) *icmd.Result {
	t.Helper()
	dir := fs.NewDir(t, "subid", fs.WithFile("subuid", subuid), fs.WithFile("subgid", subgid))
	assert.NilError(t, os.Chmod(dir.Path(), 0o755))
	script := `mount --bind "$1" /etc/subuid && mount --bind "$2" /etc/subgid && shift 2 && exec "$@"`
	args := append([]string{"-m", "sh", "-c", script, "sh", dir.Join("subuid"), dir.Join("subgid")}, argv...)
	return icmd.RunCmd(icmd.Command("unshare", args...))
}

// withSubidFilesMaps runs nsbox run ARGS -- sleep in withSubidFiles's
// private mount namespace and returns the sleep's uid_map and gid_map as
// the host sees them (inside, the command sees its nested namespace's).
func withSubidFilesMaps(t *testing.T, subuid, subgid string, args ...string) (string, string) {
	t.Helper()
	dir := fs.NewDir(t, "subid", fs.WithFile("subuid", subuid), fs.WithFile("subgid", subgid))
	assert.NilError(t, os.Chmod(dir.Path(), 0o755))
	arg := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	script := `mount --bind "$1" /etc/subuid && mount --bind "$2" /etc/subgid && shift 2 && exec "$@"`
	argv := append([]string{"-m", "sh", "-c", script, "sh", dir.Join("subuid"), dir.Join("subgid"), nsboxBin, "run"}, args...)
	cmd := exec.Command("unshare", append(argv, "--", "sleep", arg)...)
	cmd.Stderr = os.Stderr
	assert.NilError(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitForProcess(t, "sleep "+arg)
	pid := findProcess("sleep " + arg)
	uids, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	assert.NilError(t, err)
	gids, err := os.ReadFile(fmt.Sprintf("/proc/%d/gid_map", pid))
	assert.NilError(t, err)
	return normalizeMap(string(uids)), normalizeMap(string(gids))
}

// Real root without subordinate ids maps onto a range no line of
// /etc/subuid or /etc/subgid uses, not blindly onto 100000.
func TestRealRootMapsOntoFreeRange(t *testing.T) {
	requireRoot(t)
	uids, gids := withSubidFilesMaps(t,
		"alice:100000:65536\nbob:165536:65536\n",
		"alice:100000:65536\ncarol:231072:10\n")
	assert.Equal(t, uids, "0 231082 65536")
	assert.Equal(t, gids, "0 231082 65536")

	// Root's own range holding host root: refused, line named;
	// --map-host-root is real root's way to mean it.
	res := withSubidFiles(t, "root:0:65536\n", "root:100000:65536\n", nsboxBin, "run", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: `/etc/subuid line 1 "root:0:65536" includes host uid 0`})
	assert.Check(t, is.Contains(res.Stderr(), "or add --map-host-root if you mean it"))
	uids, _ = withSubidFilesMaps(t, "root:0:65536\n", "root:100000:65536\n", "--map-host-root")
	assert.Equal(t, uids, "0 0 65536")
}

// The user without subordinate ids: a single mapping without notice;
// nsbox check suggests a range that is free in both files; a subgid line
// alone gets the notice that says so.
func TestRealRootNoSubidUser(t *testing.T) {
	requireRoot(t)
	user := nosubUser(t)
	work, err := os.MkdirTemp("/var/tmp", "nsbox-nosub-")
	assert.NilError(t, err)
	defer os.RemoveAll(work)
	assert.NilError(t, os.Chmod(work, 0o755))
	res := icmd.RunCmd(icmd.Command("runuser", "-u", user, "--", nsboxBin, "run", "--", "sh", "-c", "id -un; cat /proc/self/uid_map"),
		icmd.Dir(work), icmd.WithEnv("PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR="))
	res.Assert(t, icmd.Success)
	uid := strings.TrimSpace(icmd.RunCmd(icmd.Command("id", "-u", user)).Stdout())
	assert.Equal(t, normalizeMap(res.Stdout()), user+"\n"+uid+" 0 1")
	assert.Equal(t, res.Stderr(), "")

	res = withSubidFiles(t, "x:100000:65536\n", "y:165536:65536\n",
		"runuser", "-u", user, "--", nsboxBin, "check")
	assert.Check(t, is.Contains(res.Combined(), "usermod --add-subuids 231072-296607 --add-subgids 231072-296607 "+user))

	res = withSubidFiles(t, "x:100000:65536\n", user+":165536:65536\n",
		"runuser", "-u", user, "--", nsboxBin, "run", "--", "true")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stderr(), "you have subordinate gids (/etc/subgid) but no subordinate uids (no line for "+user+" in /etc/subuid); fix: as root, usermod --add-subuids 231072-296607 "+user))
}
