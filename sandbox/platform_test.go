package sandbox

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The Landlock rights each ABI adds are the kernel's (linux/landlock.h,
// Documentation/userspace-api/landlock.rst): the named constants must
// compose to them.
func TestLandlockHandledByABI(t *testing.T) {
	for abi, want := range map[int][3]uint64{
		1: {1<<13 - 1, 0, 0}, 2: {1<<14 - 1, 0, 0}, 3: {1<<15 - 1, 0, 0},
		4: {1<<15 - 1, 3, 0}, 5: {1<<16 - 1, 3, 0}, 6: {1<<16 - 1, 3, 3},
	} {
		fs, net, scoped := landlockHandled(abi)
		assert.Check(t, is.DeepEqual([3]uint64{fs, net, scoped}, want), "ABI %d", abi)
	}
}

// Every capability name parses back to its own bit.
func TestCapabilityNamesRoundTrip(t *testing.T) {
	for i := range 41 {
		names := (CapSet(1) << i).Names()
		assert.Assert(t, is.Len(names, 1))
		c, err := ParseCapability(names[0])
		assert.NilError(t, err)
		assert.Check(t, is.Equal(c, CapSet(1)<<i), names[0])
	}
	assert.Check(t, is.DeepEqual((CapSet(1)<<13).Names(), []string{"CAP_NET_RAW"}))
	assert.Check(t, is.DeepEqual((CapSet(1)<<41).Names(), []string{"cap_41"}))
}
