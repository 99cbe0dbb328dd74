package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// waitPastHandOff waits until the launcher is past the hand-off, and
// checks who holds the sandbox then. A launcher whose sandbox keeps
// running hands it to the small supervisor (internal/handoff,
// sandbox/handoff.go): one thread and a fraction of the Go launcher's
// memory, same pid and command line. With the fast path off there is no
// hand-off: the Go launcher holds the sandbox to the end, and is still
// itself, more than one thread, once the hand-off's moment is well past
// (cmd/nsbox's handOffAfter, 100 ms). What a test checks after this is
// what both must do.
//
// The launcher's own environment says which: the suite's mode (hack/test.sh
// runs the suite three ways) or the one the test gave it.
func waitPastHandOff(t *testing.T, launcher int) {
	t.Helper()
	if !launcherHandsOff(t, launcher) {
		time.Sleep(300 * time.Millisecond)
		threads, _ := procStatus(t, launcher)
		assert.Check(t, threads > 1, "with %s the Go launcher (pid %d) holds the sandbox, but it has %d threads", fastPathOff, launcher, threads)
		return
	}
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		// Not procStatus: a check runs in poll's goroutine, which may
		// outlive the test, where a failed assert panics.
		threads, rss, err := readProcStatus(launcher)
		if err != nil {
			return poll.Error(err)
		}
		// One thread once the exec has begun (de_thread); a command line
		// once it has set up the new program's arguments: only then is
		// the exec done.
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", launcher))
		if threads == 1 && len(cmdline) > 0 {
			return poll.Success()
		}
		return poll.Continue("the launcher (pid %d) has %d threads, %d KiB resident: not handed off yet", launcher, threads, rss)
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))
}

// launcherHandsOff reports whether the launcher runs with the hand-off:
// its environment does not turn the fast path off (sandbox/fastpath).
func launcherHandsOff(t *testing.T, launcher int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", launcher))
	assert.NilError(t, err)
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv == fastPathOff {
			return false
		}
	}
	return true
}

// findLauncher returns the pid of the launcher whose command line is
// cmdline, or 0. PID 1 of its sandbox has that command line too (it is
// the launcher's copy, or was given it: sandbox/internal/stage's Start),
// but it lives in the sandbox's user namespace, the launcher in ours.
func findLauncher(cmdline string) int {
	ours, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil || strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") != cmdline {
			continue
		}
		if ns, err := os.Readlink(d + "/ns/user"); err == nil && ns == ours {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

// startUntilReady starts cmd, whose command prints "ready" once its
// signal handlers are in place, and returns its stdout after that line;
// the cmd is killed and reaped at the end of the test.
func startUntilReady(t *testing.T, cmd *exec.Cmd) *bufio.Reader {
	t.Helper()
	out, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	assert.NilError(t, err)
	assert.Equal(t, line, "ready\n")
	return r
}

// commOf is the name (comm) the kernel gives a program executed from
// path: the last component, cut to 15 bytes.
func commOf(path string) string {
	name := filepath.Base(path)
	return name[:min(len(name), 15)]
}

// procStatus returns the Threads and VmRSS (KiB) lines of /proc/PID/status.
func procStatus(t *testing.T, pid int) (threads, rssKiB int) {
	t.Helper()
	threads, rssKiB, err := readProcStatus(pid)
	assert.NilError(t, err)
	return threads, rssKiB
}

// readProcStatus is procStatus for a poll check: it returns the error.
func readProcStatus(pid int) (threads, rssKiB int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read the status of pid %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "Threads:" {
			threads, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rssKiB, _ = strconv.Atoi(f[1])
		}
	}
	return threads, rssKiB, nil
}

// After the hand-off the sandbox is what it was: listed and joinable (the
// record still checks out against its launcher), signals reach the
// command, the exit status and --json-status-fd's line come out, and the
// state entry goes. With the fast path off the Go launcher, which keeps
// the sandbox, must do the same.
func TestHandOffKeepsTheSandbox(t *testing.T) {
	s := newStateEnv(t)
	status := filepath.Join(t.TempDir(), "status")
	sf, err := os.Create(status)
	assert.NilError(t, err)
	defer sf.Close()
	cmd := exec.Command(nsboxBin, "run", "--name", "idle", "--json-status-fd", "3", "--", "sh", "-c",
		`trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	cmd.Env = s.env()
	cmd.ExtraFiles = []*os.File{sf}
	r := startUntilReady(t, cmd)

	waitPastHandOff(t, cmd.Process.Pid)
	// The name the kernel gave the launcher at its exec (ps -C finds it),
	// though the supervisor was executed through /proc/self/exe.
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(comm), commOf(nsboxBin)+"\n"))
	if launcherHandsOff(t, cmd.Process.Pid) {
		_, rss := procStatus(t, cmd.Process.Pid)
		assert.Check(t, rss < 4096, "the handed-off launcher holds %d KiB", rss)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
	assert.NilError(t, err)
	assert.Check(t, strings.Contains(string(cmdline), "--name\x00idle\x00"), "command line %q", cmdline)

	assert.Check(t, s.listed("idle"))
	assert.Equal(t, s.inspect("idle").LauncherPid, cmd.Process.Pid)
	res := s.run("exec", "idle", "--", "sh", "-c", "echo joined")
	assert.Equal(t, strings.TrimSpace(res.Stdout()), "joined", res.Combined())

	assert.NilError(t, cmd.Process.Signal(syscall.SIGTERM))
	rest, _ := r.ReadString('\n')
	assert.Equal(t, rest, "got TERM\n")
	assert.Equal(t, exitCode(t, cmd), 3)
	b, err := os.ReadFile(status)
	assert.NilError(t, err)
	lines := splitLines(string(b))
	assert.Assert(t, len(lines) == 2, string(b))
	assert.Check(t, strings.HasPrefix(lines[0], `{ "child-pid": `), lines[0])
	assert.Equal(t, lines[1], `{ "exit-code": 3 }`)
	assert.Check(t, len(s.entries()) == 0, "entries left: %v", s.entries())
}

// Each signal nsbox run forwards still reaches the command after the
// hand-off (with the fast path off: from the Go launcher, past the
// hand-off's moment), and a command killed by a signal gives 128+N.
func TestHandOffForwardsSignals(t *testing.T) {
	requireUnprivileged(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
			cmd := exec.Command(nsboxBin, "run", "--", "sh", "-c",
				fmt.Sprintf(`trap 'echo got %s; exit 3' %s; echo ready; while :; do sleep 0.05; done`, name, name))
			r := startUntilReady(t, cmd)
			waitPastHandOff(t, cmd.Process.Pid)
			assert.NilError(t, cmd.Process.Signal(sig))
			rest, _ := r.ReadString('\n')
			assert.Equal(t, rest, "got "+name+"\n")
			assert.Equal(t, exitCode(t, cmd), 3)
		})
	}
	t.Run("killed command", func(t *testing.T) {
		cmd, pid := startSleeper(t)
		waitPastHandOff(t, cmd.Process.Pid)
		assert.NilError(t, syscall.Kill(pid, syscall.SIGKILL)) // the sleep, as seen from the host
		assert.Equal(t, exitCode(t, cmd), 128+int(syscall.SIGKILL))
	})
	t.Run("launcher killed", func(t *testing.T) {
		cmd, pid := startSleeper(t)
		waitPastHandOff(t, cmd.Process.Pid)
		assert.NilError(t, cmd.Process.Kill())
		cmd.Wait()
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			if err := syscall.Kill(pid, 0); err != nil {
				return poll.Success()
			}
			return poll.Continue("the command (pid %d) outlived its launcher", pid)
		}, poll.WithTimeout(5*time.Second), poll.WithDelay(10*time.Millisecond))
	})
}

// With the user's terminal passed in (--tty=false: the default at a
// terminal is a pty, which the launcher relays and so keeps), a command
// stopped by Ctrl-Z after the hand-off (or past its moment, with the fast
// path off) still suspends nsbox to the user's shell, and fg gives it the
// terminal back.
func TestHandOffJobControl(t *testing.T) {
	requireUnprivileged(t)
	home := t.TempDir()
	term := startProgramOnTerminal(t, 24, 80, []string{"HOME=" + home, "PS1=host> ", "ENV="}, "/bin/sh", "-i")
	term.expect(`host> `)
	arg := fmt.Sprintf("%d", 1000+time.Now().Nanosecond()%100000)
	term.typeIn(nsboxBin + " run --tty=false -- sh -c 'echo started " + arg + "; read x; echo got:$x; exit 4'\n")
	term.expect(`started ` + arg + `\r\n`)
	var launcher int
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if launcher = findLauncher(nsboxBin + " run --tty=false -- sh -c echo started " + arg + "; read x; echo got:$x; exit 4"); launcher > 0 {
			return poll.Success()
		}
		return poll.Continue("no launcher yet")
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))
	waitPastHandOff(t, launcher)
	term.typeIn("\x1a")
	term.expect(`(?i)stopped`)
	term.expect(`host> `)
	term.resumeReadExit4("\n")
}
