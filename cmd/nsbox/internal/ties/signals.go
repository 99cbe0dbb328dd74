package ties

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/nsbox/nsbox/sandbox"
)

// CaughtSignals are the signals a supervisor sends us (SIGINT, SIGTERM,
// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH), caught from the start of
// a launch and handed to the command once it runs (ForwardSignals).
// Signals caught before that queue until they are forwarded. A signal
// that comes before the catch is in place has its default effect, as it
// would on the command before its handlers are: nsbox ends, and the
// sandbox with it (the stage and PID 1 have nsbox as their parent-death
// signal's parent).
//
// The catch is a handler of nsbox's own (sighandler.go: seven sigaction
// calls, against 0.4 ms of CPU and two more threads for signal.Notify);
// signal.Notify serves only if that cannot be installed.
type CaughtSignals struct {
	ring     bool           // caught by sighandler.go's handler
	ch       chan os.Signal // else signal.Notify's channel
	taken    bool
	released bool
}

// CatchSignalsSoon starts catching the signals.
func CatchSignalsSoon() *CaughtSignals {
	if catchInRing() {
		return &CaughtSignals{ring: true}
	}
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	return &CaughtSignals{ch: ch}
}

// Take returns the channel the caught signals arrive on (those caught
// so far first), which the caller then owns.
func (c *CaughtSignals) Take() chan os.Signal {
	c.taken = true
	if !c.ring {
		return c.ch
	}
	return relayRing()
}

// Release gives the signals their default action back, unless they were
// taken.
func (c *CaughtSignals) Release() {
	if c.taken || c.released {
		return
	}
	c.released = true
	if c.ring {
		releaseRing()
		return
	}
	signal.Stop(c.ch)
}

// ForwardSignals passes caught signals to the command (through PID 1).
// Ctrl-C at a terminal reaches the command directly: it holds the
// terminal's foreground.
func ForwardSignals(ch chan os.Signal, sb *sandbox.Sandbox) {
	for sig := range ch {
		sb.Signal(sig)
	}
}
