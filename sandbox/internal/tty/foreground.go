package tty

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Foreground is the caller's terminal that the command is given as its
// controlling terminal, when the launcher is in that terminal's
// foreground. The command then runs in a process group of its own that
// holds the terminal's foreground, so Ctrl-C and Ctrl-Z reach it alone;
// the launcher gets the terminal back when the command stops or ends.
//
// The zero value is no terminal: the command gets no controlling terminal,
// and the methods do nothing.
type Foreground struct {
	ok     bool
	slot   int // the stdio slot (0-2) that is the terminal
	hostFD int // the same file in the launcher; not owned
	pgrp   int // the launcher's process group
}

// ForegroundOf returns the first of files[0:3] (the command's stdin,
// stdout and stderr) that is a terminal whose foreground process group is
// the launcher's, or the zero Foreground if there is none. It does not
// take ownership of the files; they must stay open while the Foreground
// is used.
func ForegroundOf(files []*os.File) Foreground {
	pgrp := unix.Getpgrp()
	for i, f := range files[:3] {
		fd := int(f.Fd())
		if fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil && fg == pgrp {
			return Foreground{ok: true, slot: i, hostFD: fd, pgrp: pgrp}
		}
	}
	return Foreground{}
}

// Slot returns the stdio slot (0 stdin, 1 stdout, 2 stderr) that is the
// terminal, or -1 without one.
func (t Foreground) Slot() int {
	if !t.ok {
		return -1
	}
	return t.slot
}

// Host returns the terminal's descriptor in the launcher and the
// launcher's process group, for a supervisor that takes over (HandOff);
// -1 and 0 without a terminal.
func (t Foreground) Host() (fd, pgrp int) {
	if !t.ok {
		return -1, 0
	}
	return t.hostFD, t.pgrp
}

// Restore gives the terminal's foreground back to the launcher's process
// group.
func (t Foreground) Restore() {
	if !t.ok {
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

// Suspend mirrors a stopped command to the shell: it takes the terminal
// back and stops the launcher (stopLauncher), as the command's Ctrl-Z
// would have stopped a plain child. It returns when the shell
// continues the launcher, and reports whether the shell gave it the
// terminal (fg) or not (bg). Without a terminal it returns false at once.
func (t Foreground) Suspend() (foreground bool) {
	if !t.ok {
		return false
	}
	t.Restore()
	stopLauncher()
	fg, err := unix.IoctlGetInt(t.hostFD, unix.TIOCGPGRP)
	return err == nil && fg == t.pgrp
}

// stopLauncher stops the launcher, as the terminal's Ctrl-Z would have
// stopped a plain child, and returns once it has been continued. It stops
// the launcher's whole process group only when the launcher leads it: the
// group is then the launcher's job (a shell's pipeline that starts with
// nsbox). A group the launcher merely belongs to is its caller's (a
// script and its other jobs, a shell without job control): stopping it
// would freeze them, and nobody would continue them.
//
// Returning from kill(2) says nothing: in a multi-threaded process the
// kernel hands the signal to some thread, and the caller can run on (and
// put the terminal back in raw mode) before the stop reaches it. The
// SIGCONT that ends the stop is the only sure sign.
func stopLauncher() {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	target := unix.Getpid()
	if unix.Getpgrp() == target {
		target = 0 // our own group
	}
	if unix.Kill(target, unix.SIGSTOP) == nil {
		<-cont
	}
}
