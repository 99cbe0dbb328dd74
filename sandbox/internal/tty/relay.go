package tty

import (
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// defaultSize is the window size of a pty when the caller has no
// terminal to copy one from: the VT100's, which programs assume anyway.
var defaultSize = unix.Winsize{Row: 24, Col: 80}

// Relay is a running sandbox's pseudo-terminal as the launcher sees it: it
// copies between the pty's master and the caller's streams and, when the
// caller's stdin is a terminal in the launcher's foreground, keeps that
// terminal in raw mode and the pty's window size in step with it.
type Relay struct {
	master *os.File
	host   *os.File    // the caller's stdin, when it is a terminal; else nil
	raw    *term.State // host's mode before raw; nil when not in raw mode

	output sync.WaitGroup // master → stdout copy
	winch  chan os.Signal
}

// hostTerminal returns the caller's terminal among stdin and stdout: the one
// whose window size the pty copies, and (stdin only) puts in raw mode.
func hostTerminal(stdin io.Reader, stdout io.Writer) (in, size *os.File) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f, f
	}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return nil, f
	}
	return nil, nil
}

// InitialSize returns the window size a new pty for a command with these
// stdin and stdout should have: that of the first of them that is a
// terminal, else 24 rows of 80 columns.
func InitialSize(stdin io.Reader, stdout io.Writer) (rows, cols uint16) {
	if _, f := hostTerminal(stdin, stdout); f != nil {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Row > 0 && ws.Col > 0 {
			return ws.Row, ws.Col
		}
	}
	return defaultSize.Row, defaultSize.Col
}

// Start begins copying between master and the caller's streams: stdin
// (if not nil) to the master, the master's output to stdout (discarded if
// nil). When stdin is a terminal and the launcher is in its foreground, it
// puts that terminal in raw mode; when stdin is a terminal it follows its
// window size (SIGWINCH). Nothing can fail after this, so the caller's
// terminal is restored by Finish on every path.
//
// master must be non-blocking (so the runtime poller serves it and Close
// interrupts a pending Read); the Relay owns it from here on and closes it
// in Finish.
func Start(master *os.File, stdin io.Reader, stdout io.Writer) *Relay {
	t := &Relay{master: master}
	in, _ := hostTerminal(stdin, stdout)
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
	if stdin != nil {
		go t.copyInput(stdin)
	}
	t.output.Add(1)
	go func() {
		defer t.output.Done()
		out := stdout
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
func (t *Relay) copyInput(in io.Reader) {
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
func (t *Relay) followWindow(host *os.File) {
	for range t.winch {
		ws, err := unix.IoctlGetWinsize(int(host.Fd()), unix.TIOCGWINSZ)
		if err != nil {
			continue
		}
		t.resize(*ws) // pixel sizes too
	}
}

// Resize sets the pty's window size to rows × cols; the kernel then sends
// SIGWINCH to its foreground process group.
func (t *Relay) Resize(rows, cols uint16) error {
	return t.resize(unix.Winsize{Row: rows, Col: cols})
}

func (t *Relay) resize(ws unix.Winsize) error {
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

// Suspend restores the host terminal while the command is stopped
// (Ctrl-Z on a command that is not a shell), stops the launcher's process
// group as a stopped child would, and on SIGCONT goes raw again if the
// shell gave the launcher the foreground, which it reports.
func (t *Relay) Suspend() (foreground bool) {
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

func (t *Relay) restoreMode() {
	if t.raw != nil {
		term.Restore(int(t.host.Fd()), t.raw)
		t.raw = nil
	}
}

// Finish waits for the last output (the master's EIO once no process holds
// the slave), closes the master and gives the host terminal its mode back.
// Call it once, after the sandbox is gone.
func (t *Relay) Finish() {
	t.output.Wait()
	t.master.Close()
	if t.winch != nil {
		signal.Stop(t.winch)
		close(t.winch)
	}
	t.restoreMode()
}
