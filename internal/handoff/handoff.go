// Package handoff holds what the nsbox command asks of the C supervisor
// that takes a running sandbox over (sandbox.Sandbox.HandOff, handoff.c):
// a speed trick of the CLI, kept out of package sandbox's API.
package handoff

// Plan is what the supervisor that takes a running sandbox over
// (sandbox.Sandbox.HandOff) does besides waiting: once PID 1 has ended it gives a
// terminal back, writes StatusFD's line, runs the After steps in order and
// exits with the command's status, as Wait's caller would.
type Plan struct {
	// StatusFD, if not -1, gets `{ "exit-code": N }` and a newline at the
	// end (bubblewrap's --json-status-fd).
	StatusFD int
	// After are file-system steps, in order; their failures are ignored.
	After []Step
	// Keep are descriptors the supervisor must hold until it exits (a
	// lock, say), under the same numbers.
	Keep []int
}

// Step is one step of Plan.After.
type Step struct {
	Op   Op
	Path string
	To   string // the new name, for Rename
}

// Op is what a Step does to its Path.
type Op int

// The steps a handed-off supervisor can take.
const (
	Unlink Op = iota + 1 // unlink(2) Path
	Rmdir                // rmdir(2) Path
	Mkdir                // mkdir(2) Path, mode 0700
	Rename               // rename(2) Path to To
)

var verbs = map[Op]string{Unlink: "unlink", Rmdir: "rmdir", Mkdir: "mkdir", Rename: "rename"}

// Verb is the op's name in the variable handoff.c reads; false for an
// unknown Op.
func (o Op) Verb() (string, bool) {
	v, ok := verbs[o]
	return v, ok
}
