package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// Host-side code that walks what sandboxes wrote (nsbox cache rm and ls,
// nsbox logs and rm): each attack of issue 21 item 4 from a real sandbox.

// treesHelperEnv names the hostile program the test binary turns into
// inside a sandbox (a variable of these tests' own, so its init runs
// before any other helper dispatch looks).
const treesHelperEnv = "NSBOX_TREES_HELPER"

func init() {
	switch os.Getenv(treesHelperEnv) {
	case "swapper":
		os.Exit(swapper(os.Args[1:]))
	}
}

// swapper is the attacker of item 4, run inside a sandbox that can write
// the cache at args[0]: it makes pairs of a directory xNNN (holding sub/,
// as the host directory args[1] does) and a symlink lNNN -> args[1],
// writes args[0]/ready, then exchanges each pair in turn with
// renameat2(RENAME_EXCHANGE), as fast as it can and until killed,
// remaking what nsbox cache rm removed. Many pairs make a walk by path
// long enough to lose the race on a loaded machine too.
func swapper(args []string) int {
	top, outside := args[0], args[1]
	const pairs = 100
	remake := func(i int) {
		x, l := filepath.Join(top, fmt.Sprintf("x%03d", i)), filepath.Join(top, fmt.Sprintf("l%03d", i))
		if _, err := os.Lstat(x); err != nil {
			os.Mkdir(x, 0o700)
			os.Mkdir(filepath.Join(x, "sub"), 0o700)
			os.WriteFile(filepath.Join(x, "keep"), nil, 0o400)
		}
		if _, err := os.Lstat(l); err != nil {
			os.Symlink(outside, l)
		}
	}
	for i := 0; i < pairs; i++ {
		remake(i)
	}
	os.WriteFile(filepath.Join(top, "ready"), nil, 0o600)
	for {
		for i := 0; i < pairs; i++ {
			x, l := filepath.Join(top, fmt.Sprintf("x%03d", i)), filepath.Join(top, fmt.Sprintf("l%03d", i))
			if unix.Renameat2(unix.AT_FDCWD, x, unix.AT_FDCWD, l, unix.RENAME_EXCHANGE) == unix.ENOENT {
				remake(i)
			}
		}
	}
}

// hostDir makes a host directory outside every cache, read-only (555)
// with a file and a read-only subdirectory, and returns a check that it
// was left alone: the target the attacker's symlink points cache rm at.
func hostDir(t *testing.T) (string, func(what string)) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o700))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "keep"), []byte("host data"), 0o600))
	assert.NilError(t, os.Chmod(filepath.Join(dir, "sub"), 0o555))
	assert.NilError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { os.Chmod(dir, 0o700); os.Chmod(filepath.Join(dir, "sub"), 0o700) })
	return dir, func(what string) {
		t.Helper()
		for _, p := range []string{dir, filepath.Join(dir, "sub")} {
			st, err := os.Lstat(p)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o555)), "%s: %s", what, p)
		}
		b, err := os.ReadFile(filepath.Join(dir, "keep"))
		assert.Check(t, err == nil && string(b) == "host data", "%s: the host file: %q, %v", what, b, err)
	}
}

// cacheEnv is a home and cache directory of the test's own.
func cacheEnv(t *testing.T) (cache string, env icmd.CmdOp, envs []string) {
	t.Helper()
	requireUnprivileged(t)
	base := t.TempDir()
	cache = filepath.Join(base, "cache")
	envs = append(os.Environ(), "XDG_CACHE_HOME="+cache, "XDG_RUNTIME_DIR="+filepath.Join(base))
	return filepath.Join(cache, "nsbox"), icmd.WithEnv(envs...), envs
}

// oneShortLine checks an error output is one line of bounded length.
func oneShortLine(t *testing.T, what, stderr string) {
	t.Helper()
	s := strings.TrimSuffix(stderr, "\n")
	assert.Check(t, !strings.Contains(s, "\n"), "%s: more than one line: %q", what, stderr)
	assert.Check(t, len(s) < 600, "%s: %d bytes: %.300q…", what, len(s), s)
}

// startSwapper runs the swapper in a detached sandbox with the flags,
// attacking dir as the sandbox sees it, and waits until it is at work.
func startSwapper(t *testing.T, envs []string, name, hostTop, inside, outside string, flags ...string) {
	t.Helper()
	self, err := os.Executable()
	assert.NilError(t, err)
	args := append([]string{"run", "-d", "--name", name}, flags...)
	args = append(args, "--setenv", treesHelperEnv+"=swapper", "--", self, inside, outside)
	icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.WithEnv(envs...)).Assert(t, icmd.Success)
	t.Cleanup(func() { icmd.RunCmd(icmd.Command(nsboxBin, "kill", name), icmd.WithEnv(envs...)) })
	waitFor(t, func() bool {
		_, err := os.Lstat(filepath.Join(hostTop, "ready"))
		return err == nil
	}, "the swapper to start")
}

// A cache in use is refused, naming the sandbox, and removed once it
// ended. While it is refused, the swapper inside cannot have cache rm
// follow its link: before the fix cache rm walked by path and turned the
// host directory from 555 to 700.
func TestCacheRmOfCacheInUseIsRefused(t *testing.T) {
	root, env, envs := cacheEnv(t)
	outside, untouched := hostDir(t)
	// The sandbox's home is a tmpfs: GOMODCACHE is ~/go/pkg/mod inside.
	home := os.Getenv("HOME")
	startSwapper(t, envs, "user", filepath.Join(root, "cache/go/mod"), filepath.Join(home, "go/pkg/mod"), outside, "--cache", "go")
	for i := 0; i < 3; i++ {
		res := icmd.RunCmd(icmd.Command(nsboxBin, "cache", "rm", "go"), env)
		res.Assert(t, icmd.Expected{ExitCode: 125, Err: "in use by the running sandbox user"})
		oneShortLine(t, "cache rm of a cache in use", res.Stderr())
		untouched(fmt.Sprintf("cache rm %d", i))
	}
	// Removing every cache stops at the one in use, too.
	icmd.RunCmd(icmd.Command(nsboxBin, "cache", "rm"), env).Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox stop user"})
	// A new sandbox may share the cache meanwhile (the locks are shared).
	icmd.RunCmd(icmd.Command(nsboxBin, "run", "--cache", "go", "--", "true"), env).Assert(t, icmd.Success)

	icmd.RunCmd(icmd.Command(nsboxBin, "kill", "user"), env).Assert(t, icmd.Success)
	icmd.RunCmd(icmd.Command(nsboxBin, "cache", "rm", "go"), env).Assert(t, icmd.Success)
	_, err := os.Lstat(filepath.Join(root, "cache/go"))
	assert.Check(t, os.IsNotExist(err), "the cache is left: %v", err)
	untouched("after the sandbox ended")
}

// The swapper attacks cache rm itself: here the cache reaches the sandbox
// by --bind (no lock), so cache rm walks it while the swapper exchanges a
// directory with a symlink to a host directory. Nothing outside the cache
// may change; cache rm succeeds or fails with one short line.
func TestCacheRmDoesNotFollowSwappedLinks(t *testing.T) {
	root, env, envs := cacheEnv(t)
	outside, untouched := hostDir(t)
	// nsbox makes the cache directory on first use.
	icmd.RunCmd(icmd.Command(nsboxBin, "run", "--cache", "go", "--", "true"), env).Assert(t, icmd.Success)
	mod := filepath.Join(root, "cache/go/mod")
	for round := 0; round < 5; round++ {
		assert.NilError(t, os.MkdirAll(mod, 0o700))
		name := fmt.Sprintf("swap%d", round)
		inside := filepath.Join(os.Getenv("HOME"), "w")
		startSwapper(t, envs, name, mod, inside, outside, "--bind", mod+":"+inside)
		res := icmd.RunCmd(icmd.Command(nsboxBin, "cache", "rm", "go"), env)
		if res.ExitCode != 0 {
			assert.Check(t, is.Equal(res.ExitCode, 125))
			oneShortLine(t, "cache rm under attack", res.Stderr())
		}
		untouched(fmt.Sprintf("round %d", round))
		icmd.RunCmd(icmd.Command(nsboxBin, "kill", name), env)
		// With nothing racing, what is left goes.
		if _, err := os.Lstat(filepath.Join(root, "cache/go")); err == nil {
			icmd.RunCmd(icmd.Command(nsboxBin, "cache", "rm", "go"), env).Assert(t, icmd.Success)
		}
		untouched(fmt.Sprintf("round %d, after", round))
	}
}

// A 22,000-level chain in a cache: the walk holds a few descriptors at any
// depth, so cache rm neither fails with EMFILE nor prints a 44 KB line.
func TestCacheRmDeepChain(t *testing.T) {
	root, env, _ := cacheEnv(t)
	icmd.RunCmd(icmd.Command(nsboxBin, "run", "--cache", "go", "--", "true"), env).Assert(t, icmd.Success)
	fd, err := unix.Open(filepath.Join(root, "cache/go/build"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	assert.NilError(t, err)
	for i := 0; i < 22000; i++ {
		assert.NilError(t, unix.Mkdirat(fd, "d", 0o700))
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		assert.NilError(t, err)
		unix.Close(fd)
		fd = next
	}
	unix.Close(fd)
	start := time.Now()
	res := icmd.RunCmd(icmd.Command("sh", "-c", "ulimit -n 64 && exec "+nsboxBin+" cache rm go"), env)
	t.Logf("cache rm of 22,000 levels: %v", time.Since(start))
	res.Assert(t, icmd.Success)
	oneShortLine(t, "cache rm of a deep chain", res.Stderr())
	_, err = os.Lstat(filepath.Join(root, "cache/go"))
	assert.Check(t, os.IsNotExist(err), "left: %v", err)
}

// Planted links and FIFOs in the state directory (which a sandbox that
// saw it could have written): nsbox logs neither follows a symlink nor
// blocks on a FIFO, and nsbox rm removes the name, not its target.
func TestPlantedLinksInStateDir(t *testing.T) {
	s := newStateEnv(t)
	secret := filepath.Join(t.TempDir(), "secret")
	assert.NilError(t, os.WriteFile(secret, []byte("host secret\n"), 0o600))
	s.run("run", "-d", "--name", "lg", "--", "sh", "-c", "echo from-lg; exec sleep 60").Assert(t, icmd.Success)
	t.Cleanup(func() { s.run("kill", "lg") })
	entry := filepath.Join(s.xdg, "nsbox", "lg")
	waitFor(t, func() bool { return s.run("logs", "lg").Stdout() == "from-lg\n" }, "the log")

	// A running sandbox's log swapped for a symlink to a host file.
	log := filepath.Join(entry, "log")
	assert.NilError(t, os.Rename(log, log+".real"))
	assert.NilError(t, os.Symlink(secret, log))
	res := s.run("logs", "lg")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "symlink"})
	assert.Check(t, !strings.Contains(res.Stdout(), "host secret"))
	oneShortLine(t, "logs of a planted link", res.Stderr())
	assert.NilError(t, os.Remove(log))
	assert.NilError(t, os.Rename(log+".real", log))
	s.run("stop", "lg").Assert(t, icmd.Success)

	// An ended sandbox's kept log, as a symlink, then as a FIFO.
	kept := filepath.Join(s.xdg, "nsbox", ".logs", "lg")
	assert.NilError(t, os.Remove(kept))
	assert.NilError(t, os.Symlink(secret, kept))
	res = s.run("logs", "lg")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "symlink"})
	assert.Check(t, !strings.Contains(res.Stdout(), "host secret"))
	s.run("rm", "lg").Assert(t, icmd.Success)
	_, err := os.Lstat(kept)
	assert.Check(t, os.IsNotExist(err))
	b, err := os.ReadFile(secret)
	assert.Check(t, err == nil && string(b) == "host secret\n", "the link's target: %q %v", b, err)

	assert.NilError(t, unix.Mkfifo(kept, 0o600))
	cmd := exec.Command(nsboxBin, "logs", "lg")
	cmd.Env = s.env()
	done := make(chan error, 1)
	assert.NilError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		assert.Check(t, err != nil, "nsbox logs of a FIFO succeeded")
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Error("nsbox logs blocks on a FIFO planted as the log")
	}
	s.run("rm", "lg").Assert(t, icmd.Success)

	// A stale entry (its launcher gone) holding a link to a host
	// directory and a read-only subdirectory: the sweep removes the entry,
	// and only it.
	outside, untouched := hostDir(t)
	stale := filepath.Join(s.xdg, "nsbox", "gone")
	assert.NilError(t, os.MkdirAll(filepath.Join(stale, "d"), 0o700))
	assert.NilError(t, os.Symlink(outside, filepath.Join(stale, "d", "link")))
	assert.NilError(t, os.Chmod(filepath.Join(stale, "d"), 0o555))
	s.run("ps").Assert(t, icmd.Success)
	_, err = os.Lstat(stale)
	assert.Check(t, os.IsNotExist(err), "the stale entry is left: %v", err)
	untouched("the state sweep")
}
