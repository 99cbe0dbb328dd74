package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/sandbox/internal/proc"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"github.com/nsbox/nsbox/sandbox/internal/tty"
)

// Sandbox is a running sandbox, returned by Start.
type Sandbox struct {
	pid1   *proc.Process // held by a pidfd: see package proc
	sync   *os.File      // launcher's end of the stage socket; PID 1 holds the other
	stdio  *stdio
	tty    tty.Foreground // zero: the command has no terminal of the caller's
	pty    *tty.Relay     // with Process.Terminal
	cancel func() bool
	cgroup *cgroup.Group // nil without a cgroup of its own (Limits)
	done   chan struct{} // closed when watch returns
	// netStop ends the network service, if any, once: when PID 1
	// reports the command's exit (watch, beside PID 1's own exit), and
	// in Wait, which waits for it.
	netStop func() error
	// handOffReady gets PID 1's HANDOFF_READY (watch reads it).
	handOffReady chan struct{}
	// atExit, if set, runs in watch at EXITED (handoff.Handle.AtExit).
	atExit atomic.Pointer[func()]
	// pid1IsCommand: PID 1 is the command (Spec.CommandIsPID1).
	pid1IsCommand bool
	// live is the running sandbox the live operations act on (live.go);
	// lookedUp is set for a Sandbox from Lookup.
	live     Target
	lookedUp *lookedUp

	waitDelay time.Duration // Process.WaitDelay
	state     *ProcessState // from PID 1's EXITED; written by watch before done closes

	waitOnce sync.Once
	err      error
}

// cancelOn arranges what ctx's end does: p.Cancel, or SIGKILL; after
// p.Cancel, SIGKILL once p.WaitDelay has passed (if it is set).
func (s *Sandbox) cancelOn(ctx context.Context, p *Process) {
	s.waitDelay = p.WaitDelay
	s.cancel = context.AfterFunc(ctx, func() {
		if p.Cancel == nil {
			s.Signal(syscall.SIGKILL)
			return
		}
		if err := p.Cancel(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.Signal(syscall.SIGKILL)
			return
		}
		if p.WaitDelay > 0 {
			select {
			case <-s.done:
			case <-time.After(p.WaitDelay):
				s.Signal(syscall.SIGKILL)
			}
		}
	})
}

// Pid returns a host pid: for a sandbox from Start, its PID 1's (nsbox's
// init, the parent of the command; signals sent to it reach the command,
// and its death ends the sandbox; with Spec.CommandIsPID1 the command's); for a command from Join, the joined
// command's own.
func (s *Sandbox) Pid() int { return s.pid1.Pid }

// Signal sends sig to the command. PID 1 forwards it; SIGKILL ends the
// whole sandbox at once (with a cgroup of its own, every process in that
// cgroup too, through cgroup.kill).
func (s *Sandbox) Signal(sig os.Signal) error {
	err := s.pid1.Signal(sig)
	if sig == syscall.SIGKILL && s.cgroup != nil {
		s.cgroup.Kill()
	}
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Wait waits for the command to end and for everything in the sandbox to be
// gone. It returns nil for status 0 and an *ExitError otherwise. Calling it
// again returns the same result.
func (s *Sandbox) Wait() error {
	s.waitOnce.Do(func() {
		if s.lookedUp != nil {
			s.err = s.waitLookedUp()
			return
		}
		ws, err := s.pid1.Wait()
		s.cgroup.Remove()
		s.cancel()
		if s.netStop != nil {
			s.netStop()
		}
		<-s.done // PID 1's end of the socket closed with it
		s.sync.Close()
		s.tty.Restore()
		if s.pty != nil {
			s.pty.Finish()
		}
		copied := s.stdio.finishWithin(s.waitDelay)
		if err != nil {
			s.err = fmt.Errorf("wait for the sandbox: %w", err)
			return
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		if s.state != nil && s.state.code() != code {
			s.state = nil // PID 1 did not exit for the command's reason
		}
		if code != 0 {
			s.err = &ExitError{Code: code, State: s.state}
		} else if !copied {
			s.err = ErrWaitDelay
		}
	})
	return s.err
}

// ProcessState is how the command ended and what it used: nil while the
// sandbox runs, and when PID 1 did not report it (PID 1 itself was
// killed, or the Sandbox is a Join's). Call it after Wait.
func (s *Sandbox) ProcessState() *ProcessState {
	select {
	case <-s.done:
		return s.state
	default:
		return nil
	}
}

// watch serves PID 1's messages after start: job-control stops, and the
// command's end (EXITED).
func (s *Sandbox) watch() {
	defer close(s.done)
	for {
		m, err := stage.ReadMessage(s.sync)
		if err != nil {
			return
		}
		if m.Kind == stage.MsgExited {
			s.state, _ = parseExited(m)
			// The command is gone and PID 1 exits next, ending the
			// sandbox: the network's end (its helper's exit) runs
			// beside PID 1's (its namespaces' tear-down), not after it.
			if s.netStop != nil {
				go s.netStop()
			}
			if f := s.atExit.Load(); f != nil {
				(*f)()
			}
			continue
		}
		if m.Kind == stage.MsgHandOffOK {
			s.handOffReady <- struct{}{}
		}
		if m.Kind == stage.MsgStopped {
			var fg bool
			if s.pty != nil {
				fg = s.pty.Suspend()
			} else {
				fg = s.tty.Suspend()
			}
			stage.WriteMessage(s.sync, stage.MsgResume, boolValue(fg), nil)
		}
	}
}

func boolValue(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Resize sets the window size of the command's terminal (Process.Terminal)
// to rows × cols; the kernel then sends SIGWINCH to its foreground job.
// Start already follows the caller's terminal when Stdin is one; Resize is
// for callers that relay a terminal of their own (a web console, ssh).
func (s *Sandbox) Resize(rows, cols uint16) error {
	if s.pty == nil {
		return errors.New("resize: the sandbox has no terminal; fix: set Process.Terminal")
	}
	if err := s.pty.Resize(rows, cols); err != nil {
		return fmt.Errorf("resize the sandbox's terminal: %w", err)
	}
	return nil
}
