package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Where the kernel refuses overlayfs (OverlayRefused), an image runs on
// a copy: CopyRoot merges its layers, bottom first, into a private
// directory of the store's tmp/ (whiteouts remove what they name; the
// files keep their modes, times and, with Store.IDs, owners), which the
// sandbox gets as its writable root. That costs the image's size in disk
// and its copying time on every run (hard links become copies; io.Copy
// uses copy_file_range(2), which reflinks on btrfs and xfs). The copy is
// locked while the run lasts (tmp/root-*.lock) and removed by the next
// CopyRoot or Prune once nothing holds it.

// CopyRoot makes a private, writable copy of img's layers and returns its
// directory, the lock that marks it in use (held until the run ends:
// close it, or let the process and its heirs end) and the bytes copied.
func (s *Store) CopyRoot(img *Image) (dir string, lock *os.File, size int64, err error) {
	if err := s.mkdirs(); err != nil {
		return "", nil, 0, err
	}
	s.sweepCopies()
	dir, err = os.MkdirTemp(filepath.Join(s.Dir, "tmp"), "root-")
	if err != nil {
		return "", nil, 0, fmt.Errorf("copy image %s: %w", img.Ref, err)
	}
	if lock, err = lockFile(dir+".lock", unix.LOCK_EX); err != nil {
		os.Remove(dir)
		return "", nil, 0, fmt.Errorf("copy image %s: %w", img.Ref, err)
	}
	os.Chmod(dir, 0o755) // the sandbox's /
	lowers := s.LowerDirs(img)
	for i, j := 0, len(lowers)-1; i < j; i, j = i+1, j-1 {
		lowers[i], lowers[j] = lowers[j], lowers[i]
	}
	if s.IDs != nil {
		var out []byte
		if out, err = s.helper("merge", append([]string{dir}, lowers...), nil); err == nil {
			err = json.Unmarshal(out, &size)
		}
	} else {
		size, err = mergeLayers(dir, lowers, false)
	}
	if err != nil {
		s.removeTree(dir)
		os.Remove(lock.Name())
		lock.Close()
		return "", nil, 0, fmt.Errorf("copy image %s: %w", img.Ref, err)
	}
	return dir, lock, size, nil
}

// sweepCopies removes the copies no run holds any more.
func (s *Store) sweepCopies() {
	locks, _ := filepath.Glob(filepath.Join(s.Dir, "tmp", "root-*.lock"))
	for _, l := range locks {
		f, err := lockFile(l, unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			continue
		}
		if s.removeTree(strings.TrimSuffix(l, ".lock")) == nil {
			os.Remove(l)
		}
		f.Close()
	}
}

// mergeLayers copies the layer directories layers, bottom first, into
// dst and returns the bytes of file data copied. A layer's whiteout
// (a 0/0 character device) removes what lower layers put at its name.
// Nothing is followed: every entry is opened by descriptor with
// O_NOFOLLOW below its parent's descriptor.
func mergeLayers(dst string, layers []string, owners bool) (int64, error) {
	d, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(d)
	m := merger{owners: owners}
	for _, l := range layers {
		src, err := unix.Open(l, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return m.size, err
		}
		err = m.dir(src, d)
		unix.Close(src)
		if err != nil {
			return m.size, fmt.Errorf("layer %s: %w", l, err)
		}
	}
	return m.size, nil
}

type merger struct {
	owners bool
	size   int64
}

// dir merges the directory src into dst, both open descriptors.
func (m *merger) dir(src, dst int) error {
	dup, err := unix.Dup(src)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "layer")
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := m.entry(src, dst, n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

func (m *merger) entry(src, dst int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	mode := st.Mode & unix.S_IFMT
	var old unix.Stat_t
	exists := unix.Fstatat(dst, name, &old, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists && (mode != unix.S_IFDIR || old.Mode&unix.S_IFMT != unix.S_IFDIR) {
		if err := unix.Unlinkat(dst, name, 0); err != nil {
			if err := removeAllAt(dst, name); err != nil {
				return err
			}
		}
		exists = false
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	switch mode {
	case unix.S_IFCHR:
		return nil // a whiteout (done above), or a device: none in a layer
	case unix.S_IFDIR:
		if !exists {
			if err := unix.Mkdirat(dst, name, 0o700); err != nil {
				return err
			}
		}
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		d, err := unix.Openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(d)
		if err := m.dir(s, d); err != nil {
			return err
		}
		if err := m.chown(d, &st); err != nil {
			return err
		}
		if err := unix.Fchmod(d, st.Mode&0o7777); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dst, name, times, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFREG:
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		in := os.NewFile(uintptr(s), name)
		defer in.Close()
		d, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(d), name)
		defer out.Close()
		n, err := io.Copy(out, in)
		m.size += n
		if err != nil {
			return err
		}
		if err := m.chown(d, &st); err != nil {
			return err
		}
		if err := unix.Fchmod(d, st.Mode&0o7777); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dst, name, times, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(src, name, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), dst, name); err != nil {
			return err
		}
		if m.owners {
			return unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	case unix.S_IFIFO:
		if err := unix.Mknodat(dst, name, unix.S_IFIFO|st.Mode&0o777, 0); err != nil {
			return err
		}
		if m.owners {
			return unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	}
	return errors.New("an entry of an unknown type")
}

// chown gives fd the owner of st, when owners are kept.
func (m *merger) chown(fd int, st *unix.Stat_t) error {
	if !m.owners {
		return nil
	}
	return unix.Fchown(fd, int(st.Uid), int(st.Gid))
}
