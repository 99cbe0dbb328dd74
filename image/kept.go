package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Named writable layers (nsbox run --image REF --keep NAME) live in the
// store, beside the layers they go over:
//
//	kept/NAME/        image (the image's id), upper/, work/ (see the CLI)
//	kept/NAME.lock    flock: exclusive while a sandbox runs on it
//
// A kept layer belongs to one image; Prune removes those whose image is
// no longer stored (no lower layers to go over), RemoveKept one by name.
// Neither touches a layer a sandbox holds.

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// ValidKeptName reports whether name can name a kept layer: 1 to 64 of
// [A-Za-z0-9_.-], the first a letter or digit (a file name, no path).
func ValidKeptName(name string) bool {
	if name == "" || len(name) > 64 || !onlyChars(name[:1], alnum, 1, 1) {
		return false
	}
	return onlyChars(name, tagChars, 1, 64)
}

// ErrKeptInUse is returned for a kept layer a running sandbox holds.
var ErrKeptInUse = errors.New("in use by a running sandbox")

// Kept is a named writable layer.
type Kept struct {
	Name  string
	Image string // the id of the image it goes over, "" if not stamped yet
	Size  int64  // bytes of the regular files in its upper layer (those the caller can see)
	InUse bool
}

func (s *Store) keptDir(name string) string { return filepath.Join(s.Dir, "kept", name) }

// HoldKept creates the store's directory for the kept layer name, if
// need be, and locks it for a sandbox's run: the lock is released when
// the returned file is closed (or the process and its heirs end).
func (s *Store) HoldKept(name string) (dir string, lock *os.File, err error) {
	if !ValidKeptName(name) {
		return "", nil, fmt.Errorf("kept layer name %q is not 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit", name)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "kept"), 0o700); err != nil {
		return "", nil, fmt.Errorf("create the image store: %w", err)
	}
	lock, err = lockFile(s.keptDir(name)+".lock", unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return "", nil, fmt.Errorf("kept layer %s: %w", name, ErrKeptInUse)
	}
	if err != nil {
		return "", nil, fmt.Errorf("kept layer %s: lock: %w", name, err)
	}
	return s.keptDir(name), lock, nil
}

// KeptLayers lists the kept layers, by name.
func (s *Store) KeptLayers() ([]Kept, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "kept"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Kept
	for _, e := range ents {
		if !e.IsDir() || !ValidKeptName(e.Name()) {
			continue
		}
		k := Kept{Name: e.Name(), Size: treeSize(filepath.Join(s.keptDir(e.Name()), "upper"))}
		if b, err := os.ReadFile(filepath.Join(s.keptDir(e.Name()), "image")); err == nil {
			k.Image = strings.TrimSpace(string(b))
		}
		if l, err := lockFile(s.keptDir(e.Name())+".lock", unix.LOCK_SH|unix.LOCK_NB); err == nil {
			l.Close()
		} else {
			k.InUse = true
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveKept removes the kept layer name, refusing (ErrKeptInUse) while
// a sandbox runs on it, and returns the bytes freed.
func (s *Store) RemoveKept(name string) (int64, error) {
	if !ValidKeptName(name) {
		return 0, fmt.Errorf("kept layer name %q is not a name; fix: see nsbox image ls", name)
	}
	dir := s.keptDir(name)
	if _, err := os.Lstat(dir); err != nil {
		return 0, fmt.Errorf("kept layer %s does not exist; fix: see nsbox image ls", name)
	}
	return s.removeKept(name)
}

func (s *Store) removeKept(name string) (int64, error) {
	dir := s.keptDir(name)
	lock, err := lockFile(dir+".lock", unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return 0, fmt.Errorf("kept layer %s: %w; fix: end the sandbox first (nsbox ps)", name, ErrKeptInUse)
	}
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	size := treeSize(filepath.Join(dir, "upper"))
	// Renamed first, so a half-removed layer is never taken for a layer.
	gone := filepath.Join(s.Dir, "kept", ".removing-"+name)
	if err := os.Rename(dir, gone); err != nil {
		return 0, fmt.Errorf("kept layer %s: %w", name, err)
	}
	if err := s.removeTree(gone); err != nil {
		return 0, fmt.Errorf("kept layer %s: remove: %w", name, err)
	}
	os.Remove(lock.Name())
	return size, nil
}

// pruneKept removes the kept layers whose image is not stored (ids: the
// stored images' ids) and that no sandbox holds, and what an interrupted
// removal left.
func (s *Store) pruneKept(ids map[string]bool) int64 {
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "kept"))
	var freed int64
	for _, e := range ents {
		name := e.Name()
		if rest, ok := strings.CutPrefix(name, ".removing-"); ok && e.IsDir() && ValidKeptName(rest) {
			if l, err := lockFile(s.keptDir(rest)+".lock", unix.LOCK_EX|unix.LOCK_NB); err == nil {
				s.removeTree(filepath.Join(s.Dir, "kept", name))
				l.Close()
			}
			continue
		}
		if !e.IsDir() || !ValidKeptName(name) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.keptDir(name), "image"))
		if err == nil && ids[strings.TrimSpace(string(b))] {
			continue
		}
		if n, err := s.removeKept(name); err == nil {
			freed += n
		}
	}
	return freed
}

// treeSize adds up the sizes of the regular files below dir that the
// caller can see, without following symlinks.
func treeSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
