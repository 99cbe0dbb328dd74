package sandbox

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/internal/handoff"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// The hand-off is a speed trick of the nsbox command, not API: the
// command reaches these methods through handoff.Of, which this package
// registers.
func init() {
	handoff.Register(func(sb any) handoff.Handle { return handOffHandle{sb.(*Sandbox)} })
}

// handOffHandle is a *Sandbox as handoff.Handle.
type handOffHandle struct{ s *Sandbox }

func (h handOffHandle) Exited(timeout time.Duration) bool { return h.s.exited(timeout) }
func (h handOffHandle) CanHandOff() bool                  { return h.s.canHandOff() }
func (h handOffHandle) HandOff(p handoff.Plan) error      { return h.s.handOff(p) }
func (h handOffHandle) AtExit(f func())                   { h.s.atExit.Store(&f) }

// exited reports whether PID 1 has ended, waiting for it at most timeout.
// It does not reap PID 1: Wait or the hand-off's supervisor still does.
func (s *Sandbox) exited(timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(s.pid1.Pid, 0)
	if err != nil {
		return true // reaped already, or we cannot tell: let Wait decide
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR && time.Now().Before(deadline) {
			continue
		}
		return n > 0 || (err != nil && err != unix.EINTR)
	}
}

// canHandOff reports whether handOff can take this sandbox over: the
// launcher has nothing to do for it but wait (no pseudo-terminal to relay,
// no network to serve, no cgroup to remove, no standard stream to copy),
// and nsbox's init runs the command (not Spec.CommandIsPID1: the
// supervisor speaks to that init).
func (s *Sandbox) canHandOff() bool {
	// A Sandbox from Lookup is not the caller's child: nothing to hand off.
	return s.lookedUp == nil && s.pty == nil && s.netStop == nil && s.cgroup == nil && !s.stdio.copying() && !s.pid1IsCommand
}

// handOff replaces the calling process, through execve(2) of its own
// binary, by a small C supervisor (handoff.c) that does what Wait and the
// caller would do until the sandbox ends, then exits with the command's
// exit status (128+N if signal N killed it). The pid stays the same, so
// PID 1 stays its child and the caller's parent still waits for it. It
// saves the Go runtime's resident memory while a sandbox idles.
//
// The supervisor forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
// SIGUSR2 and SIGWINCH to the command (as nsbox run does), mirrors a
// stopped command to the shell when the sandbox has the caller's terminal,
// and dies, taking the sandbox with it, of the signals that would have
// killed a Go program.
//
// PID 1's parent-death signal is tied to the thread that started the
// sandbox, and execve ends every other thread: PID 1 disarms it for the
// exec (HANDOFF, HANDOFF_READY) and the supervisor arms it again (ARM);
// in between, PID 1 still exits when the launcher's end of their socket
// closes. Do not call it concurrently with Wait, and only when
// canHandOff. It returns only on failure, with the sandbox still the
// caller's, to Wait for as usual.
func (s *Sandbox) handOff(h handoff.Plan) error {
	if !s.canHandOff() {
		return errors.New("hand off the sandbox: it needs the launcher (terminal relay, network, cgroup or copied streams), or its command is PID 1; fix: Wait for it instead")
	}
	// The signal mask set below is the calling thread's, and that thread
	// execs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var sync int
	rc, err := s.sync.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { sync = int(fd) })
	}
	if err != nil {
		return fmt.Errorf("hand off the sandbox: %w", err)
	}
	tty, pgrp := s.tty.Host()
	v, err := handOffVar(s.pid1.Pid, sync, h.StatusFD, tty, pgrp, h.After)
	if err != nil {
		return err
	}
	env := append(os.Environ(), v)
	// Exec through /proc/self/exe names the supervisor "exe": it takes
	// the launcher's name back, as ps showed it before.
	if n := stage.NameVar(); n != "" {
		env = append(env, n)
	}

	if err := stage.WriteMessage(s.sync, stage.MsgHandOff, 0, nil); err != nil {
		return fmt.Errorf("hand off the sandbox: %w", err)
	}
	select {
	case <-s.handOffReady:
	case <-s.done:
		return errors.New("hand off the sandbox: PID 1 ended first; fix: Wait for it")
	case <-time.After(5 * time.Second):
		stage.WriteMessage(s.sync, stage.MsgArm, 0, nil)
		return errors.New("hand off the sandbox: PID 1 did not answer HANDOFF within 5 s; fix: Wait for it instead")
	}
	// Stop serving PID 1's messages here: the supervisor reads them next.
	// A message is one write of a few bytes, so the deadline cannot split
	// one.
	s.sync.SetReadDeadline(time.Now())
	<-s.done
	fds := append([]int{sync, h.StatusFD, tty}, h.Keep...)
	for _, fd := range fds {
		if fd >= 0 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		}
	}
	// Signals that come while the binary is replaced wait, blocked, for
	// the supervisor's signalfd (the mask survives execve).
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old)
	err = syscall.Exec("/proc/self/exe", os.Args, env)

	// Still here: undo, and let the caller Wait.
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	for _, fd := range fds {
		if fd >= 0 && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	s.sync.SetReadDeadline(time.Time{})
	s.done = make(chan struct{})
	go s.watch()
	stage.WriteMessage(s.sync, stage.MsgArm, 0, nil)
	return fmt.Errorf("hand off the sandbox: exec /proc/self/exe: %w", err)
}

// handOffVar encodes what the supervisor needs as the one variable
// handoff.c reads: "NAME=PID1,SYNC,STATUS,TTY,PGRP" then ";VERB:HEX[:HEX]"
// per step, the paths in hex (a path may hold any byte but NUL), and a
// Close step's descriptor number as decimal text in hex.
func handOffVar(pid1, sync, status, tty, pgrp int, after []handoff.Step) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%d,%d,%d,%d,%d", stage.HandOffEnv, pid1, sync, status, tty, pgrp)
	for i, st := range after {
		verb, ok := st.Op.Verb()
		if st.Op == handoff.Close {
			// The descriptor's number, as text, in hex as a path is.
			if st.FD <= 2 || st.Path != "" || st.To != "" {
				return "", fmt.Errorf("hand off the sandbox: after-step %d closes fd %d; fix: a Close step names a kept descriptor above 2 and no path", i, st.FD)
			}
			fmt.Fprintf(&b, ";%s:%s", verb, hex.EncodeToString([]byte(strconv.Itoa(st.FD))))
			continue
		}
		if !ok || st.Path == "" || (st.Op == handoff.Rename) != (st.To != "") {
			return "", fmt.Errorf("hand off the sandbox: after-step %d (op %d, %q, %q) is not a valid step; fix: an Op with its Path, and To only for Rename", i, st.Op, st.Path, st.To)
		}
		fmt.Fprintf(&b, ";%s:%s", verb, hex.EncodeToString([]byte(st.Path)))
		if st.To != "" {
			fmt.Fprintf(&b, ":%s", hex.EncodeToString([]byte(st.To)))
		}
	}
	return b.String(), nil
}
