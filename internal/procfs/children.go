package procfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// OldestChild returns the pid and start time (field 22 of /proc/PID/stat)
// of the oldest living child of the process parent: for a sandbox's PID 1,
// its command (the others are orphans of the command's descendants,
// reparented to PID 1 later).
//
// The kernel lists a task's children in /proc/PID/task/TID/children, in
// the order they became its children: forked ones as they were forked,
// orphans appended as they were reparented (copy_process and
// forget_original_parent add at the tail). So the first one listed that
// is still parent's child is the oldest, and it is found with one read of
// that file and one stat, not a scan of every process on the host. The
// file needs no access to parent beyond seeing it (it is world-readable
// even for a process that is not dumpable, as nsbox's PID 1 is). It lists
// the children of the thread parent, which is the whole process for a
// single-threaded one, as nsbox's PID 1 is. A kernel built without
// CONFIG_PROC_CHILDREN has no such file: then every process's stat is
// read, and the oldest child is the one with the earliest start time (the
// lowest pid among equals).
//
// The pid is only a number: a caller that acts on the process pins it
// (pidfd) and checks again afterwards that it is still parent's child.
func OldestChild(parent int) (pid int, start uint64, err error) {
	err = EachChild(parent, parent, func(child int) bool {
		if st, err := ReadStat(child); err == nil && st.PPID == parent {
			pid, start = child, st.StartTime
			return false
		}
		return true // gone (or reparented) since the list was read: the next one
	})
	if errors.Is(err, ErrNoChildrenFile) {
		return oldestChildByScan(parent)
	}
	if err != nil {
		return 0, 0, err
	}
	if pid == 0 {
		return 0, 0, fmt.Errorf("pid %d has no child", parent)
	}
	return pid, start, nil
}

// ErrNoChildrenFile is EachChild's error on a kernel built without
// CONFIG_PROC_CHILDREN, for a process that exists.
var ErrNoChildrenFile = errors.New("the kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)")

// EachChild calls each with the pid of every child of the thread tid of
// the process pid, as /proc/PID/task/TID/children lists them (the order
// they became its children), until each returns false. The list is
// streamed, a page at a time: a process with many children (a PID 1 with
// many orphans) makes it long, but only a page and a pid are held. The
// kernel builds each page from its live list, so a child that ends
// while the list is read may make the next page skip one: a caller that
// needs the whole list reads it again once the tree holds still. The
// pids are only numbers: a caller that acts on one pins it (pidfd) and
// then checks it is still pid's child.
func EachChild(pid, tid int, each func(child int) bool) error {
	path := "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/children"
	// A plain descriptor: os.Open would try, and fail, to add a /proc
	// file to the runtime's poller (epoll refuses it) at every lookup.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		if _, serr := os.Stat("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid)); serr == nil {
			return ErrNoChildrenFile
		}
	}
	if err != nil {
		return fmt.Errorf("list the children of pid %d: %w", pid, &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	var buf [4096]byte
	child, digits := 0, 0
	for {
		n, err := fdReader(fd).Read(buf[:])
		if err != nil && err != io.EOF {
			return fmt.Errorf("list the children of pid %d: %w", pid, err)
		}
		// Pids end with a space; one of more than 10 digits is not a
		// pid, and is skipped. The end of the file ends the last one.
		if err == io.EOF {
			n = copy(buf[:], " ")
		}
		for _, c := range buf[:n] {
			if c >= '0' && c <= '9' {
				if digits++; digits <= 10 {
					child = child*10 + int(c-'0')
				}
				continue
			}
			if digits > 0 && digits <= 10 && child > 0 && !each(child) {
				return nil
			}
			child, digits = 0, 0
		}
		// The kernel fills a read until the buffer, or its own page,
		// would overflow: one that left more room than a pid takes
		// ("%d ", 11 bytes at most) reached the end of the list, and
		// the read that would say so (0) is spared.
		if err == io.EOF || n < len(buf)-16 {
			return nil
		}
	}
}

// oldestChildByScan is OldestChild without the children file: the stat of
// every process.
func oldestChildByScan(parent int) (int, uint64, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return 0, 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, 0, err
	}
	best, bestStart := 0, uint64(0)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		st, err := ReadStat(pid)
		if err != nil || st.PPID != parent {
			continue
		}
		if best == 0 || st.StartTime < bestStart || (st.StartTime == bestStart && pid < best) {
			best, bestStart = pid, st.StartTime
		}
	}
	if best == 0 {
		return 0, 0, fmt.Errorf("pid %d has no child", parent)
	}
	return best, bestStart, nil
}

// fdReader reads a descriptor with plain read(2) calls.
type fdReader int

func (r fdReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
