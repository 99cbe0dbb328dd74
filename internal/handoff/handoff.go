// Package handoff is how the nsbox command hands a running sandbox to the
// small C supervisor of handoff.c, which waits for it in a few hundred KiB
// instead of the Go launcher's megabytes: a speed trick of the CLI, kept
// out of package sandbox's API. Of gives a *sandbox.Sandbox's Handle;
// Plan says what the supervisor does besides waiting.
package handoff

import "time"

// Handle hands one sandbox over.
type Handle interface {
	// CanHandOff reports whether HandOff can take the sandbox over: the
	// launcher has nothing to do for it but wait (no pseudo-terminal to
	// relay, no network to serve, no cgroup to remove, no standard
	// stream to copy), and nsbox's init runs the command.
	CanHandOff() bool
	// Exited reports whether PID 1 has ended, waiting for it at most
	// timeout, without reaping it.
	Exited(timeout time.Duration) bool
	// HandOff replaces the calling process by the supervisor (see
	// sandbox/handoff.go); it returns only on failure, with the sandbox
	// still the caller's to Wait for.
	HandOff(p Plan) error
	// AtExit has f run once PID 1 reports the command's end, while the
	// kernel tears PID 1 down, as the supervisor runs Plan.After: the
	// launcher's own cleanup beside PID 1's end, not after it. Wait
	// returns only after f has; f does not run if the command's end is
	// never reported (PID 1 killed, say), so the caller still cleans up
	// after Wait, which f must then have made a no-op.
	AtExit(f func())
}

var of func(sb any) Handle

// Register is called once, by package sandbox: f returns the Handle of
// a *sandbox.Sandbox.
func Register(f func(sb any) Handle) { of = f }

// Of returns the Handle of sb, a *sandbox.Sandbox.
func Of(sb any) Handle { return of(sb) }

// Plan is what the supervisor that takes a running sandbox over
// (Handle.HandOff) does besides waiting: once PID 1 has ended it gives a
// terminal back, writes StatusFD's line, runs the After steps in order and
// exits with the command's status, as Wait's caller would.
type Plan struct {
	// StatusFD, if not -1, gets `{ "exit-code": N }` and a newline at the
	// end (bubblewrap's --json-status-fd).
	StatusFD int
	// After are file-system steps, in order; their failures are ignored.
	After []Step
	// Keep are descriptors the supervisor must hold until it exits (a
	// lock, say), under the same numbers, or until a Close step of After
	// closes one of them.
	Keep []int
}

// Step is one step of Plan.After.
type Step struct {
	Op   Op
	Path string
	To   string // the new name, for Rename
	FD   int    // the descriptor, for Close (one of Plan.Keep)
}

// Op is what a Step does to its Path.
type Op int

// The steps a handed-off supervisor can take.
const (
	Unlink Op = iota + 1 // unlink(2) Path
	Rmdir                // rmdir(2) Path
	Mkdir                // mkdir(2) Path, mode 0700
	Rename               // rename(2) Path to To
	// Close closes FD, a kept descriptor the sandbox's end no longer
	// needs: the lock of the state entry the steps before it removed.
	// The last close of a removed directory frees it, and on a disk file
	// system that is a write (with the discard mount option, one the
	// process waits for): closed here, while the kernel tears PID 1 down,
	// not in the supervisor's exit after it.
	Close
)

// Verb is the op's name in the variable handoff.c reads; false for an
// unknown Op. A switch, not a map: a package-level map is built at every
// start of nsbox.
func (o Op) Verb() (string, bool) {
	switch o {
	case Unlink:
		return "unlink", true
	case Rmdir:
		return "rmdir", true
	case Mkdir:
		return "mkdir", true
	case Rename:
		return "rename", true
	case Close:
		return "close", true
	}
	return "", false
}
