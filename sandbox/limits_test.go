package sandbox

import (
	"errors"
	"math"
	"testing"

	"gotest.tools/v3/assert"
)

// TestLimitsNoCgroup: without --memory, --pids or --cpus no cgroup is
// asked for, even where none is delegated, and the nil group is safe.
func TestLimitsNoCgroup(t *testing.T) {
	cg, err := (&Limits{Rlimits: []Rlimit{{"nofile", 1, 1}}}).cgroup()
	assert.NilError(t, err)
	assert.Check(t, cg == nil)
	cg.Remove() // nil is fine
	assert.NilError(t, cg.Add(1))
}

// Limits.CPUs values that are not a count of CPUs are refused before any
// cgroup is looked at: NaN (which compares false with every bound), the
// infinities, values past the kernel's CPU limit (1e300 used to overflow
// to 1% of a CPU) and values below the kernel's 1% minimum.
func TestLimitsRefuseBadCPUs(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e300, maxCPUs + 1, 0.001, -1} {
		l := Limits{CPUs: v}
		assert.Check(t, l.validate() != nil, "Limits.CPUs %v accepted", v)
	}
	err := (&Limits{CPUs: math.NaN()}).validate()
	assert.ErrorContains(t, err, "Limits.CPUs NaN: not a number of CPUs; fix:")
	var se *SpecError
	assert.Check(t, errors.As(err, &se) && se.Field == "Limits.CPUs", "%#v", err)
}
