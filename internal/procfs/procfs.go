// Package procfs parses the files of /proc that nsbox reads about a
// process: /proc/PID/stat and /proc/PID/status, and names the entries of
// /proc/PID/ns. Every caller in nsbox parses them here, so that one parser
// decides what a hostile process name or a missing field does: a process
// of a sandbox controls its own comm (prctl PR_SET_NAME), which may hold
// spaces, parentheses and newlines.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is what nsbox reads of /proc/PID/stat (proc_pid_stat(5)).
type Stat struct {
	State     byte   // field 3: R, S, D, Z, …
	PPID      int    // field 4: the parent's pid
	Flags     uint64 // field 9: the kernel's PF_* flags (sched.h)
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
	// 22 fields[19].
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
	if st.StartTime, err = strconv.ParseUint(fields[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat: start time: %w", err)
	}
	return st, nil
}

// ReadStat reads and parses /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
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
