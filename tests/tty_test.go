package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// terminal is nsbox running on a pseudo-terminal the test owns, as it would
// on a user's terminal: nsbox leads the session and holds the foreground.
type terminal struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	slave  *os.File // kept open: its mode is what nsbox must restore
	before *unix.Termios

	mu   sync.Mutex
	out  bytes.Buffer
	seen int // output before this offset was matched already
	done chan struct{}
}

func startOnTerminal(t *testing.T, rows, cols uint16, env []string, args ...string) *terminal {
	t.Helper()
	return startProgramOnTerminal(t, rows, cols, env, nsboxBin, args...)
}

func startProgramOnTerminal(t *testing.T, rows, cols uint16, env []string, prog string, args ...string) *terminal {
	t.Helper()
	master, slave, err := pty.Open()
	assert.NilError(t, err)
	assert.NilError(t, pty.Setsize(master, &pty.Winsize{Rows: rows, Cols: cols}))
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	assert.NilError(t, err)
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	assert.NilError(t, cmd.Start())
	term := &terminal{t: t, cmd: cmd, master: master, slave: slave, before: before, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		master.Close()
		slave.Close()
	})
	return term
}

// expect waits until output after the last match matches re.
func (term *terminal) expect(re string) []string {
	term.t.Helper()
	rx := regexp.MustCompile(re)
	var m []int
	poll.WaitOn(term.t, func(poll.LogT) poll.Result {
		term.mu.Lock()
		defer term.mu.Unlock()
		if m = rx.FindSubmatchIndex(term.out.Bytes()[term.seen:]); m != nil {
			return poll.Success()
		}
		return poll.Continue("no %q in the terminal's output so far: %q", re, term.out.Bytes()[term.seen:])
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
	term.mu.Lock()
	defer term.mu.Unlock()
	b := term.out.Bytes()[term.seen:]
	var groups []string
	for i := 0; i+1 < len(m); i += 2 {
		if m[i] >= 0 {
			groups = append(groups, string(b[m[i]:m[i+1]]))
		}
	}
	term.seen += m[1]
	return groups
}

// typeIn types s at the terminal.
func (term *terminal) typeIn(s string) {
	term.t.Helper()
	_, err := term.master.Write([]byte(s))
	assert.NilError(term.t, err)
}

// wait waits for nsbox and returns its exit code.
func (term *terminal) wait() int {
	term.t.Helper()
	exited := make(chan struct{})
	go func() { term.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		term.cmd.Process.Kill()
		<-exited
		term.t.Fatalf("nsbox did not exit; output: %q", term.output())
	}
	return term.cmd.ProcessState.ExitCode()
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// assertRestored checks the terminal's mode is what it was before nsbox.
func (term *terminal) assertRestored() {
	term.t.Helper()
	after, err := unix.IoctlGetTermios(int(term.slave.Fd()), unix.TCGETS)
	assert.NilError(term.t, err)
	assert.DeepEqual(term.t, *after, *term.before)
}

// run -t: the command's terminal is the sandbox's own, output arrives,
// the window size is the user's and the exit status passes through.
func TestTTYRun(t *testing.T) {
	requireUnprivileged(t)
	term := startOnTerminal(t, 33, 101, nil, "run", "--tty", "--", "sh", "-c",
		`tty; stty size; ls /dev/pts | tr '\n' ' '; echo; stat -c 'owner=%u' "$(tty)"; exit 3`)
	term.expect(`/dev/pts/0\r\n`)
	term.expect(`33 101\r\n`)
	// A devpts instance of its own: only its one terminal and ptmx.
	term.expect(`0 ptmx \r\n`)
	term.expect(fmt.Sprintf(`owner=%d\r\n`, os.Getuid()))
	assert.Equal(t, term.wait(), 3)
	term.assertRestored()
}

// Without root mapped, devpts cannot be mounted; the terminal then comes
// from the host's devpts, and everything else still works.
func TestTTYWithoutRootMapped(t *testing.T) {
	requireUnprivileged(t)
	term := startOnTerminal(t, 24, 80, nil, "run", "--map", "single", "-t", "--", "sh", "-c", `tty; id -u; exit 5`)
	term.expect(`/dev/pts/\d+\r\n`)
	term.expect(fmt.Sprintf(`%d\r\n`, os.Getuid()))
	assert.Equal(t, term.wait(), 5)
	term.assertRestored()
}

// The Done-means line of the issue: script(1) gives nsbox a terminal.
func TestTTYUnderScript(t *testing.T) {
	requireUnprivileged(t)
	if _, err := exec.LookPath("script"); err != nil {
		cannotRun(t, "script(1) not installed (util-linux)")
	}
	res := icmd.RunCmd(icmd.Command("script", "-qec", nsboxBin+" run --tty -- tty", "/dev/null"))
	res.Assert(t, icmd.Success)
	assert.Assert(t, regexp.MustCompile(`/dev/pts/\d+`).MatchString(res.Stdout()), "output: %q", res.Stdout())
}

// The window size follows the user's terminal: SIGWINCH reaches nsbox,
// which resizes the sandbox's terminal, whose kernel signals the command.
func TestTTYWindowSizeFollows(t *testing.T) {
	requireUnprivileged(t)
	term := startOnTerminal(t, 24, 80, nil, "run", "-t", "--", "sh", "-c",
		`trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done`)
	term.expect(`ready\r\n`)
	assert.NilError(t, pty.Setsize(term.master, &pty.Winsize{Rows: 40, Cols: 132}))
	term.expect(`40 132\r\n`)
	term.typeIn("\x03") // Ctrl-C: the terminal's SIGINT ends sh
	assert.Equal(t, term.wait(), 130)
	term.assertRestored()
}

// nsbox shell: a login shell with job control. Ctrl-C interrupts a job
// without ending the shell, Ctrl-Z stops one, stty size follows a resize,
// `exit 3` → 3, and the user's terminal is restored.
func TestShellJobControl(t *testing.T) {
	requireUnprivileged(t)
	home := t.TempDir()
	assert.NilError(t, os.Chmod(home, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(home, ".profile"), []byte("PS1='nsbox-shell> '\n"), 0o644))
	term := startOnTerminal(t, 30, 90, []string{"SHELL=/bin/sh"}, "shell", "--ro-bind", home, "--setenv", "HOME="+home)
	term.expect(`nsbox-shell> `)

	arg := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	term.typeIn("sleep " + arg + "\n")
	waitForProcess(t, "sleep "+arg)
	term.typeIn("\x03")
	term.expect(`nsbox-shell> `)
	term.typeIn("echo status=$?\n")
	term.expect(`status=130\r\n`)
	term.expect(`nsbox-shell> `)
	assert.Equal(t, findProcess("sleep "+arg), 0, "Ctrl-C did not end sleep")

	term.typeIn("sleep " + arg + "\n")
	waitForProcess(t, "sleep "+arg)
	term.typeIn("\x1a") // Ctrl-Z
	term.expect(`(?i)stopped`)
	term.expect(`nsbox-shell> `)
	term.typeIn("jobs; kill -9 %1; wait; echo killed\n")
	term.expect(`killed\r\n`)

	term.typeIn("stty size\n")
	term.expect(`30 90\r\n`)
	assert.NilError(t, pty.Setsize(term.master, &pty.Winsize{Rows: 50, Cols: 160}))
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		term.typeIn("stty size\n")
		if strings.Contains(term.output(), "50 160\r\n") {
			return poll.Success()
		}
		time.Sleep(20 * time.Millisecond)
		return poll.Continue("stty size has not seen the resize yet")
	}, poll.WithTimeout(5*time.Second), poll.WithDelay(20*time.Millisecond))

	term.typeIn("exit 3\n")
	assert.Equal(t, term.wait(), 3)
	term.assertRestored()
}

// Ctrl-Z on a command that is not a shell suspends nsbox to the user's
// shell with the terminal restored, and fg resumes it in raw mode.
func TestTTYSuspendToHostShell(t *testing.T) {
	requireUnprivileged(t)
	home := t.TempDir()
	term := startProgramOnTerminal(t, 24, 80, []string{"HOME=" + home, "PS1=host> ", "ENV="}, "/bin/sh", "-i")
	term.expect(`host> `)
	term.typeIn(nsboxBin + " run -t -- sh -c 'echo started; read x; echo got:$x; exit 4'\n")
	term.expect(`started\r\n`)
	term.typeIn("\x1a")
	term.expect(`(?i)stopped`)
	term.expect(`host> `)
	cooked, err := unix.IoctlGetTermios(int(term.slave.Fd()), unix.TCGETS)
	assert.NilError(t, err)
	assert.Check(t, cooked.Lflag&unix.ICANON != 0, "the terminal is still raw while nsbox is stopped")
	term.resumeReadExit4("\r")
}

// The user's terminal is restored when nsbox ends by a signal it forwards,
// and left alone when the command cannot even start.
func TestTTYRestoredOnSignalAndError(t *testing.T) {
	requireUnprivileged(t)
	t.Run("SIGTERM", func(t *testing.T) {
		term := startOnTerminal(t, 24, 80, nil, "run", "-t", "--", "sh", "-c", `echo ready; exec sleep 100`)
		term.expect(`ready\r\n`)
		raw, err := unix.IoctlGetTermios(int(term.slave.Fd()), unix.TCGETS)
		assert.NilError(t, err)
		assert.Check(t, raw.Lflag&unix.ICANON == 0, "the user's terminal is not in raw mode while the sandbox runs")
		assert.NilError(t, term.cmd.Process.Signal(syscall.SIGTERM))
		assert.Equal(t, term.wait(), 128+int(syscall.SIGTERM))
		term.assertRestored()
	})
	t.Run("not found", func(t *testing.T) {
		term := startOnTerminal(t, 24, 80, nil, "run", "-t", "--", "/nonexistent/cmd")
		assert.Equal(t, term.wait(), 127)
		term.expect(`command not found`)
		term.assertRestored()
	})
}

// End of a non-terminal input reaches the command as EOF on its terminal,
// after its unfinished last line (13 bytes in all).
func TestTTYInputEOF(t *testing.T) {
	requireUnprivileged(t)
	res := icmd.RunCmd(icmd.Command(nsboxBin, "run", "-t", "--", "sh", "-c", `wc -c; echo end`),
		icmd.WithStdin(strings.NewReader("one\ntwo\nthree")), icmd.WithTimeout(10*time.Second))
	res.Assert(t, icmd.Success)
	assert.Assert(t, regexp.MustCompile(`(?m)13\r\nend\r\n$`).MatchString(res.Stdout()), "output: %q", res.Stdout())
}

func waitForProcess(t *testing.T, cmdline string) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if findProcess(cmdline) > 0 {
			return poll.Success()
		}
		return poll.Continue("%s not running yet", cmdline)
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
}

// BenchmarkStartupTerminal measures `nsbox run -- true` against `nsbox run
// -t -- true`, both on a terminal (a pty the benchmark owns, as a user's
// shell would give): the cost of the sandbox's own devpts, the pty, raw
// mode and its restoration. hyperfine cannot measure this: it gives its
// commands no terminal.
func BenchmarkStartupTerminal(b *testing.B) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"run", []string{"run", "--", "true"}},
		{"run-tty", []string{"run", "--tty", "--", "true"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			master, slave, err := pty.Open()
			if err != nil {
				b.Fatal(err)
			}
			defer master.Close()
			defer slave.Close()
			go func() { // drain whatever is echoed
				buf := make([]byte, 4096)
				for {
					if _, err := master.Read(buf); err != nil {
						return
					}
				}
			}()
			for b.Loop() {
				cmd := exec.Command(nsboxBin, tc.args...)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nsbox exec -t: the joined command gets a terminal of the sandbox's own
// devpts and leads its session; the size follows the user's terminal, the
// seccomp filter applies, the status passes through, the user's terminal
// is restored.
func TestExecTTY(t *testing.T) {
	s := newStateEnv(t)
	s.run("run", "-d", "--name", "tty", "--", "sleep", "60").Assert(t, icmd.Success)
	t.Cleanup(func() { s.run("kill", "tty") })
	term := startOnTerminal(t, 30, 100, []string{"XDG_RUNTIME_DIR=" + s.xdg}, "exec", "tty", "-t", "--", "sh", "-c",
		`tty; ps -o sid= -p $$; echo "pid $$"; stty size; grep Seccomp: /proc/self/status; trap 'stty size; exit 3' WINCH; echo ready; while :; do sleep 0.05; done`)
	term.expect(`ready\r\n`)
	out := term.output()
	assert.Check(t, regexp.MustCompile(`/dev/pts/\d+\r\n`).MatchString(out), out)
	m := regexp.MustCompile(`(?m)^\s*(\d+)\r\npid (\d+)\r\n30 100\r\nSeccomp:\s+2\r\n`).FindStringSubmatch(out)
	assert.Assert(t, m != nil, out)
	assert.Equal(t, m[1], m[2], "the command leads its session")
	assert.NilError(t, pty.Setsize(term.master, &pty.Winsize{Rows: 40, Cols: 132}))
	term.expect(`40 132\r\n`)
	assert.Equal(t, term.wait(), 3)
	term.assertRestored()
}
