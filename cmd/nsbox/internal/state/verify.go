package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nsbox/nsbox/internal/procfs"
	"golang.org/x/sys/unix"
)

// A state.json is a file: whoever can write the state directory can change
// it, and a sandbox that could reach it (--share mnt, an explicit bind of
// the directory, an escape) could point nsbox exec at the host's
// namespaces or drop the seccomp filter of whatever it joins. So nothing
// that acts on a sandbox takes the file's word. verify checks an entry
// against what only the kernel and the sandbox's launcher know:
//
//  1. PID 1 is pinned by a pidfd, then its start time (field 22 of
//     /proc/PID/stat) must be the record's: the pid names the process
//     the launcher recorded, not a reused number.
//  2. Each namespace the record lists must be PID 1's (the inode of
//     /proc/PID/ns/NAME); each one it does not list must be the caller's
//     own (the sandbox shares it); the user namespace must be PID 1's and
//     not the caller's. The spec's namespace flags must say the same.
//  3. PID 1's parent (field 4 of /proc/PID/stat) must be the record's
//     launcher (the stage clones PID 1 with CLONE_PARENT), and the
//     launcher must live in the caller's user namespace: every sandbox
//     has a user namespace of its own, so no process of a sandbox passes.
//  4. The launcher keeps a copy of the record in a sealed memfd
//     (F_SEAL_WRITE, _GROW, _SHRINK, _SEAL: nobody can change it,
//     the launcher included) at the descriptor the record names; it is
//     read through /proc/LAUNCHER/fd/N and must be byte for byte the
//     state.json read.
//  5. A signal 0 through the pidfd at the end proves PID 1 lived through
//     the checks, so the pid read in 1 still names it.
//
// A sandbox cannot write into a sealed memfd nor add descriptors to its
// launcher, so a record that passes is the one its launcher wrote, about
// the process it started.

// ErrRecordChanged is returned (wrapped) for an entry that does not match
// the kernel or its launcher's sealed copy: something changed state.json
// after nsbox wrote it.
var ErrRecordChanged = errors.New("state record does not match the running sandbox")

// ErrCommandMoved is Live.Joinable's error (wrapped): the record is the
// one its launcher wrote, but the sandbox's command has since left some of
// the namespaces it names (it unshared or joined namespaces of its own,
// which root inside, or any command in a user namespace of its own, may
// do). Such a sandbox is listed, signalled, paused and stopped as any
// other; what joins the command's namespaces (exec, mount, umount, cp,
// connect) refuses it.
var ErrCommandMoved = errors.New("its command left the namespaces nsbox started it in")

// errCallersUserNS marks checkNamespaces' finding that PID 1 is in the
// caller's own user namespace: no command of a sandbox can get there (a
// user namespace is left only for a child of it), so that is never the
// command's own doing. Its text is empty: it adds nothing to the message.
var errCallersUserNS = errors.New("")

// joinable are the namespaces nsbox exec may enter besides the user
// namespace, with the file under /proc/PID/ns that names each.
var joinable = []string{"mnt", "pid", "net", "ipc", "uts", "cgroup"}

// errRewritten is verify's answer for a record its launcher replaced
// while it was being checked: state.json (at the path verify was given)
// no longer holds raw. The caller checks the new one instead.
var errRewritten = errors.New("the record was rewritten while it was checked")

// verify checks e, decoded from raw (the whole state.json), as the
// comment above says, and returns a pidfd of PID 1 that the caller owns.
//
// The third result, when not nil, says the record is its launcher's but
// the command is no longer in the namespaces it names (ErrCommandMoved):
// the sandbox can be listed, signalled and paused, not joined.
//
// A launcher rewrites its record while the sandbox runs (nsbox port add
// and rm: a new state.json, then a new sealed copy at another
// descriptor, the old one closed), so a record read just before a
// rewrite names a copy that is gone or no longer matches. When the
// sealed copy is not raw's and the file at statePath (if not empty) now
// holds other bytes than raw, verify returns errRewritten rather than
// ErrRecordChanged; nothing is accepted for it.
func verify(e *Entry, raw []byte, statePath string) (pidfd int, moved error, err error) {
	pidfd, err = unix.PidfdOpen(e.Pid, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("sandbox %q: %w (PID 1, pid %d: %v)", e.Name, ErrNotFound, e.Pid, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(pidfd)
		}
	}()
	ppid, start, serr := statOf(e.Pid)
	if serr != nil || start != e.PidStartTime {
		return -1, nil, fmt.Errorf("sandbox %q: %w (PID 1, pid %d, has exited)", e.Name, ErrNotFound, e.Pid)
	}
	changed := func(format string, args ...any) error {
		if ending(e.Pid, pidfd) {
			return fmt.Errorf("sandbox %q: %w (it ended while being looked up)", e.Name, ErrNotFound)
		}
		return fmt.Errorf("sandbox %s: %w: %s; fix: end the sandbox through its launcher (the parent of pid %d), and see \"State records\" in docs/security.md for what could write the record",
			e.Name, ErrRecordChanged, fmt.Sprintf(format, args...), e.Pid)
	}
	// A namespace that is not the record's is tampering only if the record
	// is not the launcher's (step 4 below tells): in a record its launcher
	// wrote, it is the command's own doing (it unshared or entered
	// namespaces of its own).
	moved = checkNamespaces(e)
	if errors.Is(moved, errCallersUserNS) {
		return -1, nil, changed("%v", moved)
	}
	if moved != nil {
		// Whatever else fails below, the namespaces' mismatch is the
		// first thing to report.
		first := changed
		changed = func(string, ...any) error { return first("%v", moved) }
	}
	if ppid != e.LauncherPid {
		return -1, nil, changed("PID 1 (pid %d) is a child of pid %d, the record names launcher pid %d", e.Pid, ppid, e.LauncherPid)
	}
	mine, err1 := nsInode("self", "user")
	theirs, err2 := nsInode(fmt.Sprint(e.LauncherPid), "user")
	if err := errors.Join(err1, err2); err != nil {
		return -1, nil, changed("the launcher (pid %d): %v", e.LauncherPid, err)
	}
	if mine != theirs {
		return -1, nil, changed("the launcher (pid %d) runs in another user namespace (%d) than this command (%d)", e.LauncherPid, theirs, mine)
	}
	sealed, err := readSealedCopy(e.LauncherPid, e.RecordFD)
	// A launcher handing its sandbox to the C supervisor
	// (sandbox/handoff.go) is inside execve(2) for a moment, when the
	// kernel refuses its /proc/PID/fd: ask again briefly.
	for try := 0; try < 50 && errors.Is(err, os.ErrPermission); try++ {
		time.Sleep(4 * time.Millisecond)
		sealed, err = readSealedCopy(e.LauncherPid, e.RecordFD)
	}
	if (err != nil || !bytes.Equal(sealed, raw)) && rewritten(statePath, raw) {
		return -1, nil, errRewritten
	}
	if err != nil {
		return -1, nil, changed("the launcher's copy of the record: %v", err)
	}
	if !bytes.Equal(sealed, raw) {
		return -1, nil, changed("state.json differs from the copy its launcher (pid %d) holds", e.LauncherPid)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return -1, nil, fmt.Errorf("sandbox %q: %w (PID 1, pid %d, has exited)", e.Name, ErrNotFound, e.Pid)
	}
	if moved != nil && endingNow(e.Pid, pidfd) {
		return -1, nil, fmt.Errorf("sandbox %q: %w (it ended while being looked up)", e.Name, ErrNotFound)
	}
	if moved != nil {
		moved = fmt.Errorf("sandbox %s: %w: %v; nsbox exec, mount, umount, cp and connect join the command's namespaces and cannot; fix: nsbox stop %s or nsbox kill %s still end it",
			e.Name, ErrCommandMoved, moved, e.Name, e.Name)
	}
	ok = true
	return pidfd, moved, nil
}

// rewritten reports whether the state.json at path (none if empty) can
// be read and holds other bytes than raw.
func rewritten(path string, raw []byte) bool {
	if path == "" {
		return false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	now, err := readAll(fd, path)
	return err == nil && !bytes.Equal(now, raw)
}

// A check that fails while the sandbox ends is no sign of tampering: an
// ending sandbox loses its namespaces and processes one by one under the
// checks (its command is gone, /proc/CMD/ns is empty, the launcher exits),
// which is what two `nsbox kill NAME` at once see. So before a failed
// check is reported as ErrRecordChanged, ending asks the kernel whether
// PID 1 is exiting; if so, the sandbox is reported gone (ErrNotFound),
// which is the truth for a second caller. Nothing is acted on either way:
// only a record that passes every check yields a pidfd.

// endingGrace is how long ending waits for PID 1 to start exiting after a
// failed check: the command may have died a moment before PID 1 (which
// leaves right after it) or before the SIGKILL reached PID 1's threads.
const endingGrace = 200 * time.Millisecond

// pfExiting is PF_EXITING, the flag (field 9 of /proc/PID/stat) the
// kernel sets as a process enters do_exit, before it drops its namespaces.
const pfExiting = 0x4

// ending reports whether PID 1 (pid, pinned by pidfd) has exited or is
// exiting, waiting up to endingGrace for it to start.
func ending(pid, pidfd int) bool {
	deadline := time.Now().Add(endingGrace)
	for !endingNow(pid, pidfd) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// endingNow reports whether PID 1 (pid, pinned by pidfd) has exited or is
// exiting, without waiting.
func endingNow(pid, pidfd int) bool {
	p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 0); err == nil && n > 0 {
		return true // exited: the pidfd is readable
	}
	flags, err := statFlags(pid)
	return err != nil || flags&pfExiting != 0 // exiting, or already reaped
}

// checkNamespaces is step 2 of verify. PID 1 is not dumpable, so its
// namespaces are closed even to its owner: they are read from its command
// (PID 1's oldest child), which has the sandbox's own but for the nested
// user and mount namespaces that lock its mounts (sandbox/nested.go):
// there the record's user namespace must be the parent of the command's,
// and the command's mount namespace must belong to the command's user
// namespace. A PID 1 that can be read (an older nsbox) is checked itself.
func checkNamespaces(e *Entry) error {
	changed := func(format string, args ...any) error { return fmt.Errorf(format, args...) }
	pid := fmt.Sprint(e.Pid)
	user, err := nsInode(pid, "user")
	nested := false
	if errors.Is(err, os.ErrPermission) {
		cmd, cerr := commandOf(e.Pid)
		if cerr != nil {
			return changed("PID 1 (pid %d): %v", e.Pid, cerr)
		}
		pid = fmt.Sprint(cmd)
		if e.Namespaces["mnt"] != 0 {
			nested = true
			user, err = nsRelative(pid, "user", unix.NS_GET_PARENT)
		} else {
			user, err = nsInode(pid, "user")
		}
	}
	if err != nil {
		return changed("PID 1 (pid %d): %v", e.Pid, err)
	}
	if self, _ := nsInode("self", "user"); user == self {
		return fmt.Errorf("PID 1 (pid %d) is in this command's own user namespace%w", e.Pid, errCallersUserNS)
	}
	if e.Namespaces["user"] != user {
		return changed("the record says user namespace %d, PID 1 (pid %d) is in %d", e.Namespaces["user"], e.Pid, user)
	}
	for _, name := range joinable {
		want, own := e.Namespaces[name]
		if e.Spec != nil && specHas(e, name) != own {
			return changed("its spec and its namespace list disagree about the %s namespace", name)
		}
		if nested && name == "mnt" {
			owner, err1 := nsRelative(pid, "mnt", unix.NS_GET_USERNS)
			cmdUser, err2 := nsInode(pid, "user")
			if err := errors.Join(err1, err2); err != nil || owner != cmdUser {
				return changed("the sandbox's command (pid %s) is not in the mount namespace of its nested user namespace", pid)
			}
			continue
		}
		have, err := nsInode(pid, name)
		if err != nil {
			return changed("PID 1 (pid %d): %v", e.Pid, err)
		}
		if own && want != have {
			return changed("the record says %s namespace %d, PID 1 (pid %d) is in %d", name, want, e.Pid, have)
		}
		if !own {
			if self, err := nsInode("self", name); err == nil && self != have {
				return changed("the record says the sandbox shares this command's %s namespace (%d), PID 1 (pid %d) is in %d", name, self, e.Pid, have)
			}
		}
	}
	return nil
}

// nsRelative returns the inode of the namespace an ioctl (NS_GET_PARENT,
// NS_GET_USERNS) on /proc/PID/ns/NAME returns.
func nsRelative(pid, name string, req uint) (uint64, error) {
	path := "/proc/" + pid + "/ns/" + name
	nsfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(nsfd)
	fd, err := unix.IoctlRetInt(nsfd, req)
	if err != nil {
		return 0, fmt.Errorf("ioctl on /proc/%s/ns/%s: %w", pid, name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// commandOf returns the pid of PID 1's oldest child, the sandbox's
// command: the others are orphans of its descendants, born later. The
// kernel's list of PID 1's children names it (procfs.OldestChild), not a
// scan of every process on the host.
func commandOf(pid1 int) (int, error) {
	pid, _, err := procfs.OldestChild(pid1)
	if err != nil {
		return 0, fmt.Errorf("PID 1 (pid %d) has no command: %w", pid1, err)
	}
	return pid, nil
}

// specHas reports whether e's spec gives the sandbox a namespace name of
// its own.
func specHas(e *Entry, name string) bool {
	ns := e.Spec.Namespaces
	switch name {
	case "mnt":
		return ns.Mount
	case "pid":
		return ns.PID
	case "net":
		return ns.Net
	case "ipc":
		return ns.IPC
	case "uts":
		return ns.UTS
	case "cgroup":
		return ns.Cgroup
	}
	return false
}

// nsInode returns the inode of /proc/PID/ns/NAME (pid may be "self").
func nsInode(pid, name string) (uint64, error) {
	var st unix.Stat_t
	p := "/proc/" + pid + "/ns/" + name
	if err := unix.Stat(p, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return st.Ino, nil
}

// The memfd's name, as /proc/PID/fd/N shows it: "/memfd:NAME (deleted)".
const sealedName = "nsbox-record"

// requiredSeals are the seals that make a memfd unchangeable for good.
const requiredSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// readSealedCopy reads the sealed record memfd at descriptor fd of the
// launcher pid.
func readSealedCopy(pid, fd int) ([]byte, error) {
	p := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	target, err := os.Readlink(p)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(target, "/memfd:"+sealedName+" ") {
		return nil, fmt.Errorf("descriptor %d is %s, not nsbox's record", fd, target)
	}
	f, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(f)
	seals, err := unix.FcntlInt(uintptr(f), unix.F_GET_SEALS, 0)
	if err != nil || seals&requiredSeals != requiredSeals {
		return nil, fmt.Errorf("descriptor %d is not sealed", fd)
	}
	return readAll(f, p)
}

// newRecordFD returns a new memfd for the sealed copy of a record; the
// caller owns the descriptor, which is close-on-exec.
func newRecordFD() (int, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(sealedName, flags|unix.MFD_NOEXEC_SEAL)
	if err == unix.EINVAL {
		// MFD_NOEXEC_SEAL is Linux 6.3; older kernels refuse the flag.
		fd, err = unix.MemfdCreate(sealedName, flags)
	}
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	return fd, nil
}

// sealRecord writes b to the new memfd fd and seals it for good.
func sealRecord(fd int, b []byte) error {
	if err := writeAll(fd, b); err != nil {
		return fmt.Errorf("write the sealed copy of the record: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		return fmt.Errorf("seal the record: %w", err)
	}
	return nil
}
