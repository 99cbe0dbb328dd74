package sandbox

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CopyFrom writes src, a file or directory tree inside the running
// sandbox (a symlink named by src is followed inside the sandbox's view),
// to w as a tar stream, as docker cp NAME:SRC - does: names relative to
// src's parent, modes (without set-id bits) and times kept, every entry
// owned by the caller's uid and gid. Symlinks inside the tree are stored
// as symlinks. It returns the devices, FIFOs and sockets it left out.
func (s *Sandbox) CopyFrom(src string, w io.Writer) (skipped []string, err error) {
	root, err := s.rootFD()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	fd, err := openIn(root, src, unix.O_PATH)
	if err != nil {
		return nil, fmt.Errorf("copy %s out of the sandbox: %w", src, err)
	}
	defer unix.Close(fd)
	base := path.Base(src)
	if base == "/" || base == "." {
		return nil, fmt.Errorf("copy %s out of the sandbox: name a directory or file below the root", src)
	}
	c := &copier{}
	tw := tar.NewWriter(w)
	if err := c.tarTop(tw, fd, base); err != nil {
		return c.skipped, fmt.Errorf("copy %s out of the sandbox: %w", src, err)
	}
	if err := tw.Close(); err != nil {
		return c.skipped, fmt.Errorf("copy %s out of the sandbox: %w", src, err)
	}
	return c.skipped, nil
}

// CopyTo unpacks the tar stream r into the directory dest inside the
// running sandbox, as docker cp - NAME:DEST does. dest must exist; it is
// resolved in the sandbox's root, and every entry is created below it by
// descriptor: names with "..", absolute names and links planted inside
// cannot lead outside it. Regular files, directories and symlinks are
// created (owned by the caller, as the sandbox maps it); hard links,
// devices and FIFOs are skipped and returned.
func (s *Sandbox) CopyTo(r io.Reader, dest string) (skipped []string, err error) {
	root, err := s.rootFD()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	dir, err := openIn(root, dest, unix.O_RDONLY|unix.O_DIRECTORY)
	if err == unix.ENOENT {
		return nil, fmt.Errorf("copy into the sandbox at %s: no such directory there; fix: create it first", dest)
	}
	if err != nil {
		return nil, fmt.Errorf("copy into the sandbox at %s: %w", dest, err)
	}
	defer unix.Close(dir)
	c := &copier{}
	if err := c.untar(tar.NewReader(r), dir); err != nil {
		return c.skipped, fmt.Errorf("copy into the sandbox at %s: %w", dest, err)
	}
	return c.skipped, nil
}

// tarTop writes the file or directory the O_PATH descriptor fd stands
// for, as name.
func (c *copier) tarTop(tw *tar.Writer, fd int, name string) error {
	sfd, st, err := openTop(fd, name)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(sfd), name)
	defer src.Close()
	return c.tarOpened(tw, src, &st, name, 0)
}

// header is the tar header of st, named name, owned by the caller.
func header(st *unix.Stat_t, name string, typ byte) *tar.Header {
	return &tar.Header{
		Typeflag: typ, Name: name, Mode: int64(st.Mode & 0o1777),
		Uid: os.Getuid(), Gid: os.Getgid(), Format: tar.FormatPAX,
		ModTime: time.Unix(st.Mtim.Unix()), AccessTime: time.Unix(st.Atim.Unix()),
	}
}

func (c *copier) tarOpened(tw *tar.Writer, src *os.File, st *unix.Stat_t, name string, depth int) error {
	if err := c.count(); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		h := header(st, name, tar.TypeReg)
		h.Size = st.Size
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		// Exactly the size announced: a file that shrank or grew since
		// is an error, not a corrupt archive.
		n, err := io.CopyN(tw, src, st.Size)
		if err == io.EOF || n < st.Size {
			return fmt.Errorf("%s: %w (it shrank)", name, errChanged)
		}
		return err
	}
	if depth >= maxCopyDepth {
		return fmt.Errorf("%s: more than %d directory levels: refused", name, maxCopyDepth)
	}
	if err := tw.WriteHeader(header(st, name+"/", tar.TypeDir)); err != nil {
		return err
	}
	for {
		names, err := src.Readdirnames(1024)
		for _, n := range names {
			if err := c.tarEntry(tw, int(src.Fd()), n, name+"/"+n, depth+1); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return changed(name, err)
		}
	}
}

func (c *copier) tarEntry(tw *tar.Writer, dir int, n, name string, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return changed(name, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		k, err := unix.Readlinkat(dir, n, buf)
		if err != nil || k >= len(buf) {
			return changed(name, err)
		}
		h := header(&st, name, tar.TypeSymlink)
		h.Linkname = string(buf[:k])
		return tw.WriteHeader(h)
	case unix.S_IFREG, unix.S_IFDIR:
		flags := unix.O_RDONLY
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			flags |= unix.O_DIRECTORY
		}
		sfd, err := openSame(dir, n, flags, &st, name)
		if err != nil {
			return err
		}
		src := os.NewFile(uintptr(sfd), name)
		defer src.Close()
		return c.tarOpened(tw, src, &st, name, depth)
	}
	c.skip(name)
	return nil
}

// dirMeta is a directory's mode and times, set once its entries exist.
type dirMeta struct {
	parts []string
	mode  uint32
	times []unix.Timespec
}

// untar creates the entries of tr below the directory dir.
func (c *copier) untar(tr *tar.Reader, dir int) error {
	var dirs []dirMeta
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the tar stream: %w", err)
		}
		if err := c.count(); err != nil {
			return err
		}
		parts, err := tarParts(h.Name)
		if err != nil {
			return err
		}
		if len(parts) == 0 {
			continue // "./": the directory itself
		}
		parent, err := walkCreate(dir, parts[:len(parts)-1], h.Name)
		if err != nil {
			return err
		}
		err = c.untarEntry(tr, h, parent, parts, &dirs)
		unix.Close(parent)
		if err != nil {
			return err
		}
	}
	// Innermost first, so setting a directory's times is not undone by
	// its subdirectories'.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		fd, err := walkCreate(dir, d.parts, strings.Join(d.parts, "/"))
		if err != nil {
			return err
		}
		unix.Fchmod(fd, d.mode)
		unix.UtimesNanoAt(fd, "", d.times, unix.AT_EMPTY_PATH)
		unix.Close(fd)
	}
	return nil
}

func (c *copier) untarEntry(tr *tar.Reader, h *tar.Header, parent int, parts []string, dirs *[]dirMeta) error {
	name := parts[len(parts)-1]
	times := []unix.Timespec{unix.NsecToTimespec(h.AccessTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	if h.AccessTime.IsZero() {
		times[0] = times[1]
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(parent, name, 0o700); err != nil && err != unix.EEXIST {
			return fmt.Errorf("create the directory %s: %w", h.Name, err)
		}
		*dirs = append(*dirs, dirMeta{parts: parts, mode: uint32(h.Mode) & 0o1777, times: times})
	case tar.TypeReg:
		fd, err := createFile(parent, name, h.Name)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), h.Name)
		defer f.Close()
		if _, err := io.Copy(f, tr); err != nil {
			return fmt.Errorf("write %s: %w", h.Name, err)
		}
		unix.Fchmod(int(f.Fd()), uint32(h.Mode)&0o1777)
		unix.UtimesNanoAt(int(f.Fd()), "", times, unix.AT_EMPTY_PATH)
	case tar.TypeSymlink:
		if len(h.Linkname) >= unix.PathMax || strings.IndexByte(h.Linkname, 0) >= 0 {
			return fmt.Errorf("%s: a symlink target too long or with NUL: refused", h.Name)
		}
		unix.Unlinkat(parent, name, 0)
		if err := unix.Symlinkat(h.Linkname, parent, name); err != nil {
			return fmt.Errorf("create the symlink %s: %w", h.Name, err)
		}
		unix.UtimesNanoAt(parent, name, times, unix.AT_SYMLINK_NOFOLLOW)
	default:
		c.skip(h.Name)
	}
	return nil
}

// tarParts splits an entry's name into components, refusing what would
// leave the destination ("..") or cannot be a name.
func tarParts(name string) ([]string, error) {
	if len(name) >= unix.PathMax || strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("tar entry %.80q: name too long or with NUL: refused", name)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return nil, fmt.Errorf("tar entry %q: names a parent directory: refused", name)
		default:
			parts = append(parts, p)
		}
	}
	if len(parts) > maxCopyDepth {
		return nil, fmt.Errorf("tar entry %.80q: more than %d levels: refused", name, maxCopyDepth)
	}
	return parts, nil
}

// walkCreate opens the directory dir/parts…, one component at a time,
// never following a symlink, creating missing directories.
func walkCreate(dir int, parts []string, what string) (int, error) {
	cur, err := unix.Dup(dir)
	if err != nil {
		return -1, err
	}
	for _, p := range parts {
		next, err := unix.Openat(cur, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(cur, p, 0o755); err == nil || err == unix.EEXIST {
				next, err = unix.Openat(cur, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, fmt.Errorf("%s: the directory %s: %w", what, p, err)
		}
		cur = next
	}
	return cur, nil
}
