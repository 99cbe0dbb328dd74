package cgroup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestLimitFiles(t *testing.T) {
	l := Limits{Memory: 64 << 20, PIDs: 10, CPUs: 1.5}
	assert.Check(t, is.DeepEqual(l.Controllers(), []string{"memory", "pids", "cpu"}))
	assert.Check(t, is.DeepEqual(l.files(), [][2]string{
		{"memory.max", "67108864"}, {"memory.swap.max", "0"}, {"pids.max", "10"}, {"cpu.max", "150000 100000"},
	}))
	assert.Check(t, is.DeepEqual(Limits{CPUs: 0.001}.files(), [][2]string{{"cpu.max", "1000 100000"}}))
	assert.Check(t, is.Len(Limits{}.Controllers(), 0))
}

// TestNoLimitsNoGroup: zero limits make no cgroup and touch no file, and
// the nil group they give is safe to use.
func TestNoLimitsNoGroup(t *testing.T) {
	parent := t.TempDir()
	g, err := New(Limits{}, parent)
	assert.NilError(t, err)
	assert.Check(t, g == nil)
	entries, err := os.ReadDir(parent)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0))
	g.Remove() // nil is fine
	assert.NilError(t, g.Add(1))
}

// TestNewFiles runs New against a directory that stands in for a
// delegated cgroup: the files it writes are the interface.
func TestNewFiles(t *testing.T) {
	parent := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("memory\n"), 0o644))
	g, err := New(Limits{Memory: 1 << 20, PIDs: 5}, parent)
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(g.dir, filepath.Join(parent, "nsbox-"+strconv.Itoa(os.Getpid())+"-")), g.dir)
	// A second sandbox of the same launcher gets a cgroup of its own.
	other, err := New(Limits{PIDs: 5}, parent)
	assert.NilError(t, err)
	assert.Check(t, other.dir != g.dir)
	b, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	assert.Check(t, is.Equal(string(b), "+pids"), "only the missing controller is enabled")
	b, _ = os.ReadFile(filepath.Join(g.dir, "pids.max"))
	assert.Check(t, is.Equal(string(b), "5"))
	b, _ = os.ReadFile(filepath.Join(g.dir, "memory.max"))
	assert.Check(t, is.Equal(string(b), "1048576"))
	b, _ = os.ReadFile(filepath.Join(g.dir, "memory.swap.max"))
	assert.Check(t, is.Equal(string(b), "0"))
	// Remove deletes the (empty) group.
	for _, f := range []string{"pids.max", "memory.max", "memory.swap.max"} {
		assert.NilError(t, os.Remove(filepath.Join(g.dir, f))) // a real cgroup's files go with it
	}
	g.Remove()
	_, err = os.Stat(g.dir)
	assert.Check(t, os.IsNotExist(err), "group %s left behind", g.dir)
}
