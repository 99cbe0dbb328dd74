package ties

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func receive(t *testing.T, ch chan os.Signal) os.Signal {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no signal")
		return nil
	}
}

// TestCaughtSignals: signals caught before Take queue and arrive after
// it; SIGWINCH reaches a signal.Notify of its own too (the
// terminal relay's); after Release the runtime's handlers are back.
func TestCaughtSignals(t *testing.T) {
	c := CatchSignalsSoon()
	assert.Assert(t, c.ring, "the handler was not installed")
	winch := make(chan os.Signal, 4)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	self := os.Getpid()
	assert.NilError(t, syscall.Kill(self, syscall.SIGUSR1))
	assert.NilError(t, syscall.Kill(self, syscall.SIGTERM))
	ch := c.Take()
	// Two threads may take the two at once: any order.
	got := map[os.Signal]bool{receive(t, ch): true, receive(t, ch): true}
	assert.Check(t, is.DeepEqual(got, map[os.Signal]bool{syscall.SIGUSR1: true, syscall.SIGTERM: true}))
	assert.NilError(t, syscall.Kill(self, syscall.SIGWINCH))
	assert.Check(t, is.Equal(receive(t, ch), os.Signal(syscall.SIGWINCH)))
	assert.Check(t, is.Equal(receive(t, winch), os.Signal(syscall.SIGWINCH)))
	releaseRing()

	// The runtime's handler again: signal.Notify now gets SIGUSR2 (with
	// the pipe's handler still in place it would not).
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGUSR2)
	defer signal.Stop(again)
	assert.NilError(t, syscall.Kill(self, syscall.SIGUSR2))
	assert.Check(t, is.Equal(receive(t, again), os.Signal(syscall.SIGUSR2)))
}

// TestCaughtSignalsNotInChildren: a program started while the signals
// are caught has them at their default (nothing caught, nothing
// blocked), and Release before Take leaves no handler behind.
func TestCaughtSignalsNotInChildren(t *testing.T) {
	c := CatchSignalsSoon()
	assert.Assert(t, c.ring)
	out, err := exec.Command("cat", "/proc/self/status").Output()
	c.Release()
	assert.NilError(t, err)
	var mask uint64
	for _, s := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH} {
		mask |= 1 << (s - 1)
	}
	for line := range strings.Lines(string(out)) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ":\t")
		if name == "SigCgt" || name == "SigBlk" || name == "SigIgn" {
			bits, err := strconv.ParseUint(v, 16, 64)
			assert.NilError(t, err)
			assert.Check(t, bits&mask == 0, "%s of the child: %s", name, v)
		}
	}
	assert.Check(t, !handler.installed, "Release left the handler installed")
}
