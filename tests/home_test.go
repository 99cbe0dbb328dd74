package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// A small Go module with one test.
func goModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n\ngo 1.22\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "m_test.go"), []byte(`package m

import "testing"

func TestAdd(t *testing.T) {
	if 1+1 != 2 {
		t.Fatal("arithmetic")
	}
}
`), 0o644))
	return dir
}

// goBinDir is where the go command is: on PATH, or in the GOROOT this
// test was built with (CI's PATH for the test user lacks /usr/local/go/bin).
func goBinDir(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return filepath.Dir(p)
	}
	for _, dir := range []string{filepath.Join(runtime.GOROOT(), "bin"), "/usr/local/go/bin"} {
		if st, err := os.Stat(filepath.Join(dir, "go")); err == nil && st.Mode()&0o111 != 0 {
			return dir
		}
	}
	cannotRun(t, "no go command on PATH, in %s or /usr/local/go/bin", runtime.GOROOT())
	return ""
}

// go test in a default sandbox, with no environment but PATH and HOME:
// the build cache goes to the private home. Then --cache go keeps it:
// the second run is faster (logged, not asserted).
func TestHomeGoTestAndCache(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	mod := goModule(t)
	env := icmd.WithEnv("PATH="+goBinDir(t)+":/usr/bin:/bin", "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	res := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--", "go", "test", "./..."), env, icmd.Dir(mod))
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), "ok  \texample.com/m"))
	_, err := os.Stat(filepath.Join(home, ".cache", "go-build"))
	assert.Check(t, os.IsNotExist(err), "the build cache reached the host's home")

	// The second run reuses the kept build cache: go test -x prints no
	// compile command (the standard library and the package come from
	// the cache), where the first compiles everything.
	var compiles [2]int
	for i := range compiles {
		res := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--cache", "go", "--", "go", "test", "-count=1", "-x", "./..."), env, icmd.Dir(mod))
		res.Assert(t, icmd.Success)
		compiles[i] = strings.Count(res.Stderr(), "/compile ")
	}
	assert.Check(t, compiles[0] > 0, "the first go test compiled nothing: was the cache already full?")
	assert.Check(t, is.Equal(compiles[1], 0), "the second go test recompiled: --cache go did not keep the build cache")
	res = icmd.RunCmd(icmd.Command(nsboxBin, "cache", "ls"), env)
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), filepath.Join(home, ".cache", "nsbox", "cache", "go")))
	icmd.RunCmd(icmd.Command(nsboxBin, "cache", "rm", "go"), env).Assert(t, icmd.Success)
	_, err = os.Stat(filepath.Join(home, ".cache", "nsbox", "cache", "go"))
	assert.Check(t, os.IsNotExist(err))
}

// --home NAME persists from one sandbox to the next; the real home stays
// as it was; nsbox cache lists and removes it.
func TestHomeNamedPersists(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	ops := withHome(home, t.TempDir())
	nsboxWith([]string{"run", "--home", "dev", "--", "sh", "-c", "echo kept > ~/.note"}, ops...).Assert(t, icmd.Success)
	res := nsboxWith([]string{"run", "--home", "dev", "--", "sh", "-c", "cat ~/.note; ls ~/.ssh 2>&1"}, ops...)
	assert.Check(t, is.Contains(res.Stdout(), "kept\n"))
	assert.Check(t, is.Contains(res.Stdout(), "No such file"))
	_, err := os.Stat(filepath.Join(home, ".note"))
	assert.Check(t, os.IsNotExist(err))
	nsboxWith([]string{"cache", "ls"}, ops...).Assert(t, icmd.Expected{Out: "home/dev"})
	nsboxWith([]string{"cache", "rm", "home/dev"}, ops...).Assert(t, icmd.Success)
	res = nsboxWith([]string{"run", "--home", "dev", "--", "sh", "-c", "cat ~/.note"}, ops...)
	assert.Check(t, res.ExitCode != 0)
	// A path must exist; a bad name is refused before anything starts.
	nsboxWith([]string{"run", "--home", "./missing", "--", "true"}, ops...).Assert(t, icmd.Expected{ExitCode: 125, Err: "mkdir -p"})
	nsboxWith([]string{"run", "--cache", "maven", "--", "true"}, ops...).Assert(t, icmd.Expected{ExitCode: 125, Err: "use go, pip, npm or cargo"})
}

// The private home is the command's, writable, at the real home's path;
// a working directory below the home is bound there.
func TestHomePrivateWithCwdInside(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	proj := filepath.Join(home, "src", "proj")
	assert.NilError(t, os.MkdirAll(proj, 0o755))
	res := nsboxWith([]string{"run", "--", "sh", "-c", `echo "$HOME"; ls -A ~; touch ~/made ./made-in-cwd && echo ok; ls -A ~/src`}, withHome(home, proj)...)
	res.Assert(t, icmd.Expected{Out: home + "\nsrc\nok\nproj\n"})
	assert.Check(t, is.Len(notices(res.Stderr()), 0), res.Stderr())
	_, err := os.Stat(filepath.Join(proj, "made-in-cwd"))
	assert.Check(t, err)
	_, err = os.Stat(filepath.Join(home, "made"))
	assert.Check(t, os.IsNotExist(err))
}

// Container conventions, and what rootless debootstrap needs of them:
// container= in the environment, the systemd marker file, mknod refused
// with EPERM (no device nodes in a user namespace), exec allowed in the
// working directory (no noexec).
func TestContainerConventions(t *testing.T) {
	requireUnprivileged(t)
	dir := t.TempDir()
	res := nsboxWith([]string{"run", "--root", "--", "sh", "-c",
		`echo "$container"; cat /run/host/container-manager; mknod ./null c 1 3 2>&1 | grep -c 'Operation not permitted'; printf '#!/bin/sh\necho exec-ok\n' > x; chmod +x x; ./x`},
		icmd.Dir(dir))
	res.Assert(t, icmd.Expected{Out: "nsbox\nnsbox\n1\nexec-ok\n"})
	res = nsbox("run", "--setenv", "container=lxc", "--", "sh", "-c", `echo "$container"`)
	res.Assert(t, icmd.Expected{Out: "lxc\n"})
}

// nsbox rm removes the log a detached sandbox left; a running one is
// refused.
func TestRmEndedLog(t *testing.T) {
	requireUnprivileged(t)
	rt := t.TempDir()
	env := icmd.WithEnv("PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"), "XDG_RUNTIME_DIR="+rt)
	name := "rmtest"
	icmd.RunCmd(icmd.Command(nsboxBin, "run", "-d", "--name", name, "--", "sh", "-c", "echo from-detached; sleep 2"), env).Assert(t, icmd.Success)
	res := icmd.RunCmd(icmd.Command(nsboxBin, "rm", name), env)
	assert.Check(t, res.ExitCode == 125 && strings.Contains(res.Stderr(), "is running"), res.Combined())
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if r := icmd.RunCmd(icmd.Command(nsboxBin, "rm", name), env); r.ExitCode == 0 {
			return poll.Success()
		}
		return poll.Continue("still running")
	}, poll.WithTimeout(20*time.Second))
	res = icmd.RunCmd(icmd.Command(nsboxBin, "logs", name), env)
	assert.Check(t, res.ExitCode == 125, res.Combined())
}

// The private home is writable by the command in every id mode,
// including --map single's nested user namespace.
func TestHomeWritableInEveryMapMode(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	for _, mode := range [][]string{nil, {"--root"}, {"--map", "single"}, {"--map", "single", "--root"}, {"--uid", "1234"}} {
		args := append(append([]string{"run"}, mode...), "--", "sh", "-c", `touch ~/x "$XDG_RUNTIME_DIR/x" && test "$(stat -c %u ~)" = "$(id -u)" && echo ok`)
		rt := t.TempDir()
		res := nsboxWith(args, withHome(home, t.TempDir(), "XDG_RUNTIME_DIR="+rt)...)
		res.Assert(t, icmd.Expected{Out: "ok"})
	}
}
