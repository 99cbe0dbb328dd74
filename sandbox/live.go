package sandbox

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/sandbox/internal/proc"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"golang.org/x/sys/unix"
)

// Live operations act on a sandbox while it runs: Mount and Unmount, CopyTo
// and CopyFrom, Pause and Resume, Dial and Listen. They are methods of the
// Sandbox that Start returns, of one that Join returns (acting on the
// joined sandbox, not only the joined command) and of one that Lookup
// returns. Each checks the kernel first, as Join does: PID 1 must still be
// the process of the recorded pid and start time. What needs to be inside
// the sandbox's namespaces (a mount, a socket) is done by a short-lived
// stage process (stage live.c) that execs nothing; the rest works from the
// caller's side through descriptors (docs/live.md).

// ErrEnded reports a live operation on a sandbox that has ended.
var ErrEnded = errors.New("the sandbox has ended")

// Lookup returns a handle on the running sandbox t without starting
// anything in it: its live operations, Pid and Signal (PID 1's), and Wait,
// which returns nil once PID 1 has exited (a looked-up sandbox is not the
// caller's child: its status is not known). Lookup fails with ErrEnded if
// PID 1 is gone or its pid now names another process.
func Lookup(t Target) (*Sandbox, error) {
	if t.Pid <= 0 {
		return nil, fmt.Errorf("look up a sandbox: no PID 1 given")
	}
	fd, err := unix.PidfdOpen(t.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox PID 1 (pid %d): %w", t.Pid, ErrEnded)
	}
	if st, err := pidStartTime(t.Pid); err != nil || st != t.StartTime {
		unix.Close(fd)
		return nil, fmt.Errorf("sandbox PID 1 (pid %d): %w", t.Pid, ErrEnded)
	}
	p := proc.Open(t.Pid)
	done := make(chan struct{})
	close(done)
	return &Sandbox{pid1: p, live: t, lookedUp: &lookedUp{pidfd: fd}, done: done, cancel: func() bool { return false }}, nil
}

// lookedUp is what a Sandbox from Lookup holds: PID 1's pidfd.
type lookedUp struct{ pidfd int }

// waitLookedUp is Wait for a Sandbox from Lookup: PID 1's pidfd becomes
// readable when it exits.
func (s *Sandbox) waitLookedUp() error {
	for {
		p := []unix.PollFd{{Fd: int32(s.lookedUp.pidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(p, -1); err == nil || err != unix.EINTR {
			unix.Close(s.lookedUp.pidfd)
			return err
		}
	}
}

// target returns the running sandbox's Target, its start time read from
// the kernel if not known yet, and checks PID 1 is still that process.
func (s *Sandbox) target() (Target, error) {
	t := s.live
	if t.Pid <= 0 {
		return t, fmt.Errorf("this Sandbox has no PID 1 to act on")
	}
	st, err := pidStartTime(t.Pid)
	if t.StartTime == 0 && err == nil {
		t.StartTime = st
		s.live.StartTime = st
	}
	if err != nil || st != t.StartTime {
		return t, fmt.Errorf("sandbox PID 1 (pid %d): %w", t.Pid, ErrEnded)
	}
	return t, nil
}

// pidStartTime reads field 22 of /proc/PID/stat.
func pidStartTime(pid int) (uint64, error) {
	st, err := procfs.ReadStat(pid)
	return st.StartTime, err
}

// runLive runs the stage's live operation l in the sandbox t and returns
// the descriptor it sends back (LiveSocket), or nil.
func runLive(t Target, l *stage.Live) (*os.File, error) {
	// The stage needs no stdio: it runs nothing, and puts /dev/null on
	// 0, 1 and 2 before it joins anything (join.c). The CLI's pre-forked
	// stage (nsbox mount, umount, connect) has the process's own, and
	// serves only a caller that passes those; it saves the re-execution
	// of the binary, the larger part of a live operation's time.
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	if !stage.PreforkWaiting() {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer null.Close()
		files = []*os.File{null, null, null}
	}
	stageProc, parent, err := startStage(files, joinedMaps(t.Pid), -1)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	// The stage has answered and exits on its own (or is killed here, on
	// a failure): it is reaped in the background. Its exit drops the
	// mount namespace it made (docs/live.md), which the kernel ends with
	// an RCU grace period; nothing the caller does next waits for that,
	// and the caller need not either (0.2-0.4 ms of an nsbox mount).
	defer func() { stageProc.Kill(); go stageProc.Wait() }()
	// A stage that never answers (a frozen sandbox's /proc read, say)
	// must not hang the caller forever.
	parent.SetDeadline(time.Now().Add(30 * time.Second))
	cfg := stage.Config{
		Unshare:    t.Namespaces.cloneFlags(),
		TTY:        -1,
		JoinPID:    t.Pid,
		JoinStart:  t.StartTime,
		JoinNested: t.Namespaces.Mount,
		JoinPID1:   t.CommandIsPID1,
		Args:       []string{"nsbox-live"}, // required; nothing is executed
		Live:       l,
		// The stage runs the operation (live.c) before it would apply any
		// security record, and exits: "caps" is required, and nothing
		// else is built (t.Security's would compile its seccomp filter
		// and probe Landlock, for nothing).
		Security: stage.Security{},
	}
	if err := stage.WriteMessage(parent, stage.MsgConfig, 0, cfg.Encode()); err != nil {
		return nil, fmt.Errorf("send the live operation: %w", err)
	}
	if l.Op == stage.LiveSocket {
		f, err := expectFD(parent, stage.MsgLiveDone)
		return f, liveError(err)
	}
	_, err = expect(parent, stage.MsgLiveDone)
	return nil, liveError(err)
}

// liveError turns the stage's "PID 1 is gone" into ErrEnded.
func liveError(err error) error {
	var se *SetupError
	if errors.As(err, &se) && se.Err == unix.ESRCH {
		return fmt.Errorf("%s: %w", se.Step, ErrEnded)
	}
	if errors.Is(err, errStageGone) {
		return fmt.Errorf("%w (or nsbox's stage failed)", ErrEnded)
	}
	return err
}
