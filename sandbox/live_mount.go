package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"golang.org/x/sys/unix"
)

// MountOptions are the options of Sandbox.Mount. The zero value mounts
// read-write onto an existing destination.
type MountOptions struct {
	// ReadOnly makes the mount read-only, locked so: root inside cannot
	// remount it writable.
	ReadOnly bool
	// Mkdir creates the destination inside (a directory, or an empty
	// file for a file source) if it is missing; its parent must exist.
	Mkdir bool
}

// Mount makes the host file or directory src (as the caller sees it,
// with the mounts beneath it) appear at dest in the running sandbox's
// view, nosuid and nodev, read-only with o.ReadOnly. dest is an absolute
// path inside the sandbox, resolved in the command's root: ".." and
// symlinks planted inside cannot lead it out of the sandbox's view, and a
// symlink as its last component is refused. The mount is locked as the
// sandbox's own mounts are (docs/live.md): root
// inside can neither make a read-only one writable nor unmount it. It
// stands on an empty anchor in o.AnchorsDir, which Unmount removes.
//
// It needs a sandbox with a mount namespace of its own. Errors name src
// and dest; ErrEnded (errors.Is) when the sandbox has ended.
func (s *Sandbox) Mount(src, dest string, o MountOptions) error {
	t, err := s.target()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return fmt.Errorf("mount %s: %w", src, err)
	}
	if err := checkLiveDest(t, dest); err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, dest, err)
	}
	anchor, err := makeAnchor(t, abs, dest)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, dest, err)
	}
	_, err = runLive(t, &stage.Live{Op: stage.LiveMount, Src: abs, Dest: dest, Anchor: anchor, ReadOnly: o.ReadOnly, Mkdir: o.Mkdir})
	if err != nil {
		os.Remove(anchor)
		return fmt.Errorf("mount %s on %s: %w", src, dest, err)
	}
	return nil
}

// Unmount removes, in the running sandbox, the mount at dest that Mount
// added (detaching it lazily: files open through it stay usable). The
// sandbox's own mounts are locked and cannot be removed.
func (s *Sandbox) Unmount(dest string) error {
	t, err := s.target()
	if err != nil {
		return err
	}
	if err := checkLiveDest(t, dest); err != nil {
		return fmt.Errorf("unmount %s: %w", dest, err)
	}
	dir, err := anchorsDir(false)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dest, err)
	}
	anchor := anchorPath(dir, t, dest)
	legacy := filepath.Join(dir, anchorSandbox(t), anchorName(dest))
	if _, err := os.Lstat(anchor); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Lstat(legacy); err == nil {
			anchor = legacy // added by an nsbox of 2026-12-07 or before
		}
	}
	// The stage removes the anchor itself.
	if _, err := runLive(t, &stage.Live{Op: stage.LiveUmount, Dest: dest, Anchor: anchor}); err != nil {
		return fmt.Errorf("unmount %s: %w", dest, err)
	}
	if anchor == legacy {
		os.Remove(filepath.Dir(legacy))
	}
	return nil
}

// AnchorsDir is the directory where Mount keeps the anchors of the
// mounts it adds (the same for any options), one per mount, named after
// its sandbox and destination:
// $XDG_RUNTIME_DIR/nsbox-live when that names a directory, else
// $TMPDIR/nsbox-live-UID, as the state directory of nsbox's CLI. No sandbox may see it: removing an anchor in
// a mount namespace where it is no mount point detaches what is mounted
// on it, locked or not (docs/live.md). The default View covers both
// places with a tmpfs; whoever binds a directory above one into a
// sandbox must cover it too.
func (MountOptions) AnchorsDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return filepath.Join(d, "nsbox-live")
		}
	}
	return filepath.Join(os.TempDir(), "nsbox-live-"+strconv.Itoa(os.Getuid()))
}

// anchorsDir is MountOptions.AnchorsDir, checked (made, if mkdir) to be
// a directory of the caller's, private to it, and no symlink: in a shared
// /tmp, someone else's could lead Mount and Unmount elsewhere.
func anchorsDir(mkdir bool) (string, error) {
	dir := MountOptions{}.AnchorsDir()
	if mkdir {
		if err := unix.Mkdir(dir, 0o700); err != nil && err != unix.EEXIST {
			return "", fmt.Errorf("create the anchors directory %s: %w; fix: set XDG_RUNTIME_DIR to a directory of yours", dir, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if !mkdir && err == unix.ENOENT {
			return dir, nil // no anchor in it: the stage says so
		}
		return "", fmt.Errorf("anchors directory %s: %w; fix: set XDG_RUNTIME_DIR to a directory of yours", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		return "", fmt.Errorf("anchors directory %s is not a private directory of yours (mode 0700); fix: remove it, or set XDG_RUNTIME_DIR to a directory of yours", dir)
	}
	return dir, nil
}

// anchorPath is the anchor of the mount Mount adds at dest in the
// sandbox t, in the anchors directory dir: found again from t and dest
// alone, by Unmount in another process. The anchors of every sandbox
// share the one directory, which stays (as the state directory does): an
// anchor is one mkdir, and its removal one rmdir, where a directory per
// sandbox, made and removed with its first and last anchor, made each
// three on a journalled file system (a millisecond of a 5 ms nsbox mount
// on this VM's ext4).
func anchorPath(dir string, t Target, dest string) string {
	return filepath.Join(dir, anchorSandbox(t)+"-"+anchorName(dest))
}

// anchorSandbox names the sandbox t in its anchors' names: its PID 1's
// pid and start time, which pruneAnchors checks.
func anchorSandbox(t Target) string {
	return strconv.Itoa(t.Pid) + "-" + strconv.FormatUint(t.StartTime, 10)
}

// anchorName names an anchor after its destination.
func anchorName(dest string) string {
	sum := sha256.Sum256([]byte(dest))
	return hex.EncodeToString(sum[:16])
}

// makeAnchor creates the anchor of a mount of src at dest: an empty
// directory, or an empty file for a file src, private to the caller. It
// first removes the directories of sandboxes that have ended (their
// anchors are no mount points any more).
func makeAnchor(t Target, src, dest string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("%w; fix: check the host path exists and you may read it", err)
	}
	dir, err := anchorsDir(true)
	if err != nil {
		return "", err
	}
	pruneAnchors(dir)
	p := anchorPath(dir, t, dest)
	if st.IsDir() {
		err = os.Mkdir(p, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			err = f.Close()
		}
	}
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("%s already has a mount Mount added (unmount it first)", dest)
	}
	if err != nil {
		return "", fmt.Errorf("create its anchor: %w", err)
	}
	return p, nil
}

// pruneAnchors removes from dir the anchors of sandboxes whose PID 1
// (pid and start time, as anchorSandbox names them) is gone: PID-START-NAME,
// or a directory PID-START of them, as nsbox made them until 2026-12-07.
func pruneAnchors(dir string) {
	ents, _ := os.ReadDir(dir)
	alive := map[string]bool{}
	for _, e := range ents {
		pid, rest, ok := strings.Cut(e.Name(), "-")
		start, _, _ := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil {
			continue
		}
		key := pid + "-" + start
		live, known := alive[key]
		if !known {
			st, err := pidStartTime(n)
			live = err == nil && strconv.FormatUint(st, 10) == start
			alive[key] = live
		}
		if !live {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// checkLiveDest checks dest is a path Mount and Unmount may act on.
func checkLiveDest(t Target, dest string) error {
	if !t.Namespaces.Mount {
		return fmt.Errorf("the sandbox shares the caller's mount namespace: there is no view of its own to mount into")
	}
	if !filepath.IsAbs(dest) || filepath.Clean(dest) != dest || dest == "/" || strings.IndexByte(dest, 0) >= 0 {
		return fmt.Errorf("the destination must be a clean absolute path inside the sandbox, not /")
	}
	return nil
}
