package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"github.com/nsbox/nsbox/sandbox/internal/tty"
)

// The launcher's half of receiving Process.Terminal's pty. PID 1
// allocates the pty from the sandbox's own devpts and sends its master here
// (pty.c) on the PTY_MASTER message; this file receives it, as part of the
// stage protocol. What the launcher then does with the master (the copying,
// raw mode, SIGWINCH, job control) is package internal/tty's.

// receiveMaster reads the PTY_MASTER message and the descriptor it carries.
// An ERROR from PID 1 instead is returned as its *SetupError.
func receiveMaster(sock *os.File) (*os.File, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var h [stage.HeaderSize]byte
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
	m, err := stage.ReadMessage(rest)
	if err != nil || m.Kind != stage.MsgPtyMaster || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		switch {
		case err != nil:
			err = stageError(err)
		case m.Kind != stage.MsgPtyMaster:
			err = messageError(m, stage.MsgPtyMaster, "")
		default:
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

// terminalEnds says which of p's standard streams a terminal of the
// sandbox's own (p.Terminal) replaces: each that is a terminal, the
// caller's, which must not reach the sandbox; all three when none is (a
// pty asked for with pipes or files, which then carries them all). The
// others reach the command as they are: nsbox run … | less keeps the
// pipe as the command's stdout.
func terminalEnds(p *Process) [3]bool {
	ends := [3]bool{tty.IsTerminal(p.Stdin), tty.IsTerminal(p.Stdout), tty.IsTerminal(p.Stderr)}
	if ends == [3]bool{} {
		return [3]bool{true, true, true}
	}
	return ends
}

// ptyKeep is the stage's "pty-keep" mask for ends: bit N set, fd N stays
// the file the stage was given.
func ptyKeep(ends [3]bool) int {
	keep := 0
	for i, on := range ends {
		if !on {
			keep |= 1 << i
		}
	}
	return keep
}

// openCommandStdio opens the stage's standard files for p. With a
// terminal of the sandbox's own, the streams it replaces (terminalEnds)
// are /dev/null for the stage (and PID 1), so the caller's terminal never
// enters the sandbox; the command gets the pty's slave there.
func openCommandStdio(p *Process) (*stdio, error) {
	if !p.Terminal {
		return openStdio(p)
	}
	ends := terminalEnds(p)
	q := &Process{Stdin: p.Stdin, Stdout: p.Stdout, Stderr: p.Stderr, ExtraFiles: p.ExtraFiles}
	if ends[0] {
		q.Stdin = nil
	}
	if ends[1] {
		q.Stdout = nil
	}
	if ends[2] {
		q.Stderr = nil
	}
	return openStdio(q)
}

// relayStreams are the streams of p that the pty replaces, as the relay
// uses them: the caller's stdin, if the pty has it, and where the pty's
// output goes: stdout, or stderr when only that is the pty's; nil for
// none.
func relayStreams(p *Process) (in io.Reader, out io.Writer) {
	ends := terminalEnds(p)
	if ends[0] {
		in = p.Stdin
	}
	switch {
	case ends[1]:
		out = p.Stdout
	case ends[2]:
		out = p.Stderr
	}
	return in, out
}

// startRelay starts copying between the pty's master and p's streams.
func startRelay(master *os.File, p *Process) *tty.Relay {
	in, out := relayStreams(p)
	return tty.Start(master, in, out)
}

// withTerminalFor asks the stage for p's pseudo-terminal: the window size
// of the caller's terminal, and which of the command's fds 0-2 it
// replaces.
func withTerminalFor(c *stage.Config, p *Process) {
	rows, cols := tty.InitialSize(relayStreams(p))
	withTerminal(c, int(rows), int(cols))
	c.PTYKeep = ptyKeep(terminalEnds(p))
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
