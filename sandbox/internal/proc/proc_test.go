package proc

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// start runs /bin/sh -c script as our child, held by a pidfd or, with
// byPid, by its pid as on a kernel without pidfd_open.
func start(t *testing.T, script string, byPid bool) *Process {
	t.Helper()
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", script}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	assert.NilError(t, err)
	if byPid {
		return &Process{Pid: pid, fd: &pidfd{n: -1}}
	}
	p := Open(pid)
	assert.Assert(t, p.fd.n >= 0, "pidfd_open failed")
	return p
}

func TestWaitAndSignal(t *testing.T) {
	for _, byPid := range []bool{false, true} {
		p := start(t, "exit 3", byPid)
		ws, err := p.Wait()
		assert.NilError(t, err)
		assert.Equal(t, ws.ExitStatus(), 3)
		assert.Assert(t, !ws.Signaled())
		assert.Equal(t, p.fd.n, -1, "the pidfd is closed once reaped")
		assert.Assert(t, errors.Is(p.Signal(syscall.SIGTERM), os.ErrProcessDone))
		_, err = p.Wait()
		assert.Assert(t, errors.Is(err, syscall.ECHILD), "a second Wait: %v", err)

		p = start(t, "exec sleep 30", byPid)
		assert.NilError(t, p.Signal(syscall.Signal(0)))
		assert.NilError(t, p.Kill())
		ws, err = p.Wait()
		assert.NilError(t, err)
		assert.Assert(t, ws.Signaled())
		assert.Equal(t, ws.Signal(), syscall.SIGKILL)
	}
}

// A signal racing the end of the process reports os.ErrProcessDone or
// succeeds; it never reaches another process.
func TestSignalDuringWait(t *testing.T) {
	p := start(t, "exec sleep 30", false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ws, err := p.Wait()
		assert.Check(t, err)
		assert.Check(t, ws.Signaled())
	}()
	assert.NilError(t, p.Signal(syscall.SIGTERM))
	<-done
	assert.Assert(t, errors.Is(p.Signal(syscall.SIGTERM), os.ErrProcessDone))
}

func TestOpenGone(t *testing.T) {
	p := start(t, "exit 0", false)
	pid := p.Pid
	_, err := p.Wait()
	assert.NilError(t, err)
	gone := Open(pid)
	assert.Assert(t, errors.Is(gone.Signal(syscall.SIGTERM), os.ErrProcessDone))
	_, err = gone.Wait()
	assert.Assert(t, errors.Is(err, syscall.ECHILD))
}

// TestPidfdClosedWhenUnreachable: a Process never waited for (a Sandbox
// from Lookup) does not keep its pidfd open once unreachable.
func TestPidfdClosedWhenUnreachable(t *testing.T) {
	before := openFDs(t)
	for range 50 {
		Open(os.Getpid())
	}
	for range 10 {
		runtime.GC()
		if openFDs(t) <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d descriptors open, %d before", openFDs(t), before)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	assert.NilError(t, err)
	return len(ents)
}
