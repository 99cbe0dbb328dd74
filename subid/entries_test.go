package subid

import (
	"testing"

	"gotest.tools/v3/assert"
	tfs "gotest.tools/v3/fs"
)

func TestEntriesAndOrigin(t *testing.T) {
	clearEnv(t)
	dir := tfs.NewDir(t, "subid", tfs.WithFile("subuid", "# c\nbob:100000:65536\n\n  alice:0:65536 \n1000:300000:10\n"))
	s := Source{UIDFile: dir.Join("subuid"), GIDFile: dir.Join("none")}
	got, err := s.Entries(UIDs)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Entry{
		{Owner: "bob", Range: Range{100000, 65536}, Line: 2, Text: "bob:100000:65536"},
		{Owner: "alice", Range: Range{0, 65536}, Line: 4, Text: "alice:0:65536"},
		{Owner: "1000", Range: Range{300000, 10}, Line: 5, Text: "1000:300000:10"},
	})
	got, err = s.Entries(GIDs)
	assert.NilError(t, err)
	assert.Assert(t, got == nil)

	assert.Equal(t, s.Origin(alice, UIDs, 0), dir.Join("subuid")+` line 4 "alice:0:65536"`)
	assert.Equal(t, s.Origin(alice, UIDs, 300005), dir.Join("subuid")+` line 5 "1000:300000:10"`)
	assert.Equal(t, s.Origin(alice, UIDs, 100000), "", "bob's line is not alice's")
	assert.Equal(t, s.Origin(alice, GIDs, 0), "")

	bad := tfs.NewDir(t, "bad", tfs.WithFile("subuid", "bob:1:0\n"))
	_, err = Source{UIDFile: bad.Join("subuid")}.Entries(UIDs)
	assert.ErrorContains(t, err, ":1: count is 0")
}

func TestFreeRange(t *testing.T) {
	for _, tc := range []struct {
		name  string
		taken [][]Range
		want  Range
		ok    bool
	}{
		{name: "empty", want: Range{100000, 65536}, ok: true},
		{name: "first taken", taken: [][]Range{{{100000, 65536}}}, want: Range{165536, 65536}, ok: true},
		{name: "both files, out of order", taken: [][]Range{{{165536, 65536}, {100000, 65536}}, {{231072, 10}}}, want: Range{231082, 65536}, ok: true},
		{name: "gap too small", taken: [][]Range{{{0, 100010}, {165000, 1}}}, want: Range{165001, 65536}, ok: true},
		{name: "gap large enough", taken: [][]Range{{{300000, 5}, {0, 1}}}, want: Range{100000, 65536}, ok: true},
		{name: "nothing free", taken: [][]Range{{{0, FreeMax}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FreeRange(65536, tc.taken...)
			assert.Equal(t, ok, tc.ok)
			assert.Equal(t, got, tc.want)
		})
	}
}
