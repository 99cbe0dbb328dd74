// Package procfs reads and writes the small files of /proc that nsbox
// uses, parses the ones it reads about a process (/proc/PID/stat and
// /proc/PID/status), and names the entries of /proc/PID/ns. Every caller
// in nsbox parses them here, so that one parser decides what a hostile
// process name or a missing field does: a process of a sandbox controls
// its own comm (prctl PR_SET_NAME), which may hold spaces, parentheses and
// newlines.
//
// ReadFile and WriteFile use plain system calls, not package os: an
// *os.File of /proc is offered to the runtime's poller, which costs four
// fcntl calls and a refused epoll_ctl per file (the files of /proc cannot
// be polled), on the start path of every sandbox.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxRead bounds what ReadFile reads: /proc/PID/stat, status and the id
// maps are far smaller, and it bounds what a hostile process can make a
// reader allocate.
const MaxRead = 64 << 10

// ReadFile reads the file of /proc at path, up to MaxRead bytes. Errors
// are *os.PathError.
func ReadFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return ReadUpTo(fd, path, MaxRead)
}

// ReadUpTo reads the file open at fd (named path in errors) with plain
// read(2)s until its end or max bytes, whichever comes first; the caller
// keeps fd. Errors are *os.PathError. For any file a caller opened
// outside package os, in /proc or not.
func ReadUpTo(fd int, path string, max int) ([]byte, error) {
	buf := make([]byte, 0, min(4096, max))
	for len(buf) < max {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):min(cap(buf), max)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// WriteFile writes all of b to the existing file of /proc at path with
// one write(2), as the id maps and setgroups require (a second write at a
// later offset fails). Errors are *os.PathError; a short write is one
// too.
func WriteFile(path string, b []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	n, err := unix.Write(fd, b)
	for err == unix.EINTR {
		n, err = unix.Write(fd, b)
	}
	cerr := unix.Close(fd)
	switch {
	case err != nil:
		return &os.PathError{Op: "write", Path: path, Err: err}
	case n != len(b):
		return &os.PathError{Op: "write", Path: path, Err: fmt.Errorf("short write: %d of %d bytes", n, len(b))}
	case cerr != nil:
		return &os.PathError{Op: "close", Path: path, Err: cerr}
	}
	return nil
}

// Stat is what nsbox reads of /proc/PID/stat (proc_pid_stat(5)).
type Stat struct {
	State     byte   // field 3: R, S, D, Z, …
	PPID      int    // field 4: the parent's pid
	Flags     uint64 // field 9: the kernel's PF_* flags (sched.h)
	Threads   int    // field 20: the number of threads of its process
	StartTime uint64 // field 22: clock ticks since boot
}

// ParseStat reads b, the text of a /proc/PID/stat. The command name
// (field 2, in parentheses) may hold anything, so the fields are counted
// from its last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, errors.New("parse /proc/PID/stat: no command name")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state): field 4 is fields[1], 9 fields[6],
	// 20 fields[17], 22 fields[19].
	if len(fields) < 20 {
		return Stat{}, errors.New("parse /proc/PID/stat: too few fields")
	}
	st := Stat{State: fields[0][0]}
	var err error
	if st.PPID, err = strconv.Atoi(fields[1]); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat: parent pid: %w", err)
	}
	if st.Flags, err = strconv.ParseUint(fields[6], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat: flags: %w", err)
	}
	if st.Threads, err = strconv.Atoi(fields[17]); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat: threads: %w", err)
	}
	if st.StartTime, err = strconv.ParseUint(fields[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat: start time: %w", err)
	}
	return st, nil
}

// ReadStat reads and parses /proc/PID/stat.
//
// The file is one line the kernel formats whole at the first read(2) and
// hands out as far as the buffer holds: a read that returns less than
// the buffer returned all of it, and the read that would return its end
// (0) is spared. It is read on a stack buffer, a page: the line is
// shorter (52 numbers and a name of 64 bytes at most), and a longer one
// is read on as ReadFile does.
func ReadStat(pid int) (Stat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stat{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n, err := unix.Read(fd, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, buf[:])
	}
	if err != nil {
		return Stat{}, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if n < len(buf) {
		return ParseStat(buf[:n])
	}
	rest, err := ReadUpTo(fd, path, MaxRead-n)
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(append(buf[:n:n], rest...))
}

// StatusField returns the value of the line "Name:\tvalue" of a
// /proc/PID/status text, trimmed, and whether the line is there. The
// fields the kernel writes before Name (the command's name) are the
// kernel's own, but Name's value may hold anything but a newline, so a
// field is matched only at the start of a line and only by its whole name.
func StatusField(status []byte, name string) (string, bool) {
	for line := range strings.Lines(string(status)) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// NamespaceNames returns the names of the entries of /proc/PID/ns for the
// namespaces a sandbox may have of its own besides the user namespace, in
// the order the kernel lists them; a new slice each call.
func NamespaceNames() []string { return []string{"cgroup", "ipc", "mnt", "net", "pid", "uts"} }
