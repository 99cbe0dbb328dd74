package sandbox

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"time"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// ProcessState is how a sandbox's command ended, as PID 1 saw it when it
// reaped the command, with the resources used. Sandbox.ProcessState
// returns it once Wait has returned.
type ProcessState struct {
	status syscall.WaitStatus
	// UserTime and SystemTime are the CPU time of the command and of every
	// process of the sandbox that PID 1 reaped (getrusage(2)
	// RUSAGE_CHILDREN).
	UserTime, SystemTime time.Duration
	// MaxRSS is the largest resident set size, in bytes, of any one of
	// those processes.
	MaxRSS int64
}

// Exited reports whether the command called exit (not killed by a
// signal).
func (p *ProcessState) Exited() bool { return p.status.Exited() }

// ExitCode is the command's exit status, or -1 when a signal killed it
// (as os.ProcessState.ExitCode).
func (p *ProcessState) ExitCode() int {
	if !p.status.Exited() {
		return -1
	}
	return p.status.ExitStatus()
}

// Signaled reports whether a signal killed the command; Signal says which.
func (p *ProcessState) Signaled() bool { return p.status.Signaled() }

// Signal is the signal that killed the command (0 if it exited).
func (p *ProcessState) Signal() syscall.Signal {
	if !p.status.Signaled() {
		return 0
	}
	return p.status.Signal()
}

// Sys is the raw wait status.
func (p *ProcessState) Sys() syscall.WaitStatus { return p.status }

// String is "command exited with status N" or "command killed by signal
// N (name)".
func (p *ProcessState) String() string {
	if p.Signaled() {
		return fmt.Sprintf("command killed by signal %d (%s)", int(p.Signal()), p.Signal())
	}
	return fmt.Sprintf("command exited with status %d", p.ExitCode())
}

// code is nsbox's exit code for the state: the status, or 128+N.
func (p *ProcessState) code() int {
	if p.Signaled() {
		return 128 + int(p.Signal())
	}
	return p.ExitCode()
}

// parseExited decodes an EXITED message: value is the wait status, the
// payload struct nsbox_usage (stage.h), three native-endian int64s.
func parseExited(m stage.Message) (*ProcessState, error) {
	if len(m.Payload) != 24 {
		return nil, fmt.Errorf("EXITED message with %d bytes of usage, want 24", len(m.Payload))
	}
	u := func(i int) int64 { return int64(binary.NativeEndian.Uint64(m.Payload[8*i:])) }
	return &ProcessState{
		status:     syscall.WaitStatus(uint32(m.Value)),
		UserTime:   time.Duration(u(0)) * time.Microsecond,
		SystemTime: time.Duration(u(1)) * time.Microsecond,
		MaxRSS:     u(2) * 1024,
	}, nil
}
