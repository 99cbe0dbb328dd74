package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
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
// inside can neither make a read-only one writable nor unmount it.
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
	_, err = runLive(t, &stage.Live{Op: stage.LiveMount, Src: abs, Dest: dest, ReadOnly: o.ReadOnly, Mkdir: o.Mkdir})
	if err != nil {
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
	if _, err := runLive(t, &stage.Live{Op: stage.LiveUmount, Dest: dest}); err != nil {
		return fmt.Errorf("unmount %s: %w", dest, err)
	}
	return nil
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
