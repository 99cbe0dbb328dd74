package state

import (
	"os"
	"testing"
	"time"

	"github.com/nsbox/nsbox/sandbox"
)

// BenchmarkRunBookkeeping is what nsbox run adds to a launch: sweep the
// directory, reserve the name, write state.json (with a spec carrying a
// typical environment), read PID 1's start time and maps, release.
func BenchmarkRunBookkeeping(b *testing.B) {
	dir := b.TempDir()
	spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"true"}, Env: os.Environ()}}
	for i := 0; i < b.N; i++ {
		Clean(dir)
		h, err := Reserve(dir, RandomName())
		if err != nil {
			b.Fatal(err)
		}
		pid := os.Getpid()
		st, _ := StartTime(pid)
		u, _ := ReadProcFile("/proc/self/uid_map")
		g, _ := ReadProcFile("/proc/self/gid_map")
		if err := h.Write(&Entry{Name: h.Name, Pid: pid, PidStartTime: st, Created: time.Now(),
			UIDMap: string(u), GIDMap: string(g), Spec: spec}); err != nil {
			b.Fatal(err)
		}
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
	}
}
