package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// commandFirst says whether PID 1 forks the command's process before
// the caller's go-ahead (bwrapext.Settings.CommandCreated).
func (s *Spec) commandFirst() bool {
	return s.ext.CommandCreated != nil && s.BeforeExec != nil && !s.CommandIsPID1
}

// commandCreated waits for COMMAND_READY, finds the command's process
// and calls its CommandCreated with its host pid and namespaces.
func commandCreated(sock *os.File, pid1 int, spec *Spec) error {
	if _, err := expect(sock, stage.MsgCommandReady); err != nil {
		return err
	}
	pid, err := onlyChildOf(pid1)
	if err != nil {
		return err
	}
	var ids bytes.Buffer
	for _, name := range append([]string{"user"}, procfs.NamespaceNames()...) {
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, name), &st); err == nil {
			fmt.Fprintf(&ids, "%s=%d\n", name, st.Ino)
		}
	}
	return spec.ext.CommandCreated(pid, parseNamespaceIDs(ids.Bytes(), spec.Namespaces))
}

// onlyChildOf returns the host pid of PID 1's child: the command's
// process, its only one while it waits for the go-ahead (nothing of the
// sandbox has run yet that could have left orphans). Every process's
// stat is read (world-readable), which also proves there is no second
// child; procfs.OldestChild would name the first one faster, from the
// kernel's list of PID 1's children, but not that it is the only one.
func onlyChildOf(pid1 int) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find the command's process: %w", err)
	}
	found := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := procfs.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := procfs.ParseStat(b); err == nil && st.PPID == pid1 {
			if found != 0 {
				return 0, fmt.Errorf("find the command's process: PID 1 (pid %d) has more than one child", pid1)
			}
			found = pid
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("find the command's process: PID 1 (pid %d) has no child", pid1)
	}
	return found, nil
}
