package mapping

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// ForCaller reads what NewPlan needs from this system. For real root
// without subordinate ids of its own that is a range free in both files:
// with the usual fallback range taken by someone else's line, the plan
// must move past it (Complete read the files, subid.Source.FreeRange
// searched them). Other callers get their own ids.
func TestForCallerSingle(t *testing.T) {
	dir := t.TempDir()
	taken := "someone:100000:65536\nother:165536:10\n"
	for _, f := range []string{"subuid", "subgid"} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, f), []byte(taken), 0o644))
	}
	t.Setenv("NSBOX_SUBUID_FILE", filepath.Join(dir, "subuid"))
	t.Setenv("NSBOX_SUBGID_FILE", filepath.Join(dir, "subgid"))
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	here, err := CurrentNamespace()
	assert.NilError(t, err)

	p, err := ForCaller(Request{UID: uid, GID: gid, Mode: Single, Root: true})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(p.UID, uint32(0)))
	assert.Assert(t, is.Len(p.UIDs, 1))
	e := p.UIDs[0]
	assert.Check(t, is.Equal(e.Inner, uint32(0)))
	if uid != 0 || here.Nested {
		assert.Check(t, is.DeepEqual(p.UIDs, []Extent{{Inner: 0, Outer: uid, Count: 1}}))
		return
	}
	assert.Check(t, e.Outer >= 165546, "real root's fallback %d overlaps a line of the subuid file", e.Outer)
}

// ReadsSubIDs is what Complete goes by: where it says false, a subuid
// file that cannot be read does not matter, since it is not read.
func TestReadsSubIDsIsWhatCompleteReads(t *testing.T) {
	dir := t.TempDir() // a directory where the files should be: reading it fails
	t.Setenv("NSBOX_SUBUID_FILE", dir)
	t.Setenv("NSBOX_SUBGID_FILE", dir)
	here, err := CurrentNamespace()
	assert.NilError(t, err)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, req := range []Request{
		{UID: uid, GID: gid, Mode: Single},
		{UID: uid, GID: gid, Mode: Single, Root: true},
		{UID: uid, GID: gid, Mode: Auto},
		{UID: uid, GID: gid, Mode: Single, Users: []Extent{{Inner: 0, Outer: uid, Count: 1}}},
		{UID: 0, GID: 0, Mode: Single},
	} {
		reads := req.ReadsSubIDs(here)
		err := Complete(&req)
		if reads {
			assert.Check(t, err != nil, "%+v: read the files, and reading them fails", req)
		} else {
			assert.Check(t, err, "%+v", req)
		}
	}
	assert.Check(t, !Request{UID: 1000, Mode: Single}.ReadsSubIDs(Namespace{}))
	assert.Check(t, Request{UID: 1000, Mode: Auto}.ReadsSubIDs(Namespace{}))
	assert.Check(t, Request{UID: 0, Mode: Single}.ReadsSubIDs(Namespace{}))
	assert.Check(t, !Request{UID: 0, Mode: Single}.ReadsSubIDs(Namespace{Nested: true}))
}
