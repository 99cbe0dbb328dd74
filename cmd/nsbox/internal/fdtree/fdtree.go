// Package fdtree removes and sizes directory trees that a sandbox could
// have written, by descriptor.
//
// Whatever a sandbox can write is hostile input to the host-side code
// that later cleans it up (nsbox cache rm, the state directory's sweeps):
// while it walks, a process inside can swap a directory for a symlink to
// a host directory (renameat2 RENAME_EXCHANGE), nest directories 20,000
// deep, or name entries with escape sequences. A walk by path
// (filepath.WalkDir + os.Chmod, os.RemoveAll) follows the swapped link
// out of the tree and changes what it finds there.
//
// # What it guarantees
//
// RemoveAll and Size, given the path of the tree's top (which must be the
// caller's, not attacker-controlled: only what is under it is), act only on
// inodes reached from the top by descriptor:
//
//   - every directory is opened with openat(O_NOFOLLOW|O_DIRECTORY) relative
//     to its parent's descriptor, and every entry is removed with unlinkat
//     or examined with fstatat(AT_SYMLINK_NOFOLLOW): no path is resolved
//     twice and no symlink is followed; a symlink is removed (it is a name
//     in the tree), never followed;
//   - unlinkat(name, 0) removes any non-directory and refuses a directory
//     (EISDIR), so an entry swapped between listing and removal is either
//     unlinked as the name it now is, or walked as a directory;
//   - a directory on another device (a mount point) is neither entered nor
//     removed;
//   - directories are made writable with fchmod on the descriptor opened
//     with O_NOFOLLOW (or, when even opening is refused, through an O_PATH
//     descriptor's /proc/self/fd link), never chmod by path;
//   - at most three descriptors are open at any depth: the walk keeps the
//     device and inode of each level, not a descriptor, and climbs by
//     opening ".." and checking it is the directory it left (dev/ino), so a
//     chain of any depth works and ends in no EMFILE;
//   - errors are one line of bounded length: the first failure (its path
//     shortened, control characters escaped) and how many more there were.
//
// # What it does not do
//
//   - It does not make the tree hold still: a writer racing the walk can
//     keep creating entries, so RemoveAll retries a few times and then
//     reports what is left rather than looping.
//   - It does not protect the top's own path: the caller opens it, and it
//     must not be under the attacker's control (a cache directory or
//     state entry of the user's own, whose parent no sandbox can write).
//   - It cannot remove what the caller's uid may not: entries of other
//     uids (a sandbox's subordinate ids) in directories it cannot chmod.
//   - Size counts regular files only (st_size; hard links once per name);
//     other entries are skipped.
package fdtree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrChanged is returned (wrapped) when a directory moved while the walk
// was inside it, so ".." no longer leads back to where it came from.
var ErrChanged = errors.New("the tree changed during the walk")

// MaxErrorPath bounds how much of an entry's path an error line shows.
const MaxErrorPath = 160

// retries is how many times RemoveAll starts over when a writer racing it
// left the tree non-empty or moved a directory it was in.
const retries = 3

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	pathFlags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// RemoveAll removes the tree at path and everything under it, as the
// package doc says. A path that does not exist is not an error; a path
// that is not a directory is unlinked (not followed).
func RemoveAll(path string) error {
	parent, name, err := openParent(path)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	var last error
	for try := 0; try < retries; try++ {
		w := &walker{remove: true, top: path}
		err := w.run(parent, name)
		if err == nil && w.failed == 0 {
			return nil
		}
		if err != nil {
			w.fail(err)
		}
		last = w.err()
		var st unix.Stat_t
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == unix.ENOENT {
			return nil
		}
	}
	return last
}

// Size returns the bytes in regular files under path (see the package
// doc), and an error line for what it could not read.
func Size(path string) (int64, error) {
	parent, name, err := openParent(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(parent)
	w := &walker{top: path}
	if err := w.run(parent, name); err != nil {
		w.fail(err)
	}
	return w.size, w.err()
}

// openParent opens the directory holding path (the caller's own: it is
// resolved as usual) and returns it with path's last element.
func openParent(path string) (int, string, error) {
	path = filepath.Clean(path)
	dir, name := filepath.Split(path)
	if name == "" || name == "." || name == ".." || name == "/" {
		return -1, "", &os.PathError{Op: "fdtree", Path: path, Err: unix.EINVAL}
	}
	if dir == "" {
		dir = "."
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, name, nil
}

// frame is one directory on the walk's path from the top: what is known
// of it while the walk is below it, without holding a descriptor.
type frame struct {
	name     string   // its name in its parent
	dev, ino uint64   // its identity, checked when the walk climbs back
	pending  []string // subdirectories not visited yet
}

// walker is one walk: RemoveAll's or Size's.
type walker struct {
	remove bool
	top    string // the tree's path, for error lines
	dev    uint64 // the top's device: the walk never leaves it
	size   int64
	stack  []frame

	failed int    // failures so far
	first  string // the first failure, as a line
}

// run walks the tree that is entry name of the directory open at parent.
func (w *walker) run(parent int, name string) error {
	fd, st, err := w.openDir(parent, name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		if w.remove {
			return w.unlink(parent, name, 0)
		}
		return nil
	}
	if err != nil {
		return w.pathErr("open", "", err)
	}
	w.dev = st.Dev
	w.stack = []frame{{name: name, dev: st.Dev, ino: st.Ino}}
	w.stack[0].pending = w.scan(fd)
	for len(w.stack) > 0 {
		top := &w.stack[len(w.stack)-1]
		if n := len(top.pending); n > 0 {
			child := top.pending[n-1]
			top.pending = top.pending[:n-1]
			fd = w.descend(fd, child)
			continue
		}
		// Done with this directory: climb back to its parent, checked.
		if len(w.stack) == 1 {
			unix.Close(fd)
			w.stack = nil
			if w.remove {
				return w.unlink(parent, name, unix.AT_REMOVEDIR)
			}
			return nil
		}
		up, err := unix.Openat(fd, "..", dirFlags, 0)
		unix.Close(fd)
		if err != nil {
			return w.pathErr("open", "..", err)
		}
		want := w.stack[len(w.stack)-2]
		var got unix.Stat_t
		if err := unix.Fstat(up, &got); err != nil || got.Dev != want.dev || got.Ino != want.ino {
			unix.Close(up)
			return w.pathErr("climb", "..", ErrChanged)
		}
		fd = up
		left := w.stack[len(w.stack)-1].name
		w.stack = w.stack[:len(w.stack)-1]
		if w.remove {
			if err := unix.Unlinkat(fd, left, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
				w.fail(w.pathErr("rmdir", left, err))
			}
		}
	}
	return nil
}

// descend enters subdirectory child of the directory open at fd. It
// returns the descriptor the walk goes on with: the child's, with its
// frame pushed, or fd itself when the child is not entered.
func (w *walker) descend(fd int, child string) int {
	cfd, st, err := w.openDir(fd, child)
	switch {
	case err == nil && st.Dev != w.dev:
		unix.Close(cfd)
		w.fail(w.pathErr("enter", child, errors.New("a mount point: left alone")))
		return fd
	case err == nil:
		unix.Close(fd)
		w.stack = append(w.stack, frame{name: child, dev: st.Dev, ino: st.Ino})
		w.stack[len(w.stack)-1].pending = w.scan(cfd)
		return cfd
	case errors.Is(err, unix.ENOENT):
	case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP):
		// Swapped for a non-directory since the listing: a name to
		// remove, never to follow.
		if w.remove {
			if err := w.unlink(fd, child, 0); err != nil {
				w.fail(err)
			}
		}
	default:
		w.fail(w.pathErr("open", child, err))
	}
	return fd
}

// openDir opens directory name of the directory open at parent without
// following a symlink, and, when removing, makes it writable for its
// owner (fchmod on the descriptor; through an O_PATH descriptor when the
// mode refuses even the open).
func (w *walker) openDir(parent int, name string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Openat(parent, name, dirFlags, 0)
	if err == unix.EACCES && w.remove {
		fd, err = openUnreadable(parent, name)
	}
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if w.remove && st.Mode&0o700 != 0o700 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			w.fail(w.pathErr("chmod", name, err))
		}
	}
	return fd, st, nil
}

// openUnreadable opens directory name of parent whose mode refuses its
// owner read or search (chmod 0 from inside): it pins the directory with
// an O_PATH descriptor (O_NOFOLLOW: a symlink is refused), makes it 0700
// through /proc/self/fd/N (the magic link names that very inode, so
// nothing is resolved by path), and opens it.
func openUnreadable(parent int, name string) (int, error) {
	pfd, err := unix.Openat(parent, name, pathFlags, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(pfd), 0o700); err != nil {
		return -1, err
	}
	return unix.Openat(pfd, ".", dirFlags, 0)
}

// scan reads the directory open at fd: when removing, it unlinks every
// non-directory at once; when sizing, it adds up regular files. It
// returns the subdirectories' names.
func (w *walker) scan(fd int) []string {
	var dirs []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			w.fail(w.pathErr("read", "", err))
			return dirs
		}
		if n <= 0 {
			return dirs
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if w.entry(fd, name) {
				dirs = append(dirs, name)
			}
		}
	}
}

// entry handles one name of the directory open at fd and reports whether
// it is a directory to walk.
func (w *walker) entry(fd int, name string) bool {
	if w.remove {
		err := unix.Unlinkat(fd, name, 0)
		switch err {
		case nil, unix.ENOENT:
			return false
		case unix.EISDIR:
			return true
		}
		w.fail(w.pathErr("unlink", name, err))
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		w.size += st.Size
	case unix.S_IFDIR:
		return true
	}
	return false
}

// unlink removes name from the directory open at dir (flags 0 for a
// non-directory, AT_REMOVEDIR for an empty directory).
func (w *walker) unlink(dir int, name string, flags int) error {
	if err := unix.Unlinkat(dir, name, flags); err != nil && err != unix.ENOENT {
		op := "unlink"
		if flags != 0 {
			op = "rmdir"
		}
		return w.pathErr(op, name, err)
	}
	return nil
}

// fail counts a failure, keeping the first one's line.
func (w *walker) fail(err error) {
	if w.failed == 0 {
		w.first = err.Error()
	}
	w.failed++
}

// err is the walk's failures as one line, or nil.
func (w *walker) err() error {
	switch w.failed {
	case 0:
		return nil
	case 1:
		return errors.New(w.first)
	}
	return fmt.Errorf("%s (and %d more)", w.first, w.failed-1)
}

// pathErr wraps err with op and the path of name under the current
// directory, shortened to MaxErrorPath and with control characters
// escaped, so that no entry a sandbox named can flood or forge the line.
func (w *walker) pathErr(op, name string, err error) error {
	parts := make([]string, 0, len(w.stack)+1)
	for _, f := range w.stack[min(1, len(w.stack)):] {
		parts = append(parts, f.name)
	}
	if name != "" {
		parts = append(parts, name)
	}
	rel := strings.Join(parts, "/")
	rel = strconv.Quote(rel)
	rel = rel[1 : len(rel)-1]
	if len(rel) > MaxErrorPath {
		rel = "…" + rel[len(rel)-MaxErrorPath:]
	}
	depth := ""
	if len(w.stack) > 8 {
		depth = fmt.Sprintf(" (depth %d)", len(w.stack))
	}
	return &os.PathError{Op: op, Path: filepath.Join(w.top, rel) + depth, Err: err}
}
