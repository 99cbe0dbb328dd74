package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/internal/procfs"
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
// with signals, from the caller's side, where it holds every capability
// of the sandbox's user namespace: it stops each descendant of PID 1 (the
// command, its children, orphans PID 1 adopted, processes of nsbox exec)
// with SIGSTOP, scanning again until a scan finds none still running, so
// a process forked meanwhile is caught too. Unlike the freezer:
//   - a paused process is in the "stopped" state (T in ps), which its
//     parent may notice (waitpid WUNTRACED) and a debugger too;
//   - Resume continues every stopped process, also one that was stopped
//     before Pause (by Ctrl-Z, say);
//   - nsbox's init (PID 1, when it is not the command) keeps running: it
//     only reaps and forwards signals, so kill and stop still reach the
//     sandbox, and SIGKILL ends it at once;
//   - a sandbox attached to a terminal reports the command's stop to its
//     launcher, which then suspends as on Ctrl-Z;
//   - a process forking without end may outrun the scans (Pause gives up
//     after 5 s).
//
// (From inside, PID 1 of a PID namespace ignores SIGSTOP; sent from the
// caller's namespace above, it stops it like any process.)
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
	for {
		procs, err := members(t)
		if err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		var running []member
		for _, p := range procs {
			if !p.stopped {
				running = append(running, p)
			}
		}
		if len(running) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pause: %d processes of the sandbox would not stop within 5s (uninterruptible sleep, or forking without end)", len(running))
		}
		if err := signalAll(running, unix.SIGSTOP); err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		// Wait for those to stop (reading their own stat files only),
		// then scan again for processes forked meanwhile.
		for _, p := range running {
			for !stoppedOrGone(p) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
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

// stoppedOrGone reports whether p is stopped, or no longer that process.
func stoppedOrGone(p member) bool {
	st, err := procfs.ReadStat(p.pid)
	if err != nil || st.StartTime != p.start {
		return true
	}
	return halted(p.pid, st.State)
}

// halted reports whether the process pid, in state (/proc/PID/stat field
// 3), runs none of its own code and will not until continued: stopped
// (T, t), dead (Z, X: a stopped parent has not reaped it), or in an
// uninterruptible sleep (D, a slow write, say) with SIGSTOP pending, which
// stops it before it returns to user space.
func halted(pid int, state byte) bool {
	switch state {
	case 'T', 't', 'Z', 'X':
		return true
	case 'D':
		return stopPending(pid)
	}
	return false
}

// stopPending reports whether SIGSTOP is pending for the process pid
// (SigPnd or ShdPnd of /proc/PID/status, a hex mask: bit N-1 for signal
// N).
func stopPending(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, f := range []string{"SigPnd", "ShdPnd"} {
		v, _ := procfs.StatusField(b, f)
		if m, err := strconv.ParseUint(v, 16, 64); err == nil && m&(1<<(unix.SIGSTOP-1)) != 0 {
			return true
		}
	}
	return false
}

// Resume continues the processes of a sandbox that Pause stopped: thaws
// its cgroup, or sends SIGCONT to each of its processes.
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
	procs, err := members(t)
	if err == nil {
		err = signalAll(procs, unix.SIGCONT)
	}
	if err != nil {
		return fmt.Errorf("resume: %w", err)
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
	procs, err := members(t)
	if err != nil {
		return false, err
	}
	for _, p := range procs {
		if !p.stopped {
			return false, nil
		}
	}
	return len(procs) > 0, nil
}

// member is a process of the sandbox, as /proc/PID/stat shows it;
// stopped includes zombies.
type member struct {
	pid     int
	start   uint64
	stopped bool
}

// members lists the descendants of t's PID 1 (and PID 1 itself when it
// is the command). Every process of a PID namespace descends from its
// PID 1: orphans are reparented to it, or to a subreaper below it.
func members(t Target) ([]member, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	type proc struct {
		ppid    int
		start   uint64
		stopped bool
	}
	all := make(map[int]proc, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		st, err := procfs.ReadStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		all[pid] = proc{ppid: st.PPID, start: st.StartTime, stopped: halted(pid, st.State)}
	}
	if p1, ok := all[t.Pid]; !ok || p1.start != t.StartTime {
		return nil, ErrEnded
	}
	var out []member
	for pid, p := range all {
		in := pid == t.Pid && t.CommandIsPID1
		for q, hops := p.ppid, 0; !in && q > 1 && hops < 4096; hops++ {
			if q == t.Pid {
				in = true
				break
			}
			q = all[q].ppid
		}
		if in {
			out = append(out, member{pid: pid, start: p.start, stopped: p.stopped})
		}
	}
	return out, nil
}

// signalAll sends sig to procs through pidfds, each checked to be still
// the process listed (a pid reused meanwhile is left alone).
func signalAll(procs []member, sig unix.Signal) error {
	for _, p := range procs {
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			continue // gone
		}
		if st, err := pidStartTime(p.pid); err == nil && st == p.start {
			if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				unix.Close(fd)
				return fmt.Errorf("signal pid %d: %w", p.pid, err)
			}
		}
		unix.Close(fd)
	}
	return nil
}
