package procfs

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// TestOldestChild starts a shell (single-threaded) with two children and
// checks OldestChild names the first, then the second once the first is
// gone; the scan that stands in without the children file agrees.
func TestOldestChild(t *testing.T) {
	sh := exec.Command("sh", "-c", `sleep 60 & echo $!; sleep 60 & echo $!; wait; wait`)
	out, err := sh.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, sh.Start())
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	r := bufio.NewReader(out)
	var kids []int
	for range 2 {
		line, err := r.ReadString('\n')
		assert.NilError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		assert.NilError(t, err)
		kids = append(kids, pid)
	}
	t.Cleanup(func() {
		for _, k := range kids {
			syscall.Kill(k, syscall.SIGKILL)
		}
	})

	pid, start, err := OldestChild(sh.Process.Pid)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(pid, kids[0]))
	st, err := ReadStat(kids[0])
	assert.NilError(t, err)
	assert.Check(t, is.Equal(start, st.StartTime))
	scanned, _, err := oldestChildByScan(sh.Process.Pid)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(scanned, kids[0]))

	// The first one ends (the shell reaps it): the second is the oldest.
	assert.NilError(t, syscall.Kill(kids[0], syscall.SIGKILL))
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		pid, _, err := OldestChild(sh.Process.Pid)
		if err == nil && pid == kids[1] {
			return poll.Success()
		}
		return poll.Continue("oldest child %d (%v), want %d", pid, err, kids[1])
	}, poll.WithTimeout(5*time.Second))
}

func TestOldestChildNone(t *testing.T) {
	sleep := exec.Command("sleep", "60")
	assert.NilError(t, sleep.Start())
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	_, _, err := OldestChild(sleep.Process.Pid)
	assert.Check(t, is.ErrorContains(err, "has no child"))
	_, _, err = oldestChildByScan(sleep.Process.Pid)
	assert.Check(t, is.ErrorContains(err, "has no child"))

	// A pid that names no process.
	_, _, err = OldestChild(1 << 30)
	assert.Check(t, is.ErrorContains(err, "list the children of pid"))
}
