package ties

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/nsbox/nsbox/sandbox"
)

// catchSignals starts queueing the signals a supervisor sends us, which
// ForwardSignals hands to the command.
func catchSignals() chan os.Signal {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	return ch
}

// CaughtSignals is catchSignals started early. The runtime enables each
// caught signal through a round trip to its signal thread, which it first
// starts: 0.5–1 ms for the seven, which used to be on the way to every
// sandbox. launch starts it beside building the spec and starting the
// sandbox, and takes the channel once the command runs. A signal that
// comes before the catch is in place has its default effect, as it would
// on the command before its handlers are: nsbox ends, and the sandbox
// with it (the stage and PID 1 have nsbox as their parent-death signal's
// parent); signals caught early queue in the channel until they are
// forwarded.
type CaughtSignals struct {
	ready chan chan os.Signal
	ch    chan os.Signal
	taken bool
}

// CatchSignalsSoon starts catching the signals in the background.
func CatchSignalsSoon() *CaughtSignals {
	c := &CaughtSignals{ready: make(chan chan os.Signal, 1)}
	go func() { c.ready <- catchSignals() }()
	return c
}

// Take waits until the signals are caught and returns their channel, which
// the caller then owns.
func (c *CaughtSignals) Take() chan os.Signal {
	c.wait()
	c.taken = true
	return c.ch
}

func (c *CaughtSignals) wait() {
	if c.ch == nil {
		c.ch = <-c.ready
	}
}

// Release gives the signals their default action back, unless they were
// taken.
func (c *CaughtSignals) Release() {
	if !c.taken {
		c.wait()
		signal.Stop(c.ch)
	}
}

// ForwardSignals passes caught signals to the command (through PID 1).
// Ctrl-C at a terminal reaches the command directly: it holds the
// terminal's foreground.
func ForwardSignals(ch chan os.Signal, sb *sandbox.Sandbox) {
	for sig := range ch {
		sb.Signal(sig)
	}
}
