package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Some contenders leave part of their work to processes they do not wait
// for: bubblewrap's launcher reads the command's status from its PID 1
// and exits, and that PID 1, which made every mount of the sandbox,
// exits after it, an orphan. wait4's rusage of the launcher counts only
// the descendants it reaped, so a CPU figure from it alone would leave
// out most of bubblewrap's start (1.9 against 5.6 ms of CPU per start,
// docs/startup.md, "CPU per start, every process counted"). The harness
// is therefore a child subreaper: such orphans become its children, and
// reapOrphans adds their CPU to the run that left them.

// becomeSubreaper makes the orphans of every command the harness runs
// its own children (PR_SET_CHILD_SUBREAPER), for reapOrphans.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// orphanWait bounds how long reapOrphans waits for orphans still running
// after a run: a start's orphans end within milliseconds, and one that
// runs on (a daemon a contender leaves behind) must not hang the harness.
const orphanWait = time.Second

// reapOrphans reaps every child of the harness that has ended or ends
// within wait and returns their CPU time (user+system, with what they
// reaped) in ms. Call it only when no command the harness started is
// still running (sampleCPU, batch; not the rows that keep a server or a
// holder of their own): with the harness a subreaper, its only children
// then are the orphans of the commands that ran.
func reapOrphans(wait time.Duration) float64 {
	var cpu time.Duration
	deadline := time.Now().Add(wait)
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, &ru)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil: // ECHILD: none left
			return float64(cpu) / float64(time.Millisecond)
		case pid > 0:
			cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		case !time.Now().Before(deadline):
			return float64(cpu) / float64(time.Millisecond)
		default: // some still running
			time.Sleep(100 * time.Microsecond)
		}
	}
}
