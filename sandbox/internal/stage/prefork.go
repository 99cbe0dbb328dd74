package stage

/*
#define _GNU_SOURCE
#include <sched.h>
#include "stage.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/nsbox/nsbox/sandbox/internal/proc"
)

// prefork guards the stage that nsbox_prefork (stage.h) may have forked
// before the Go runtime started: one sandbox at most can use it. early
// is the CLONE_NEW* flags of the namespaces UnshareEarly asked it to
// make, 0 before.
var prefork struct {
	sync.Mutex
	used  bool
	early int
}

// UnshareEarly asks the pre-forked stage, if there is one that nobody
// took yet, to create the namespaces of a default sandbox (user, mount,
// cgroup; stage.h's NSBOX_PREFORK_UNSHARE) now, while the caller goes on
// building its sandbox. Start then takes that stage only for a sandbox
// that wants exactly those namespaces; for another, the stage is let go
// and the binary re-executed, so a wrong guess costs time, never a
// weaker sandbox.
func UnshareEarly() {
	prefork.Lock()
	defer prefork.Unlock()
	if prefork.used || prefork.early != 0 || C.nsbox_prefork_pid <= 0 {
		return
	}
	// The stage's socket is still a plain blocking fd, and the message
	// is the first on it: the write does not block.
	if WriteMessage(rawFD(C.nsbox_prefork_fd), MsgUnshare, 0, nil) == nil {
		prefork.early = C.NSBOX_PREFORK_UNSHARE
	}
}

// rawFD writes to a descriptor that is not yet an *os.File.
type rawFD int

func (fd rawFD) Write(b []byte) (int, error) { return syscall.Write(int(fd), b) }

// SelfExe is the binary on disk, as the stage re-executes it.
const SelfExe = "/proc/self/exe"

// NameVar is the variable that gives a stage or a supervisor started by
// executing SelfExe this process's name (stage.h's NSBOX_NAME_ENV):
// without it the kernel names it "exe", where the stage the constructor
// forks and a launcher that keeps the sandbox to the end are named as the
// launcher was started. "" when the name cannot be read.
func NameVar() string {
	b, err := os.ReadFile("/proc/self/comm")
	name := strings.TrimSuffix(string(b), "\n")
	if err != nil || name == "" {
		return ""
	}
	return C.NSBOX_NAME_ENV + "=" + name
}

// Start starts the stage from the binary at exe for a sandbox whose
// standard files are files (0, 1, 2, then the command's extra files), and
// returns it with the launcher's end of its socket. The caller keeps its
// files; exe must stay executable until Start returns.
//
// The fast way is the stage forked before the runtime started: it already
// waits for its CONFIG, with the process's own stdin, stdout and stderr,
// so it serves only a sandbox that uses exactly those. Otherwise the
// binary re-executes itself as the stage (/proc/self/exe), with files as
// its 0, 1, 2 and its end of a new socketpair as fd 3; if the launcher
// dies, it dies (Pdeathsig). Either way the stage, and PID 1 cloned from
// it, has the launcher's command line, and from the binary on disk its
// name too (NameVar): ps shows them alike, inside the sandbox and out. A
// stage run from a copy (exe a descriptor's path: sandbox/stageexe.go)
// keeps the name the kernel gives it, the descriptor's number, which
// says it is the copy.
//
// A pre-forked stage may also have created its namespaces already
// (UnshareEarly): it serves only a sandbox whose unshare is exactly
// those, so unshare is the CLONE_NEW* flags the sandbox's CONFIG asks
// for, or -1 for a sandbox that must have a stage of its own (one that
// joins namespaces or goes into a cgroup before its namespaces are made).
//
// The stage is held by a pidfd (package proc), not an *os.Process: the
// first os.StartProcess or os.FindProcess would fork a throwaway child to
// probe clone(CLONE_PIDFD).
func Start(exe string, files []*os.File, unshare int) (*proc.Process, *os.File, error) {
	// A pre-forked stage runs the binary on disk: only when the caller
	// chose that binary (package sandbox does not when the sandbox could
	// write it).
	if p, sock := takePrefork(files, exe == SelfExe, unshare); p != nil {
		return p, sock, nil
	}
	parent, child, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	defer child.Close()
	// The stage's socket is fd 3; Process.ExtraFiles follow it, and
	// the command gets them moved down to 3, 4, … (stage.c). Fd, as
	// os.StartProcess, leaves each file blocking.
	all := append(append(files[:3:3], child), files[3:]...)
	fds := make([]uintptr, len(all))
	for i, f := range all {
		fds[i] = f.Fd()
	}
	argv := os.Args
	if len(argv) == 0 {
		argv = []string{"nsbox-stage"}
	}
	env := []string{Env + "=1"}
	if v := NameVar(); v != "" && exe == SelfExe {
		env = append(env, v)
	}
	pid, _, err := syscall.StartProcess(exe, argv, &syscall.ProcAttr{
		Env:   env,
		Files: fds,
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	runtime.KeepAlive(all)
	if err != nil {
		parent.Close()
		err = &os.PathError{Op: "fork/exec", Path: exe, Err: err}
		return nil, nil, fmt.Errorf("start the sandbox stage (%s): %w", exe, err)
	}
	// Our child, not reaped before Wait: the pid still names it.
	return proc.Open(pid), parent, nil
}

// PreforkWaiting reports whether a pre-forked stage is waiting, taken by
// nobody yet and with no namespaces made early: Start hands it to the
// next caller whose files are the process's own stdin, stdout and stderr.
func PreforkWaiting() bool {
	prefork.Lock()
	defer prefork.Unlock()
	return !prefork.used && prefork.early == 0 && C.nsbox_prefork_pid > 0
}

// takePrefork hands out the pre-forked stage once, if there is one, the
// caller may use it (usable), its early namespaces are none or unshare's,
// and the sandbox's stdio is the process's own. A pre-forked stage that
// cannot serve is let go: closing its socket makes it exit.
func takePrefork(files []*os.File, usable bool, unshare int) (*proc.Process, *os.File) {
	prefork.Lock()
	defer prefork.Unlock()
	if prefork.used || C.nsbox_prefork_pid <= 0 {
		return nil, nil
	}
	usable = usable && (prefork.early == 0 || prefork.early == unshare)
	prefork.used = true
	sock := launcherEnd(int(C.nsbox_prefork_fd))
	p := proc.Open(int(C.nsbox_prefork_pid))
	if !usable || len(files) != 3 || files[0] != os.Stdin || files[1] != os.Stdout || files[2] != os.Stderr {
		sock.Close()
		go p.Wait()
		return nil, nil
	}
	return p, sock
}

// EarlyPrefork reports whether pid is the pre-forked stage, taken by a
// sandbox after it made its namespaces early (UnshareEarly).
func EarlyPrefork(pid int) bool {
	prefork.Lock()
	defer prefork.Unlock()
	return prefork.used && prefork.early != 0 && pid == int(C.nsbox_prefork_pid)
}

// LetGoPrefork ends the pre-forked stage if no sandbox took it (none
// started: a usage error, --help, --print-spec, the caller of --detach):
// closing its socket makes it exit, and it is reaped here. Left to the
// kernel's parent-death signal, it would end as a zombie of whatever
// reaps our orphans, which in a container is often a PID 1 that does not.
func LetGoPrefork() {
	prefork.Lock()
	defer prefork.Unlock()
	if prefork.used || C.nsbox_prefork_pid <= 0 {
		return
	}
	prefork.used = true
	// Its socket's end makes it exit; the kill, in case anything else
	// holds that end: a wait for it must not hang the launcher's exit.
	syscall.Close(int(C.nsbox_prefork_fd))
	syscall.Kill(int(C.nsbox_prefork_pid), syscall.SIGKILL)
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(int(C.nsbox_prefork_pid), &ws, 0, nil); err != syscall.EINTR {
			return
		}
	}
}
