package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// overlayfsMagic is overlayfs's statfs f_type.
const overlayfsMagic = 0x794c7630

// OverlayRefusal is why the kernel refuses overlayfs over a store's
// layers in a sandbox's user namespace.
type OverlayRefusal struct {
	Errno syscall.Errno
	// OnOverlay: the store itself is on overlayfs (nested too deep).
	OnOverlay bool
}

func (r *OverlayRefusal) Error() string {
	where := ""
	if r.OnOverlay {
		where = " over layers on overlayfs"
	}
	return "the kernel refuses overlayfs" + where + " in a user namespace: " + r.Errno.Error()
}

// OverlayRefused asks, where there is reason to doubt it, whether the
// kernel mounts overlayfs over img's layers in a sandbox: try mounts
// them as a sandbox's root is mounted and returns the mount's errno (0:
// mounted), or an error if it could not tell. It returns nil if overlayfs
// works, or if there is no reason to doubt it (the store is not on
// overlayfs and the kernel lists overlay), or if try could not tell.
// try runs once per store filesystem and kernel; the answer is kept in
// the store (overlay-probe.json).
func (s *Store) OverlayRefused(img *Image, try func() (syscall.Errno, error)) *OverlayRefusal {
	layers := filepath.Join(s.Dir, "layers")
	var fs unix.Statfs_t
	var st unix.Stat_t
	if unix.Statfs(layers, &fs) != nil || unix.Stat(layers, &st) != nil {
		return nil // the mount will say
	}
	onOverlay := fs.Type == overlayfsMagic
	if !onOverlay && overlayListed() {
		return nil
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	key := fmt.Sprintf("%s dev %d", unix.ByteSliceToString(uts.Release[:]), st.Dev)
	cache := filepath.Join(s.Dir, "overlay-probe.json")
	var known struct {
		Key   string
		Errno syscall.Errno
	}
	if b, err := os.ReadFile(cache); err == nil && json.Unmarshal(b, &known) == nil && known.Key == key {
		return refusal(known.Errno, onOverlay)
	}
	errno, err := try()
	if err != nil {
		return nil // the mount will say
	}
	known.Key, known.Errno = key, errno
	b, _ := json.Marshal(known)
	writeAtomic(cache, b)
	return refusal(errno, onOverlay)
}

func refusal(errno syscall.Errno, onOverlay bool) *OverlayRefusal {
	if errno == 0 {
		return nil
	}
	return &OverlayRefusal{Errno: errno, OnOverlay: onOverlay}
}

// overlayListed reports whether /proc/filesystems lists overlay.
func overlayListed() bool {
	b, _ := os.ReadFile("/proc/filesystems")
	return strings.Contains(string(b), "\toverlay\n")
}
