package image

import (
	"errors"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Extended attributes of layer entries (PAX records SCHILY.xattr.NAME)
// are untrusted like the rest of a layer. Only two kinds are set:
//
//   - user.*, except user.overlay.*: overlayfs mounted with userxattr
//     reads those as its own (redirect, metacopy, opaque), so a layer
//     could reshape the tree a later mount shows;
//   - security.capability (file capabilities, as in ping or newuidmap
//     images), and only when the layer keeps its owners (Store.IDs): the
//     unpacker then runs in a user namespace, where the kernel stores the
//     capability as a namespaced (v3) one whose root is that namespace's
//     root, the caller's own uid. Such a capability grants nothing on
//     the host (its root is not uid 0) and, inside a user namespace the
//     caller owns, nothing the caller has not got there already; a
//     sandbox runs with no_new_privs besides. With a single map
//     (no subordinate ids) it is dropped: the host would refuse it.
//
// Every other name (trusted.*, the other security.* ones such as
// SELinux labels, system.posix_acl_*) is ignored and counted in
// unpackStats.XattrsSkipped, as are values a filesystem refuses with
// ENOTSUP (tmpfs before Linux 6.6 takes no user.* attributes).

// paxXattr is the PAX record prefix of an extended attribute.
const paxXattr = "SCHILY.xattr."

// xattrs returns the attributes of records this unpacker may set, sorted
// by name, and the number it leaves out.
func (u *unpacker) xattrs(records map[string]string) (names []string, skipped int) {
	for k := range records {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "user.overlay."):
		case name == "security.capability" && u.owners:
		default:
			skipped++
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, skipped
}

// setXattrs sets the entry's attributes on fd, an open file or
// directory, before its mode is set (writing user.* needs write
// permission) and after its owner (chown clears security.capability).
func (u *unpacker) setXattrs(fd int, records map[string]string, st *unpackStats) error {
	names, skipped := u.xattrs(records)
	st.XattrsSkipped += skipped
	for _, n := range names {
		err := unix.Fsetxattr(fd, n, []byte(records[paxXattr+n]), 0)
		if errors.Is(err, unix.ENOTSUP) {
			st.XattrsSkipped++
			continue
		}
		if err != nil {
			return &xattrError{n, err}
		}
	}
	return nil
}

type xattrError struct {
	name string
	err  error
}

func (e *xattrError) Error() string { return "set extended attribute " + e.name + ": " + e.err.Error() }
func (e *xattrError) Unwrap() error { return e.err }

// dirTime is a directory's modification time from its header, set once
// the layer's entries are all written (each changes its parent's).
type dirTime struct {
	comps []string
	mtime time.Time
}

// setDirTimes gives the layer's directories their headers' times, by
// descriptor: each is looked up beneath the root without following a
// symlink, and one that is no longer a directory is left alone.
func setDirTimes(root int, dirs []dirTime) error {
	u := unpacker{root: root}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		parent, err := u.openExistingDir(d.comps[:len(d.comps)-1])
		if err != nil {
			continue // replaced by a later entry
		}
		name := d.comps[len(d.comps)-1]
		var st unix.Stat_t
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			ts := unix.NsecToTimespec(d.mtime.UnixNano())
			err = unix.UtimesNanoAt(parent, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(parent)
		if err != nil {
			return err
		}
	}
	return nil
}
