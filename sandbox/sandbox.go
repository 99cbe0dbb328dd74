package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Sandbox is a running sandbox, returned by Start.
type Sandbox struct {
	pid1   *os.Process
	sync   *os.File // launcher's end of the stage socket; PID 1 holds the other
	stdio  *stdio
	tty    terminal
	cancel func() bool
	done   chan struct{} // closed when watch returns
	// netStop ends the network service, if any, after PID 1 ended.
	netStop func() error

	waitOnce sync.Once
	err      error
}

// Pid returns the host pid of the sandbox's PID 1 (nsbox's init, the parent
// of the command).
func (s *Sandbox) Pid() int { return s.pid1.Pid }

// Signal sends sig to the command. PID 1 forwards it; SIGKILL ends the
// whole sandbox at once.
func (s *Sandbox) Signal(sig os.Signal) error {
	err := s.pid1.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Wait waits for the command to end and for everything in the sandbox to be
// gone. It returns nil for status 0 and an *ExitError otherwise. Calling it
// again returns the same result.
func (s *Sandbox) Wait() error {
	s.waitOnce.Do(func() {
		st, err := s.pid1.Wait()
		s.cancel()
		if s.netStop != nil {
			s.netStop()
		}
		<-s.done // PID 1's end of the socket closed with it
		s.sync.Close()
		s.tty.restore()
		s.stdio.finish()
		if err != nil {
			s.err = fmt.Errorf("wait for the sandbox: %w", err)
			return
		}
		ws := st.Sys().(syscall.WaitStatus)
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		if code != 0 {
			s.err = &ExitError{Code: code}
		}
	})
	return s.err
}

// watch serves PID 1's messages after start: job-control stops.
func (s *Sandbox) watch() {
	defer close(s.done)
	for {
		m, err := readMessage(s.sync)
		if err != nil {
			return
		}
		if m.kind == msgStopped {
			fg := s.tty.suspend()
			writeMessage(s.sync, msgResume, boolValue(fg), nil)
		}
	}
}

func boolValue(b bool) int32 {
	if b {
		return 1
	}
	return 0
}
