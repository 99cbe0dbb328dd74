package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/sandbox"
)

// --keep DIR: an image run's writable layer in a directory of the
// caller's instead of a throwaway tmpfs, so what the command writes
// outside the current directory (installed packages, /root's dot files)
// is there again on the next run with the same DIR. DIR holds:
//
//	image   the image's id (its config digest), written on first use
//	upper/  overlayfs's upper layer: the files written, as the sandbox's
//	        ids map them (subordinate ids for users other than root inside)
//	work/   overlayfs's scratch directory
//
// The layer only makes sense over the layers it was written on, so a DIR
// kept for one image is refused for another: a changed lower layer under
// a kept upper is what overlayfs documents as undefined.

// keepLayer, with --keep, checks DIR against spec's writable binds
// (keepOutOfBinds), prepares it and turns spec's root (the image's
// throwaway overlay) into the overlay with its upper layer in DIR. It runs
// on the finished mount list, before anything is created.
func (f *imageFlags) keepLayer(spec *sandbox.Spec) error {
	if f.keep == "" {
		return nil
	}
	if err := f.keepOutOfBinds(spec); err != nil {
		return err
	}
	for i, m := range spec.Mounts {
		if m.Type == sandbox.MountTmpOverlay && m.Destination == "/" && m.Flag == f.root.Flag {
			kept, err := f.keepIn(f.keep)
			if err != nil {
				return err
			}
			spec.Mounts[i] = kept
			return nil
		}
	}
	return fmt.Errorf("--keep %s: the image's root layer is not in the sandbox's mounts (an nsbox bug)", f.keep)
}

// keepIn prepares dir and returns the root overlay with its upper layer
// there.
func (f *imageFlags) keepIn(dir string) (sandbox.Mount, error) {
	var none sandbox.Mount
	dir, err := filepath.Abs(dir)
	if err != nil {
		return none, fmt.Errorf("--keep %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return none, fmt.Errorf("--keep %s: %w; fix: give a directory you can create", dir, err)
	}
	stamp := filepath.Join(dir, "image")
	b, err := os.ReadFile(stamp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			return none, fmt.Errorf("--keep %s: not empty and not a kept layer (no %s); fix: give an empty or new directory", dir, stamp)
		}
		if err := os.WriteFile(stamp, []byte(f.img.ID+"\n"), 0o600); err != nil {
			return none, fmt.Errorf("--keep %s: %w", dir, err)
		}
	case err != nil:
		return none, fmt.Errorf("--keep %s: %w", dir, err)
	case strings.TrimSpace(string(b)) != f.img.ID:
		return none, fmt.Errorf("--keep %s: holds the writes of image %.19s, not of %s (%.19s); fix: another DIR for this image, or remove %s",
			dir, strings.TrimPrefix(strings.TrimSpace(string(b)), "sha256:"), f.img.Ref, strings.TrimPrefix(f.img.ID, "sha256:"), dir)
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{dir, upper, work} {
		if st, err := os.Lstat(d); err == nil && !st.IsDir() {
			return none, fmt.Errorf("--keep %s: %s is not a directory (a symlink?); fix: remove %s", dir, d, dir)
		}
	}
	// upper/ is the sandbox's / (its mode shows there: users other
	// than root inside must get through it); work/ is overlayfs's alone.
	for d, mode := range map[string]os.FileMode{upper: 0o755, work: 0o700} {
		if err := os.Mkdir(d, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return none, fmt.Errorf("--keep %s: %w", dir, err)
		}
	}
	return sandbox.Mount{Type: sandbox.MountOverlay, Destination: "/", Lower: f.root.Lower, Upper: upper, Work: work, Flag: f.root.Flag + " --keep " + dir}, nil
}

// keepOutOfBinds refuses a --keep DIR that a writable bind of spec
// overlaps (DIR inside the bound directory, or the bound directory inside
// DIR): the command could swap upper/ for a symlink, or change what the
// next run starts from behind overlayfs's back.
func (f *imageFlags) keepOutOfBinds(spec *sandbox.Spec) error {
	dir, err := filepath.Abs(f.keep)
	if err != nil {
		return fmt.Errorf("--keep %s: %w", f.keep, err)
	}
	within := func(p, root string) bool { return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/") }
	for _, m := range spec.Mounts {
		if m.Type != sandbox.MountBind || m.ReadOnly || m.Source == "" {
			continue
		}
		if within(dir, m.Source) || within(m.Source, dir) {
			return usageError{fmt.Sprintf("--keep %s: %s is bound writable into the sandbox (%s), which could then change the kept layer; fix: a --keep directory apart from every writable bind", dir, m.Source, m.Flag)}
		}
	}
	return nil
}
