package tty

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// finishQuiet and finishLimit bound how long Finish waits for the output
// of a command that has ended (see Finish).
const (
	finishQuiet = 50 * time.Millisecond
	finishLimit = time.Second
)

// defaultSize is the window size of a pty when the caller has no
// terminal to copy one from: the VT100's, which programs assume anyway.
var defaultSize = unix.Winsize{Row: 24, Col: 80}

// Relay is a running sandbox's pseudo-terminal as the launcher sees it: it
// copies between the pty's master and the caller's streams and, when the
// caller's stdin is a terminal in the launcher's foreground and the pty's
// output goes to a terminal too, keeps that terminal in raw mode; the pty's
// window size follows the caller's terminal.
type Relay struct {
	master *os.File
	host   *os.File // the caller's stdin, when it is a terminal; else nil
	rawOK  bool     // host may go raw: the pty's output goes to a terminal

	mu  sync.Mutex  // guards raw
	raw *term.State // host's mode before raw; nil when not in raw mode

	output   sync.WaitGroup // master → stdout copy
	lastRead atomic.Int64   // when that copy last read output (UnixNano)
	winch    chan os.Signal
	cont     chan os.Signal // SIGCONT, while host is read from the background
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

// IsTerminal reports whether stream is an *os.File open on a terminal.
func IsTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && f != nil && term.IsTerminal(int(f.Fd()))
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
// nil). When stdin and stdout are terminals and the launcher is in
// stdin's foreground, it puts stdin's terminal in raw mode; when stdin is
// a terminal that stays in its own mode (its output is not the pty's, as
// in nsbox run … | less), the pty does not echo, so typed lines show
// once. The pty's window size follows whichever of stdin and stdout is a
// terminal (SIGWINCH). Nothing can fail after this, so the caller's
// terminal is restored by Finish on every path.
//
// A launcher in the background (nsbox … &) leaves the terminal alone and
// keeps running: it reads stdin only once the shell has given it the
// foreground, and goes raw then.
//
// master must be non-blocking (so the runtime poller serves it and Close
// interrupts a pending Read); the Relay owns it from here on and closes it
// in Finish.
func Start(master *os.File, stdin io.Reader, stdout io.Writer) *Relay {
	t := &Relay{master: master}
	in, size := hostTerminal(stdin, stdout)
	if in != nil {
		t.host = in
		t.rawOK = IsTerminal(stdout)
		// A background read fails with EIO instead of stopping us.
		signal.Ignore(syscall.SIGTTIN)
		t.cont = make(chan os.Signal, 1)
		signal.Notify(t.cont, syscall.SIGCONT)
		if !t.goRawIfForeground() {
			t.noEcho()
		}
	}
	if size != nil {
		t.winch = make(chan os.Signal, 1)
		signal.Notify(t.winch, syscall.SIGWINCH)
		go t.followWindow(size)
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
			t.lastRead.Store(time.Now().UnixNano())
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

// foreground reports whether the launcher's process group holds the host
// terminal's foreground.
func (t *Relay) foreground() bool {
	fg, err := unix.IoctlGetInt(int(t.host.Fd()), unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// goRawIfForeground puts the host terminal in raw mode if it may go raw
// and the launcher holds its foreground; it reports whether it is raw. A
// terminal that is not in canonical mode already belongs to someone else
// in raw mode (a sibling nsbox under make -j, a full-screen program):
// it is left as it is, so that the mode restored at the end is never
// someone else's raw one.
func (t *Relay) goRawIfForeground() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raw == nil && t.rawOK && t.foreground() {
		if tio, err := unix.IoctlGetTermios(int(t.host.Fd()), unix.TCGETS); err == nil && tio.Lflag&unix.ICANON == 0 {
			return true
		}
		t.raw, _ = term.MakeRaw(int(t.host.Fd()))
	}
	return t.raw != nil
}

// noEcho turns the pty's echo off: the host terminal, in its own mode,
// echoes what is typed already.
func (t *Relay) noEcho() {
	if tio, err := unix.IoctlGetTermios(int(t.master.Fd()), unix.TCGETS); err == nil {
		tio.Lflag &^= unix.ECHO
		unix.IoctlSetTermios(int(t.master.Fd()), unix.TCSETS, tio)
	}
}

// awaitForeground is called when reading the host terminal failed with
// EIO: the launcher is in the background (SIGTTIN is ignored), or the
// terminal hung up. It waits until the shell continues the launcher or a
// moment has passed, and reports whether reading is worth another try.
func (t *Relay) awaitForeground() bool {
	if _, err := unix.IoctlGetInt(int(t.host.Fd()), unix.TIOCGPGRP); err != nil || t.foreground() {
		return false // hung up
	}
	select {
	case <-t.cont:
	case <-time.After(250 * time.Millisecond):
	}
	t.goRawIfForeground()
	return true
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
			if t.host != nil && errors.Is(err, syscall.EIO) && t.awaitForeground() {
				continue
			}
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
	stopLauncher()
	if t.host == nil {
		return false
	}
	t.goRawIfForeground()
	return t.foreground()
}

func (t *Relay) restoreMode() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raw != nil {
		term.Restore(int(t.host.Fd()), t.raw)
		t.raw = nil
	}
}

// Finish waits for the last output, closes the master and gives the host
// terminal its mode back. Call it once, after the command is gone.
//
// The output ends with the master's EIO once no process holds the slave.
// A process of the sandbox may still hold it (nsbox exec: the sandbox
// lives on, and anything in it may have opened the slave through /proc):
// it must not keep the caller waiting, so the output also ends after
// finishQuiet without any, or finishLimit in all. Closing the master hangs
// up the slave: nothing inside reads or writes the caller's terminal
// through it any more.
func (t *Relay) Finish() {
	// The command's last output is in the pty already: the copy gets at
	// least finishQuiet from now to read it.
	t.lastRead.Store(time.Now().UnixNano())
	ended := make(chan struct{})
	go func() { t.output.Wait(); close(ended) }()
	limit := time.After(finishLimit)
	tick := time.NewTicker(finishQuiet / 2)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ended:
			break wait
		case <-limit:
			t.master.SetReadDeadline(time.Now())
		case <-tick.C:
			if time.Since(time.Unix(0, t.lastRead.Load())) >= finishQuiet {
				t.master.SetReadDeadline(time.Now())
			}
		}
	}
	t.master.Close()
	if t.winch != nil {
		signal.Stop(t.winch)
		close(t.winch)
	}
	if t.cont != nil {
		signal.Stop(t.cont)
		signal.Reset(syscall.SIGTTIN)
	}
	t.restoreMode()
}
