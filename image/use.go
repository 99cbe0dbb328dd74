package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned by Remove for an image a running sandbox uses.
var ErrInUse = errors.New("in use by a running sandbox")

// Held is an image a sandbox runs on (Hold): shared flocks on its record
// and layers, on close-on-exec descriptors that never reach the sandbox.
type Held struct{ files []*os.File }

// Release lets go of the image.
func (h *Held) Release() {
	for _, f := range h.files {
		f.Close()
	}
	h.files = nil
}

// FDs are the lock descriptors, for a process that takes over the
// sandbox's supervision and must keep them open.
func (h *Held) FDs() []int {
	var fds []int
	for _, f := range h.files {
		fds = append(fds, int(f.Fd()))
	}
	return fds
}

// Hold takes shared locks on img's record and layers for as long as a
// sandbox runs on them, so Remove and Prune leave them alone, and checks
// that every layer is (still) stored.
func (s *Store) Hold(img *Image) (*Held, error) {
	h := &Held{}
	f, err := lockFile(filepath.Join(s.Dir, "images", recordKey(img.Ref)+".lock"), unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("image %s: lock: %w", img.Ref, err)
	}
	h.files = append(h.files, f)
	for _, l := range img.Layers {
		f, err := s.lockLayer(keyOf(l), unix.LOCK_SH)
		if err != nil {
			h.Release()
			return nil, fmt.Errorf("image %s: lock layer %s: %w", img.Ref, l.DiffID, err)
		}
		h.files = append(h.files, f)
		if _, err := readLayerMeta(s.layerDir(keyOf(l))); err != nil {
			h.Release()
			return nil, fmt.Errorf("image %s: layer %s is no longer stored; fix: nsbox image pull %s", img.Ref, l.DiffID, img.Ref)
		}
	}
	return h, nil
}

// Remove deletes the record of ref (canonical) and the layers no other
// image uses. It refuses (ErrInUse) while a sandbox runs the image.
func (s *Store) Remove(ref string) (freed int64, err error) {
	lock, err := lockFile(filepath.Join(s.Dir, "images", recordKey(ref)+".lock"), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return 0, fmt.Errorf("image %s: %w; fix: end the sandbox first (nsbox ps)", ref, ErrInUse)
	}
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	if err := os.Remove(s.recordPath(ref)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("image %s is not stored; fix: see nsbox image ls", ref)
		}
		return 0, err
	}
	os.Remove(lock.Name())
	return s.Prune()
}

// Prune removes the layers no image record names and that no sandbox
// holds, the kept layers (kept.go) of images no longer stored, and what
// failed pulls and ended copies (copyroot.go) left, and returns the bytes
// freed.
func (s *Store) Prune() (int64, error) {
	imgs, err := s.List()
	if err != nil {
		return 0, err
	}
	used, ids := map[string]bool{}, map[string]bool{}
	for _, img := range imgs {
		ids[img.ID] = true
		for _, l := range img.Layers {
			used[keyOf(l)] = true
		}
	}
	freed := s.pruneKept(ids)
	s.sweepCopies()
	dir := filepath.Join(s.Dir, "layers")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return freed, nil
		}
		return freed, err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		chain := name
		if rest, ok := strings.CutPrefix(name, ".new-"); ok {
			chain, _, _ = strings.Cut(rest, "-")
		} else if used[name] {
			continue
		}
		lock, err := lockFile(filepath.Join(dir, chain+".lock"), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			continue // a pull or a sandbox holds it
		}
		m, _ := readLayerMeta(filepath.Join(dir, name))
		gone := filepath.Join(dir, name)
		if !strings.HasPrefix(name, ".new-") {
			// Renamed first, so no reader ever sees a half-removed layer.
			g := filepath.Join(dir, ".new-"+chain+"-removing")
			if err := os.Rename(gone, g); err != nil {
				lock.Close()
				continue
			}
			gone = g
		}
		if s.removeTree(gone) == nil {
			freed += m.Size
		}
		lock.Close()
	}
	return freed, nil
}

// removeTree removes a layer's directory: in a user namespace with the
// store's id map when its files have owners of their own (Store.IDs).
func (s *Store) removeTree(path string) error {
	if s.IDs != nil {
		_, err := s.helper("remove", []string{path}, nil)
		return err
	}
	return removeTree(path)
}

// removeTree removes the directory path and all below it, by descriptor
// (no symlink in it is followed), making directories writable first.
func removeTree(path string) error {
	parent, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	err = removeAllAt(parent, filepath.Base(path))
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
