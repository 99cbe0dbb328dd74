package main

import (
	"os"
	"time"

	"github.com/nsbox/nsbox/internal/handoff"
	"github.com/nsbox/nsbox/sandbox"
)

// handOffAfter: a sandbox whose command still runs this long after it
// started is handed to the small supervisor, which holds it in a few
// hundred KiB instead of the Go launcher's megabytes. The exec costs
// about a millisecond that a command ending sooner should not pay.
const handOffAfter = 100 * time.Millisecond

// noHandOffEnv in the environment keeps the Go launcher to the end (for
// comparisons).
const noHandOffEnv = "NSBOX_NO_HANDOFF"

// handOff replaces this process by the small supervisor once sb has run
// for handOffAfter, if nothing but waiting is left to do here. It returns
// when sb ended before that, when the hand-off does not apply, or when it
// failed; the caller then Waits as usual.
// heldForLife are the descriptors whose locks must last as long as the
// sandbox: the caches and homes it uses (cache_lock.go) and the image it
// runs (image_flags.go, image.Store.Hold). The kernel drops a flock when
// its last descriptor closes, so the hand-off passes them to the
// supervisor, which holds them until the sandbox ends.
var heldForLife []int

func (s *session) handOff(sb *sandbox.Sandbox) {
	ho := handoff.Of(sb)
	if os.Getenv(noHandOffEnv) != "" || s.report != nil || s.info != nil || !ho.CanHandOff() {
		return
	}
	if ho.Exited(handOffAfter) {
		return
	}
	h := handoff.Plan{StatusFD: -1}
	if s.status != nil {
		h.StatusFD = int(s.status.Fd())
	}
	if s.entry != nil {
		h.After, h.Keep = s.entry.HandOff(s.log != nil && s.executed)
	}
	h.Keep = append(h.Keep, heldForLife...)
	ho.HandOff(h) // returns only if it failed: the sandbox is still ours
}
