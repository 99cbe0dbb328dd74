package sandbox

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestLimitFiles(t *testing.T) {
	l := &Limits{Memory: 64 << 20, PIDs: 10, CPUs: 1.5}
	assert.Check(t, is.DeepEqual(controllersFor(l), []string{"memory", "pids", "cpu"}))
	assert.Check(t, is.DeepEqual(limitFiles(l), [][2]string{
		{"memory.max", "67108864"}, {"memory.swap.max", "0"}, {"pids.max", "10"}, {"cpu.max", "150000 100000"},
	}))
	assert.Check(t, is.DeepEqual(limitFiles(&Limits{CPUs: 0.001}), [][2]string{{"cpu.max", "1000 100000"}}))
	cg, err := (&Limits{}).cgroup()
	assert.NilError(t, err)
	assert.Check(t, cg == nil)
	cg.remove() // nil is fine
	assert.NilError(t, cg.add(1))
}

// TestNewLimitCgroupFiles runs newLimitCgroup against a directory that
// stands in for a delegated cgroup: the files it writes are the interface.
func TestNewLimitCgroupFiles(t *testing.T) {
	parent := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("memory\n"), 0o644))
	cg, err := newLimitCgroup(&Limits{Memory: 1 << 20, PIDs: 5}, parent)
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(cg.dir, filepath.Join(parent, "nsbox-"+strconv.Itoa(os.Getpid())+"-")), cg.dir)
	// A second sandbox of the same launcher gets a cgroup of its own.
	other, err := newLimitCgroup(&Limits{PIDs: 5}, parent)
	assert.NilError(t, err)
	assert.Check(t, other.dir != cg.dir)
	b, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	assert.Check(t, is.Equal(string(b), "+pids"), "only the missing controller is enabled")
	b, _ = os.ReadFile(filepath.Join(cg.dir, "pids.max"))
	assert.Check(t, is.Equal(string(b), "5"))
	b, _ = os.ReadFile(filepath.Join(cg.dir, "memory.max"))
	assert.Check(t, is.Equal(string(b), "1048576"))
}

// --cpus values that are not a count of CPUs are refused before any
// cgroup is looked at: NaN (which compares false with every bound), the
// infinities, values past the kernel's CPU limit (1e300 used to overflow
// to 1% of a CPU) and values below the kernel's 1% minimum.
func TestLimitsRefuseBadCPUs(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e300, MaxCPUs + 1, 0.001, -1} {
		l := Limits{CPUs: v}
		assert.Check(t, l.validate() != nil, "--cpus %v accepted", v)
	}
	err := (&Limits{CPUs: math.NaN()}).validate()
	assert.ErrorContains(t, err, "--cpus NaN: not a number of CPUs; fix:")
}
