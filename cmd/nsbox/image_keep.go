package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/sandbox"
)

// --keep NAME|DIR: an image run's writable layer in a directory of the
// caller's instead of a throwaway tmpfs, so what the command writes
// outside the current directory (installed packages, /root's dot files)
// is there again on the next run with the same NAME or DIR. A NAME (no
// '/') is a layer in the image store (image.Store.HoldKept), listed by
// nsbox image ls, removed by nsbox image rm --keep NAME and by prune
// once its image is gone, locked by the run that uses it; a DIR is
// wherever the caller says. Either holds:
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
	dir, err := f.keepDir()
	if err != nil {
		return err
	}
	if err := f.keepOutOfBinds(spec, dir); err != nil {
		return err
	}
	for i, m := range spec.Mounts {
		if m.Type == sandbox.MountTmpOverlay && m.Destination == "/" && m.Flag == f.root.Flag {
			kept, err := f.keepIn(dir)
			if err != nil {
				return err
			}
			spec.Mounts[i] = kept
			return nil
		}
	}
	return fmt.Errorf("--keep %s: the image's root layer is not in the sandbox's mounts (an nsbox bug)", f.keep)
}

// keepDir is the directory of --keep: a NAME's in the store, locked
// until nsbox (or the supervisor it hands off to) exits, or DIR.
func (f *imageFlags) keepDir() (string, error) {
	if strings.Contains(f.keep, "/") {
		return filepath.Abs(f.keep)
	}
	if !image.ValidKeptName(f.keep) {
		return "", usageError{fmt.Sprintf("--keep %s: not a NAME (1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit) nor a DIR (a path with a '/'); fix: e.g. --keep dev or --keep ./%s", f.keep, f.keep)}
	}
	dir, lock, err := f.store.HoldKept(f.keep)
	if errors.Is(err, image.ErrKeptInUse) {
		return "", fmt.Errorf("--keep %s: the kept layer is in use by a running sandbox (one at a time); fix: end it (nsbox ps), or give another NAME", f.keep)
	}
	if err != nil {
		return "", fmt.Errorf("--keep %s: %w", f.keep, err)
	}
	if f.detaching() {
		// The supervisor this nsbox starts runs the sandbox and takes
		// the lock itself: checked here, let go for it.
		lock.Close()
		return dir, nil
	}
	f.keptLock = lock
	heldForLife = append(heldForLife, int(lock.Fd()))
	return dir, nil
}

// detaching reports whether this nsbox run --detach only starts the
// supervisor (state_flags.go's startDetached) and does not run the
// sandbox itself.
func (f *imageFlags) detaching() bool {
	d, s := f.flags.Lookup("detach"), f.flags.Lookup("supervise-fd")
	return d != nil && d.Value.String() == "true" && (s == nil || !s.Changed)
}

// keepIn prepares dir and returns the root overlay with its upper layer
// there.
func (f *imageFlags) keepIn(dir string) (sandbox.Mount, error) {
	var none sandbox.Mount
	label, fix := dir, "another DIR for this image, or remove "+dir
	if !strings.Contains(f.keep, "/") {
		label, fix = f.keep, "another NAME for this image, or nsbox image rm --keep "+f.keep
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return none, fmt.Errorf("--keep %s: %w; fix: give a directory you can create", label, err)
	}
	stamp := filepath.Join(dir, "image")
	b, err := os.ReadFile(stamp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			return none, fmt.Errorf("--keep %s: not empty and not a kept layer (no %s); fix: give an empty or new directory", label, stamp)
		}
		if err := os.WriteFile(stamp, []byte(f.img.ID+"\n"), 0o600); err != nil {
			return none, fmt.Errorf("--keep %s: %w", label, err)
		}
	case err != nil:
		return none, fmt.Errorf("--keep %s: %w", label, err)
	case strings.TrimSpace(string(b)) != f.img.ID:
		return none, fmt.Errorf("--keep %s: holds the writes of image %.19s, not of %s (%.19s); fix: %s",
			label, strings.TrimPrefix(strings.TrimSpace(string(b)), "sha256:"), f.img.Ref, strings.TrimPrefix(f.img.ID, "sha256:"), fix)
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{dir, upper, work} {
		if st, err := os.Lstat(d); err == nil && !st.IsDir() {
			return none, fmt.Errorf("--keep %s: %s is not a directory (a symlink?); fix: remove %s", label, d, dir)
		}
	}
	// upper/ is the sandbox's / (its mode shows there: users other
	// than root inside must get through it); work/ is overlayfs's alone.
	for d, mode := range map[string]os.FileMode{upper: 0o755, work: 0o700} {
		if err := os.Mkdir(d, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return none, fmt.Errorf("--keep %s: %w", label, err)
		}
	}
	return sandbox.Mount{Type: sandbox.MountOverlay, Destination: "/", Lower: f.root.Lower, Upper: upper, Work: work, Flag: f.root.Flag + " --keep " + label}, nil
}

// keepOutOfBinds refuses a --keep DIR that a writable bind of spec
// overlaps (DIR inside the bound directory, or the bound directory inside
// DIR): the command could swap upper/ for a symlink, or change what the
// next run starts from behind overlayfs's back.
func (f *imageFlags) keepOutOfBinds(spec *sandbox.Spec, dir string) error {
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
