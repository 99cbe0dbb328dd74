package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// These tests embed the sandbox package: this test binary is the launcher,
// and /proc/self/exe (this binary, with the stage's constructor linked in)
// is re-executed as the stage. TestMain calls sandbox.Init first.

func defaultSpec(t *testing.T, args ...string) *sandbox.Spec {
	t.Helper()
	spec, err := sandbox.Default(args...)
	assert.NilError(t, err)
	return spec
}

// Readers and writers that are not files are copied through pipes, and
// Wait returns only once everything written has arrived.
func TestAPIStdioPlumbing(t *testing.T) {
	requireUnprivileged(t)
	spec := defaultSpec(t, "sh", "-c", `tr a-z A-Z; echo to-stderr >&2; head -c 300000 /dev/zero; exit 4`)
	var out, errOut bytes.Buffer
	spec.Process.Stdin = strings.NewReader("hello sandbox\n")
	spec.Process.Stdout, spec.Process.Stderr = &out, &errOut
	sb, err := sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	err = sb.Wait()
	var exit *sandbox.ExitError
	assert.Assert(t, errors.As(err, &exit), "Wait: %v", err)
	assert.Equal(t, exit.Code, 4)
	assert.Equal(t, out.Len(), len("HELLO SANDBOX\n")+300000)
	assert.Assert(t, strings.HasPrefix(out.String(), "HELLO SANDBOX\n"))
	assert.Equal(t, errOut.String(), "to-stderr\n")
	assert.Equal(t, sb.Wait(), err, "a second Wait returns the same result")
}

// Cancelling the context kills the whole sandbox: the command, a
// background child of it, and nsbox's init; nothing is left.
func TestAPIContextCancelKillsSandbox(t *testing.T) {
	requireUnprivileged(t)
	a := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	b := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	spec := defaultSpec(t, "sh", "-c", fmt.Sprintf(`trap '' TERM INT; sleep %s & sleep %s; wait`, a, b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sb, err := sandbox.Start(ctx, spec)
	assert.NilError(t, err)
	waitForProcess(t, "sleep "+a)
	waitForProcess(t, "sleep "+b)
	pid1 := sb.Pid()
	cancel()
	done := make(chan error, 1)
	go func() { done <- sb.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the context was cancelled")
	}
	assert.Equal(t, sandbox.ExitCode(err), 128+int(syscall.SIGKILL), "Wait: %v", err)
	// PID 1's exit waited for the kernel to kill its namespace.
	assert.Equal(t, findProcess("sleep "+a), 0, "background sleep survived")
	assert.Equal(t, findProcess("sleep "+b), 0, "foreground sleep survived")
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid1))
	assert.Check(t, os.IsNotExist(err), "PID 1 (pid %d) still exists", pid1)
}

// A context cancelled before Start leaves nothing started.
func TestAPICancelledBeforeStart(t *testing.T) {
	requireUnprivileged(t)
	arg := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sb, err := sandbox.Start(ctx, defaultSpec(t, "sleep", arg))
	if err == nil {
		err = sb.Wait()
	}
	assert.Assert(t, err != nil)
	assert.Equal(t, findProcess("sleep "+arg), 0)
}

// Signal reaches the command through PID 1.
func TestAPISignal(t *testing.T) {
	requireUnprivileged(t)
	r, w, err := os.Pipe()
	assert.NilError(t, err)
	defer r.Close()
	spec := defaultSpec(t, "sh", "-c", `trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done`)
	spec.Process.Stdout = w
	sb, err := sandbox.Start(context.Background(), spec)
	w.Close()
	assert.NilError(t, err)
	buf := make([]byte, 6)
	_, err = r.Read(buf)
	assert.NilError(t, err)
	assert.Equal(t, string(buf), "ready\n")
	assert.NilError(t, sb.Signal(syscall.SIGUSR1))
	assert.Equal(t, sandbox.ExitCode(sb.Wait()), 7)
	rest := make([]byte, 64)
	n, _ := r.Read(rest)
	assert.Equal(t, string(rest[:n]), "got-usr1\n")
}

// Process.Terminal through the API: output from a pty, a resize seen
// inside, EOF at the end of a non-terminal input.
func TestAPITerminal(t *testing.T) {
	requireUnprivileged(t)
	spec := defaultSpec(t, "sh", "-c", `tty; stty size; read line; echo "read:$line"; stty size; cat; echo end`)
	inR, inW, err := os.Pipe()
	assert.NilError(t, err)
	outR, outW, err := os.Pipe()
	assert.NilError(t, err)
	defer outR.Close()
	spec.Process.Terminal = true
	spec.Process.Stdin, spec.Process.Stdout = inR, outW
	sb, err := sandbox.Start(context.Background(), spec)
	// Unlike without a terminal, the launcher itself reads Stdin and
	// writes Stdout: they stay open until Wait.
	defer inR.Close()
	defer outW.Close()
	assert.NilError(t, err)
	out := bufio.NewReader(outR)
	readLine := func() string {
		l, err := out.ReadString('\n')
		assert.NilError(t, err)
		return l
	}
	assert.Equal(t, readLine(), "/dev/pts/0\r\n")
	assert.Equal(t, readLine(), "24 80\r\n")
	assert.NilError(t, sb.Resize(40, 100))
	inW.Write([]byte("first\n"))
	inW.Close()                              // EOF ends cat
	assert.Equal(t, readLine(), "first\r\n") // the terminal's echo
	assert.Equal(t, readLine(), "read:first\r\n")
	assert.Equal(t, readLine(), "40 100\r\n")
	assert.Equal(t, readLine(), "end\r\n")
	assert.NilError(t, sb.Wait())
}

// --print-spec prints what the flags build; --spec runs it, from a file or
// stdin, with the same result as the flags.
func TestPrintSpecRoundTrip(t *testing.T) {
	requireUnprivileged(t)
	args := []string{"--hostname", "box", "--setenv", "NSBOX_T=42", "--chdir", "/", "--", "sh", "-c", `echo "$(hostname) $NSBOX_T $(pwd) $(id -u)"`}
	direct := nsbox(append([]string{"run"}, args...)...)
	direct.Assert(t, icmd.Success)
	want := fmt.Sprintf("box 42 / %d\n", os.Getuid())
	assert.Equal(t, direct.Stdout(), want)

	printed := nsbox(append([]string{"run", "--print-spec"}, args...)...)
	printed.Assert(t, icmd.Success)
	spec, err := sandbox.DecodeSpec(strings.NewReader(printed.Stdout()))
	assert.NilError(t, err)
	assert.Equal(t, spec.Hostname, "box")
	assert.DeepEqual(t, spec.Process.Args, args[7:])

	file := filepath.Join(t.TempDir(), "spec.json")
	assert.NilError(t, os.WriteFile(file, []byte(printed.Stdout()), 0o600))
	fromFile := nsbox("run", "--spec", file)
	fromFile.Assert(t, icmd.Success)
	assert.Equal(t, fromFile.Stdout(), want)

	fromStdin := nsboxWith([]string{"run", "--spec", "-"}, icmd.WithStdin(strings.NewReader(printed.Stdout())))
	fromStdin.Assert(t, icmd.Success)
	assert.Equal(t, fromStdin.Stdout(), want)

	again := nsbox("run", "--print-spec", "--spec", file)
	assert.Equal(t, again.ExitCode, 125, "--print-spec is a flag besides --spec: %s", again.Combined())
}

// Bad specs: one line naming the problem and the fix, exit 125, nothing run.
func TestSpecErrors(t *testing.T) {
	requireUnprivileged(t)
	dir := t.TempDir()
	printed := nsbox("run", "--print-spec", "--", "touch", filepath.Join(dir, "ran"))
	printed.Assert(t, icmd.Success)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	notMine := strings.Replace(printed.Stdout(), fmt.Sprintf(`"Outer": %d`, os.Getuid()), `"Outer": 0`, 1)
	assert.Assert(t, notMine != printed.Stdout())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"--spec", filepath.Join(dir, "nope.json")}, "no such file"},
		{"unknown field", []string{"--spec", write("typo.json", `{"proces": {}}`)}, `unknown field "proces"`},
		{"syntax", []string{"--spec", write("syntax.json", "{\n\"process\": {,}}")}, "line 2, column 13"},
		{"with a command", []string{"--spec", write("ok.json", printed.Stdout()), "--", "id"}, "given too"},
		{"with a flag", []string{"--hostname", "x", "--spec", write("ok2.json", printed.Stdout())}, "given too"},
		{"maps host root", []string{"--spec", write("root.json", notMine)}, "uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := nsbox(append([]string{"run"}, tc.args...)...)
			res.Assert(t, icmd.Expected{ExitCode: 125})
			lines := splitLines(res.Stderr())
			assert.Equal(t, len(lines), 1, "stderr: %q", res.Stderr())
			assert.Check(t, is.Contains(lines[0], "nsbox: "))
			assert.Check(t, is.Contains(lines[0], tc.want))
			assert.Check(t, is.Contains(lines[0], "; fix: "))
		})
	}
	_, err := os.Stat(filepath.Join(dir, "ran"))
	assert.Check(t, os.IsNotExist(err), "a bad spec ran its command")
}

// Process.ExtraFiles reach the command as fds 3, 4, …, as with os/exec: a
// pipe the test reads from, written through fd 4 inside; fd 3 carries
// data the other way. Nothing else is open in the command.
func TestAPIExtraFiles(t *testing.T) {
	requireUnprivileged(t)
	inR, inW, err := os.Pipe()
	assert.NilError(t, err)
	outR, outW, err := os.Pipe()
	assert.NilError(t, err)
	defer inR.Close()
	defer outR.Close()
	_, err = inW.WriteString("to fd 3\n")
	assert.NilError(t, err)
	inW.Close()
	spec := defaultSpec(t, "sh", "-c", `read line <&3 && echo "got: $line" >&4; ls /proc/self/fd | sort -n | tr '\n' ' '`)
	spec.Process.ExtraFiles = []*os.File{inR, outW}
	var out bytes.Buffer
	spec.Process.Stdout = &out
	sb, err := sandbox.Start(context.Background(), spec)
	outW.Close()
	assert.NilError(t, err)
	assert.NilError(t, sb.Wait())
	got, err := io.ReadAll(outR)
	assert.NilError(t, err)
	assert.Equal(t, string(got), "got: to fd 3\n")
	// 0-2, the two extra files, and ls's own directory descriptor.
	assert.Equal(t, out.String(), "0 1 2 3 4 5 ")

	spec = defaultSpec(t, "true")
	spec.Process.ExtraFiles = []*os.File{nil}
	_, err = sandbox.Start(context.Background(), spec)
	assert.ErrorContains(t, err, "ExtraFiles[0] is nil")
}

// Process.Cancel replaces the default SIGKILL when the context ends: here
// it sends SIGTERM, which the command traps and answers by exiting 3.
// WaitDelay then kills a command that ignores Cancel.
func TestAPICancelAndWaitDelay(t *testing.T) {
	requireUnprivileged(t)
	spec := defaultSpec(t, "sh", "-c", `trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	ready := make(chan struct{})
	spec.Process.Stdout = lineNotifier{ready}
	spec.Process.Cancel = func(s *sandbox.Sandbox) error { return s.Signal(syscall.SIGTERM) }
	ctx, cancel := context.WithCancel(context.Background())
	sb, err := sandbox.Start(ctx, spec)
	assert.NilError(t, err)
	<-ready
	cancel()
	assert.Equal(t, sandbox.ExitCode(sb.Wait()), 3)

	// A command that ignores what Cancel sends is killed after WaitDelay.
	spec = defaultSpec(t, "sh", "-c", `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	ready = make(chan struct{})
	spec.Process.Stdout = lineNotifier{ready}
	spec.Process.Cancel = func(s *sandbox.Sandbox) error { return s.Signal(syscall.SIGTERM) }
	spec.Process.WaitDelay = 200 * time.Millisecond
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	sb, err = sandbox.Start(ctx, spec)
	assert.NilError(t, err)
	<-ready
	cancel()
	assert.Equal(t, sandbox.ExitCode(sb.Wait()), 128+int(syscall.SIGKILL))
}

// With the PID namespace shared, a background job outlives the command
// and keeps its stdout pipe open: WaitDelay bounds how long Wait waits
// for it, then Wait returns ErrWaitDelay. Without WaitDelay, Wait waits
// for the pipe to close.
func TestAPIWaitDelayEndsTheWait(t *testing.T) {
	requireUnprivileged(t)
	arg := fmt.Sprintf("%d.%d", 3+rand.IntN(2), rand.IntN(1000000))
	spec := defaultSpec(t, "sh", "-c", "sleep "+arg+" & echo x")
	spec.Namespaces.PID = false
	var out bytes.Buffer
	spec.Process.Stdout = &out
	spec.Process.WaitDelay = 300 * time.Millisecond
	start := time.Now()
	sb, err := sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	err = sb.Wait()
	assert.Assert(t, errors.Is(err, sandbox.ErrWaitDelay), "Wait: %v", err)
	assert.Equal(t, out.String(), "x\n")
	// Not a timing assertion: the sleep still runs, so Wait did not wait
	// for it.
	assert.Check(t, findProcess("sleep "+arg) != 0, "Wait returned only after the background job (%v)", time.Since(start))
	if pid := findProcess("sleep " + arg); pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// lineNotifier closes its channel at the first write.
type lineNotifier struct{ c chan struct{} }

func (n lineNotifier) Write(p []byte) (int, error) {
	select {
	case <-n.c:
	default:
		close(n.c)
	}
	return len(p), nil
}

// The process state tells a command killed by SIGINT from one that exited
// 130 (the same nsbox exit code), and carries its resource usage.
func TestAPIProcessState(t *testing.T) {
	requireUnprivileged(t)
	spec := defaultSpec(t, "sh", "-c", "kill -INT $$")
	sb, err := sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	err = sb.Wait()
	var exit *sandbox.ExitError
	assert.Assert(t, errors.As(err, &exit), "Wait: %v", err)
	assert.Equal(t, exit.Code, 130)
	st := sb.ProcessState()
	assert.Assert(t, st != nil)
	assert.Check(t, st.Signaled())
	assert.Equal(t, st.Signal(), syscall.SIGINT)
	assert.Equal(t, st.ExitCode(), -1)
	assert.Equal(t, err.Error(), "command killed by signal 2 (interrupt)")

	spec = defaultSpec(t, "sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x | wc -c >/dev/null; exit 130")
	sb, err = sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	err = sb.Wait()
	assert.Assert(t, errors.As(err, &exit), "Wait: %v", err)
	assert.Equal(t, exit.Code, 130)
	st = sb.ProcessState()
	assert.Assert(t, st != nil)
	assert.Check(t, st.Exited() && !st.Signaled())
	assert.Equal(t, st.ExitCode(), 130)
	assert.Equal(t, err.Error(), "command exited with status 130")
	// Work done in the command's children shows in the usage.
	assert.Check(t, st.UserTime+st.SystemTime > 0, "no CPU time: %+v", st)
	assert.Check(t, st.MaxRSS > 0, "no RSS: %+v", st)
}

// Spec.BeforeExec runs after Started, with the sandbox built and its
// command not yet started; its error stops the start and leaves nothing.
func TestAPIBeforeExec(t *testing.T) {
	requireUnprivileged(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	spec := defaultSpec(t, "touch", marker)
	spec.Mounts = append(spec.Mounts, sandbox.Mount{Type: sandbox.MountBind, Source: dir, Destination: dir})
	var order []string
	pid1 := 0
	spec.Started = func(pid int, _ map[string]uint64) error {
		order, pid1 = append(order, "started"), pid
		return nil
	}
	spec.BeforeExec = func() error {
		time.Sleep(200 * time.Millisecond)
		_, err := os.Stat(marker)
		order = append(order, fmt.Sprintf("before exec, command ran: %v", err == nil))
		return nil
	}
	sb, err := sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	assert.NilError(t, sb.Wait())
	assert.DeepEqual(t, order, []string{"started", "before exec, command ran: false"})
	_, err = os.Stat(marker)
	assert.NilError(t, err, "the command ran after BeforeExec")

	spec = defaultSpec(t, "touch", marker+"2")
	spec.Mounts = append(spec.Mounts, sandbox.Mount{Type: sandbox.MountBind, Source: dir, Destination: dir})
	spec.Started = func(pid int, _ map[string]uint64) error { pid1 = pid; return nil }
	spec.BeforeExec = func() error { return errors.New("caller says no") }
	_, err = sandbox.Start(context.Background(), spec)
	assert.Error(t, err, "caller says no")
	_, err = os.Stat(marker + "2")
	assert.Assert(t, errors.Is(err, os.ErrNotExist), "the command ran despite BeforeExec's error")
	assert.Assert(t, errors.Is(syscall.Kill(pid1, 0), syscall.ESRCH), "PID 1 %d outlived the failed start", pid1)
}
