// Package proc holds a child process by a pidfd of its own, for the
// processes package sandbox starts or is handed (the stage, PID 1, a
// joined command), without package os.
//
// The reason is the start's cost: the first os.FindProcess or
// os.StartProcess of a program makes package os test that
// clone(CLONE_PIDFD) works by forking a throwaway child (os.checkPidfd),
// one process and about 0.1 ms more on every `nsbox run`. Process needs
// only pidfd_open(2), pidfd_send_signal(2) and waitid(2), and falls back
// to the pid where the kernel has no pidfd_open (before 5.3, or a seccomp
// filter refusing it), as os does.
//
// The kernel rule it obeys is os's: a pid names the process until the
// process is reaped, so nothing signals it by pid after Wait reaped it.
// Wait first waits until the process can be reaped without reaping it
// (waitid with WNOWAIT), then reaps it under the lock that Signal holds;
// a pidfd is closed under the same lock, so Signal never uses a closed or
// reused descriptor number.
package proc

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Process is a child of the caller (or, for Signal alone, any process the
// caller may signal) held by a pidfd. Its methods may be called from
// several goroutines; Wait once.
type Process struct {
	// Pid is the process id.
	Pid int

	mu     sync.RWMutex
	fd     *pidfd // fd.n is -1 if held by pid, or once closed
	done   bool   // reaped (or found gone): Signal reports os.ErrProcessDone
	waited bool
}

// pidfd is a Process's descriptor, apart from the Process so that a
// cleanup can close it once the Process is unreachable without Wait (a
// Sandbox from Lookup is never waited for), as os.Process does.
type pidfd struct{ n int }

func (fd *pidfd) close() {
	if fd.n >= 0 {
		unix.Close(fd.n)
		fd.n = -1
	}
}

// Open holds the process pid. A process that is gone already is not an
// error, as for os.FindProcess: Signal then reports os.ErrProcessDone and
// Wait fails.
func Open(pid int) *Process {
	p := &Process{Pid: pid, fd: &pidfd{n: -1}}
	fd, err := unix.PidfdOpen(pid, 0) // close-on-exec always
	switch {
	case err == nil:
		p.fd.n = fd
		runtime.AddCleanup(p, (*pidfd).close, p.fd)
	case err == unix.ESRCH:
		p.done = true
	}
	// Any other error (ENOSYS, EPERM from seccomp): by pid.
	return p
}

// Signal sends sig to the process; os.ErrProcessDone once it was reaped.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return errors.New("os: unsupported signal type")
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.done {
		return os.ErrProcessDone
	}
	var err error
	if p.fd.n >= 0 {
		err = unix.PidfdSendSignal(p.fd.n, s, nil, 0)
	} else {
		err = syscall.Kill(p.Pid, s)
	}
	if err == syscall.ESRCH {
		return os.ErrProcessDone
	}
	if err != nil {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

// Kill sends SIGKILL.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Wait waits for the process to exit, reaps it and returns how it ended.
// A second Wait, or Wait on a process that Open found gone, fails with
// ECHILD, as os.Process.Wait does.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	p.mu.Lock()
	if p.done || p.waited {
		p.mu.Unlock()
		return 0, os.NewSyscallError("wait", syscall.ECHILD)
	}
	p.waited = true
	p.mu.Unlock()
	// Until it can be reaped, without reaping it: Signal may still use
	// its pid or pidfd meanwhile.
	idType, id := unix.P_PID, p.Pid
	if p.fd.n >= 0 {
		idType, id = unix.P_PIDFD, p.fd.n
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(idType, id, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return 0, os.NewSyscallError("waitid", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(p.Pid, &ws, 0, nil)
		if err == nil {
			break
		}
		if err != syscall.EINTR {
			return 0, os.NewSyscallError("wait", err)
		}
	}
	p.done = true
	p.fd.close()
	return ws, nil
}
