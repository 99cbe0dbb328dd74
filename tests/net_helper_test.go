package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// --net user's stack runs in nsbox's helper program (cmd/nsbox-helper),
// started from a memfd. It must hold only what its job needs (not its own
// program, no terminal), be invisible from the sandbox, and go when the
// launcher goes, even by SIGKILL.
func TestNetUserHelperHoldsOnlyItsFilesAndDiesWithTheLauncher(t *testing.T) {
	cmd := exec.Command(nsboxBin, "run", "--net", "user", "--", "sleep", "60")
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	// The helper holds the TAP device once the sandbox is up.
	var helper int
	var links map[string]string
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if helper = childNamed(cmd.Process.Pid, "nsbox-helper"); helper == 0 {
			return poll.Continue("no nsbox-helper child of the launcher yet")
		}
		links = fdLinks(helper)
		for _, l := range links {
			if strings.HasSuffix(l, "/net/tun") { // opened in the sandbox's mount namespace
				return poll.Success()
			}
		}
		return poll.Continue("nsbox-helper %d holds no TAP device: %v", helper, links)
	}, poll.WithTimeout(20*time.Second))
	self, err := filepath.EvalSymlinks(nsboxBin)
	assert.NilError(t, err)
	for fd, link := range links {
		// Its own program (nsbox's file, which the loader mapped it from,
		// or the memfd; fd 3 at exec) and what the launcher did not mean
		// to pass are closed.
		assert.Check(t, !strings.HasPrefix(link, "/memfd:"), "fd %s is its own program: %s", fd, link)
		assert.Check(t, link != self, "fd %s is nsbox's file, the loader's: %s", fd, link)
		n, _ := strconv.Atoi(fd)
		assert.Check(t, n <= 16, "fd %s (%s) is more than the job's few: inherited from the launcher?", fd, link)
		assert.Check(t, !strings.HasPrefix(link, "/dev/pts/") && link != "/dev/tty", "fd %s is a terminal: %s", fd, link)
	}

	// Nothing inside sees it.
	res := nsbox("run", "--net", "user", "--", "sh", "-c", "cat /proc/[0-9]*/comm")
	res.Assert(t, icmd.Success)
	assert.Check(t, !strings.Contains(res.Stdout(), "nsbox-helper"), res.Stdout())

	// SIGKILL the launcher: the helper sees its socket close and exits.
	assert.NilError(t, cmd.Process.Kill())
	cmd.Wait()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if _, err := os.Stat("/proc/" + strconv.Itoa(helper) + "/fd"); err == nil && !zombie(helper) {
			return poll.Continue("nsbox-helper %d outlives its launcher", helper)
		}
		return poll.Success()
	}, poll.WithTimeout(10*time.Second))
}

// fdLinks returns pid's descriptors and what they point to.
func fdLinks(pid int) map[string]string {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, _ := os.ReadDir(dir)
	links := map[string]string{}
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil {
			links[fd.Name()] = link
		}
	}
	return links
}

// childNamed returns the pid of parent's child whose comm is name, or 0.
func childNamed(parent int, name string) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile("/proc/" + d.Name() + "/status")
		if err != nil {
			continue
		}
		var comm string
		ppid := -1
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "Name":
				comm = strings.TrimSpace(v)
			case "PPid":
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if ppid == parent && comm == name {
			return pid
		}
	}
	return 0
}

// On x86-64 the helper is not copied at each start: the loader maps it
// from nsbox's own file (cmd/internal/helper), so its code is nsbox's
// file's pages, and nothing of it is in a memfd but the loader's page.
func TestNetUserHelperRunsFromNsboxFileNotACopy(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatalf("the loader is x86-64's; on %s the helper is copied (change this test with the loader)", runtime.GOARCH)
	}
	self, err := filepath.EvalSymlinks(nsboxBin)
	assert.NilError(t, err)
	want := self
	if beside := filepath.Join(filepath.Dir(self), "nsbox-helper"); fileExists(beside) {
		want = beside // a build without make's embedding runs the installed helper (main_test.go)
	} else {
		var st syscall.Stat_t
		assert.NilError(t, syscall.Stat(self, &st))
		assert.Assert(t, st.Uid == 0 && st.Mode&0o022 == 0, "NSBOX_BIN must be root's, writable by no other, as make install (and hack/test.sh) leave it")
	}
	code, maps := helperCode(t, self)
	assert.Check(t, slices.Contains(code, want), "the helper's code is not mapped from %s: %v\n%s", want, code, maps)
	for _, line := range strings.Split(maps, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && strings.HasPrefix(f[5], "/memfd:") {
			lo, hi, _ := strings.Cut(f[0], "-")
			a, _ := strconv.ParseUint(lo, 16, 64)
			b, _ := strconv.ParseUint(hi, 16, 64)
			assert.Check(t, b-a <= 64<<10, "a memfd mapping of %d bytes: the helper copied? %s", b-a, line)
		}
	}
}

// An nsbox file that the user can write is never mapped into the helper:
// a sandbox that maps the user's id and sees the file could write code
// into it once the launcher is gone (SIGKILL) while the helper still runs
// (cmd/internal/helper viaLoader). The helper is then a sealed copy.
func TestNetUserHelperOfAUserWritableNsboxIsACopy(t *testing.T) {
	self, err := filepath.EvalSymlinks(nsboxBin)
	assert.NilError(t, err)
	own := filepath.Join(t.TempDir(), "nsbox")
	b, err := os.ReadFile(self)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(own, b, 0o755))
	if os.Getuid() == 0 {
		assert.NilError(t, os.Chown(own, 65534, 65534)) // someone's who is not root
	}
	if beside := filepath.Join(filepath.Dir(self), "nsbox-helper"); fileExists(beside) {
		hb, err := os.ReadFile(beside) // a build without make's embedding (main_test.go)
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(filepath.Dir(own), "nsbox-helper"), hb, 0o755))
	}
	code, maps := helperCode(t, own)
	assert.Check(t, !slices.Contains(code, own), "the helper's code is mapped from a file the user can write: %v\n%s", code, maps)
}

// helperCode starts `bin run --net user -- sleep 60` and returns the files
// its helper's code (r-xp) is mapped from, and its whole maps.
func helperCode(t *testing.T, bin string) ([]string, string) {
	t.Helper()
	cmd := exec.Command(bin, "run", "--net", "user", "--", "sleep", "60")
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var helper int
	var maps string
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if helper = childNamed(cmd.Process.Pid, "nsbox-helper"); helper == 0 {
			return poll.Continue("no nsbox-helper child of the launcher yet")
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(helper) + "/maps")
		if maps = string(b); err != nil || !strings.Contains(maps, "r-xp") {
			return poll.Continue("nsbox-helper %d: no code mapped yet: %v", helper, err)
		}
		return poll.Success()
	}, poll.WithTimeout(20*time.Second))
	var code []string
	for _, line := range strings.Split(maps, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[1] == "r-xp" && !strings.HasPrefix(f[5], "[") {
			code = append(code, f[5])
		}
	}
	return code, maps
}

// zombie reports whether pid has exited and waits for its reaper.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z")
}

// The ELF constructor starts --net user's helper before the Go runtime
// (cmd/internal/helper/early.c) from the flags alone; the launcher adopts
// it, or kills and reaps it when the flags are refused or the sandbox
// never needs it. Whichever way a run ends, no helper is left: not
// running, and not a zombie for someone else to reap (the test process
// is the subreaper of whatever the launcher leaves, so each would be its
// child once nsbox exits). Both with the fast path and without.
func TestNetUserHelperLeftByNoRun(t *testing.T) {
	requireUnprivileged(t)
	adoptOrphans(t)
	for _, c := range []struct {
		args []string
		exit int
	}{
		{[]string{"run", "--net", "user", "--no-such-flag", "--", "true"}, 125}, // refused by the parser
		{[]string{"run", "--net=user", "--mtu", "x", "--", "true"}, 125},        // a bad value
		{[]string{"run", "--net", "user", "--share", "net", "--", "true"}, 125}, // refused once the helper is adopted
		{[]string{"run", "--net", "user", "--net", "none", "--", "true"}, 0},    // the last --net decides
		{[]string{"run", "--net", "user", "--", "/no/such/command"}, 127},       // the sandbox fails after the helper served
		{[]string{"run", "--net", "user", "--", "true"}, 0},                     // served, stopped, reaped
		{[]string{"run", "--net", "user", "--print-spec", "--", "true"}, 0},     // no sandbox in this process
		{[]string{"run", "--net", "user", "--", "sh", "-c", "kill -9 $$"}, 137}, // the command killed
	} {
		for _, fast := range []string{"", "off"} {
			res := nsboxWith(c.args, icmd.WithEnv(append(os.Environ(), "NSBOX_FASTPATH="+fast)...))
			assert.Check(t, res.ExitCode == c.exit, "%v (NSBOX_FASTPATH=%s): exit %d, want %d\n%s", c.args, fast, res.ExitCode, c.exit, res.Combined())
			left := helpersLeft()
			assert.Check(t, len(left) == 0, "%v (NSBOX_FASTPATH=%s) left %v", c.args, fast, left)
		}
	}
}

// helpersLeft lists this process's children (alive or zombies: the
// subreaper's orphans) that are a helper: named nsbox-helper, or "64"
// before it names itself (it runs from the loader's descriptor 64), and
// reaps them.
func helpersLeft() []string {
	var left []string
	for _, pid := range childrenOf(os.Getpid()) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if name := strings.TrimSpace(string(b)); name == "nsbox-helper" || name == "64" {
			left = append(left, fmt.Sprintf("%d %s zombie=%v", pid, name, zombie(pid)))
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	}
	return left
}
