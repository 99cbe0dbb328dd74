package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"golang.org/x/sys/unix"
)

const rmUsage = `Usage: nsbox rm NAME...

Removes what a detached sandbox (nsbox run --detach) leaves behind once it
has ended: its log, which nsbox logs NAME shows until then. A running
sandbox is left alone: stop it first (nsbox stop NAME).
`

// rmCommand is `nsbox rm`: forget ended detached sandboxes.
func rmCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"rm: no sandbox named; fix: nsbox rm NAME..."}
	}
	for _, a := range args {
		if a == "-h" || a == "--help" {
			fmt.Fprint(stdout, rmUsage)
			return nil
		}
	}
	dir, err := state.Dir()
	if err != nil {
		return err
	}
	for _, name := range args {
		if err := state.ValidName(name); err != nil {
			return usageError{fmt.Sprintf("rm %s: %v", name, err)}
		}
		if _, err := state.Get(dir, name); err == nil {
			return fmt.Errorf("rm %s: the sandbox is running; fix: nsbox stop %s first", name, name)
		} else if !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("rm %s: %w", name, err)
		}
		p := state.EndedLog(dir, name)
		if p == "" {
			return fmt.Errorf("rm %s: no ended sandbox of that name left a log; fix: nsbox ps lists the running ones", name)
		}
		// unlink(2): the name goes, whatever it is (never a directory);
		// nothing is followed.
		if err := unix.Unlink(p); err != nil {
			return fmt.Errorf("rm %s: %w", name, &os.PathError{Op: "unlink", Path: p, Err: err})
		}
	}
	return nil
}
