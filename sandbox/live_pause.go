package sandbox

import (
	"errors"
	"fmt"
	"time"

	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/internal/proctree"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"golang.org/x/sys/unix"
)

// Pause stops every process of the running sandbox and returns once all
// are stopped; Resume continues them.
//
// A sandbox with a cgroup of its own (Target.Cgroup: Limits.OwnCgroup, or
// any cgroup limit) is frozen with the cgroup v2 freezer: Pause writes 1
// to its cgroup.freeze and waits until cgroup.events says "frozen 1";
// Resume writes 0. Every process in it stops at once, wherever it is in
// the process tree, nsbox's init included, and nothing of it notices:
// frozen is not a state its parent can wait for, a debugger see, or
// Resume confuse with a stop of the sandbox's own. SIGKILL still ends a
// frozen process; other signals wait until Resume.
//
// Without a cgroup of its own (a cgroup v1 or hybrid host without a
// delegated cgroup v2, or a sandbox started without one), Pause works
// with signals. A process the stage starts in the sandbox's PID namespace
// (holding every capability of its user namespace) sends SIGSTOP to -1:
// the kernel signals, in one pass under its task list lock, every process
// of that namespace and of those nested in it but its PID 1 (the command,
// its children, orphans PID 1 adopted, the processes of nsbox exec), and
// also a child one of them is forking at that moment. Pause then walks
// the processes that descend from PID 1 (package proctree: the kernel's
// lists of children, not a read of every process on the host) and waits
// until each is stopped, walking again if one was running without a
// SIGSTOP pending (a process of the sandbox continued it) until a walk
// finds none. If the stage's signal fails (a process of the sandbox
// stopped the stage's process before it could send it, say), the walk
// stops each process itself, through a pidfd. Unlike the freezer:
//   - a paused process is in the "stopped" state (T in ps), which its
//     parent may notice (waitpid WUNTRACED) and a debugger too;
//   - Resume (SIGCONT to -1 the same way) continues every stopped
//     process, also one that was stopped before Pause (by Ctrl-Z, say);
//   - nsbox's init (PID 1, when it is not the command) keeps running: it
//     only reaps and forwards signals, so kill and stop still reach the
//     sandbox, and SIGKILL ends it at once;
//   - a sandbox attached to a terminal reports the command's stop to its
//     launcher, which then suspends as on Ctrl-Z;
//   - processes that fork without end, or continue each other, in a way
//     that outruns the walks make Pause give up after 5 s;
//   - the walks check the descendants of PID 1 only: a process of nsbox
//     exec (whose parent is the exec launcher, outside) is stopped by the
//     signal to -1 alone.
//
// (From inside, PID 1 of a PID namespace ignores SIGSTOP; sent from the
// caller's namespace above, it stops it like any process: a command that
// is PID 1 is stopped so, first.)
//
// A sandbox that shares the caller's PID namespace and has no cgroup of
// its own cannot be paused: its processes are not set apart from the
// caller's.
func (s *Sandbox) Pause() error {
	t, err := s.target()
	if err != nil {
		return err
	}
	if t.Cgroup != "" {
		g, err := ownCgroup(t)
		if err == nil {
			err = g.Freeze(5 * time.Second)
		}
		if err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		return nil
	}
	if !t.Namespaces.PID {
		return fmt.Errorf("pause: the sandbox shares the caller's PID namespace: its processes are not set apart")
	}
	deadline := time.Now().Add(5 * time.Second)
	if t.CommandIsPID1 {
		// Stopped first, and waited for: kill(-1) spares PID 1, and a
		// fork of PID 1 is caught by it only once that fork is done.
		err := signalPID1(t, unix.SIGSTOP)
		if err == nil {
			err = proctree.WaitHalted(t.Pid, t.StartTime, deadline)
		}
		if err != nil {
			return fmt.Errorf("pause: %w", err)
		}
	}
	// kill(-1, SIGSTOP) from inside. If it failed (a process of the
	// sandbox stopped the helper before it could send it, say), the
	// walks below stop each process themselves.
	helped := signalInside(t, unix.SIGSTOP)
	if errors.Is(helped, ErrEnded) {
		return fmt.Errorf("pause: %w", helped)
	}
	for {
		running := 0
		complete, err := walkSandbox(t, deadline, func(p *proctree.Proc) error {
			switch {
			case p.Halted:
				return nil
			case p.Again:
				// Its children are listed once it is stopped: a child
				// it forked before is then in the list.
				return proctree.WaitHalted(p.Pid, p.Start, deadline)
			}
			// SIGSTOP pending: on its way to stop (it was asleep, or on
			// the other CPU). Otherwise it escaped the signal, or was
			// continued since: stopped here, and the tree is walked
			// again once all are. Either way, it stops while the walk
			// goes on with the others.
			if helped != nil || !proctree.StopPending(p.Pid, p.Pid) {
				running++
				if err := p.Signal(unix.SIGSTOP); err != nil {
					return err
				}
			}
			return proctree.Later
		})
		if errors.Is(err, proctree.ErrNotHalted) || err == nil && time.Now().After(deadline) {
			return fmt.Errorf("pause: processes of the sandbox would not stop within 5s (uninterruptible sleep, or forking without end)")
		}
		if err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		if complete && running == 0 {
			return nil
		}
		helped = errors.New("walk again")
	}
}

// signalPID1 sends sig to the sandbox's PID 1 through a pidfd.
func signalPID1(t Target, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(t.Pid, 0)
	if err != nil {
		return ErrEnded
	}
	defer unix.Close(fd)
	if st, err := pidStartTime(t.Pid); err != nil || st != t.StartTime {
		return ErrEnded
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal PID 1 (pid %d): %w", t.Pid, err)
	}
	return nil
}

// signalInside sends sig to every process of the sandbox's PID namespace
// but its PID 1, with kill(-1, sig) from a process the stage starts in it
// (stage live.c).
func signalInside(t Target, sig unix.Signal) error {
	_, err := runLive(t, &stage.Live{Op: stage.LiveSignal, Signal: int(sig)})
	return err
}

// walkSandbox calls visit for every process of the sandbox t: the
// descendants of its PID 1 (every process of a PID namespace descends
// from its PID 1: orphans are reparented to it, or to a subreaper below
// it), and PID 1 itself when it is the command. complete is false when
// the tree changed under the walk (proctree.Walk).
func walkSandbox(t Target, deadline time.Time, visit func(*proctree.Proc) error) (complete bool, err error) {
	complete, err = proctree.Walk(t.Pid, t.StartTime, t.CommandIsPID1, deadline, visit)
	if errors.Is(err, proctree.ErrRootGone) {
		return false, ErrEnded
	}
	return complete, err
}

// ownCgroup opens t's cgroup (Target.Cgroup) after checking that PID 1,
// checked by target to be t's, is in it: a record naming another cgroup
// is refused, never frozen.
func ownCgroup(t Target) (*cgroup.Group, error) {
	g, err := cgroup.Open(t.Cgroup)
	if err != nil {
		return nil, err
	}
	in, err := g.Holds(t.Pid)
	if err != nil {
		return nil, err
	}
	if !in {
		return nil, fmt.Errorf("the sandbox's PID 1 (pid %d) is not in the cgroup %s its record names", t.Pid, t.Cgroup)
	}
	return g, nil
}

// Resume continues the processes of a sandbox that Pause stopped: thaws
// its cgroup, or sends SIGCONT to -1 from inside (and to a command that
// is PID 1), or, if that fails, to each process a walk finds.
func (s *Sandbox) Resume() error {
	t, err := s.target()
	if err != nil {
		return err
	}
	if t.Cgroup != "" {
		g, err := ownCgroup(t)
		if err == nil {
			err = g.Thaw()
		}
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		return nil
	}
	if !t.Namespaces.PID {
		return fmt.Errorf("resume: the sandbox shares the caller's PID namespace")
	}
	// kill(-1, SIGCONT) from inside reaches every process Pause
	// stopped but PID 1; a walk does, if that fails.
	helped := signalInside(t, unix.SIGCONT)
	if errors.Is(helped, ErrEnded) {
		return fmt.Errorf("resume: %w", helped)
	}
	if t.CommandIsPID1 {
		if err := signalPID1(t, unix.SIGCONT); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for helped != nil {
		complete, err := walkSandbox(t, deadline, func(p *proctree.Proc) error {
			return p.Signal(unix.SIGCONT)
		})
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		if complete || time.Now().After(deadline) {
			break
		}
	}
	return nil
}

// Paused reports whether the sandbox is paused: its cgroup frozen
// (cgroup.events "frozen 1"), or, without one, every process of the
// sandbox (but nsbox's init) stopped, as after Pause; false for a sandbox
// with none.
func (s *Sandbox) Paused() (bool, error) {
	t, err := s.target()
	if err != nil {
		return false, err
	}
	if t.Cgroup != "" {
		g, err := ownCgroup(t)
		if err != nil {
			return false, err
		}
		return g.Frozen()
	}
	any, running := false, false
	deadline := time.Now().Add(5 * time.Second)
	for {
		complete, err := walkSandbox(t, deadline, func(p *proctree.Proc) error {
			any = true
			running = running || !p.Halted
			return nil
		})
		if err != nil {
			return false, err
		}
		if complete || running || time.Now().After(deadline) {
			return any && !running, nil
		}
		any = false
	}
}
