package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// stateEnv gives each test a state directory of its own (nsbox keeps its
// entries under $XDG_RUNTIME_DIR/nsbox), so tests cannot see each other's
// sandboxes.
type stateEnv struct {
	t   *testing.T
	xdg string
}

func newStateEnv(t *testing.T) *stateEnv {
	t.Helper()
	requireUnprivileged(t)
	return &stateEnv{t: t, xdg: t.TempDir()}
}

func (s *stateEnv) env() []string {
	return append(os.Environ(), "XDG_RUNTIME_DIR="+s.xdg)
}

// entries is what is on disk in the state directory.
func (s *stateEnv) entries() []string {
	ents, _ := os.ReadDir(filepath.Join(s.xdg, "nsbox"))
	var names []string
	for _, e := range ents {
		// Not entries: the kept logs of ended detached sandboxes, the
		// stamp of the last sweep for stale entries.
		// Nor the replay's plans and key (internal/replay).
		if e.Name() != ".logs" && e.Name() != ".swept" && e.Name() != ".replay" && e.Name() != ".replay-key" {
			names = append(names, e.Name())
		}
	}
	return names
}

// run runs nsbox and waits.
func (s *stateEnv) run(args ...string) *icmd.Result {
	return icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.WithEnv(s.env()...))
}

// inspected is the part of nsbox inspect's JSON the tests read.
type inspected struct {
	Name         string            `json:"name"`
	Pid          int               `json:"pid"`
	PidStartTime uint64            `json:"pidStartTime"`
	LauncherPid  int               `json:"launcherPid"`
	Namespaces   map[string]uint64 `json:"namespaces"`
	UIDMap       string            `json:"uidMap"`
	GIDMap       string            `json:"gidMap"`
	Cwd          string            `json:"cwd"`
	Spec         struct {
		Process struct {
			Args []string `json:"args"`
		} `json:"process"`
	} `json:"spec"`
}

func (s *stateEnv) inspect(name string) inspected {
	s.t.Helper()
	res := s.run("inspect", name)
	res.Assert(s.t, icmd.Success)
	var e inspected
	assert.NilError(s.t, json.Unmarshal([]byte(res.Stdout()), &e), res.Stdout())
	return e
}

// start launches `nsbox run --name NAME ARGS…` in the background and waits
// until nsbox ps lists it. The launcher is killed at the end of the test.
func (s *stateEnv) start(name string, args ...string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(nsboxBin, append([]string{"run", "--name", name}, args...)...)
	cmd.Env = s.env()
	assert.NilError(s.t, cmd.Start())
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	s.waitListed(name)
	return cmd
}

// waitListed waits until nsbox ps lists the sandbox name: its record is
// written once its command runs (by the Go launcher or a replay), which
// may be after the command's first output.
func (s *stateEnv) waitListed(name string) {
	s.t.Helper()
	poll.WaitOn(s.t, func(poll.LogT) poll.Result {
		// Not listed: a check runs in poll's goroutine, which may
		// outlive the test, where a failed assert panics.
		switch ok, err := s.psLists(name); {
		case err != nil:
			return poll.Error(err)
		case ok:
			return poll.Success()
		}
		return poll.Continue("nsbox ps does not list %s yet", name)
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))
}

// listed reports whether the table of nsbox ps has a row for name.
func (s *stateEnv) listed(name string) bool {
	s.t.Helper()
	ok, err := s.psLists(name)
	assert.NilError(s.t, err)
	return ok
}

// psLists is listed for a poll check: nsbox ps failing, or printing no
// table, is its error.
func (s *stateEnv) psLists(name string) (bool, error) {
	res := s.run("ps")
	if err := res.Compare(icmd.Success); err != nil {
		return false, fmt.Errorf("nsbox ps: %w", err)
	}
	lines := splitLines(res.Stdout())
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME") {
		return false, fmt.Errorf("nsbox ps printed no table: %q", res.Stdout())
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true, nil
		}
	}
	return false, nil
}

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	assert.NilError(t, err)
	return 0
}

func TestPsListsRunningSandboxAndNotAfterItEnds(t *testing.T) {
	s := newStateEnv(t)
	launcher := s.start("b", "--", "sleep", "60")
	e := s.inspect("b")
	assert.Equal(t, e.Name, "b")
	assert.DeepEqual(t, e.Spec.Process.Args, []string{"sleep", "60"})
	assert.Equal(t, e.LauncherPid, launcher.Process.Pid)
	// PID 1 is a real process of ours, with the recorded start time…
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.Pid))
	assert.NilError(t, err)
	fields := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+1:])
	assert.Equal(t, fields[19], strconv.FormatUint(e.PidStartTime, 10))
	// …whose namespaces and maps are the recorded ones, read from the host.
	// PID 1 itself is not readable (not dumpable): its command's are, the
	// sandbox's own but for the nested user and mount namespaces, whose
	// parent user namespace is the recorded one.
	cmd := commandOf(t, e.Pid)
	for _, ns := range []string{"pid", "net", "ipc", "uts", "cgroup"} {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", cmd, ns))
		assert.NilError(t, err)
		assert.Equal(t, link, fmt.Sprintf("%s:[%d]", ns, e.Namespaces[ns]))
	}
	assert.Equal(t, parentUserNS(t, cmd), e.Namespaces["user"])
	_, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/user", e.Pid))
	assert.Check(t, errors.Is(err, os.ErrPermission), "PID 1 is readable: %v", err)
	uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", e.Pid))
	gidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/gid_map", e.Pid))
	assert.Equal(t, e.UIDMap, string(uidMap))
	assert.Equal(t, e.GIDMap, string(gidMap))

	// ps --json carries the same record.
	res := s.run("ps", "--json")
	res.Assert(t, icmd.Success)
	var all []inspected
	assert.NilError(t, json.Unmarshal([]byte(res.Stdout()), &all))
	assert.Equal(t, len(all), 1)
	assert.DeepEqual(t, all[0], e)

	// The state directory is private.
	st, err := os.Stat(filepath.Join(s.xdg, "nsbox"))
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o700))

	// A sandbox that ends on its own leaves neither a row nor an entry.
	short := exec.Command(nsboxBin, "run", "--name", "short", "--", "true")
	short.Env = s.env()
	assert.NilError(t, short.Run())
	assert.Check(t, !s.listed("short"))
	assert.DeepEqual(t, s.entries(), []string{"b"})

	s.run("kill", "b").Assert(t, icmd.Success)
	assert.Check(t, !s.listed("b"))
	assert.Check(t, is.Len(s.entries(), 0))
}

func TestDefaultNameIsShortRandomID(t *testing.T) {
	s := newStateEnv(t)
	cmd := exec.Command(nsboxBin, "run", "--", "sleep", "60")
	cmd.Env = s.env()
	assert.NilError(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var name string
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		res := s.run("ps")
		if lines := splitLines(res.Stdout()); len(lines) == 2 {
			name = strings.Fields(lines[1])[0]
			return poll.Success()
		}
		return poll.Continue("not listed yet: %s", res.Stdout())
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))
	assert.Check(t, regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(name), name)
}

func TestStaleEntryOfKilledLauncherIsRemoved(t *testing.T) {
	s := newStateEnv(t)
	launcher := s.start("b", "--", "sleep", "60")
	assert.NilError(t, launcher.Process.Signal(syscall.SIGKILL))
	launcher.Wait()
	// The launcher had no chance to clean up: its entry is still there…
	assert.DeepEqual(t, s.entries(), []string{"b"})
	// …until the next ps, which finds its lock free.
	assert.Check(t, !s.listed("b"))
	assert.Check(t, is.Len(s.entries(), 0))

	// The same for run: the name is free again, and the stale entry of
	// another killed launcher is swept.
	other := s.start("c", "--", "sleep", "60")
	other.Process.Signal(syscall.SIGKILL)
	other.Wait()
	s.run("run", "--name", "c", "--", "true").Assert(t, icmd.Success)
	assert.Check(t, is.Len(s.entries(), 0))
}

func TestNameClash(t *testing.T) {
	s := newStateEnv(t)
	s.start("b", "--", "sleep", "60")
	res := s.run("run", "--name", "b", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Check(t, is.Contains(res.Stderr(), `sandbox name "b": name in use`))
	assert.Check(t, is.Equal(len(splitLines(res.Stderr())), 1), res.Stderr())
	assert.DeepEqual(t, s.entries(), []string{"b"})

	res = s.run("run", "--name", "../x", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Check(t, is.Contains(res.Stderr(), `--name: sandbox name "../x"`))
}

func TestStateDirOwnedBySomeoneElseIsRefused(t *testing.T) {
	requireUnprivileged(t)
	// Plant, in both places nsbox looks ($XDG_RUNTIME_DIR/nsbox, then
	// $TMPDIR/nsbox-UID), something that is not a directory of ours: a
	// symlink to a directory of another owner stands for it.
	uid := os.Getuid()
	planted := func() string {
		d := filepath.Join(t.TempDir(), "runtime")
		assert.NilError(t, os.Mkdir(d, 0o755))
		assert.NilError(t, os.Symlink("/", filepath.Join(d, "nsbox")))
		assert.NilError(t, os.Symlink("/", filepath.Join(d, fmt.Sprintf("nsbox-%d", uid))))
		return d
	}
	xdg, tmp := planted(), planted()
	ps := func(xdg, tmp string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(nsboxBin, "ps"), icmd.WithEnv(append(os.Environ(), "XDG_RUNTIME_DIR="+xdg, "TMPDIR="+tmp)...))
	}
	res := ps(xdg, tmp)
	res.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Check(t, is.Contains(res.Stderr(), "no usable state directory: state directory "+xdg+"/nsbox is not a directory"))
	assert.Check(t, is.Contains(res.Stderr(), fmt.Sprintf("; state directory %s/nsbox-%d is not a directory", tmp, uid)))
	assert.Check(t, is.Equal(len(splitLines(res.Stderr())), 1), "one line")

	// Directories where we may not create ours.
	res = ps("/", "/")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "create the state directory /nsbox"})
	assert.Check(t, is.Contains(res.Stderr(), fmt.Sprintf("create the state directory /nsbox-%d", uid)))

	// One bad place is not the end: the next one serves.
	good := t.TempDir()
	ps(xdg, good).Assert(t, icmd.Success)
	st, err := os.Stat(filepath.Join(good, fmt.Sprintf("nsbox-%d", uid)))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o700)))
}

func TestExecJoinsTheSandbox(t *testing.T) {
	s := newStateEnv(t)
	launcher := s.start("b", "--hostname", "box", "--", "sleep", "60")
	e := s.inspect("b")

	// The sandbox's PID namespace and /proc: its init and its command.
	// PID 1 has the launcher's name and command line, whichever way its
	// stage was started (forked by the ELF constructor, or the binary
	// executed again: NSBOX_FASTPATH=off).
	res := s.run("exec", "b", "--", "ps", "-e", "-o", "pid=,comm=,args=")
	res.Assert(t, icmd.Success)
	procs, args := map[string]string{}, map[string]string{}
	for _, l := range splitLines(res.Stdout()) {
		f := strings.Fields(l)
		procs[f[1]] = f[0]
		args[f[0]] = strings.Join(f[2:], " ")
	}
	assert.Check(t, is.Equal(procs["nsbox"], "1"), res.Stdout())
	assert.Check(t, is.Equal(procs["sleep"], "2"), res.Stdout())
	assert.Check(t, is.Len(procs, 3), res.Stdout())
	assert.Check(t, is.Equal(args["1"], strings.Join(launcher.Args, " ")), res.Stdout())

	// Every namespace is the sandbox's, and so are its hostname, maps and
	// security settings (seccomp filter, no capabilities).
	script := `for n in user mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done; hostname; cat /proc/self/uid_map; grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/self/status; pwd`
	res = s.run("exec", "b", "--", "sh", "-c", script)
	res.Assert(t, icmd.Success)
	// The user and mount namespaces are the command's nested ones
	// (sandbox/nested.go), whose map is the identity over the sandbox's.
	cmd := commandOf(t, e.Pid)
	var want []string
	for _, n := range []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"} {
		if n == "user" || n == "mnt" {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", cmd, n))
			assert.NilError(t, err)
			want = append(want, link)
			continue
		}
		want = append(want, fmt.Sprintf("%s:[%d]", n, e.Namespaces[n]))
	}
	want = append(want, "box")
	for _, l := range splitLines(normalizeMap(e.UIDMap)) {
		f := strings.Fields(l)
		want = append(want, f[0]+" "+f[0]+" "+f[2])
	}
	want = append(want, "CapEff: 0000000000000000", "CapBnd: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", e.Cwd)
	got := splitLines(res.Stdout())
	for i := range got {
		got[i] = strings.Join(strings.Fields(got[i]), " ")
	}
	assert.DeepEqual(t, got, want)

	// Identity as for run, and exit statuses pass through.
	res = s.run("exec", "b", "--root", "--", "id", "-u")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(strings.TrimSpace(res.Stdout()), "0"))
	s.run("exec", "b", "--", "sh", "-c", "exit 7").Assert(t, icmd.Expected{ExitCode: 7})
	s.run("exec", "b", "--", "no-such-command").Assert(t, icmd.Expected{ExitCode: 127})
	s.run("exec", "b", "--setenv", "X=1", "--", "sh", "-c", `test "$X" = 1`).Assert(t, icmd.Success)
	s.run("exec", "nope", "--", "true").Assert(t, icmd.Expected{ExitCode: 125, Err: "no such sandbox"})
}

func TestExecSharesTheMountView(t *testing.T) {
	s := newStateEnv(t)
	// A mount made inside the sandbox after it started, invisible to the
	// host, is visible to nsbox exec.
	s.start("m", "--root", "--", "sh", "-c", "mount -t tmpfs box /mnt && touch /mnt/made-inside && exec sleep 60")
	waitFor(t, func() bool {
		return s.run("exec", "m", "--", "test", "-e", "/mnt/made-inside").ExitCode == 0
	}, "the file on the sandbox's tmpfs")
	_, err := os.Stat("/mnt/made-inside")
	assert.Check(t, os.IsNotExist(err), "the sandbox's mount leaked to the host")
	res := s.run("exec", "m", "--", "sh", "-c", "grep ' /mnt ' /proc/self/mounts")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), "box /mnt tmpfs"))
}

func TestExecUserNamespaceComesFirst(t *testing.T) {
	s := newStateEnv(t)
	s.start("b", "--", "sleep", "60")
	e := s.inspect("b")
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		cannotRun(t, "nsenter (util-linux) not found")
	}
	// PID 1 is not dumpable: its namespaces are closed even to us.
	res := icmd.RunCmd(icmd.Command(nsenter, "-t", strconv.Itoa(e.Pid), "-U", "--preserve-credentials", "--", "true"))
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "Permission denied"})
	// The kernel refuses the command's mount namespace to a process
	// outside the user namespace that owns it: this is why nsbox exec
	// joins the user namespace first.
	pid := strconv.Itoa(commandOf(t, e.Pid))
	res = icmd.RunCmd(icmd.Command(nsenter, "-t", pid, "-m", "--", "true"))
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "Operation not permitted"})
	// In that order it works, and lands where nsbox exec lands.
	icmd.RunCmd(icmd.Command(nsenter, "-t", pid, "-U", "-m", "--preserve-credentials", "--", "true")).Assert(t, icmd.Success)
	cmdMnt, err := os.Readlink("/proc/" + pid + "/ns/mnt")
	assert.NilError(t, err)
	ours := s.run("exec", "b", "--", "readlink", "/proc/self/ns/mnt")
	ours.Assert(t, icmd.Success)
	assert.Equal(t, strings.TrimSpace(ours.Stdout()), cmdMnt)
}

func TestExecDiesWithTheSandbox(t *testing.T) {
	s := newStateEnv(t)
	launcher := s.start("b", "--", "sleep", "60")
	joined := exec.Command(nsboxBin, "exec", "b", "--", "sleep", "61")
	joined.Env = s.env()
	assert.NilError(t, joined.Start())
	defer func() { joined.Process.Kill(); joined.Wait() }()
	// The joined sleep runs, as a process of the sandbox (pid 3 inside).
	waitFor(t, func() bool {
		res := s.run("exec", "b", "--", "ps", "-e", "-o", "comm=")
		return strings.Count(res.Stdout(), "sleep") == 2
	}, "the joined sleep to run")
	hostPid := pgrepSleep(t, "61")
	assert.NilError(t, launcher.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, exitCode(t, launcher), 128+int(syscall.SIGTERM))
	// PID 1 exited, so the kernel killed the joined process: its nsbox
	// exec reports SIGKILL, and it is gone from the host.
	assert.Equal(t, exitCode(t, joined), 128+int(syscall.SIGKILL))
	assert.Check(t, syscall.Kill(hostPid, 0) == syscall.ESRCH)
}

// commandOf returns the host pid of the sandbox's command: the oldest
// child of its PID 1.
func commandOf(t *testing.T, pid1 int) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	best, bestStart := 0, uint64(0)
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
		if len(f) < 20 || f[1] != strconv.Itoa(pid1) {
			continue
		}
		start, _ := strconv.ParseUint(f[19], 10, 64)
		if pid, _ := strconv.Atoi(filepath.Base(d)); best == 0 || start < bestStart {
			best, bestStart = pid, start
		}
	}
	assert.Assert(t, best > 0, "no child of PID 1 (%d)", pid1)
	return best
}

// parentUserNS is the inode of the parent of pid's user namespace.
func parentUserNS(t *testing.T, pid int) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	assert.NilError(t, err)
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_PARENT)
	assert.NilError(t, err)
	defer unix.Close(fd)
	var st unix.Stat_t
	assert.NilError(t, unix.Fstat(fd, &st))
	return st.Ino
}

// pgrepSleep finds the host pid of our `sleep ARG`.
func pgrepSleep(t *testing.T, arg string) int {
	t.Helper()
	out, err := exec.Command("pgrep", "-u", strconv.Itoa(os.Getuid()), "-fx", "sleep "+arg).Output()
	assert.NilError(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(out))[0])
	assert.NilError(t, err)
	return pid
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if cond() {
			return poll.Success()
		}
		return poll.Continue("waiting for %s", what)
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))
}

func TestKillAndStop(t *testing.T) {
	s := newStateEnv(t)

	// kill: KILL by default; the sandbox is gone when it returns.
	a := s.start("a", "--", "sleep", "60")
	s.run("kill", "a").Assert(t, icmd.Success)
	assert.Check(t, !s.listed("a"))
	assert.Equal(t, exitCode(t, a), 128+int(syscall.SIGKILL))

	// kill with a signal: the command gets it.
	b := s.start("b", "--", "sleep", "60")
	s.run("kill", "b", "USR1").Assert(t, icmd.Success)
	assert.Equal(t, exitCode(t, b), 128+int(syscall.SIGUSR1))
	s.run("kill", "b").Assert(t, icmd.Expected{ExitCode: 125, Err: "no such sandbox"})
	s.run("kill", "b2", "NOSUCHSIG").Assert(t, icmd.Expected{ExitCode: 125})

	// stop: TERM, which a cooperative command obeys at once…
	c := s.start("c", "--", "sleep", "60")
	start := time.Now()
	s.run("stop", "c").Assert(t, icmd.Success)
	assert.Check(t, time.Since(start) < 5*time.Second)
	assert.Equal(t, exitCode(t, c), 128+int(syscall.SIGTERM))
	assert.Check(t, !s.listed("c"))

	// …then KILL after the timeout for one that ignores it.
	d := s.start("d", "--", "sh", "-c", `trap "" TERM; while :; do sleep 1; done`)
	start = time.Now()
	s.run("stop", "--timeout", "0.5", "d").Assert(t, icmd.Success)
	assert.Check(t, time.Since(start) >= 500*time.Millisecond)
	assert.Equal(t, exitCode(t, d), 128+int(syscall.SIGKILL))
	assert.Check(t, !s.listed("d"))
	assert.Check(t, is.Len(s.entries(), 0))
}

func TestDetachAndLogs(t *testing.T) {
	s := newStateEnv(t)
	res := s.run("run", "--detach", "--name", "bg", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 60")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "bg\n")
	t.Cleanup(func() { s.run("kill", "bg") })
	assert.Check(t, s.listed("bg"))
	waitFor(t, func() bool {
		return s.run("logs", "bg").Stdout() == "to-stdout\nto-stderr\n"
	}, "the log")
	// The supervisor runs on without nsbox run, in a session of its own.
	e := s.inspect("bg")
	sid, err := unixGetsid(e.LauncherPid)
	assert.NilError(t, err)
	assert.Equal(t, sid, e.LauncherPid)
	// Under nsbox's name, as ps and pgrep show it, though it was
	// executed through /proc/self/exe.
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", e.LauncherPid))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(comm), commOf(nsboxBin)+"\n"))
	s.run("stop", "bg").Assert(t, icmd.Success)
	assert.Check(t, is.Len(s.entries(), 0))
	// Its log outlives it, private to the user.
	s.run("logs", "bg").Assert(t, icmd.Expected{Out: "to-stdout\nto-stderr\n"})
	st, err := os.Stat(filepath.Join(s.xdg, "nsbox", ".logs"))
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o700))

	// Without a name it prints the random one.
	res = s.run("run", "-d", "--", "sleep", "60")
	res.Assert(t, icmd.Success)
	name := strings.TrimSpace(res.Stdout())
	assert.Check(t, s.listed(name))
	s.run("kill", name).Assert(t, icmd.Success)

	// A failure to start is reported by nsbox run -d itself.
	res = s.run("run", "-d", "--name", "bad", "--", "no-such-command")
	res.Assert(t, icmd.Expected{ExitCode: 127, Err: "no-such-command: command not found"})
	assert.Check(t, is.Len(s.entries(), 0))
	s.run("logs", "bad").Assert(t, icmd.Expected{ExitCode: 125, Err: "no such sandbox"})
	s.run("logs", "nope").Assert(t, icmd.Expected{ExitCode: 125, Err: "no such sandbox"})
}

func unixGetsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

var (
	infoFormat   = regexp.MustCompile(`^\{\n    "child-pid": (\d+),\n    "cgroup-namespace": (\d+),\n    "ipc-namespace": (\d+),\n    "mnt-namespace": (\d+),\n    "net-namespace": (\d+),\n    "pid-namespace": (\d+),\n    "uts-namespace": (\d+)\n\}\n$`)
	statusFormat = regexp.MustCompile(`^\{ "child-pid": (\d+), "cgroup-namespace": (\d+), "ipc-namespace": (\d+), "mnt-namespace": (\d+), "net-namespace": (\d+), "pid-namespace": (\d+), "uts-namespace": (\d+) \}\n`)
)

// runWithFDs runs nsbox with two files as fds 3 and 4 and returns the
// exit code and what was written to them.
func runWithFDs(t *testing.T, args ...string) (code int, fd3, fd4, stdout string) {
	t.Helper()
	dir := t.TempDir()
	f3, err := os.Create(filepath.Join(dir, "3"))
	assert.NilError(t, err)
	f4, err := os.Create(filepath.Join(dir, "4"))
	assert.NilError(t, err)
	cmd := exec.Command(nsboxBin, args...)
	cmd.ExtraFiles = []*os.File{f3, f4}
	var out strings.Builder
	cmd.Stdout = &out
	assert.NilError(t, cmd.Start())
	f3.Close()
	f4.Close()
	code = exitCode(t, cmd)
	b3, _ := os.ReadFile(filepath.Join(dir, "3"))
	b4, _ := os.ReadFile(filepath.Join(dir, "4"))
	return code, string(b3), string(b4), out.String()
}

func TestInfoFDAndJSONStatusFD(t *testing.T) {
	requireUnprivileged(t)
	code, info, status, out := runWithFDs(t, "run", "--info-fd", "3", "--json-status-fd", "4", "--",
		"sh", "-c", "readlink /proc/self/ns/mnt /proc/self/ns/net; exit 5")
	assert.Equal(t, code, 5)
	m := infoFormat.FindStringSubmatch(info)
	assert.Assert(t, m != nil, "info-fd: %q", info)
	lines := strings.SplitAfter(status, "\n")
	assert.Assert(t, len(lines) == 3 && lines[2] == "", "json-status-fd: %q", status)
	sm := statusFormat.FindStringSubmatch(lines[0])
	assert.Assert(t, sm != nil, "json-status-fd line 1: %q", lines[0])
	assert.DeepEqual(t, sm[1:], m[1:])
	assert.Equal(t, lines[1], `{ "exit-code": 5 }`+"\n")
	// The inodes are the sandbox's namespaces; the command's mount
	// namespace is its own, nested below them (sandbox/nested.go).
	outLines := splitLines(out)
	assert.Assert(t, len(outLines) == 2, out)
	assert.Check(t, outLines[0] != fmt.Sprintf("mnt:[%s]", m[4]), "the command shares the setup's mount namespace")
	assert.Equal(t, outLines[1], fmt.Sprintf("net:[%s]", m[5]))
	pid, _ := strconv.Atoi(m[1])
	assert.Check(t, pid > 0 && pid != os.Getpid())

	// When the command cannot be executed: the info, and no exit-code.
	code, _, status, _ = runWithFDs(t, "run", "--json-status-fd", "4", "--", "/no/such/command")
	assert.Equal(t, code, 127)
	assert.Check(t, statusFormat.MatchString(status), status)
	assert.Check(t, is.Equal(strings.Count(status, "\n"), 1), status)
	assert.Check(t, !strings.Contains(status, "exit-code"), status)

	// Exit 0 is an exit code too; shared namespaces are left out, as bwrap does.
	code, _, status, _ = runWithFDs(t, "run", "--share", "net,cgroup", "--json-status-fd", "4", "--", "true")
	assert.Equal(t, code, 0)
	assert.Check(t, regexp.MustCompile(`^\{ "child-pid": \d+, "ipc-namespace": \d+, "mnt-namespace": \d+, "pid-namespace": \d+, "uts-namespace": \d+ \}\n\{ "exit-code": 0 \}\n$`).MatchString(status), status)

	res := nsbox("run", "--info-fd", "9", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "--info-fd 9: not an open file descriptor"})

	// A descriptor the caller did not give names one of nsbox's own (the
	// Go runtime's epoll, the stage's socket, a lock): refused, never
	// written to or taken over, whatever number nsbox's own got.
	for fd := 3; fd <= 12; fd++ {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			continue // this test was given it, so nsbox is too
		}
		for _, args := range [][]string{
			{"run", "--info-fd", strconv.Itoa(fd), "--", "true"},
			{"run", "--bind-fd", strconv.Itoa(fd) + ":/mnt", "--", "true"},
			{"bwrap", "--ro-bind", "/", "/", "--info-fd", strconv.Itoa(fd), "true"},
		} {
			res := nsbox(args...)
			assert.Check(t, res.ExitCode == 125 || args[0] == "bwrap" && res.ExitCode == 1, "%v: exit %d: %s", args, res.ExitCode, res.Stderr())
			assert.Check(t, !strings.Contains(res.Stderr(), "runtime"), "%v: %s", args, res.Stderr())
		}
	}

	// Where bwrap is installed, its output has the same shape.
	if bwrap, err := exec.LookPath("bwrap"); err == nil {
		code, info, status, _ = runWithFDs(t, "run", "--info-fd", "3", "--json-status-fd", "4", "--", "true")
		assert.Equal(t, code, 0)
		bcode, binfo, bstatus, _ := func() (int, string, string, string) {
			old := nsboxBin
			nsboxBin = bwrap
			defer func() { nsboxBin = old }()
			return runWithFDs(t, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
				"--info-fd", "3", "--json-status-fd", "4", "true")
		}()
		if bcode == 0 {
			digits := regexp.MustCompile(`\d+`)
			assert.Equal(t, digits.ReplaceAllString(info, "N"), digits.ReplaceAllString(binfo, "N"))
			assert.Equal(t, digits.ReplaceAllString(status, "N"), digits.ReplaceAllString(bstatus, "N"))
		}
	}
}

// A sandbox with only the caller's own id mapped (--map single, what nsbox
// falls back to without subordinate ids) runs its command in a nested user
// namespace; nsbox exec gives a joined command the same, so it runs as the
// caller's uid, and files it writes belong to the caller on the host.
func TestExecSingleMapping(t *testing.T) {
	s := newStateEnv(t)
	dir := t.TempDir()
	s.run("run", "-d", "--name", "one", "--map", "single", "--bind", dir, "--", "sleep", "60").Assert(t, icmd.Success)
	t.Cleanup(func() { s.run("kill", "one") })
	uid := fmt.Sprint(os.Getuid())
	res := s.run("exec", "one", "--", "sh", "-c", "id -u; touch "+dir+"/f; grep Seccomp: /proc/self/status")
	res.Assert(t, icmd.Success)
	assert.DeepEqual(t, splitLines(res.Stdout()), []string{uid, "Seccomp:\t2"})
	st, err := os.Stat(filepath.Join(dir, "f"))
	assert.NilError(t, err)
	assert.Equal(t, fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid), uid)
}

// A command may leave the namespaces nsbox started it in: any command can
// make a user namespace of its own (unshare -r), root inside can unshare
// the others. The sandbox is still its launcher's: ps lists it and kill,
// stop and pause reach it; what would join the command's namespaces
// refuses in one line instead of calling its record forged.
func TestCommandThatLeftItsNamespaces(t *testing.T) {
	s := newStateEnv(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"userns", []string{"--", "unshare", "-r", "sleep", "60"}},
		{"uts", []string{"--root", "--", "unshare", "--uts", "sleep", "60"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := s.start(tc.name, tc.args...)
			// The command has left its namespaces once unshare has
			// executed sleep.
			pid1 := s.inspect(tc.name).Pid
			waitFor(t, func() bool {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid1, pid1))
				f := strings.Fields(string(b))
				if len(f) == 0 {
					return false
				}
				comm, _ := os.ReadFile("/proc/" + f[0] + "/comm")
				return string(comm) == "sleep\n"
			}, "unshare to run sleep")
			res := s.run("ps")
			res.Assert(t, icmd.Success)
			assert.Check(t, !strings.Contains(res.Stderr(), "not listed"), res.Stderr())
			res = s.run("exec", tc.name, "--", "true")
			res.Assert(t, icmd.Expected{ExitCode: 125, Err: "its command left the namespaces nsbox started it in"})
			assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(res.Stderr()), "\n"), 0), res.Stderr())
			assert.Check(t, !strings.Contains(res.Stderr(), "does not match"), res.Stderr())
			s.run("mount", tc.name, t.TempDir(), "/mnt").Assert(t, icmd.Expected{ExitCode: 125, Err: "its command left the namespaces"})
			s.run("pause", tc.name).Assert(t, icmd.Success)
			s.run("resume", tc.name).Assert(t, icmd.Success)
			s.run("kill", tc.name).Assert(t, icmd.Success)
			assert.Equal(t, exitCode(t, cmd), 128+int(syscall.SIGKILL))
			assert.Check(t, !s.listed(tc.name))
		})
	}
	assert.Check(t, is.Len(s.entries(), 0))
}
