package sandbox

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// terminal is the controlling terminal the command is given, if the launcher
// is in its foreground. The command then runs in a process group of its own
// that holds the terminal's foreground, so Ctrl-C and Ctrl-Z reach it alone;
// the launcher gets the terminal back when the command stops or ends.
type terminal struct {
	fd     int // the stdio slot (0-2) that is the terminal, or -1
	hostFD int // the same file in the launcher
	pgrp   int // the launcher's process group
}

// foregroundTerminal returns the first of the stdio files that is a terminal
// whose foreground process group is ours.
func foregroundTerminal(files []*os.File) terminal {
	pgrp := unix.Getpgrp()
	for i, f := range files[:3] {
		fd := int(f.Fd())
		if fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil && fg == pgrp {
			return terminal{fd: i, hostFD: fd, pgrp: pgrp}
		}
	}
	return terminal{fd: -1}
}

// restore gives the terminal's foreground back to the launcher's group.
func (t terminal) restore() {
	if t.fd < 0 {
		return
	}
	// We are in the background now: tcsetpgrp would stop us with SIGTTOU
	// unless that is blocked, and blocking is per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	set.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old)
	unix.IoctlSetPointerInt(t.hostFD, unix.TIOCSPGRP, t.pgrp)
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}

// suspend mirrors a stopped command to the shell: take the terminal back and
// stop the launcher's whole process group, as the command's Ctrl-Z would
// have stopped a plain child. It returns when the shell continues us, and
// reports whether the shell gave us the terminal (fg) or not (bg).
func (t terminal) suspend() (foreground bool) {
	if t.fd < 0 {
		return false
	}
	t.restore()
	stopProcessGroup()
	fg, err := unix.IoctlGetInt(t.hostFD, unix.TIOCGPGRP)
	return err == nil && fg == t.pgrp
}
