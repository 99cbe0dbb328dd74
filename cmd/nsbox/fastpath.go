package main

// The CLI's side of the speed tricks (sandbox/fastpath explains them and
// the switch, NSBOX_FASTPATH=off, that turns them all off): the opt-in to
// the pre-forked stage, the decision to make its namespaces early, and
// the hand-off to the small supervisor.

// `nsbox run` and `nsbox exec` start their sandbox stage before the Go
// runtime does, and so do the live commands that need a stage (mount,
// umount, connect, pause and resume: sandbox/live.go): defining this symbol opts in (a
// list: each name ends with a NUL, and an empty name ends it). The
// constructor reads argv[1] only.

/*
const char nsbox_prefork_command[] = "run\0exec\0mount\0umount\0connect\0pause\0resume\0";
*/
import "C"

import (
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/nsbox/nsbox/internal/handoff"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/sandbox/fastpath"
)

// otherNamespaceFlags are `nsbox run`'s flags that, when given, make a
// sandbox want other namespaces than the default or a cgroup (whose
// namespace root is fixed when it is made): with one of them the
// pre-forked stage is not asked to make its namespaces early, so that the
// launcher can still take it.
var otherNamespaceFlags = []string{"share", "unshare", "memory", "pids", "cpus", "cgroup"}

// unshareEarly asks `nsbox run`'s pre-forked stage to make a default
// sandbox's namespaces now, while the spec is built, when earlyNamespaces
// says the flags allow it.
func unshareEarly(fs *pflag.FlagSet) {
	if earlyNamespaces(fs) {
		fastpath.UnshareEarly()
	}
}

// earlyNamespaces tells whether the parsed flags fs leave a sandbox the
// default namespaces and no cgroup: none of otherNamespaceFlags given, and
// no --net host. A wrong answer costs time only: sandbox.Start checks the
// stage's namespaces against the spec's before it takes it.
func earlyNamespaces(fs *pflag.FlagSet) bool {
	for _, name := range otherNamespaceFlags {
		if fs.Changed(name) {
			return false
		}
	}
	net := fs.Lookup("net")
	return net == nil || net.Value.String() != "host"
}

// handOffAfter: a sandbox whose command still runs this long after it
// started is handed to the small supervisor, which holds it in a few
// hundred KiB instead of the Go launcher's megabytes. The exec costs
// about a millisecond that a command ending sooner should not pay.
const handOffAfter = 100 * time.Millisecond

// noHandOffEnv in the environment keeps the Go launcher to the end, the
// other tricks on (for comparisons; NSBOX_FASTPATH=off turns all off).
const noHandOffEnv = "NSBOX_NO_HANDOFF"

// heldForLife are the descriptors whose locks must last as long as the
// sandbox: the caches and homes it uses (cache_lock.go) and the image it
// runs (image_flags.go, image.Store.Hold). The kernel drops a flock when
// its last descriptor closes, so the hand-off passes them to the
// supervisor, which holds them until the sandbox ends.
var heldForLife []int

// handOff replaces this process by the small supervisor once sb has run
// for handOffAfter, if nothing but waiting is left to do here. It returns
// when sb ended before that, when the hand-off does not apply, or when it
// failed; the caller then Waits as usual.
func (s *session) handOff(sb *sandbox.Sandbox) {
	ho := handoff.Of(sb)
	if !fastpath.Enabled() || os.Getenv(noHandOffEnv) != "" || s.report != nil || s.info != nil || !ho.CanHandOff() {
		return
	}
	if ho.Exited(handOffAfter) {
		return
	}
	h := handoff.Plan{StatusFD: -1}
	if s.status != nil {
		h.StatusFD = int(s.status.Fd())
	}
	s.mu.Lock()
	if s.entry != nil {
		h.After, h.Keep = s.entry.HandOff(s.log != nil && s.executed)
	}
	s.mu.Unlock()
	h.Keep = append(h.Keep, heldForLife...)
	ho.HandOff(h) // returns only if it failed: the sandbox is still ours
}
