package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// The launcher's half of Process.Terminal. PID 1 allocates the pty from the
// sandbox's own devpts and sends its master here (pty.c); this file copies
// between the master and the caller's Stdin and Stdout, and, when Stdin is
// a terminal, puts that terminal in raw mode for the sandbox's lifetime and
// passes its window size on, at start and on every SIGWINCH.
//
// In raw mode the host terminal generates no signals: Ctrl-C, Ctrl-Z and
// Ctrl-\ arrive as bytes and the sandbox's own terminal turns them into
// signals for its foreground job, which is how job control inside works.

// defaultWinsize is the window size of a pty when the caller has no
// terminal to copy one from: the VT100's, which programs assume anyway.
var defaultWinsize = unix.Winsize{Row: 24, Col: 80}

// pty is a running sandbox's pseudo-terminal as the launcher sees it.
type pty struct {
	master *os.File
	host   *os.File    // the caller's Stdin, when it is a terminal; else nil
	raw    *term.State // host's mode before raw; nil when not in raw mode

	output sync.WaitGroup // master → Stdout copy
	winch  chan os.Signal
}

// hostTerminal returns the caller's terminal among stdin and stdout: the one
// whose window size the pty copies, and (stdin only) puts in raw mode.
func hostTerminal(p *Process) (in, size *os.File) {
	if f, ok := p.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f, f
	}
	if f, ok := p.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return nil, f
	}
	return nil, nil
}

// initialWinsize is the size the pty is created with.
func initialWinsize(p *Process) unix.Winsize {
	if _, f := hostTerminal(p); f != nil {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Row > 0 && ws.Col > 0 {
			return *ws
		}
	}
	return defaultWinsize
}

// receiveMaster reads the PTY_MASTER message and the descriptor it carries.
// An ERROR from PID 1 instead is returned as its *SetupError.
func receiveMaster(sock *os.File) (*os.File, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var h [headerSize]byte
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), h[:], oob, unix.MSG_CMSG_CLOEXEC)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("receive the terminal from the sandbox: %w", err)
	}
	var fds []int
	if oobn > 0 {
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
			fds, _ = unix.ParseUnixRights(&msgs[0])
		}
	}
	if n == 0 {
		return nil, errStageGone
	}
	// The rest of the header and the payload, if the kernel split them.
	rest := io.MultiReader(bytes.NewReader(h[:n]), sock)
	m, err := readMessage(rest)
	if err != nil || m.kind != msgPtyMaster || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if err == nil {
			_, err = expect(bytes.NewReader(encodeMessage(m)), msgPtyMaster)
		}
		if err == io.EOF {
			err = errStageGone
		}
		if err == nil {
			err = errors.New("stage protocol: PTY_MASTER arrived without its descriptor")
		}
		return nil, err
	}
	// Non-blocking, so the runtime poller serves it and Close interrupts
	// a pending Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive the terminal from the sandbox: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "nsbox-pty-master"), nil
}

// encodeMessage renders m as it travels, for re-reading with expect.
func encodeMessage(m message) []byte {
	var b bytes.Buffer
	writeMessage(&b, m.kind, m.value, m.payload)
	return b.Bytes()
}

// startPTY begins copying between the master and p's streams and, when
// p.Stdin is a terminal, puts it in raw mode. Nothing can fail after this,
// so the caller's terminal is restored by finish on every path.
func startPTY(master *os.File, p *Process) *pty {
	t := &pty{master: master}
	in, _ := hostTerminal(p)
	if in != nil {
		// A launcher in the background (nsbox … &) leaves the terminal
		// alone; the read below stops it like any background reader.
		if fg, err := unix.IoctlGetInt(int(in.Fd()), unix.TIOCGPGRP); err == nil && fg == unix.Getpgrp() {
			t.host = in
			t.raw, _ = term.MakeRaw(int(in.Fd()))
		}
		t.winch = make(chan os.Signal, 1)
		signal.Notify(t.winch, syscall.SIGWINCH)
		go t.followWindow(in)
	}
	if p.Stdin != nil {
		go t.copyInput(p.Stdin)
	}
	t.output.Add(1)
	go func() {
		defer t.output.Done()
		out := p.Stdout
		if out == nil {
			out = io.Discard
		}
		// Read ends with EIO once no process holds the slave any more.
		// A plain loop: each chunk is passed on as soon as it is read.
		buf := make([]byte, 32*1024)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return t
}

// copyInput copies the caller's input to the terminal. At the end of a
// non-terminal input it types the terminal's end-of-file character (twice
// after an unfinished line: the first ends the line), so the command reads
// EOF as it would at a terminal.
func (t *pty) copyInput(in io.Reader) {
	buf := make([]byte, 32*1024)
	last := byte('\n')
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := t.master.Write(buf[:n]); werr != nil {
				return
			}
			last = buf[n-1]
		}
		if err != nil {
			break
		}
	}
	eof := byte(4) // ^D
	if tio, err := unix.IoctlGetTermios(int(t.master.Fd()), unix.TCGETS); err == nil && tio.Cc[unix.VEOF] != 0 {
		eof = tio.Cc[unix.VEOF]
	}
	if last != '\n' {
		t.master.Write([]byte{eof})
	}
	t.master.Write([]byte{eof})
}

// followWindow copies the host terminal's size to the pty on every
// SIGWINCH; the kernel then signals the sandbox's foreground job.
func (t *pty) followWindow(host *os.File) {
	for range t.winch {
		ws, err := unix.IoctlGetWinsize(int(host.Fd()), unix.TIOCGWINSZ)
		if err != nil {
			continue
		}
		t.resize(*ws)
	}
}

func (t *pty) resize(ws unix.Winsize) error {
	rc, err := t.master.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &ws) }); err != nil {
		return err
	}
	return ioErr
}

// suspend restores the host terminal while the command is stopped
// (Ctrl-Z on a command that is not a shell), stops the launcher's process
// group as a stopped child would, and on SIGCONT goes raw again if the
// shell gave us the foreground.
func (t *pty) suspend() (foreground bool) {
	t.restoreMode()
	stopProcessGroup()
	if t.host == nil {
		return false
	}
	fg, err := unix.IoctlGetInt(int(t.host.Fd()), unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		return false
	}
	t.raw, _ = term.MakeRaw(int(t.host.Fd()))
	return true
}

func (t *pty) restoreMode() {
	if t.raw != nil {
		term.Restore(int(t.host.Fd()), t.raw)
		t.raw = nil
	}
}

// finish waits for the last output, closes the master and gives the host
// terminal its mode back. Called once the sandbox is gone.
func (t *pty) finish() {
	t.output.Wait()
	t.master.Close()
	if t.winch != nil {
		signal.Stop(t.winch)
		close(t.winch)
	}
	t.restoreMode()
}

// stopProcessGroup stops the launcher's process group, as the terminal's
// Ctrl-Z would have, and returns once the launcher has been continued.
//
// Returning from kill(0, SIGSTOP) says nothing: in a multi-threaded
// process the kernel hands the signal to some thread, and the caller can
// run on (and put the terminal back in raw mode) before the group stop
// reaches it. The SIGCONT that ends the stop is the only sure sign.
func stopProcessGroup() {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	if unix.Kill(0, unix.SIGSTOP) == nil {
		<-cont
	}
}

// openCommandStdio opens the stage's standard files for p. With a
// terminal of the sandbox's own the command's streams are the pty: the
// stage (and PID 1) get /dev/null, and the caller's terminal never enters
// the sandbox.
func openCommandStdio(p *Process) (*stdio, error) {
	if p.Terminal {
		return openStdio(&Process{})
	}
	return openStdio(p)
}

// receiveTerminal receives the pty's master, which comes before EXEC_OK
// when p asks for a terminal (from PID 1, or from the join stage); nil
// without one. A failure after ctx ended is ctx's error.
func receiveTerminal(ctx context.Context, sock *os.File, p *Process) (*os.File, error) {
	if !p.Terminal {
		return nil, nil
	}
	master, err := receiveMaster(sock)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return master, err
}
