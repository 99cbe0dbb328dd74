package proctree

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nsbox/nsbox/internal/procfs"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// tree starts a shell with n sleeping children and one more, a shell
// with a sleeping child of its own, and returns the shell and the pids
// of its descendants.
func tree(t testing.TB, n int) (*exec.Cmd, map[int]bool) {
	f := filepath.Join(t.TempDir(), "grandchild")
	script := `for i in $(seq ` + strconv.Itoa(n) + `); do sleep 600 & echo $!; done
sh -c 'sleep 600 & echo $! >"$0"; wait' "` + f + `" & echo $!
until [ -s "` + f + `" ]; do sleep 0.01; done; cat "` + f + `"; echo end; wait`
	sh := exec.Command("sh", "-c", script)
	// A group of its own, which the cleanup kills whole: the sleeps too.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := sh.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, sh.Start())
	t.Cleanup(func() { syscall.Kill(-sh.Process.Pid, syscall.SIGKILL); sh.Process.Kill(); sh.Wait() })
	want := map[int]bool{}
	r := bufio.NewScanner(out)
	for r.Scan() {
		if r.Text() == "end" {
			break
		}
		pid, err := strconv.Atoi(r.Text())
		assert.NilError(t, err)
		want[pid] = true
	}
	assert.Check(t, is.Len(want, n+2))
	// Each is a sleep (or sh) by now, not a shell being forked.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for pid := range want {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); string(b) != "sleep\n" && string(b) != "sh\n" {
				return poll.Continue("pid %d is %q", pid, b)
			}
		}
		return poll.Success()
	}, poll.WithTimeout(10*time.Second))
	return sh, want
}

func startOf(t testing.TB, pid int) uint64 {
	st, err := procfs.ReadStat(pid)
	assert.NilError(t, err)
	return st.StartTime
}

// TestWalk finds every descendant of a shell, with its start time, once
// each; none halted, then all of them, stopped through Proc.Signal; and
// the root only with withRoot.
func TestWalk(t *testing.T) {
	sh, want := tree(t, 20)
	root := sh.Process.Pid
	collect := func(withRoot bool) (map[int]bool, bool) {
		got, halted := map[int]bool{}, true
		complete, err := Walk(root, startOf(t, root), withRoot, time.Now().Add(5*time.Second), func(p *Proc) error {
			assert.Check(t, !got[p.Pid], "pid %d visited twice", p.Pid)
			got[p.Pid] = true
			assert.Check(t, is.Equal(p.Start, startOf(t, p.Pid)))
			halted = halted && p.Halted
			return nil
		})
		assert.NilError(t, err)
		assert.Check(t, complete)
		return got, halted
	}
	got, halted := collect(false)
	assert.Check(t, is.DeepEqual(got, want))
	assert.Check(t, !halted)
	got, _ = collect(true)
	assert.Check(t, got[root] && len(got) == len(want)+1)

	_, err := Walk(root, startOf(t, root), false, time.Now().Add(5*time.Second), func(p *Proc) error {
		return p.Signal(unix.SIGSTOP)
	})
	assert.NilError(t, err)
	for pid := range want {
		assert.NilError(t, WaitHalted(pid, startOf(t, pid), time.Now().Add(5*time.Second)))
	}
	_, halted = collect(false)
	assert.Check(t, halted)
	_, err = Walk(root, startOf(t, root), false, time.Now().Add(5*time.Second), func(p *Proc) error {
		return p.Signal(unix.SIGCONT)
	})
	assert.NilError(t, err)
}

// TestWalkLater: a visit that returns Later is called again after the
// others, with Again set, and its children are listed after that.
func TestWalkLater(t *testing.T) {
	sh, want := tree(t, 3)
	root := sh.Process.Pid
	var order []int
	again := 0
	complete, err := Walk(root, startOf(t, root), true, time.Now().Add(5*time.Second), func(p *Proc) error {
		if p.Again {
			again++
			return nil
		}
		order = append(order, p.Pid)
		if p.Pid == root {
			return Later
		}
		return nil
	})
	assert.NilError(t, err)
	assert.Check(t, complete)
	assert.Check(t, is.Equal(again, 1))
	assert.Check(t, is.Len(order, len(want)+1))
}

// TestWalkRootGone: a root that is not the process of that start time
// (ended, or its pid taken by another) is refused before anything is
// visited.
func TestWalkRootGone(t *testing.T) {
	sh, _ := tree(t, 1)
	root := sh.Process.Pid
	_, err := Walk(root, startOf(t, root)+1, false, time.Now().Add(time.Second), func(p *Proc) error {
		t.Errorf("visited pid %d", p.Pid)
		return nil
	})
	assert.Check(t, is.ErrorIs(err, ErrRootGone))
}

// TestHaltedThreads: a process is halted only when all its threads are
// (its stat shows the main thread's state). The test binary runs several
// threads.
func TestHaltedThreads(t *testing.T) {
	self := os.Getpid()
	st, err := procfs.ReadStat(self)
	assert.NilError(t, err)
	assert.Check(t, st.Threads > 1)
	// Running: not halted, whatever the main thread's state says.
	assert.Check(t, !processHalted(self, procfs.Stat{State: 'T', Threads: st.Threads}, nil))
}

// A process counts as paused when it runs none of its own code and will
// not until continued: an uninterruptible sleep only with SIGSTOP pending.
func TestHalted(t *testing.T) {
	self := os.Getpid() // running, nothing pending
	for state, want := range map[byte]bool{'T': true, 't': true, 'Z': true, 'X': true, 'R': false, 'S': false, 'D': false} {
		assert.Check(t, Halted(self, self, state) == want, "state %c", state)
	}
}

func BenchmarkWalk100(b *testing.B) {
	sh, _ := tree(b, 100)
	root := sh.Process.Pid
	start := startOf(b, root)
	b.ResetTimer()
	for range b.N {
		n := 0
		if _, err := Walk(root, start, false, time.Now().Add(5*time.Second), func(p *Proc) error { n++; return nil }); err != nil || n != 102 {
			b.Fatal(err, n)
		}
	}
}
