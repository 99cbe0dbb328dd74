// Package proctree walks the processes that descend from one (a
// sandbox's PID 1) through the kernel's lists of children, and tells
// which are halted: what nsbox pause needs where it has no cgroup to
// freeze.
//
// Reading the stat of every process on the host to find the few that
// descend from one costs a file read per host process, and pids are
// reused (pid_max may be 32768). Walk instead starts at the root, whose
// pid and start time the caller knows, reads its children from
// /proc/PID/task/TID/children (each thread has its list), and proves
// each child is one as it goes: the child's stat must name the parent's
// pid as its parent, and after its children's stats are read the
// parent's stat, read again, must show the parent's start time. A pid
// names one process while it lives, and a process that holds its pid
// now held it all along: so the parent's pid named the parent when each
// child's stat was read, and its list was its own. The same holds for a
// child's list, proven by the child's stat before and after. No
// descriptor is held per process, however wide the tree.
//
// Proc.Signal pins the process with a pidfd and then checks its start
// time again: a signal reaches that process or, if it ended meanwhile,
// nobody; never a stranger that took a pid of the tree.
//
// The tree may change under the walk: a process that ends has its
// children reparented to the root (or to a subreaper below it) that the
// walk may have read already. Walk reports such a change (a process
// ended during its turn, a listed child is gone or no longer the
// parent's), and a caller that needs every process walks again until a
// walk is complete.
package proctree

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nsbox/nsbox/internal/procfs"
	"golang.org/x/sys/unix"
)

// ErrRootGone is Walk's error when the root is no longer the process of
// the given pid and start time.
var ErrRootGone = errors.New("the root process has ended")

// Later, returned by a visit, asks Walk to list the process's children
// only after the processes listed so far: visit is then called again for
// it, with Proc.Again set. A caller that stops each process has each
// stop while it walks the others, and lists a process's children once it
// is stopped.
var Later = errors.New("visit this process again after the others")

// ErrNotHalted is WaitHalted's error when the process is still running at
// the deadline.
var ErrNotHalted = errors.New("the process did not stop in time")

// Proc is a process Walk found. It is valid during the visit call only.
type Proc struct {
	Pid   int
	Start uint64 // field 22 of /proc/PID/stat
	// Halted: every thread of it runs none of its own code and will not
	// until continued (see Halted).
	Halted bool
	// Again: the second visit, after the first returned Later.
	Again bool
}

// Signal sends sig to the process through a pidfd, opened and then
// checked to be the process of p's start time; one that ended since is
// no error.
func (p *Proc) Signal(sig unix.Signal) error {
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return nil // ended
	}
	defer unix.Close(fd)
	if st, err := procfs.ReadStat(p.Pid); err != nil || st.StartTime != p.Start {
		return nil // ended, and its pid maybe another's
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("signal pid %d: %w", p.Pid, err)
	}
	return nil
}

// entry is a process listed and proven a descendant, waiting for its
// turn: its stat when listed.
type entry struct {
	pid   int
	st    procfs.Stat
	again bool // visited once, and the visit said Later
}

// Walk calls visit for every descendant of the process root (with start
// time start) and, with withRoot, for root itself, parents before their
// children. It returns complete = false when the tree changed under it
// in a way that may have hidden a process (see the package comment),
// ErrRootGone if root is not that process, and visit's first error,
// which ends the walk. A walk that is still going at deadline fails (a
// sandbox forking without end makes the tree grow as it is walked).
//
// What Walk holds is one small entry per process listed but not yet
// walked.
func Walk(root int, start uint64, withRoot bool, deadline time.Time, visit func(*Proc) error) (complete bool, err error) {
	st, err := procfs.ReadStat(root)
	if err != nil || st.StartTime != start {
		return false, ErrRootGone
	}
	w := walk{complete: true, visit: visit}
	w.stack = append(w.stack, entry{pid: root, st: st})
	for n := 0; len(w.stack) > 0 || len(w.later) > 0; n++ {
		if n%64 == 63 && time.Now().After(deadline) {
			return false, fmt.Errorf("the process tree of pid %d kept growing as it was walked", root)
		}
		if len(w.stack) == 0 {
			w.stack, w.later = w.later, w.stack
		}
		e := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		alive, err := w.expand(e, withRoot || e.pid != root)
		if err == Later && !e.again {
			e.again = true
			w.later = append(w.later, e)
			continue
		}
		if err != nil && err != Later {
			return false, err
		}
		if e.pid == root && !alive {
			return false, ErrRootGone
		}
	}
	return w.complete, nil
}

// walk is the state of one Walk.
type walk struct {
	stack    []entry
	later    []entry // visited, to be visited again after the stack
	complete bool
	visit    func(*Proc) error
	scan     map[int][]int // parent → children, from a scan of /proc, without children files
}

// expand visits e (if visit is set) and lists its children onto the
// stack; alive reports e was still that process after.
func (w *walk) expand(e entry, visit bool) (alive bool, err error) {
	if e.again {
		// Its state now: read again, it is still e if the start time
		// is.
		st, err := procfs.ReadStat(e.pid)
		if err != nil || st.StartTime != e.st.StartTime {
			w.complete = false
			return false, nil
		}
		e.st = st
	}
	tids := []int{e.pid}
	if e.st.Threads > 1 {
		// Each thread has its own children.
		var err error
		if tids, err = threads(e.pid); err != nil {
			w.complete = false
		}
	}
	if visit {
		p := Proc{Pid: e.pid, Start: e.st.StartTime, Halted: processHalted(e.pid, e.st, tids), Again: e.again}
		if err := w.visit(&p); err != nil && !(err == Later && e.again) {
			return true, err
		}
	}
	var kids []entry
	var listErr error
	for _, tid := range tids {
		err := w.eachChild(e.pid, tid, func(child int) bool {
			// Its stat names e's pid as its parent: e's child, if e's
			// pid is still e's after (below).
			st, err := procfs.ReadStat(child)
			if err != nil || st.PPID != e.pid || st.StartTime < e.st.StartTime {
				w.complete = false // gone, or reparented since the list
				return true
			}
			kids = append(kids, entry{pid: child, st: st})
			return true
		})
		switch {
		case err != nil && tid != e.pid:
			w.complete = false // the thread may have ended
		case err != nil:
			listErr = err
		}
	}
	// The proof: e's pid is still e's, so it was when its list and each
	// child's stat were read. (A list that failed for a process that
	// ended is that end.) A leaf's empty list proves nothing and needs
	// nothing.
	if len(kids) > 0 || listErr != nil {
		if st, err := procfs.ReadStat(e.pid); err != nil || st.StartTime != e.st.StartTime {
			w.complete = false
			return false, nil
		}
	}
	if listErr != nil {
		return true, listErr
	}
	w.stack = append(w.stack, kids...)
	return true, nil
}

// eachChild is procfs.EachChild, or, on a kernel without the children
// files, the same from one scan of every process's stat.
func (w *walk) eachChild(pid, tid int, each func(int) bool) error {
	if w.scan == nil {
		err := procfs.EachChild(pid, tid, each)
		if !errors.Is(err, procfs.ErrNoChildrenFile) {
			return err
		}
		if w.scan, err = scanParents(); err != nil {
			return err
		}
	}
	if tid != pid {
		return nil // the scan gives a process's children, once
	}
	for _, c := range w.scan[pid] {
		if !each(c) {
			break
		}
	}
	return nil
}

// scanParents maps each process's parent to it, from every stat of /proc.
func scanParents() (map[int][]int, error) {
	names, err := readNames("/proc")
	if err != nil {
		return nil, err
	}
	kids := make(map[int][]int)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		if st, err := procfs.ReadStat(pid); err == nil {
			kids[st.PPID] = append(kids[st.PPID], pid)
		}
	}
	return kids, nil
}

// threads lists the thread ids of pid.
func threads(pid int) ([]int, error) {
	names, err := readNames("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return []int{pid}, err
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

func readTaskStat(pid, tid int) (procfs.Stat, error) {
	b, err := procfs.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return procfs.Stat{}, err
	}
	return procfs.ParseStat(b)
}

// processHalted reports whether every thread of the process pid (tids,
// or listed here if nil) is halted; st is its stat, which shows the main
// thread's state.
func processHalted(pid int, st procfs.Stat, tids []int) bool {
	if !Halted(pid, pid, st.State) {
		return false
	}
	if st.Threads <= 1 {
		return true
	}
	if tids == nil {
		tids, _ = threads(pid)
	}
	for _, tid := range tids {
		if tid == pid {
			continue
		}
		// A thread whose stat is gone has ended.
		if ts, err := readTaskStat(pid, tid); err == nil && !Halted(pid, tid, ts.State) {
			return false
		}
	}
	return true
}

// WaitHalted waits until the process pid of start time start is halted
// (every thread of it), or is gone, polling its stat; ErrNotHalted at
// deadline.
func WaitHalted(pid int, start uint64, deadline time.Time) error {
	for i := 0; ; i++ {
		st, err := procfs.ReadStat(pid)
		if err != nil || st.StartTime != start || processHalted(pid, st, nil) {
			return nil
		}
		if time.Now().After(deadline) {
			return ErrNotHalted
		}
		// 10 µs first (a process woken to stop is stopped by then, often),
		// up to 200 µs.
		time.Sleep(time.Duration(min(i+1, 20)) * 10 * time.Microsecond)
	}
}

// Halted reports whether the thread tid of the process pid, in state
// (field 3 of its stat), runs none of its own code and will not until
// continued: stopped (T, t), dead (Z, X: a stopped parent has not reaped
// it), or in an uninterruptible sleep (D, a slow write, say) with SIGSTOP
// pending, which stops it before it returns to user space.
func Halted(pid, tid int, state byte) bool {
	switch state {
	case 'T', 't', 'Z', 'X':
		return true
	case 'D':
		return StopPending(pid, tid)
	}
	return false
}

// StopPending reports whether SIGSTOP is pending for the thread tid of
// the process pid (SigPnd of its status) or for the process (ShdPnd), a
// hex mask: bit N-1 for signal N.
func StopPending(pid, tid int) bool {
	b, err := procfs.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/status")
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
