package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// The terminal rule (docs/security.md): no process of a sandbox reaches
// the caller's terminal or traces anything nsbox starts, and a command's
// job control stops nothing but nsbox. Each test here is an attack or a
// freeze that worked before, run from outside as the unprivileged user.

// tracerHelperEnv makes the test binary the tracer of tracerHelper.
const tracerHelperEnv = "NSBOX_TEST_TRACER"

func init() {
	if out := os.Getenv(tracerHelperEnv); out != "" {
		os.Exit(tracerHelper(out))
	}
}

// tracerHelper is the attacker inside a sandbox: it waits for the next
// process of its PID namespace (nsbox exec's child) and PTRACE_ATTACHes to
// it, as fast as it can, forever. Each attach that works is appended to
// the file out as one line: the target's seccomp mode while it is stopped
// (0: no filter yet, the join stage before exec), its program, and
// whether its stdin is a terminal of another devpts than the sandbox's
// (the caller's). A traced stage without a filter could inject TIOCSTI
// into the caller's terminal; the attacker stops at proving it held one.
func tracerHelper(out string) int {
	runtime.LockOSThread() // ptrace is per thread
	var pts unix.Stat_t
	unix.Stat("/dev/pts/ptmx", &pts)
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f.WriteString("ready\n")
	self := os.Getpid()
	seen := map[int]bool{}
	buf := make([]byte, 32)
	for {
		fd, err := unix.Open("/proc/sys/kernel/ns_last_pid", unix.O_RDONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		n, _ := unix.Read(fd, buf)
		unix.Close(fd)
		last, _ := strconv.Atoi(strings.TrimSpace(string(buf[:max(n, 0)])))
		for pid := last; pid <= last+1; pid++ {
			// PTRACE_SEIZE, then PTRACE_INTERRUPT: a ptrace-stop without
			// a SIGSTOP that could outlive the detach.
			if pid <= 1 || pid == self || seen[pid] || unix.PtraceSeize(pid) != nil {
				continue
			}
			seen[pid] = true
			unix.PtraceInterrupt(pid)
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
				continue // it ended first
			}
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			seccomp := "?"
			if m := regexp.MustCompile(`(?m)^Seccomp:\s*(\d+)`).FindSubmatch(status); m != nil {
				seccomp = string(m[1])
			}
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			hostTTY := false
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/fd/0", pid), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR {
				hostTTY = unix.Major(uint64(st.Rdev)) >= 136 && unix.Major(uint64(st.Rdev)) <= 143 && st.Dev != pts.Dev
			}
			fmt.Fprintf(f, "attached pid=%d seccomp=%s exe=%s hostTTY=%v\n", pid, seccomp, exe, hostTTY)
			unix.PtraceDetach(pid)
		}
	}
}

// Issue 21, item 1: root inside a --root sandbox (or anyone in a --map
// single one) PTRACE_ATTACHes the child that nsbox exec clones into the
// sandbox while it is still the stage: no seccomp filter, the caller's
// terminal as its stdin. The join stage is not dumpable until exec, so no
// attach lands before exec: the only processes the attacker may trace are
// the joined commands themselves, filtered and on the sandbox's own pty.
func TestEscapeExecTracesJoinStage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		execs int
	}{
		{"root", []string{"--root"}, 15},
		{"map single", []string{"--map", "single"}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStateEnv(t)
			dir := t.TempDir()
			assert.NilError(t, os.Chmod(dir, 0o777))
			out := filepath.Join(dir, "attached")
			self, err := os.Executable()
			assert.NilError(t, err)
			args := append(append([]string{"run", "--name", "b", "-d", "--bind", dir}, tc.flags...),
				"--setenv", tracerHelperEnv+"="+out, "--", self)
			s.run(args...).Assert(t, icmd.Success)
			t.Cleanup(func() { s.run("kill", "b") })
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				if b, _ := os.ReadFile(out); strings.HasPrefix(string(b), "ready\n") {
					return poll.Success()
				}
				return poll.Continue("the tracer is not ready")
			}, poll.WithTimeout(10*time.Second))

			for i := 0; i < tc.execs; i++ {
				term := startOnTerminal(t, 24, 80, []string{"XDG_RUNTIME_DIR=" + s.xdg}, "exec", "b", "--", "true")
				assert.Equal(t, term.wait(), 0, term.output())
			}
			b, err := os.ReadFile(out)
			assert.NilError(t, err)
			attaches := regexp.MustCompile(`(?m)^attached .*$`).FindAllString(string(b), -1)
			t.Logf("%d attaches in %d execs", len(attaches), tc.execs)
			for _, a := range attaches {
				assert.Check(t, strings.Contains(a, " seccomp=2 "), "the sandbox traced a process nsbox started before its filter: %s", a)
				assert.Check(t, strings.Contains(a, " hostTTY=false"), "the sandbox traced a process holding the caller's terminal: %s", a)
			}
		})
	}
}

// Item 1 inside Docker with docs/ci.md's flags, where the default map is
// single: the same tracer, nsbox exec on the container's terminal
// (docker run -t).
func TestDockerEscapeExecTracesJoinStage(t *testing.T) {
	requireDocker(t)
	all := append([]string{"-t", "--security-opt", "systempaths=unconfined"}, unconfined...)
	for _, flags := range []string{"--root", "--map single"} {
		t.Run(flags, func(t *testing.T) {
			res := inDocker(all, fmt.Sprintf(`export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -m 700 $XDG_RUNTIME_DIR; mkdir w
nsbox run %s --name b -d --bind /home/user/w --setenv %s=/home/user/w/attached -- /usr/bin/nsbox-tests || exit 1
while ! grep -q ready w/attached 2>/dev/null; do sleep 0.05; done
for i in $(seq 30); do nsbox exec b -- true || exit 1; done
nsbox kill b; cat w/attached`, flags, tracerHelperEnv))
			res.Assert(t, icmd.Success)
			attaches := regexp.MustCompile(`(?m)^attached .*$`).FindAllString(res.Stdout(), -1)
			t.Logf("%d attaches in 30 execs", len(attaches))
			for _, a := range attaches {
				assert.Check(t, strings.Contains(a, " seccomp=2 "), "the sandbox traced a process nsbox started before its filter: %s", a)
				assert.Check(t, strings.Contains(a, " hostTTY=false"), "the sandbox traced a process holding the caller's terminal: %s", a)
			}
		})
	}
}

// ttyID is the device and inode of a terminal, as stat(1) prints them:
// what tells the caller's terminal apart from every other.
func ttyID(t *testing.T, f *os.File) string {
	t.Helper()
	var st unix.Stat_t
	assert.NilError(t, unix.Fstat(int(f.Fd()), &st))
	return fmt.Sprintf("dev=%d ino=%d", st.Dev, st.Ino)
}

// Issue 21, item 2: nsbox exec NAME -- sh at a terminal. A process of the
// sandbox opens /proc/<joined pid>/fd/0 and keeps it: it must get the
// sandbox's own pty, never the caller's terminal, and read nothing of what
// is typed once exec has returned.
func TestEscapeExecTerminalThroughProc(t *testing.T) {
	s := newStateEnv(t)
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o777))
	// The watcher: once the joined shell wrote its pid, hold its stdin
	// open, say what it is, and when the test says so, read from it.
	watcher := fmt.Sprintf(`cd %[1]s; while [ ! -s pid ]; do sleep 0.01; done
ls /proc/$(cat pid)/fd | tr '\n' ' ' > fds
exec 3<>/proc/$(cat pid)/fd/0 || { echo no-open > got; exit; }
stat -L -c 'dev=%%d ino=%%i' /proc/self/fd/3 > id
while [ ! -e go ]; do sleep 0.01; done
timeout 2 head -n 1 <&3 > stolen.tmp; mv stolen.tmp stolen`, dir)
	s.run("run", "--name", "w", "-d", "--bind", dir, "--", "sh", "-c", watcher).Assert(t, icmd.Success)
	t.Cleanup(func() { s.run("kill", "w") })

	term := startOnTerminal(t, 24, 80, []string{"XDG_RUNTIME_DIR=" + s.xdg}, "exec", "w", "--", "sh", "-c",
		fmt.Sprintf(`[ -t 0 ] && echo isatty; echo $$ > %[1]s/pid; while [ ! -s %[1]s/id ]; do sleep 0.01; done; echo joined-done`, dir))
	term.expect(`isatty\r*\n`)
	term.expect(`joined-done`)
	assert.Equal(t, term.wait(), 0)
	id, err := os.ReadFile(filepath.Join(dir, "id"))
	assert.NilError(t, err)
	assert.Check(t, strings.TrimSpace(string(id)) != ttyID(t, term.slave),
		"the sandbox opened the caller's terminal through /proc: %s", id)
	// The joined command holds its three streams and nothing else.
	fds, err := os.ReadFile(filepath.Join(dir, "fds"))
	assert.NilError(t, err)
	assert.Equal(t, string(fds), "0 1 2 ")

	// exec has returned: what the user types next is the host shell's.
	term.typeIn("secret-typed-after-exec\n")
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
	var stolen []byte
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if stolen, err = os.ReadFile(filepath.Join(dir, "stolen")); err == nil {
			return poll.Success()
		}
		return poll.Continue("the watcher has not finished reading")
	}, poll.WithTimeout(10*time.Second))
	assert.Equal(t, string(stolen), "", "the sandbox read what was typed after nsbox exec returned")
}

// procState is the state letter of /proc/PID/stat ("R", "S", "T" …).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

func waitForState(t *testing.T, pid int, state string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if st := procState(pid); st == state {
			return poll.Success()
		} else {
			return poll.Continue("pid %d is in state %q, not %q", pid, st, state)
		}
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
}

// Issue 21, item 3: default nsbox run at a terminal. The command sees a
// terminal, but not the caller's; after nsbox is stopped (SIGTSTP, as a
// shell's Ctrl-Z), a process that left the command's session reads
// nothing of what the user types.
func TestEscapeRunTerminalAfterStop(t *testing.T) {
	requireUnprivileged(t)
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o777))
	// A shell with job control runs nsbox, as at a prompt: nsbox's group
	// is then not orphaned, and SIGTSTP stops it.
	cmd := fmt.Sprintf(`[ -t 0 ] && echo isatty; stat -L -c 'dev=%%d ino=%%i' /proc/self/fd/0
exec 3<&0; setsid sh -c 'exec cat <&3 > %s/stolen' & echo started; exec sleep 60`, dir)
	term := startProgramOnTerminal(t, 24, 80, nil, "/bin/sh", "-c",
		fmt.Sprintf(`set -m; %s run --bind %s -- sh -c "$1"; echo nsbox-returned; sleep 60`, nsboxBin, dir), "sh", cmd)
	t.Cleanup(func() { unix.Kill(-term.cmd.Process.Pid, unix.SIGKILL) })
	term.expect(`isatty\r*\n`)
	id := term.expect(`(dev=\d+ ino=\d+)\r*\n`)
	term.expect(`started\r*\n`)
	assert.Check(t, id[1] != ttyID(t, term.slave), "the command got the caller's terminal itself: %s", id[1])

	// The cat in its own session is waiting in read(2); nsbox stops.
	time.Sleep(100 * time.Millisecond)
	kids := childrenOf(term.cmd.Process.Pid)
	assert.Equal(t, len(kids), 1)
	assert.NilError(t, unix.Kill(kids[0], unix.SIGTSTP))
	waitForState(t, kids[0], "T")
	term.typeIn("secret-typed-at-the-shell\n")
	time.Sleep(500 * time.Millisecond)
	stolen, err := os.ReadFile(filepath.Join(dir, "stolen"))
	assert.NilError(t, err)
	assert.Equal(t, string(stolen), "", "a process of the sandbox read the terminal while nsbox was stopped")
}

// The control: --tty=false keeps the old pass-through, and the command
// then really gets the caller's terminal (the risk --help names).
func TestTerminalPassThroughOptOut(t *testing.T) {
	requireUnprivileged(t)
	term := startOnTerminal(t, 24, 80, nil, "run", "--tty=false", "--", "sh", "-c",
		`[ -t 0 ] && echo isatty; stat -L -c 'dev=%d ino=%i' /proc/self/fd/0`)
	term.expect(`isatty\r*\n`)
	id := term.expect(`(dev=\d+ ino=\d+)\r*\n`)
	assert.Equal(t, id[1], ttyID(t, term.slave))
	assert.Equal(t, term.wait(), 0)
}

// Piped streams stay as they are: only the terminal's ends get the pty.
// At a terminal with stdout into a pipe (nsbox run … | less), the command
// reads the sandbox's pty and writes the pipe itself.
func TestTerminalOnlyTerminalEnds(t *testing.T) {
	requireUnprivileged(t)
	master, slave, err := pty.Open()
	assert.NilError(t, err)
	defer master.Close()
	defer slave.Close()
	cmd := exec.Command(nsboxBin, "run", "--", "sh", "-c",
		`[ -t 0 ] && echo stdin-tty; [ -t 1 ] || echo stdout-not-tty; readlink /proc/self/fd/1 | sed 's/:.*//'`)
	cmd.Stdin, cmd.Stderr = slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	got, err := cmd.Output()
	assert.NilError(t, err)
	assert.Equal(t, string(got), "stdin-tty\nstdout-not-tty\npipe\n")

	// The other way round: stdin a pipe, stdout the terminal.
	term := startProgramOnTerminal(t, 24, 80, nil, "/bin/sh", "-c",
		`echo piped | "$0" run -- sh -c 'cat; [ -t 0 ] || echo stdin-not-tty; [ -t 1 ] && echo stdout-tty'`, nsboxBin)
	term.expect(`piped\r*\nstdin-not-tty\r*\nstdout-tty\r*\n`)
	assert.Equal(t, term.wait(), 0)
}

// Issue 21, item 7: a command that stops itself stops nsbox, never the
// caller's process group: a script's other job keeps running. With the
// sandbox's own pty (the default at a terminal) and with the terminal
// passed in, where the launcher has handed off to its C supervisor by the
// time the command stops.
func TestJobControlStopsOnlyNsbox(t *testing.T) {
	requireUnprivileged(t)
	for _, tc := range []struct {
		name string
		args string
	}{
		{"pty", "run -- sh -c 'kill -STOP $$'"},
		{"terminal passed in", "run --tty=false -- sh -c 'sleep 0.5; kill -STOP $$'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ticks := filepath.Join(dir, "ticks")
			script := fmt.Sprintf(`(while :; do echo tick >> %s; sleep 0.02; done) & echo $! > %s/ticker
%s %s; echo nsbox-returned`, ticks, dir, nsboxBin, tc.args)
			term := startProgramOnTerminal(t, 24, 80, nil, "/bin/sh", "-c", script)
			t.Cleanup(func() { unix.Kill(-term.cmd.Process.Pid, unix.SIGKILL) })
			var ticker int
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				b, _ := os.ReadFile(filepath.Join(dir, "ticker"))
				var err error
				if ticker, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					return poll.Success()
				}
				return poll.Continue("the script has not started its other job")
			}, poll.WithTimeout(10*time.Second))
			// The script leads its process group; nsbox is its other child.
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				for _, pid := range childrenOf(term.cmd.Process.Pid) {
					if pid != ticker && procState(pid) == "T" {
						return poll.Success()
					}
				}
				return poll.Continue("nsbox has not stopped")
			}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))

			before, _ := os.ReadFile(ticks)
			time.Sleep(300 * time.Millisecond)
			after, _ := os.ReadFile(ticks)
			assert.Check(t, procState(ticker) != "T", "the script's other job was stopped")
			assert.Check(t, procState(term.cmd.Process.Pid) != "T", "the calling script was stopped")
			assert.Check(t, len(after) > len(before), "the script's other job made no progress while nsbox was stopped")
		})
	}
}

// childrenOf returns the pids of parent's children.
func childrenOf(parent int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		var state string
		var ppid int
		if _, err := fmt.Sscan(s[end+1:], &state, &ppid); err == nil && ppid == parent {
			pids = append(pids, pid)
		}
	}
	return pids
}

// nsbox run … & at a shell: the relay does not read the terminal from the
// background (SIGTTIN would stop nsbox, and with it the job), and fg gives
// the command its input.
func TestTerminalBackgroundJob(t *testing.T) {
	requireUnprivileged(t)
	term := startProgramOnTerminal(t, 24, 80, []string{"PS1=host> ", "ENV="}, "/bin/sh", "-i")
	term.expect(`host> `)
	term.typeIn(nsboxBin + " run -- sh -c 'sleep 0.5; echo bg-done' & wait $!; echo waited=$?\n")
	term.expect(`bg-done\r*\n`)
	term.expect(`waited=0\r*\n`)
	term.expect(`host> `)
	term.typeIn(nsboxBin + " run -- sh -c 'read x; echo got:$x' &\n")
	term.expect(`host> `)
	time.Sleep(300 * time.Millisecond)
	term.typeIn("fg\n")
	time.Sleep(300 * time.Millisecond)
	term.typeIn("hello\r")
	term.expect(`got:hello\r*\n`)
	term.expect(`host> `)
	term.typeIn("exit\n")
	term.wait()
}
