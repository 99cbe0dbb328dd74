package sandbox

import (
	"testing"

	"github.com/nsbox/nsbox/mapping"
	"gotest.tools/v3/assert"
)

// TestGroupsValidate: Process.Groups needs a map that allows
// setgroups(2) and maps every group; the stage gets them as records.
func TestGroupsValidate(t *testing.T) {
	s := testSpec()
	s.Process.Terminal = false
	s.Process.Groups = []uint32{1000}
	assert.ErrorContains(t, s.Validate(), "Process.Groups: needs a gid map that allows setgroups(2)")

	wide := []mapping.Extent{{Inner: 0, Outer: 1000, Count: 1}, {Inner: 1, Outer: 100000, Count: 65536}}
	s.Mapping.UIDs, s.Mapping.GIDs = wide, wide
	if !s.Mapping.SetgroupsAllowed() {
		t.Fatal("a map with subordinate ids should allow setgroups here")
	}
	s.Process.Groups = []uint32{10, 27}
	assert.NilError(t, s.Validate())
	c := stageConfig(s, planNesting(s), -1)
	assert.DeepEqual(t, c.Groups, []uint32{10, 27})
	s.Process.Groups = []uint32{10, 70000}
	assert.ErrorContains(t, s.Validate(), "Process.Groups 70000: not mapped into the sandbox")
	s.Process.Groups = make([]uint32, 65)
	assert.ErrorContains(t, s.Validate(), "Process.Groups 65: more than 64 groups")
}
