package procfs

import (
	"bufio"
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
	p := "/proc/" + strconv.Itoa(parent)
	// A plain descriptor: os.Open would try, and fail, to add a /proc
	// file to the runtime's poller (epoll refuses it) at every lookup.
	path := p + "/task/" + strconv.Itoa(parent) + "/children"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		err = &os.PathError{Op: "open", Path: path, Err: err}
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(p); serr == nil {
			return oldestChildByScan(parent)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("list the children of pid %d: %w", parent, err)
	}
	defer unix.Close(fd)
	// The list is streamed: a PID 1 with many orphans makes it long, but
	// only a pid at a time is held.
	words := bufio.NewScanner(fdReader(fd))
	words.Buffer(make([]byte, 512), 512)
	words.Split(bufio.ScanWords)
	for words.Scan() {
		child, err := strconv.Atoi(words.Text())
		if err != nil {
			continue
		}
		if st, err := ReadStat(child); err == nil && st.PPID == parent {
			return child, st.StartTime, nil
		}
		// Gone (or reparented) since the list was read: the next one.
	}
	if err := words.Err(); err != nil {
		return 0, 0, fmt.Errorf("list the children of pid %d: %w", parent, err)
	}
	return 0, 0, fmt.Errorf("pid %d has no child", parent)
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
