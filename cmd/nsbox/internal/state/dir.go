package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// initialUserNS is the inode of the initial user namespace's
// /proc/self/ns/user (PROC_USER_INIT_INO in the kernel, fixed since 3.8).
const initialUserNS = 0xEFFFFFFD

// Candidates returns the places the caller's state directory may be, in
// the order Dir tries them: $XDG_RUNTIME_DIR/nsbox when XDG_RUNTIME_DIR
// names a directory, then $TMPDIR/nsbox-$UID (/tmp by default).
//
// Outside the initial user namespace (in `unshare -r`, in a container with
// a user namespace, inside another sandbox) both names get
// ".userns-INODE": uid 0 there is a different user in each namespace, and
// two of them must not meet in one /tmp/nsbox-0 (the first one's directory
// would belong to the overflow uid for the others).
func Candidates() []string {
	suffix := ""
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err == nil && st.Ino != initialUserNS {
		suffix = fmt.Sprintf(".userns-%d", st.Ino)
	}
	var dirs []string
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
		if st, err := os.Stat(x); err == nil && st.IsDir() {
			dirs = append(dirs, filepath.Join(x, "nsbox"+suffix))
		}
	}
	return append(dirs, filepath.Join(os.TempDir(), fmt.Sprintf("nsbox-%d%s", os.Getuid(), suffix)))
}

// Dir returns the user's state directory, creating it if needed: the
// first of Candidates that is, or can be made, a directory owned by the
// caller and private to it (mode 0700). One that belongs to someone else
// is refused (someone could otherwise plant entries, or read the specs),
// and so is a symlink; Dir then tries the next candidate. When none is
// usable the error names each one and why.
//
// Readers (nsbox ps, exec) call Dir too, so under the same environment
// they find the directory the launcher used.
func Dir() (string, error) {
	var why []string
	for _, dir := range Candidates() {
		err := prepare(dir)
		if err == nil {
			return dir, nil
		}
		why = append(why, err.Error())
	}
	return "", fmt.Errorf("no usable state directory: %s", strings.Join(why, "; "))
}

// prepare makes dir a private directory of the caller's, or says why not.
func prepare(dir string) error {
	uid := os.Getuid()
	if err := unix.Mkdir(dir, 0o700); err != nil && err != unix.EEXIST {
		return fmt.Errorf("create the state directory %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("state directory %s is not a directory; fix: remove it", dir)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("state directory %s belongs to uid %d, not to you (uid %d); fix: remove it, or set XDG_RUNTIME_DIR to a directory of your own", dir, st.Uid, uid)
	}
	if st.Mode&0o077 != 0 {
		if err := unix.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make the state directory %s private (mode 0700): %w", dir, err)
		}
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("state directory %s: not writable: %w", dir, err)
	}
	return nil
}

// sweepStamp is the file in the state directory whose mtime says when
// the last sweep for stale entries started.
const sweepStamp = ".swept"

// SweepEvery is how often, at most, MaybeClean sweeps the directory.
const SweepEvery = time.Minute

// SweepStamp is the file in the state directory dir whose mtime says
// when its last sweep started: MaybeClean sweeps once it is SweepEvery
// old, or missing.
func SweepStamp(dir string) string { return filepath.Join(dir, sweepStamp) }

// MaybeClean runs Clean on dir if no sweep started in the last
// SweepEvery, so that entries of launchers that died (SIGKILL, a crash)
// do not pile up, without making every start pay for a scan of the
// directory: nsbox run calls it after its command started, in the
// background. It costs one stat when no sweep is due; of any number of
// launchers that find one due at once, only the one that gets the stamp's
// lock sweeps.
func MaybeClean(dir string) {
	stamp := SweepStamp(dir)
	var st unix.Stat_t
	seen := int64(-1) // the stamp's mtime before we took its lock
	if unix.Stat(stamp, &st) == nil {
		if time.Since(time.Unix(st.Mtim.Unix())) < SweepEvery {
			return
		}
		seen = st.Mtim.Nano()
	}
	fd, err := unix.Open(stamp, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // another launcher sweeps
	}
	// Checked again under the lock: a sweep may have ended meanwhile.
	if unix.Fstat(fd, &st) != nil || seen >= 0 && st.Mtim.Nano() != seen {
		return
	}
	now := unix.NsecToTimespec(time.Now().UnixNano())
	if unix.UtimesNanoAt(unix.AT_FDCWD, stamp, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	Clean(dir)
}
