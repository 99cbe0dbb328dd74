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
