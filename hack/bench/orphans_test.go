package main

import (
	"testing"

	"gotest.tools/v3/assert"
)

// spin is a shell loop of about 30 ms of CPU.
const spin = `i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done`

// A run that leaves its work to an orphan is charged for it: the shell
// spins in a child it does not wait for, as bubblewrap leaves its PID 1.
func TestTimedCountsOrphans(t *testing.T) {
	assert.NilError(t, becomeSubreaper())
	_, waited, err := timed([]string{"sh", "-c", spin})
	assert.NilError(t, err)
	_, orphaned, err := timed([]string{"sh", "-c", "sh -c '" + spin + "' >/dev/null 2>&1 & exit 0"})
	assert.NilError(t, err)
	t.Logf("CPU: spin waited for %.1f ms, spin orphaned %.1f ms", waited, orphaned)
	assert.Assert(t, orphaned > waited/2, "the orphan's %.1f ms of CPU were left out (waited for: %.1f ms)", orphaned, waited)
	assert.Equal(t, reapOrphans(0), 0.0) // nothing left to reap
}

// In a batch every start gets an even share of the orphans' CPU.
func TestBatchSharesOrphans(t *testing.T) {
	assert.NilError(t, becomeSubreaper())
	_, waited, err := run([]string{"sh", "-c", spin})
	assert.NilError(t, err)
	_, cpus, errs := batch([]string{"sh", "-c", "sh -c '" + spin + "' >/dev/null 2>&1 & exit 0"}, 4)
	assert.Equal(t, len(errs), 0)
	assert.Equal(t, len(cpus), 4)
	for _, c := range cpus {
		assert.Assert(t, c > waited/2, "a start's share %.1f ms, the spin %.1f ms", c, waited)
	}
}
