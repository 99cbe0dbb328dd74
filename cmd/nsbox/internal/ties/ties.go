// Package ties is what nsbox run and the bwrap entry share for what ties
// a sandbox to the nsbox process and its caller: signals caught early and
// forwarded to the command, the caller's death (--die-with-parent), locks
// held for the sandbox's life (--lock-file) and the caller's descriptors
// (--bind-fd, --ro-bind-fd). One implementation, worded by each entry in
// its own way.
package ties

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/sandbox"
	"golang.org/x/sys/unix"
)

// ErrCallerGone is DieWithCaller's answer when the caller had already
// exited: nothing is left to die with, so nothing should start.
var ErrCallerGone = errors.New("the calling process has already exited")

// DieWithCaller makes the launcher get SIGKILL when its parent (the
// caller) dies; the sandbox already dies with the launcher (the stage and
// PID 1 have PR_SET_PDEATHSIG on it). Any thread may set it: the kernel
// checks every thread of a child when its parent exits. It returns
// ErrCallerGone if the caller died before the setting took effect.
func DieWithCaller() error {
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if os.Getppid() != ppid {
		return ErrCallerGone
	}
	return nil
}

// LockError is LockFile's failure: Op is "open" or "lock".
type LockError struct {
	Op  string
	Err error
}

func (e *LockError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *LockError) Unwrap() error { return e.Err }

// LockFile takes a shared lock (fcntl F_RDLCK, as bubblewrap) on host
// file p, held until this process exits, and returns the descriptor it
// holds it by, which never reaches the sandbox (O_CLOEXEC). A lock taken
// on the same file from outside (flock(1) -x, lockf) conflicts with it.
// Errors are a *LockError.
//
// A record lock belongs to the process and goes the moment the process
// closes any descriptor of the file, this one included, and an execve
// closes it as close-on-exec: a launcher that replaces itself (the
// hand-off to the small supervisor) must keep the descriptor open across
// the exec for the lock to survive it.
func LockFile(p string) (fd int, err error) {
	fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &LockError{"open", err}
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err != nil {
		unix.Close(fd)
		return -1, &LockError{"lock", err}
	}
	return fd, nil
}

// FDPath returns the path of the file fd is open on, checked to be that
// very file (same device and inode). The stage binds by path: it cannot
// reach the launcher's descriptors (PID 1 is not the launcher's child in
// a user namespace that may read its /proc/PID/fd).
func FDPath(fd int) (string, error) {
	if err := Inherited(fd); err != nil {
		return "", err
	}
	var fst, pst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return "", err
	}
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("it is open on %s, not a file or directory", p)
	}
	if err := unix.Stat(p, &pst); err != nil || pst.Dev != fst.Dev || pst.Ino != fst.Ino {
		return "", fmt.Errorf("it is open on %s, which no longer names the same file (deleted or moved?)", p)
	}
	return p, nil
}

// ErrOwnFD is Inherited's answer for a descriptor this process opened
// itself.
var ErrOwnFD = errors.New("it is a descriptor nsbox opened itself, not one it was given")

// Inherited checks that fd, a number from the command line, is a
// descriptor this process was given: open, and without FD_CLOEXEC. Every
// descriptor nsbox opens has FD_CLOEXEC (Go's runtime and os package set
// it, and the C stage opens with O_CLOEXEC/SOCK_CLOEXEC), and none that
// crossed the exec into nsbox can have it; so a flag such as --info-fd 7
// cannot name the Go runtime's epoll descriptor, a lock nsbox holds or
// the stage's socket. It returns the fcntl error (EBADF) for a
// descriptor that is not open, ErrOwnFD for one of nsbox's own.
func Inherited(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		return err
	}
	if flags&unix.FD_CLOEXEC != 0 {
		return ErrOwnFD
	}
	return nil
}

// Under returns p relative to dir when p is dir or beneath it.
func Under(dir, p string) (string, bool) {
	if dir == p {
		return "", true
	}
	if dir == "/" {
		return strings.TrimPrefix(p, "/"), true
	}
	if rel, ok := strings.CutPrefix(p, dir+"/"); ok {
		return rel, true
	}
	return "", false
}

// HostPathOf finds the host file that sandbox path p is, through the bind
// ops (for --lock-file): "" when p is not on a bind.
func HostPathOf(mounts []sandbox.Mount, p string) string {
	p = path.Clean(p)
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		rel, ok := Under(path.Clean(m.Destination), p)
		if !ok {
			continue
		}
		switch m.Type {
		case sandbox.MountBind:
			return filepath.Join(m.Source, rel)
		case sandbox.MountChmod, sandbox.MountRemountRO, sandbox.MountDir:
			continue
		}
		return ""
	}
	return ""
}
