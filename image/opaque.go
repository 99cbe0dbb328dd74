package image

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// expandOpaque stores each opaque directory of a new layer (root, an open
// layer directory) as whiteouts: one for every name that a lower layer
// (lowers, directories topmost first) holds in that directory and the new
// layer does not. overlayfs marks opaque directories with an xattr,
// trusted.overlay.opaque, which only the host's root may set, or
// user.overlay.opaque, which it reads only when mounted with userxattr;
// a whiteout (a 0/0 character device) works in every rootless mount.
// That is why layers are stored per chain id: the lower layers of a
// layer directory are fixed, so the list is complete.
//
// Lower directories are opened beneath their layer without following
// symlinks: a lower layer whose path to the directory goes through a
// symlink contributes nothing there (nor would overlayfs show it).
func expandOpaque(root int, opaque []string, lowers []string) error {
	for _, dir := range opaque {
		if err := expandOne(root, dir, lowers); err != nil {
			return fmt.Errorf("opaque directory %q: %w", dir, err)
		}
	}
	return nil
}

func expandOne(root int, dir string, lowers []string) error {
	top, err := openBeneath(root, dir)
	if err != nil {
		return err
	}
	defer unix.Close(top)
	for _, l := range lowers {
		lfd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		names, err := listBeneath(lfd, dir)
		unix.Close(lfd)
		if err != nil {
			return err
		}
		for _, n := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(top, n, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
				continue // the new layer has its own entry (or whiteout)
			}
			if err := unix.Mknodat(top, n, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("whiteout %s: %w", n, err)
			}
		}
	}
	return nil
}

// openBeneath opens directory rel below dirfd, refusing symlinks.
func openBeneath(dirfd int, rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	return unix.Openat2(dirfd, rel, &how)
}

// listBeneath lists directory rel below dirfd; nothing if it is missing
// or not reached without symlinks.
func listBeneath(dirfd int, rel string) ([]string, error) {
	fd, err := openBeneath(dirfd, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return nil, nil
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return f.Readdirnames(-1)
}
