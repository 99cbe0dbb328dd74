package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nsbox/nsbox/internal/procfs"
	"golang.org/x/sys/unix"
)

// Copying in and out of a running sandbox works from the caller's side,
// by descriptor. The sandbox's root is the command's (/proc/PID/root,
// opened once, the command pinned by a pidfd and checked to be PID 1's
// child); every path inside is resolved from it with openat2
// RESOLVE_IN_ROOT and no magic links, so "..", absolute symlinks and
// /proc's links cannot lead out of the sandbox's view: a symlink inside
// pointing to /home/you/.ssh copies the sandbox's /home/you/.ssh. Below
// the named path, a tree is walked one directory descriptor at a time:
// each name is a single component read from the directory, opened with
// O_NOFOLLOW and checked to be the file just listed, symlinks are copied
// as symlinks and never followed, and what is written is created under
// the destination's descriptor, so nothing is written outside it even
// when the sandbox swaps a directory for a symlink during the copy.
//
// Anything the sandbox can write is hostile input, so what it can make
// the caller hold is bounded (maxCopyDepth, maxCopyEntries, PATH_MAX
// names and link targets); file data is streamed, never buffered whole.
// A file or directory that vanishes or changes type during the copy ends
// it with an error naming it ("changed during the copy"), never a crash.
// Devices, FIFOs and sockets are skipped and listed in the result.
//
// Files are created by the caller: on the way out they are the caller's
// own; on the way in they belong to whoever the caller's uid maps to
// inside. Modes (without set-id bits) and modification times are kept.

const (
	maxCopyDepth   = 256     // directory levels below the copied path
	maxCopyEntries = 1 << 22 // files, directories and links in one copy
)

// errChanged marks a tree that changed under the copy.
var errChanged = errors.New("changed during the copy")

// copier copies one tree, on the workers of live_copy_files.go. Errors
// name source paths as rel (srcTop/…) and destination paths as
// dstTop/….
type copier struct {
	srcTop, dstTop string
	entries        atomic.Int64
	mu             sync.Mutex // guards skipped and err
	skipped        []string
	err            error // the first failure: every worker stops at it
	work           *copyWork
}

// dst names on the destination's side the entry that rel names on the
// source's.
func (c *copier) dst(rel string) string {
	if rest, ok := strings.CutPrefix(rel, c.srcTop); ok && c.dstTop != "" {
		return c.dstTop + rest
	}
	return rel
}

// sandboxRoot opens the command's root directory (O_PATH): the pid is
// pinned with a pidfd and checked, after the open, to be still PID 1's
// oldest child (or PID 1, when it is the command), still running, with
// PID 1 still the process t names.
func sandboxRoot(t Target) (int, error) {
	cmd := t.Pid
	if !t.CommandIsPID1 {
		var err error
		if cmd, err = commandPid(t); err != nil {
			return -1, err
		}
	}
	pidfd, err := unix.PidfdOpen(cmd, 0)
	if err != nil {
		return -1, ErrEnded
	}
	defer unix.Close(pidfd)
	root, err := unix.Open("/proc/"+strconv.Itoa(cmd)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the sandbox's root (/proc/%d/root): %w", cmd, err)
	}
	ended := func() (int, error) {
		unix.Close(root)
		return -1, ErrEnded
	}
	if !t.CommandIsPID1 {
		if again, err := commandPid(t); err != nil || again != cmd {
			return ended()
		}
	}
	if st, err := pidStartTime(t.Pid); err != nil || st != t.StartTime || unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		return ended()
	}
	return root, nil
}

// commandPid finds the sandbox's command: PID 1's oldest child (as
// join.c's find_command), from the kernel's list of PID 1's children.
func commandPid(t Target) (int, error) {
	pid, _, err := procfs.OldestChild(t.Pid)
	if err != nil {
		return 0, fmt.Errorf("the sandbox's command is gone: %w", ErrEnded)
	}
	return pid, nil
}

// openIn opens p inside the sandbox's root with flags, resolved as if
// root were "/".
func openIn(root int, p string, flags int) (int, error) {
	return unix.Openat2(root, p, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// copyTarget decides where a copy of a file called base lands at dest,
// as cp and docker cp do: into dest when it is a directory, else as dest
// itself, in its parent directory. It returns the directory's descriptor
// and the name to create there. open opens a path of dest's side.
func copyTarget(open func(p string, flags int) (int, error), dest, base string) (int, string, error) {
	if fd, err := open(dest, unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
		return fd, base, nil
	}
	dir, name := path.Split(strings.TrimRight(dest, "/"))
	if dir == "" {
		dir = "."
	}
	if name == "" || name == "." || name == ".." {
		return -1, "", fmt.Errorf("%s: not a directory to copy into", dest)
	}
	fd, err := open(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", fmt.Errorf("the parent directory %s: %w", dir, err)
	}
	return fd, name, nil
}

// copyEntry copies the entry name of directory sdir, without following
// it, to dname in directory ddir; rel names it in errors and notes.
func (c *copier) copyEntry(sdir int, name string, ddir int, dname, rel string, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sdir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return changed(rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		if err := c.count(); err != nil {
			return err
		}
		return c.copyLink(sdir, name, ddir, dname, rel, &st)
	case unix.S_IFREG, unix.S_IFDIR:
		flags := unix.O_RDONLY
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			flags |= unix.O_DIRECTORY
		}
		src, err := openSame(sdir, name, flags, &st, rel)
		if err != nil {
			return err
		}
		return c.copyOpened(src, &st, ddir, dname, rel, depth)
	}
	c.skip(rel)
	return nil
}

// count counts one more entry, and refuses the one past the bound.
func (c *copier) count() error {
	if c.entries.Add(1) > maxCopyEntries {
		return fmt.Errorf("more than %d files: refused", maxCopyEntries)
	}
	return nil
}

// skip notes rel, a device, FIFO or socket, as not copied.
func (c *copier) skip(rel string) {
	c.mu.Lock()
	c.skipped = append(c.skipped, rel)
	c.mu.Unlock()
}

// copyOpened copies the open regular file or directory src (st) to dname
// in ddir, and closes src.
func (c *copier) copyOpened(src int, st *unix.Stat_t, ddir int, dname, rel string, depth int) error {
	if err := c.count(); err != nil {
		unix.Close(src)
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return c.copyFile(src, ddir, dname, rel, st)
	}
	if depth >= maxCopyDepth {
		unix.Close(src)
		return fmt.Errorf("%s: more than %d directory levels: refused", rel, maxCopyDepth)
	}
	return c.copyDir(src, ddir, dname, rel, st, depth)
}

// copyTop copies the file or directory that the O_PATH descriptor fd (a
// resolved path) stands for.
func (c *copier) copyTop(fd int, ddir int, dname, rel string) error {
	src, st, err := openTop(fd, rel)
	if err != nil {
		return err
	}
	return c.copyOpened(src, &st, ddir, dname, rel, 0)
}

// copyAll is copyTop, and waits for the workers to copy what is left:
// the first failure of any is the copy's. skipped is sorted.
func (c *copier) copyAll(fd int, ddir int, dname, rel string) error {
	c.fail(c.copyTop(fd, ddir, dname, rel))
	c.work.wait(c)
	slices.Sort(c.skipped)
	return c.err
}

// openTop opens for reading the file or directory that the O_PATH
// descriptor fd (a resolved path, rel) stands for, and checks it is the
// file fd holds (not one swapped in since): cp's and tar's first step.
func openTop(fd int, rel string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, st, changed(rel, err)
	}
	var (
		sfd int
		err error
	)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		sfd, err = unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	case unix.S_IFREG:
		// Reopened through our own /proc/self/fd: the very file resolved.
		sfd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	default:
		return -1, st, fmt.Errorf("%s is not a regular file, directory or symlink: not copied", rel)
	}
	if err != nil {
		return -1, st, changed(rel, err)
	}
	var now unix.Stat_t
	if unix.Fstat(sfd, &now) != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(sfd)
		return -1, st, fmt.Errorf("%s: %w", rel, errChanged)
	}
	return sfd, st, nil
}

// openSame opens name in dir with flags and O_NOFOLLOW, and checks it is
// the file st describes (not one swapped in since). The descriptor is a
// plain one, not an *os.File: a file's data is copied by the kernel
// (copyData), and a runtime poller has nothing to do with it.
func openSame(dir int, name string, flags int, st *unix.Stat_t, rel string) (int, error) {
	fd, err := unix.Openat(dir, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, changed(rel, err)
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", rel, errChanged)
	}
	return fd, nil
}

// copyFile creates dname in ddir and copies there the data of src (which
// it closes), with src's mode and times.
func (c *copier) copyFile(src int, ddir int, dname, rel string, st *unix.Stat_t) error {
	defer unix.Close(src)
	dstRel := c.dst(rel)
	dst, err := createFile(ddir, dname, dstRel)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	if err := copyData(dst, src); err != nil {
		return fmt.Errorf("copy %s to %s: %w", rel, dstRel, err)
	}
	return setMeta(dst, st, dstRel)
}

// createFile creates dname in ddir for writing. An existing regular file
// is truncated; an existing symlink is replaced, never followed.
func createFile(ddir int, dname, rel string) (int, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(ddir, dname, flags|unix.O_EXCL, 0o600)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if unix.Fstatat(ddir, dname, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Unlinkat(ddir, dname, 0)
			fd, err = unix.Openat(ddir, dname, flags|unix.O_EXCL, 0o600)
		} else {
			fd, err = unix.Openat(ddir, dname, flags|unix.O_TRUNC|unix.O_NONBLOCK, 0o600)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("create %s: %w", rel, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("create %s: it exists and is not a regular file", rel)
	}
	return fd, nil
}

// setMeta gives fd the mode (without set-id bits) and times of st.
func setMeta(fd int, st *unix.Stat_t, rel string) error {
	if err := unix.Fchmod(fd, st.Mode&0o1777); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set the times of %s: %w", rel, err)
	}
	return nil
}

func (c *copier) copyLink(sdir int, name string, ddir int, dname, rel string, st *unix.Stat_t) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(sdir, name, buf)
	if err != nil {
		return changed(rel, err)
	}
	if n >= len(buf) {
		return fmt.Errorf("%s: a symlink target longer than %d bytes: refused", rel, unix.PathMax)
	}
	err = unix.Symlinkat(string(buf[:n]), ddir, dname)
	if err == unix.EEXIST {
		var old unix.Stat_t
		if unix.Fstatat(ddir, dname, &old, unix.AT_SYMLINK_NOFOLLOW) == nil && old.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Unlinkat(ddir, dname, 0)
			err = unix.Symlinkat(string(buf[:n]), ddir, dname)
		}
	}
	if err != nil {
		return fmt.Errorf("create the symlink %s: %w", c.dst(rel), err)
	}
	unix.UtimesNanoAt(ddir, dname, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

// copyDir creates dname in ddir, the copy of the directory src (which it
// closes), and copies its entries there, some maybe on other workers
// (copyWork.spread); the last to finish gives the copy src's mode and
// times. It returns the copy's first failure so far.
func (c *copier) copyDir(src int, ddir int, dname, rel string, st *unix.Stat_t, depth int) error {
	if err := unix.Mkdirat(ddir, dname, 0o700); err != nil && err != unix.EEXIST {
		unix.Close(src)
		return fmt.Errorf("create the directory %s: %w", c.dst(rel), err)
	}
	dfd, err := unix.Openat(ddir, dname, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(src)
		return fmt.Errorf("open the directory %s: %w", c.dst(rel), err)
	}
	d := &dirCopy{src: os.NewFile(uintptr(src), rel), sfd: src, dfd: dfd, st: *st, rel: rel, depth: depth}
	d.refs.Store(1) // the listing's
	if err := unix.Fchmod(dfd, 0o700); err != nil {
		c.fail(fmt.Errorf("chmod %s: %w", c.dst(rel), err))
	} else {
		c.fail(c.listDir(d))
	}
	c.release(d)
	return c.failed()
}

// listDir reads the entries of d and has them copied, in chunks.
func (c *copier) listDir(d *dirCopy) error {
	for {
		names, err := d.src.Readdirnames(1024)
		for len(names) > 0 && c.failed() == nil {
			n := min(len(names), chunkNames)
			if err := c.work.spread(c, chunk{dir: d, names: names[:n]}); err != nil {
				return err
			}
			names = names[n:]
		}
		if err == io.EOF || c.failed() != nil {
			return nil
		}
		if err != nil {
			return changed(d.rel, err)
		}
	}
}

// copyChunk copies the entries ch names.
func (c *copier) copyChunk(ch chunk) error {
	d := ch.dir
	for _, n := range ch.names {
		if err := c.failed(); err != nil {
			return err
		}
		if err := c.copyEntry(d.sfd, n, d.dfd, n, d.rel+"/"+n, d.depth+1); err != nil {
			return err
		}
	}
	return nil
}

// release drops a hold on d; the last gives the copy its mode and times
// (once every entry exists: creating one changes them) and closes both.
func (c *copier) release(d *dirCopy) {
	if d.refs.Add(-1) != 0 {
		return
	}
	if c.failed() == nil {
		c.fail(setMeta(d.dfd, &d.st, c.dst(d.rel)))
	}
	unix.Close(d.dfd)
	d.src.Close()
}

// fail records err, if it is the copy's first failure.
func (c *copier) fail(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// failed returns the copy's first failure so far.
func (c *copier) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// rootFD opens the running sandbox's root as its command sees it (the
// caller closes it): where every path of cp is resolved.
func (s *Sandbox) rootFD() (int, error) {
	t, err := s.target()
	if err != nil {
		return -1, err
	}
	return sandboxRoot(t)
}

// changed words an error of the source side: a file that vanished or
// became something else is errChanged.
func changed(rel string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s: %w (%v)", rel, errChanged, err)
	}
	return fmt.Errorf("%s: %w", rel, err)
}

// CopyOut copies src, a file, directory tree or symlink inside the
// running sandbox (a symlink named by src is followed, inside the
// sandbox's view), to hostDest: into it if it is a directory, else as it.
// It returns the paths of the devices, FIFOs and sockets it skipped.
func (s *Sandbox) CopyOut(src, hostDest string) (skipped []string, err error) {
	root, err := s.rootFD()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	if b := path.Base(src); b == "/" || b == "." {
		return nil, fmt.Errorf("copy %s out of the sandbox: name a directory or file below the root", src)
	}
	sfd, err := openIn(root, src, unix.O_PATH)
	if err != nil {
		return nil, fmt.Errorf("copy %s out of the sandbox: %w", src, err)
	}
	defer unix.Close(sfd)
	host := func(p string, fl int) (int, error) { return unix.Open(p, fl|unix.O_CLOEXEC, 0) }
	ddir, dname, err := copyTarget(host, hostDest, path.Base(src))
	if err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", src, hostDest, err)
	}
	defer unix.Close(ddir)
	c := newCopier(src, path.Join(hostDest, dnameRel(hostDest, dname, path.Base(src))), copyWorkers())
	if err := c.copyAll(sfd, ddir, dname, src); err != nil {
		return c.skipped, fmt.Errorf("copy %s out of the sandbox: %w", src, err)
	}
	return c.skipped, nil
}

// CopyIn copies hostSrc, a host file, directory tree or symlink, to dest
// inside the running sandbox: into it if it is a directory there, else
// as it. dest is resolved in the sandbox's root; what is created is the
// caller's, as the sandbox's maps show it.
func (s *Sandbox) CopyIn(hostSrc, dest string) (skipped []string, err error) {
	root, err := s.rootFD()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	host := func(p string, fl int) (int, error) { return unix.Open(p, fl|unix.O_CLOEXEC, 0) }
	if b := path.Base(hostSrc); b == "/" || b == "." || b == ".." {
		return nil, fmt.Errorf("copy %s: name a directory or file by its name", hostSrc)
	}
	sfd, err := host(hostSrc, unix.O_PATH)
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", hostSrc, err)
	}
	defer unix.Close(sfd)
	ddir, dname, err := copyTarget(func(p string, fl int) (int, error) { return openIn(root, p, fl) }, dest, path.Base(hostSrc))
	if err != nil {
		return nil, fmt.Errorf("copy into the sandbox at %s: %w", dest, err)
	}
	defer unix.Close(ddir)
	c := newCopier(hostSrc, path.Join(dest, dnameRel(dest, dname, path.Base(hostSrc))), copyWorkers())
	if err := c.copyAll(sfd, ddir, dname, hostSrc); err != nil {
		return c.skipped, fmt.Errorf("copy %s into the sandbox: %w", hostSrc, err)
	}
	return c.skipped, nil
}

// dnameRel is how copyTarget's choice reads below dest: the copy is
// dest/base when it went into dest, else dest itself.
func dnameRel(dest, dname, base string) string {
	if dname == base && path.Base(dest) != base {
		return base
	}
	if dname == path.Base(dest) {
		return "."
	}
	return base
}
