package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// reaperHelperEnv makes this test binary a child subreaper that runs
// its arguments, waits for them, and then says how many orphans of
// theirs it reaped (TestMain: reaperHelper).
const reaperHelperEnv = "NSBOX_TEST_REAPER"

// reaperHelper runs os.Args[1:] as a subreaper: whatever the command
// leaves behind when it exits is reparented here instead of to init.
// It prints "orphans N" once no orphan has come for 500 ms.
func reaperHelper() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		return 1
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if os.Getenv(reaperHelperEnv) == "fd3" {
		// A descriptor 3 of the caller's: the stage's socket pair is
		// then not at 3 and 4 (a detached sandbox's supervisor has its
		// report pipe there).
		cmd.ExtraFiles = []*os.File{os.Stdin}
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		fmt.Println("hung: killed after 10 s")
		return 0
	}
	orphans := 0
	for quiet := time.Now(); time.Since(quiet) < 500*time.Millisecond; {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid > 0 {
			orphans++
			quiet = time.Now()
			continue
		}
		if err == syscall.ECHILD {
			// Nothing of ours is alive: an orphan still dying would
			// be our child already (reparenting comes first).
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("orphans", orphans)
	return 0
}

// A launcher that starts no sandbox (a usage error, --help,
// --print-spec, the caller of --detach's supervisor) leaves no process
// behind: the stage its ELF constructor forked ahead is ended and
// reaped before it exits, not left to the parent-death signal and to
// whatever reaps its orphans (in a container, often a PID 1 that does
// not: each became a zombie there).
func TestNoStartLeavesNoOrphan(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--print-spec", "--", "true"},
		{"run", "--no-such-flag", "--", "true"},
		{"run", "--help"},
		{"exec", "no-such-sandbox", "true"},
	} {
		for _, mode := range []string{"1", "fd3"} {
			t.Run(strings.Join(args, " ")+" "+mode, func(t *testing.T) {
				self, err := os.Executable()
				assert.NilError(t, err)
				cmd := exec.Command(self, append([]string{nsboxBin}, args...)...)
				cmd.Env = append(os.Environ(), reaperHelperEnv+"="+mode)
				out, err := cmd.Output()
				assert.NilError(t, err)
				assert.Equal(t, strings.TrimSpace(string(out)), "orphans 0")
			})
		}
	}
}
