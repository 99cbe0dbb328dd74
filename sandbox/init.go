package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// initChecked is set by Init once it found this binary able to start
// sandboxes.
var initChecked atomic.Bool

// Init must be called first in main by every program that calls Start (see
// the package documentation, "Embedding"). It returns at once in a normal
// start. In a process that Start re-executed as a sandbox stage, the C
// stage takes the process over before main runs, so Init is never reached
// there; if it is, the stage did not run, and Init exits with status 125
// and one line on stderr rather than run the program's main a second time.
// It also checks that the stage's constructor is linked into this binary.
func Init() {
	reexeced := os.Getenv(stage.Env) != "" || os.Getenv(stage.HandOffEnv) != ""
	if err := checkStage(reexeced, stage.Linked()); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err) // the package, as os/exec says "exec: "
		os.Exit(codeLauncher)
	}
	initChecked.Store(true)
}

// checkStage is Init's decision: reexeced is true in a process started as
// a stage, linked when the stage's constructor ran.
func checkStage(reexeced, linked bool) error {
	switch {
	case reexeced:
		return fmt.Errorf("%s was started as a sandbox stage (%s or %s is set) but the stage did not take over; fix: build with CGO_ENABLED=1 and a build mode that runs ELF constructors (the default), and do not set them yourself", os.Args[0], stage.Env, stage.HandOffEnv)
	case !linked:
		return fmt.Errorf("the sandbox stage's constructor did not run in %s; fix: build with CGO_ENABLED=1 and a build mode that runs ELF constructors (the default)", os.Args[0])
	}
	return nil
}

// errNoInit is Start's answer when Init was not called.
var errNoInit = errors.New("sandbox.Init was not called; fix: call sandbox.Init() as the first statement of main (it checks that this binary can run the sandbox's stage)")
