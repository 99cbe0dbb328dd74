package state

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/sandbox"
)

// BenchmarkRunBookkeeping is what nsbox run adds to a launch: reserve the
// name, write state.json and its sealed copy (with a spec carrying a
// typical environment), read PID 1's start time and maps, release.
func BenchmarkRunBookkeeping(b *testing.B) {
	dir := b.TempDir()
	spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"true"}, Env: os.Environ()}}
	for i := 0; i < b.N; i++ {
		h, err := Reserve(dir, RandomName())
		if err != nil {
			b.Fatal(err)
		}
		pid := os.Getpid()
		st, _ := StartTime(pid)
		u, _ := procfs.ReadFile("/proc/self/uid_map")
		g, _ := procfs.ReadFile("/proc/self/gid_map")
		if err := h.Write(&Entry{Name: h.Name, Pid: pid, PidStartTime: st, Created: time.Now(),
			UIDMap: string(u), GIDMap: string(g), Spec: spec}); err != nil {
			b.Fatal(err)
		}
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReserveWith1000Running is the cost of claiming a name next to
// 1000 running sandboxes (entries whose lock is held). "reserve" is what
// nsbox run does now; "sweep-then-reserve" is what it did before (Clean
// on every start: an open and a flock per entry), for comparison.
func BenchmarkReserveWith1000Running(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 1000; i++ {
		h, err := Reserve(dir, fmt.Sprintf("running-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Release() })
	}
	for _, sweep := range []bool{false, true} {
		name := "reserve"
		if sweep {
			name = "sweep-then-reserve"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if sweep {
					Clean(dir)
				} else {
					MaybeClean(dir) // as nsbox run calls it: a stat, no sweep
				}
				h, err := Reserve(dir, RandomName())
				if err != nil {
					b.Fatal(err)
				}
				h.Release()
			}
		})
	}
}
