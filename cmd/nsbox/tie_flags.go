package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
)

// tieFlags are run's --die-with-parent and --lock-file: what ties the
// sandbox's life to its caller's, as bubblewrap's options of those names
// (the helpers are shared with the bwrap entry, internal/ties).
type tieFlags struct {
	dieWithParent bool
	lockFiles     []string
}

func (t *tieFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&t.dieWithParent, "die-with-parent", false, "kill the sandbox when the process that started nsbox dies (as bwrap --die-with-parent), e.g. an agent's tool runner")
	listVar(fs, &t.lockFiles, "lock-file", "", "hold a shared lock (fcntl, as bwrap) on `PATH` in the sandbox, a file bound from the host, while the sandbox runs (repeatable), e.g. --lock-file $PWD/.lock")
}

// checkDetach refuses what cannot apply to a detached sandbox.
func (t *tieFlags) checkDetach() error {
	if t.dieWithParent {
		return usageError{"--die-with-parent cannot be combined with --detach: a detached sandbox outlives its caller by design; fix: drop one"}
	}
	return nil
}

// hold ties this launcher to its caller (--die-with-parent) and takes the
// --lock-file locks, which live as long as the launcher, that is the
// sandbox. Call it right before sandbox.Start.
func (t *tieFlags) hold(spec *sandbox.Spec) error {
	for _, l := range t.lockFiles {
		p := l
		if !filepath.IsAbs(p) {
			abs, err := filepath.Abs(p)
			if err != nil {
				return fmt.Errorf("--lock-file %s: make it absolute: %w", l, err)
			}
			p = abs
		}
		host := ties.HostPathOf(spec.Mounts, p)
		if host == "" {
			return usageError{fmt.Sprintf("--lock-file %s: %s is not on a bind from the host in the sandbox, so nothing outside could see the lock; fix: lock a file under the current directory or a --bind/--ro-bind destination", l, p)}
		}
		var lerr *ties.LockError
		fd, err := ties.LockFile(host)
		if errors.As(err, &lerr) {
			return fmt.Errorf("--lock-file %s: %s %s: %w; fix: name an existing file you can read, not locked by another process", l, lerr.Op, host, lerr.Err)
		} else if err != nil {
			return fmt.Errorf("--lock-file %s: %w", l, err)
		}
		// The lock goes if the descriptor closes, as on the hand-off's
		// exec: the supervisor keeps it.
		heldForLife = append(heldForLife, fd)
	}
	if t.dieWithParent {
		if err := ties.DieWithCaller(); err != nil {
			return fmt.Errorf("--die-with-parent: %w", err)
		}
	}
	return nil
}
