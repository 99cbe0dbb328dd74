package state

// files.go: reading records (and /proc/PID/stat, through procfs.ReadFile),
// writing records; plain system calls, as cheap as the launch path needs.

import (
	"errors"
	"fmt"
	"os"

	"github.com/nsbox/nsbox/internal/procfs"
	"golang.org/x/sys/unix"
)

// StartTime returns when process pid started, in clock ticks since boot
// (field 22 of /proc/PID/stat): with the pid, it names one process for
// good, since a reused pid comes with a later start time.
func StartTime(pid int) (uint64, error) {
	_, start, err := statOf(pid)
	return start, err
}

// statOf returns the parent pid and the start time of process pid.
func statOf(pid int) (ppid int, start uint64, err error) {
	b, err := procfs.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

// statFlags returns the kernel flags of process pid (field 9 of
// /proc/PID/stat, PF_* in the kernel's sched.h).
func statFlags(pid int) (uint64, error) {
	b, err := procfs.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	st, err := procfs.ParseStat(b)
	return st.Flags, err
}

// maxRecord bounds a state record: the spec with its environment, far
// beyond what execve accepts (which the spec must pass).
const maxRecord = 64 << 20

// readAll reads the file open at fd (named path in errors) to its end.
func readAll(fd int, path string) ([]byte, error) {
	b, err := procfs.ReadUpTo(fd, path, maxRecord+1)
	if err == nil && len(b) > maxRecord {
		return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("larger than 64 MiB")}
	}
	return b, err
}

// writeFile creates path (mode 0600, replacing it) and writes b.
func writeFile(path string, b []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := writeAll(fd, b); err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return unix.Close(fd)
}

// writeAll writes b to fd.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// parseStat reads fields 4 (the parent's pid) and 22 (the start time) of
// a /proc/PID/stat line, with procfs.ParseStat.
func parseStat(b []byte) (ppid int, start uint64, err error) {
	st, err := procfs.ParseStat(b)
	return st.PPID, st.StartTime, err
}
