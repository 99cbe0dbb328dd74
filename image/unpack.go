package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteoutPrefix marks a deleted entry in an OCI layer (.wh.NAME) and
// opaqueMarker a directory whose lower contents are hidden.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// unpackStats is what unpacking one layer found.
type unpackStats struct {
	Bytes   int64 // bytes of file data written (holes not counted)
	Devices int   // device nodes skipped
	// XattrsSkipped counts extended attributes not set (attrs.go).
	XattrsSkipped int `json:",omitempty"`
	// Opaque lists the layer's opaque directories (cleaned, relative to
	// the layer root), for the caller to expand into whiteouts.
	Opaque []string
	// dirs are the directories' times, for setDirTimes after the layer.
	dirs []dirTime
}

// unpackLayer extracts the uncompressed tar stream r into the directory
// rootFD (which it does not close), checks that the stream's sha256 is
// diffID ("sha256:…"), and reads r to its end.
//
// The layer is untrusted: its entry names and link targets are never
// joined into host paths. Every entry is created relative to rootFD by a
// component walk that opens each parent with O_NOFOLLOW|O_DIRECTORY, so a
// name with "..", a symlink (in this layer) on the way, or a parent that
// is not a directory is refused instead of followed; an absolute name is
// taken as relative to the layer root, as Docker does. Hard links resolve
// their target the same way, inside the layer, and are made with
// linkat(2) without following a final symlink. Files keep their
// permission bits (setuid too: the sandbox mounts them nosuid and runs
// with no_new_privs) but not their owners: they belong to the caller.
// Directories get the owner's rwx added, so the store can always remove
// them. Device nodes are skipped (counted in the stats), GNU sparse
// entries refused, and runs of zero bytes written as holes, so a layer
// of compressed zeros cannot fill the disk.
//
// Whiteouts (.wh.NAME) become overlayfs whiteouts (a 0/0 character
// device, which unprivileged users may create since Linux 5.8); opaque
// markers are returned in the stats.
func unpackLayer(rootFD int, r io.Reader, diffID string) (unpackStats, error) {
	return unpackLayerAs(rootFD, r, diffID, false)
}

// unpackLayerAs is unpackLayer; with owners, each entry also gets the
// owner and group of its header (the caller runs in a user namespace
// that maps them, see owners.go).
func unpackLayerAs(rootFD int, r io.Reader, diffID string, owners bool) (unpackStats, error) {
	var st unpackStats
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	u := unpacker{root: rootFD, buf: make([]byte, 128<<10), owners: owners}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read the layer: %w", err)
		}
		if err := u.entry(hdr, tr, &st); err != nil {
			return st, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return st, fmt.Errorf("read the layer: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); diffID != "" && got != diffID {
		return st, fmt.Errorf("layer content is %s, not %s as the image's configuration says", got, diffID)
	}
	return st, nil
}

type unpacker struct {
	root   int
	buf    []byte
	owners bool // chown entries to their header's ids
}

// chown gives name in dir the header's owner, when owners are kept. It
// runs before any chmod: chown(2) clears setuid and setgid.
func (u *unpacker) chown(dir int, name string, hdr *tar.Header) error {
	if !u.owners {
		return nil
	}
	if err := unix.Fchownat(dir, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("owner %d:%d is not in the id map (your subordinate ids): %w", hdr.Uid, hdr.Gid, err)
		}
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// SplitEntryName turns an archive entry's name into its components
// relative to the archive's root, without empty and "." ones; ok is false
// for a name that climbs with "..". Layers and image archives (image/fetch)
// are read through it.
func SplitEntryName(name string) (comps []string, ok bool) {
	var out []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}

// openDir opens the directory at comps below the root, creating missing
// directories (0755) on the way, never following a symlink. The caller
// closes the fd.
func (u *unpacker) openDir(comps []string) (int, error) {
	fd, err := unix.Openat(u.root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range comps {
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				return -1, fmt.Errorf("%s is a symlink or not a directory: a layer may not write through it", c)
			}
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// clearEntry removes what is at name in dir, unless both it and the new entry
// are directories (a later entry for a directory updates it).
func clearEntry(dir int, name string, newIsDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if newIsDir {
			return nil
		}
		return removeAllAt(dir, name)
	}
	return unix.Unlinkat(dir, name, 0)
}

// removeAllAt removes the directory name in dir and everything below it,
// by descriptor.
func removeAllAt(dir int, name string) error {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.Fchmod(fd, 0o700)
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	for _, n := range names {
		if err := unix.Unlinkat(fd, n, 0); err != nil {
			if err = removeAllAt(fd, n); err != nil {
				f.Close()
				return err
			}
		}
	}
	f.Close()
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader, st *unpackStats) error {
	comps, ok := SplitEntryName(hdr.Name)
	if !ok {
		return errors.New("the name climbs out of the layer with ..")
	}
	if len(comps) == 0 {
		return nil // the root itself: its mode is the store's
	}
	if hdr.Typeflag == tar.TypeGNUSparse || hasSparseRecords(hdr) {
		return errors.New("a GNU sparse file: not supported in image layers")
	}
	dir, err := u.openDir(comps[:len(comps)-1])
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	name := comps[len(comps)-1]
	if name == opaqueMarker {
		st.Opaque = append(st.Opaque, path.Join(comps[:len(comps)-1]...))
		return nil
	}
	if strings.HasPrefix(name, whiteoutPrefix) {
		gone := strings.TrimPrefix(name, whiteoutPrefix)
		if gone == "" || gone == "." || gone == ".." || strings.HasPrefix(gone, whiteoutPrefix) {
			return errors.New("a whiteout that names nothing")
		}
		if err := clearEntry(dir, gone, false); err != nil {
			return err
		}
		return unix.Mknodat(dir, gone, unix.S_IFCHR|0o000, 0)
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := clearEntry(dir, name, true); err != nil {
			return err
		}
		if err := unix.Mkdirat(dir, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		if err := u.chown(dir, name, hdr); err != nil {
			return err
		}
		if err := u.dirXattrs(dir, name, hdr, st); err != nil {
			return err
		}
		st.dirs = append(st.dirs, dirTime{comps, hdr.ModTime})
		return unix.Fchmodat(dir, name, mode|0o700, 0)
	case tar.TypeReg, tar.TypeRegA:
		if err := clearEntry(dir, name, false); err != nil {
			return err
		}
		fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), name)
		n, err := u.writeSparse(f, r, hdr.Size)
		st.Bytes += n
		if err == nil {
			err = u.chown(dir, name, hdr)
		}
		if err == nil {
			err = u.setXattrs(fd, hdr.PAXRecords, st)
		}
		if err == nil {
			err = f.Chmod(os.FileMode(mode&0o777) | modeBits(mode))
		}
		if err == nil {
			err = unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(hdr.ModTime.UnixNano()), unix.NsecToTimeval(hdr.ModTime.UnixNano())})
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if err := clearEntry(dir, name, false); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, dir, name); err != nil {
			return err
		}
		return u.chown(dir, name, hdr)
	case tar.TypeLink:
		tcomps, ok := SplitEntryName(hdr.Linkname)
		if !ok || len(tcomps) == 0 {
			return fmt.Errorf("hard link to %q, outside the layer", hdr.Linkname)
		}
		tdir, err := u.openExistingDir(tcomps[:len(tcomps)-1])
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tdir)
		var tst unix.Stat_t
		if err := unix.Fstatat(tdir, tcomps[len(tcomps)-1], &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("hard link target %q is not in this layer: %w", hdr.Linkname, err)
		}
		if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("hard link to the directory %q", hdr.Linkname)
		}
		if err := clearEntry(dir, name, false); err != nil {
			return err
		}
		// Flags 0: a final symlink is linked itself, never followed.
		return unix.Linkat(tdir, tcomps[len(tcomps)-1], dir, name, 0)
	case tar.TypeFifo:
		if err := clearEntry(dir, name, false); err != nil {
			return err
		}
		if err := unix.Mknodat(dir, name, unix.S_IFIFO|mode&0o777, 0); err != nil {
			return err
		}
		return u.chown(dir, name, hdr)
	case tar.TypeChar, tar.TypeBlock:
		st.Devices++
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
}

// dirXattrs sets a directory's extended attributes, if its header has
// any, through a descriptor opened without following a symlink.
func (u *unpacker) dirXattrs(dir int, name string, hdr *tar.Header, st *unpackStats) error {
	if len(hdr.PAXRecords) == 0 {
		return nil
	}
	if names, skipped := u.xattrs(hdr.PAXRecords); len(names) == 0 {
		st.XattrsSkipped += skipped
		return nil
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return u.setXattrs(fd, hdr.PAXRecords, st)
}

// openExistingDir opens the directory at comps without creating or
// following anything.
func (u *unpacker) openExistingDir(comps []string) (int, error) {
	if len(comps) == 0 {
		return unix.Openat(u.root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	return unix.Openat2(u.root, strings.Join(comps, "/"), &how)
}

// modeBits carries setuid, setgid and sticky over into an os.FileMode.
func modeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// hasSparseRecords reports PAX records of the GNU sparse formats.
func hasSparseRecords(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// writeSparse copies size bytes of r to f, seeking over blocks of zeros
// so they stay holes, and returns the bytes written.
func (u *unpacker) writeSparse(f *os.File, r io.Reader, size int64) (int64, error) {
	var written, off int64
	for off < size {
		n := int64(len(u.buf))
		if size-off < n {
			n = size - off
		}
		b := u.buf[:n]
		if _, err := io.ReadFull(r, b); err != nil {
			return written, fmt.Errorf("read file data: %w", err)
		}
		if isZero(b) {
			off += n
			continue
		}
		m, err := f.WriteAt(b, off)
		written += int64(m)
		if err != nil {
			return written, err
		}
		off += n
	}
	return written, f.Truncate(size)
}

// zeros is what isZero compares with, as long as u.buf. An array, not a
// make: it costs nothing until an unpack reads it (a make allocated
// 128 KiB at every start of nsbox).
var zeros [128 << 10]byte

func isZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }
