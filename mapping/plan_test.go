package mapping

import (
	"errors"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/subid"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// usable are helpers that pass Helpers.Usable; NewPlan never runs them.
var usable = Helpers{NewUIDMap: "/usr/bin/newuidmap", NewGIDMap: "/usr/bin/newgidmap"}

var missing = Helpers{Problem: "newuidmap and newgidmap not found in PATH; fix: apt-get install uidmap"}

var sub100k = []subid.Range{{Start: 100000, Count: 65536}}

func TestNewPlan(t *testing.T) {
	for _, tc := range []struct {
		name           string
		req            Request
		uids, gids     []Extent
		uid, gid       uint32
		privileged     bool
		setgroups      bool
		noticeContains []string // all must appear; nil means no notice
	}{
		{
			name: "unprivileged default with subids",
			req:  Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable},
			uids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}},
			gids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}},
			uid:  1000, gid: 1000, setgroups: true,
		},
		{
			name: "uid and gid differ",
			req:  Request{UID: 1000, GID: 50, SubUIDs: sub100k, SubGIDs: []subid.Range{{Start: 200000, Count: 65536}}, Helpers: usable},
			uids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}},
			gids: []Extent{{0, 200000, 50}, {50, 50, 1}, {51, 200050, 65485}},
			uid:  1000, gid: 50, setgroups: true,
		},
		{
			name: "root layout",
			req:  Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable, Root: true},
			uids: []Extent{{0, 1000, 1}, {1, 100000, 65536}},
			gids: []Extent{{0, 1000, 1}, {1, 100000, 65536}},
			uid:  0, gid: 0, setgroups: true,
		},
		{
			name: "several subid ranges split across extents",
			req: Request{UID: 1000, GID: 1000, Helpers: usable,
				SubUIDs: []subid.Range{{Start: 100000, Count: 500}, {Start: 200000, Count: 1000}, {Start: 300000, Count: 100000}},
				SubGIDs: sub100k},
			uids: []Extent{{0, 100000, 500}, {500, 200000, 500}, {1000, 1000, 1}, {1001, 200500, 500}, {1501, 300000, 64035}},
			gids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}},
			uid:  1000, gid: 1000, setgroups: true,
		},
		{
			name: "root layout across ranges",
			req: Request{UID: 1000, GID: 1000, Helpers: usable, Root: true,
				SubUIDs: []subid.Range{{Start: 100000, Count: 10}, {Start: 200000, Count: 100000}},
				SubGIDs: []subid.Range{{Start: 100000, Count: 10}}},
			uids:      []Extent{{0, 1000, 1}, {1, 100000, 10}, {11, 200000, 65526}},
			gids:      []Extent{{0, 1000, 1}, {1, 100000, 10}},
			setgroups: true,
		},
		{
			name: "fewer than 65535 subids",
			req: Request{UID: 1000, GID: 1000, Helpers: usable,
				SubUIDs: []subid.Range{{Start: 100000, Count: 2000}},
				SubGIDs: []subid.Range{{Start: 100000, Count: 10}}},
			uids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 1000}},
			gids: []Extent{{0, 100000, 10}, {1000, 1000, 1}},
			uid:  1000, gid: 1000, setgroups: true,
		},
		{
			name: "own id beyond 65535",
			req:  Request{UID: 70000, GID: 70000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable},
			uids: []Extent{{0, 100000, 65536}, {70000, 70000, 1}},
			gids: []Extent{{0, 100000, 65536}, {70000, 70000, 1}},
			uid:  70000, gid: 70000, setgroups: true,
		},
		{
			name: "subids overlapping own id and each other are skipped",
			req: Request{UID: 100005, GID: 1000, Helpers: usable,
				SubUIDs: []subid.Range{{Start: 100000, Count: 10}, {Start: 100008, Count: 4}},
				SubGIDs: sub100k},
			uids: []Extent{{0, 100000, 5}, {5, 100006, 6}, {100005, 100005, 1}},
			gids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}},
			uid:  100005, gid: 1000, setgroups: true,
		},
		{
			name: "no subids: single, no notice",
			req:  Request{UID: 1000, GID: 1000, Helpers: usable},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
		},
		{
			name: "no subids, root",
			req:  Request{UID: 1000, GID: 1000, Root: true},
			uids: []Extent{{0, 1000, 1}},
			gids: []Extent{{0, 1000, 1}},
		},
		{
			name: "helpers unusable with subids: single and notice",
			req:  Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: missing},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
			noticeContains: []string{"cannot map subordinate ids: ", "(Request.Mode Single silences this)", "newuidmap and newgidmap not found in PATH", "apt-get install uidmap", "mapping only uid 1000 and gid 1000"},
		},
		{
			name: "helpers never looked up, subuids and subgids",
			req:  Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
			noticeContains: []string{"apt-get install uidmap", "mapping only uid 1000 and gid 1000 ("},
		},
		{
			name: "subuids but no subgids: single, notice says so",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable, Owner: "alice",
				Free: subid.Range{Start: 231072, Count: 65536}},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
			noticeContains: []string{"you have subordinate uids (/etc/subuid) but no subordinate gids (no line for alice in /etc/subgid); fix: as root, usermod --add-subgids 231072-296607 alice;",
				"mapping only uid 1000 and gid 1000 ("},
		},
		{
			name: "subgids but no subuids: single, notice says so",
			req:  Request{UID: 1000, GID: 1000, SubGIDs: sub100k, Helpers: usable, SubUIDFile: "/x/subuid", SubGIDFile: "/x/subgid"},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
			noticeContains: []string{"you have subordinate gids (/x/subgid) but no subordinate uids (no line for 1000 in /x/subuid); fix: as root, usermod --add-subuids 100000-165535 1000;"},
		},
		{
			name:      "subids mode maps as auto does, never falls back",
			req:       Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable, Root: true, Mode: Subids},
			uids:      []Extent{{0, 1000, 1}, {1, 100000, 65536}},
			gids:      []Extent{{0, 1000, 1}, {1, 100000, 65536}},
			setgroups: true,
		},
		{
			name: "nested root (unshare -r): only what exists here",
			req: Request{UID: 0, GID: 0, SubUIDs: sub100k, SubGIDs: sub100k,
				Here: Namespace{Nested: true, SetID: true, UIDs: []Extent{{0, 1000, 1}}, GIDs: []Extent{{0, 1000, 1}}}},
			uids:       []Extent{{0, 0, 1}},
			gids:       []Extent{{0, 0, 1}},
			privileged: true, setgroups: true,
		},
		{
			name: "nested root with ids: identity, without the parent's root",
			req: Request{UID: 0, GID: 0, Root: true,
				Here: Namespace{Nested: true, SetID: true,
					UIDs: []Extent{{0, 1000, 1}, {1, 100000, 65536}},
					GIDs: []Extent{{0, 1000, 1}, {1, 0, 1}, {2, 100000, 100}}}},
			uids:       []Extent{{0, 0, 1}, {1, 1, 65536}},
			gids:       []Extent{{0, 0, 1}, {1, 2, 100}},
			privileged: true, setgroups: true,
		},
		{
			name: "nested root, not root inside the sandbox: own id at its place",
			req: Request{UID: 0, GID: 0,
				Here: Namespace{Nested: true, SetID: true, UIDs: []Extent{{0, 1000, 1}, {1, 100000, 65536}}, GIDs: []Extent{{0, 1000, 1}}}},
			uids:       []Extent{{0, 0, 1}, {1, 1, 65535}},
			gids:       []Extent{{0, 0, 1}},
			privileged: true, setgroups: true,
		},
		{
			name: "nested root, single mode",
			req: Request{UID: 0, GID: 0, Mode: Single,
				Here: Namespace{Nested: true, SetID: true, UIDs: []Extent{{0, 1000, 1}, {1, 100000, 65536}}, GIDs: []Extent{{0, 1000, 1}}}},
			uids:       []Extent{{0, 0, 1}},
			gids:       []Extent{{0, 0, 1}},
			privileged: true, setgroups: true,
		},
		{
			name: "nested root without capabilities: own id, direct",
			req: Request{UID: 0, GID: 0,
				Here: Namespace{Nested: true, UIDs: []Extent{{0, 1000, 1}, {1, 100000, 65536}}, GIDs: []Extent{{0, 1000, 1}}}},
			uids: []Extent{{0, 0, 1}},
			gids: []Extent{{0, 0, 1}},
		},
		{
			name: "nested unprivileged: host subids do not exist here, no notice",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable,
				Here: Namespace{Nested: true, UIDs: []Extent{{0, 100000, 1000}, {1000, 1000, 1}}, GIDs: []Extent{{1000, 1000, 1}}}},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
		},
		{
			name:       "real root without subids, free range given",
			req:        Request{UID: 0, GID: 0, Free: subid.Range{Start: 165536, Count: 65536}},
			uids:       []Extent{{0, 165536, 65536}},
			gids:       []Extent{{0, 165536, 65536}},
			privileged: true, setgroups: true,
		},
		{
			name: "single mode",
			req:  Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable, Mode: Single},
			uids: []Extent{{1000, 1000, 1}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  1000, gid: 1000,
		},
		{
			name: "single mode, root",
			req:  Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Mode: Single, Root: true},
			uids: []Extent{{0, 1000, 1}},
			gids: []Extent{{0, 1000, 1}},
		},
		{
			name: "explicit users, gids computed",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable,
				Users: []Extent{{0, 1000, 1}, {1, 100000, 65536}}},
			uids: []Extent{{0, 1000, 1}, {1, 100000, 65536}},
			gids: []Extent{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64535}},
			uid:  0, gid: 1000, setgroups: true,
		},
		{
			name: "explicit users and groups",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable,
				Users:  []Extent{{500, 1000, 1}, {0, 100000, 500}},
				Groups: []Extent{{7, 1000, 1}}},
			uids: []Extent{{500, 1000, 1}, {0, 100000, 500}},
			gids: []Extent{{7, 1000, 1}},
			uid:  500, gid: 7, setgroups: false,
		},
		{
			name: "explicit own id only, no helpers needed",
			req:  Request{UID: 1000, GID: 1000, Users: []Extent{{0, 1000, 1}}, Groups: []Extent{{0, 1000, 1}}},
			uids: []Extent{{0, 1000, 1}},
			gids: []Extent{{0, 1000, 1}},
		},
		{
			name: "explicit map leaving own uid unmapped: lowest inner",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable,
				Users: []Extent{{20, 100000, 5}, {10, 100100, 5}}},
			uids: []Extent{{20, 100000, 5}, {10, 100100, 5}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  10, gid: 1000,
		},
		{
			name: "explicit map leaving own uid unmapped: inner 0",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable,
				Users: []Extent{{0, 100000, 65536}}},
			uids: []Extent{{0, 100000, 65536}},
			gids: []Extent{{1000, 1000, 1}},
			uid:  0, gid: 1000, setgroups: false,
		},
		{
			name: "explicit with root",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable, Root: true,
				Users: []Extent{{1000, 1000, 1}, {0, 100000, 1000}}},
			uids: []Extent{{1000, 1000, 1}, {0, 100000, 1000}},
			gids: []Extent{{0, 1000, 1}, {1, 100000, 65536}},
			uid:  0, gid: 0, setgroups: true,
		},
		{
			name:       "real root without subids",
			req:        Request{UID: 0, GID: 0},
			uids:       []Extent{{0, RootFallbackStart, RootFallbackCount}},
			gids:       []Extent{{0, 100000, 65536}},
			privileged: true, setgroups: true,
		},
		{
			name: "real root with subids",
			req: Request{UID: 0, GID: 0,
				SubUIDs: []subid.Range{{Start: 200000, Count: 100000}},
				SubGIDs: []subid.Range{{Start: 300000, Count: 1000}}},
			uids:       []Extent{{0, 200000, 65536}},
			gids:       []Extent{{0, 300000, 1000}},
			privileged: true, setgroups: true,
		},
		{
			name:       "real root, single mode",
			req:        Request{UID: 0, GID: 0, Mode: Single, SubGIDs: []subid.Range{{Start: 300000, Count: 1000}}},
			uids:       []Extent{{0, 100000, 1}},
			gids:       []Extent{{0, 300000, 1}},
			privileged: true, setgroups: true,
		},
		{
			name:       "real root, root flag changes nothing",
			req:        Request{UID: 0, GID: 0, Root: true},
			uids:       []Extent{{0, 100000, 65536}},
			gids:       []Extent{{0, 100000, 65536}},
			privileged: true, setgroups: true,
		},
		{
			name:       "real root explicit maps skip the ownership check",
			req:        Request{UID: 0, GID: 0, Users: []Extent{{0, 5000, 10}}, Groups: []Extent{{0, 6000, 10}}},
			uids:       []Extent{{0, 5000, 10}},
			gids:       []Extent{{0, 6000, 10}},
			privileged: true, setgroups: true,
		},
		{
			name:       "host root with subids",
			req:        Request{UID: 0, GID: 0, HostRoot: true, SubUIDs: []subid.Range{{Start: 200000, Count: 65536}}, SubGIDs: []subid.Range{{Start: 200000, Count: 65536}}},
			uids:       []Extent{{0, 0, 1}, {1, 200000, 65535}},
			gids:       []Extent{{0, 0, 1}, {1, 200000, 65535}},
			privileged: true, setgroups: true,
		},
		{
			name:       "host root without subids",
			req:        Request{UID: 0, GID: 0, HostRoot: true},
			uids:       []Extent{{0, 0, 1}},
			gids:       []Extent{{0, 0, 1}},
			privileged: true, setgroups: true,
		},
		{
			name:       "host root, explicit",
			req:        Request{UID: 0, GID: 0, HostRoot: true, Users: []Extent{{0, 0, 65536}}, Groups: []Extent{{0, 0, 65536}}},
			uids:       []Extent{{0, 0, 65536}},
			gids:       []Extent{{0, 0, 65536}},
			privileged: true, setgroups: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(tc.req)
			assert.NilError(t, err)
			assert.DeepEqual(t, p.UIDs, tc.uids)
			assert.DeepEqual(t, p.GIDs, tc.gids)
			assert.Equal(t, p.UID, tc.uid)
			assert.Equal(t, p.GID, tc.gid)
			assert.Equal(t, p.HostUID, tc.req.UID)
			assert.Equal(t, p.HostGID, tc.req.GID)
			assert.Equal(t, p.Privileged, tc.privileged)
			assert.Equal(t, p.SetgroupsAllowed(), tc.setgroups)
			assert.DeepEqual(t, p.Helpers, tc.req.Helpers)
			if tc.noticeContains == nil {
				assert.Equal(t, p.Notice, "")
			}
			for _, s := range tc.noticeContains {
				assert.Assert(t, is.Contains(p.Notice, s))
			}
			assert.Assert(t, !strings.Contains(p.Notice, "\n"))
			wantFallback := tc.req.Mode == Auto && tc.req.UID != 0 && len(tc.req.Users)+len(tc.req.Groups) == 0 && len(p.UIDs) > 1
			assert.Equal(t, p.Fallback, wantFallback)
			// The caller's identity inside is mapped, and maps back to
			// its own host id whenever that is mapped.
			assert.Assert(t, p.MapsInnerUID(p.UID))
			assert.Assert(t, p.MapsInnerGID(p.GID))
			if in, ok := innerOf(p.UIDs, tc.req.UID); ok && !tc.req.Root {
				assert.Equal(t, in, p.UID)
			}
			// Validate accepts what NewPlan made.
			assert.NilError(t, p.Validate(tc.req))
			assert.Assert(t, len(p.UIDs) <= MaxExtents && len(p.GIDs) <= MaxExtents)
		})
	}
}

func TestPlanLookups(t *testing.T) {
	p, err := NewPlan(Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable})
	assert.NilError(t, err)
	for _, tc := range []struct {
		inner, outer uint32
		ok           bool
	}{
		{0, 100000, true}, {999, 100999, true}, {1000, 1000, true}, {1001, 101000, true},
		{65535, 165534, true}, {65536, 0, false}, {4294967294, 0, false},
	} {
		out, ok := p.OuterUID(tc.inner)
		assert.Equal(t, ok, tc.ok, "inner %d", tc.inner)
		assert.Equal(t, out, tc.outer, "inner %d", tc.inner)
		out, ok = p.OuterGID(tc.inner)
		assert.Equal(t, ok, tc.ok)
		assert.Equal(t, out, tc.outer)
		assert.Equal(t, p.MapsInnerUID(tc.inner), tc.ok)
		assert.Equal(t, p.MapsInnerGID(tc.inner), tc.ok)
	}
}

func mustParse(t *testing.T, s string) Extent {
	t.Helper()
	e, err := ParseExtent(s)
	assert.NilError(t, err)
	return e
}

func TestNewPlanErrors(t *testing.T) {
	many := make([]Extent, MaxExtents+1)
	for i := range many {
		many[i] = Extent{Inner: uint32(i), Outer: 100000 + uint32(i), Count: 1}
	}
	atMost := many[:MaxExtents]
	// 340 long lines: within the line limit, beyond a 4 KiB page.
	big := make([]Extent, MaxExtents)
	for i := range big {
		big[i] = Extent{Inner: 4000000000 + uint32(i), Outer: 3000000000 + uint32(i), Count: 1}
	}
	for _, tc := range []struct {
		name    string
		req     Request
		want    error
		message string // exact, or substring with contains
		exact   bool
	}{
		{
			name: "not your ids",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable,
				Users: []Extent{mustParse(t, "0:1:999999999")}},
			want:    ErrNotYours,
			message: "--map-users 0:1:999999999: outer uids 1–999999999 are not yours; uid 1000 may map only itself and its subuid ranges 100000–165535; fix: choose outer ids inside those ranges",
			exact:   true,
		},
		{
			name: "not your ids, no subids",
			req:  Request{UID: 1000, GID: 1000, Helpers: usable, Groups: []Extent{{0, 1000, 1}, {1, 5, 1}}},
			want: ErrNotYours,
			message: "--map-groups 1:5:1: outer gid 5 is not yours; gid 1000 may map only itself and has no subgid ranges; " +
				"fix: map only outer gid 1000, or have an administrator add a range for you to /etc/subgid",
			exact: true,
		},
		{
			name: "outer range spanning two subid ranges is yours",
			req: Request{UID: 1000, GID: 1000, Helpers: usable,
				SubUIDs: []subid.Range{{Start: 100000, Count: 10}, {Start: 100010, Count: 10}},
				Users:   []Extent{{0, 100000, 21}}},
			want:    ErrNotYours,
			message: "--map-users 0:100000:21: outer uids 100000–100020 are not yours; uid 1000 may map only itself and its subuid ranges 100000–100009, 100010–100019",
		},
		{
			name: "inner overlap",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable,
				Users: []Extent{{0, 100000, 10}, {5, 100010, 10}}},
			want:    ErrOverlap,
			message: "--map-users: extents 0:100000:10 and 5:100010:10 both map inner uids 5–9; fix: give each extent its own inner ids",
			exact:   true,
		},
		{
			name: "inner overlap, given out of order",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable,
				Users: []Extent{{5, 100010, 10}, {1000, 1000, 1}, {0, 100000, 6}}},
			want:    ErrOverlap,
			message: "extents 5:100010:10 and 0:100000:6 both map inner uid 5;",
		},
		{
			name: "outer overlap",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable,
				Groups: []Extent{{1000, 1000, 1}, {0, 100000, 10}, {20, 100005, 10}}},
			want:    ErrOverlap,
			message: "--map-groups: extents 0:100000:10 and 20:100005:10 both map outer gids 100005–100009; fix: give each extent its own outer ids",
			exact:   true,
		},
		{
			name:    "too many extents",
			req:     Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable, Users: many},
			want:    ErrTooManyExtents,
			message: "--map-users: 341 extents, but the kernel accepts at most 340; fix: merge adjacent extents or map fewer ranges",
			exact:   true,
		},
		{
			name:    "map text longer than a page",
			req:     Request{UID: 0, GID: 0, Users: big},
			want:    ErrTooManyExtents,
			message: "--map-users: the map text is ",
		},
		{
			name:    "inner overflow",
			req:     Request{UID: 0, GID: 0, Users: []Extent{{4294967290, 100000, 10}}},
			want:    ErrInvalidExtent,
			message: "--map-users 4294967290:100000:10: inner uids 4294967290–4294967299 run past 4294967294, the largest id a user namespace can map (4294967295 is (uid_t)-1); fix: lower the start or the count",
			exact:   true,
		},
		{
			name:    "outer overflow",
			req:     Request{UID: 0, GID: 0, Groups: []Extent{{0, 4294967295, 1}}},
			want:    ErrInvalidExtent,
			message: "--map-groups 0:4294967295:1: outer gids 4294967295–4294967295 run past 4294967294",
		},
		{
			name:    "zero count",
			req:     Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable, Users: []Extent{{0, 1000, 0}}},
			want:    ErrInvalidExtent,
			message: "--map-users 0:1000:0: count is 0, but an extent must map at least one id; fix: use a count of at least 1",
			exact:   true,
		},
		{
			name: "gid map missing the primary gid",
			req: Request{UID: 1000, GID: 1000, SubGIDs: sub100k, Helpers: usable,
				Groups: []Extent{{0, 100000, 65536}}},
			want:    ErrUnmapped,
			message: "--map-groups 0:100000:65536 does not map your primary gid 1000; fix: add an extent with outer gid 1000, e.g. 1000:1000:1",
			exact:   true,
		},
		{
			name: "host root gid map missing gid 0",
			req: Request{UID: 0, GID: 0, HostRoot: true,
				Groups: []Extent{{0, 100000, 65536}}},
			want:    ErrUnmapped,
			message: "does not map your primary gid 0",
		},
		{
			name: "explicit multi map without helpers",
			req: Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: missing,
				Users: []Extent{{0, 1000, 1}, {1, 100000, 65536}}},
			want:    ErrHelperUnusable,
			message: "--map-users 0:1000:1,1:100000:65536 needs newuidmap (only the caller's own uid can be mapped without it), but newuidmap and newgidmap not found in PATH; fix: apt-get install uidmap",
			exact:   true,
		},
		{
			name: "explicit non-own single map without helpers",
			req: Request{UID: 1000, GID: 1000, SubGIDs: sub100k, Helpers: Helpers{NewUIDMap: "/x/newuidmap", NewGIDMap: "/x/newgidmap", Problem: "/x/newgidmap is neither setuid root nor has cap_setgid file capabilities; fix: chmod u+s /x/newgidmap"},
				Groups: []Extent{{1000, 1000, 1}, {0, 100000, 1}}},
			want:    ErrHelperUnusable,
			message: "--map-groups 1000:1000:1,0:100000:1 needs newgidmap (only the caller's own gid can be mapped without it), but /x/newgidmap is neither setuid root",
		},
		{
			name:    "root needs inner 0",
			req:     Request{UID: 1000, GID: 1000, SubUIDs: sub100k, Helpers: usable, Root: true, Users: []Extent{{1, 100000, 999}, {1000, 1000, 1}}},
			want:    ErrUnmapped,
			message: "--root needs inner uid 0 mapped, but --map-users 1:100000:999,1000:1000:1 does not map it; fix: add an extent with inner 0, e.g. 0:1000:1",
			exact:   true,
		},
		{
			name:    "root needs inner gid 0",
			req:     Request{UID: 1000, GID: 1000, Root: true, Groups: []Extent{{1000, 1000, 1}}},
			want:    ErrUnmapped,
			message: "--root needs inner gid 0 mapped",
		},
		{
			name:    "real root mapping host root",
			req:     Request{UID: 0, GID: 0, Users: []Extent{{0, 0, 10}}},
			want:    ErrHostRoot,
			message: "--map-users 0:0:10 maps host root (outer uid 0) into the sandbox; fix: choose other outer ids, or add --map-host-root if you mean it",
			exact:   true,
		},
		{
			name:    "real root mapping host gid 0",
			req:     Request{UID: 0, GID: 0, Groups: []Extent{{5, 100000, 10}, {0, 0, 1}}},
			want:    ErrHostRoot,
			message: "--map-groups 0:0:1 maps host root (outer gid 0)",
		},
		{
			name:    "subuid range holding host root",
			req:     Request{UID: 1000, GID: 1000, SubUIDs: []subid.Range{{Start: 0, Count: 65536}}, SubGIDs: sub100k, Helpers: usable, Root: true, Owner: "bob"},
			want:    ErrHostRoot,
			message: "your subordinate uid range 0–65535 includes host uid 0, which nsbox refuses to map into a sandbox; fix: have an administrator move that range in /etc/subuid off it (as root: usermod --del-subuids 0-65535 --add-subuids 100000-165535 bob), or run with --map single",
			exact:   true,
		},
		{
			name:    "subgid range holding host root, default layout",
			req:     Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: []subid.Range{{Start: 0, Count: 10}}, Helpers: usable},
			want:    ErrHostRoot,
			message: "your subordinate gid range 0–9 includes host gid 0",
		},
		{
			name:    "real root with a subid range holding host root",
			req:     Request{UID: 0, GID: 0, SubUIDs: []subid.Range{{Start: 0, Count: 10}, {Start: 200000, Count: 65536}}},
			want:    ErrHostRoot,
			message: "or add --map-host-root if you mean it",
		},
		{
			name: "nested: the parent's root",
			req: Request{UID: 0, GID: 0, Users: []Extent{{0, 5, 1}},
				Here: Namespace{Nested: true, SetID: true, UIDs: []Extent{{0, 1000, 5}, {5, 0, 1}}, GIDs: []Extent{{0, 1000, 1}}}},
			want:    ErrHostRoot,
			message: "--map-users 0:5:1 maps host root (outer uid 5 (root of the parent user namespace)) into the sandbox",
		},
		{
			name: "nested: outer ids that do not exist here",
			req: Request{UID: 0, GID: 0, Users: []Extent{{0, 0, 1}, {1, 100000, 10}},
				Here: Namespace{Nested: true, SetID: true, UIDs: []Extent{{0, 1000, 1}}, GIDs: []Extent{{0, 1000, 1}}}},
			want:    ErrNotHere,
			message: `--map-users 1:100000:10: outer uid 100000 does not exist in this nested user namespace, which maps only uids "0 1000 1" (/proc/self/uid_map); fix: --map single`,
		},
		{
			name:    "subids mode without subids",
			req:     Request{UID: 1000, GID: 1000, Mode: Subids, Helpers: usable},
			want:    ErrNoSubids,
			message: "--map subids: no subordinate uids and gids for 1000 in /etc/subuid and /etc/subgid; fix: --map auto",
		},
		{
			name:    "subids mode with unusable helpers",
			req:     Request{UID: 1000, GID: 1000, Mode: Subids, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: missing},
			want:    ErrNoSubids,
			message: "--map subids: newuidmap and newgidmap not found",
		},
		{
			name:    "subids mode, subgids only",
			req:     Request{UID: 1000, GID: 1000, Mode: Subids, SubGIDs: sub100k, Helpers: usable},
			want:    ErrNoSubids,
			message: "--map subids: you have subordinate gids",
		},
		{
			name:    "unknown mode",
			req:     Request{UID: 1000, GID: 1000, Mode: 9},
			want:    ErrUnknownMode,
			message: "--map Mode(9): unknown mode; fix: use auto, single or subids",
			exact:   true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Names = flagNames // the wording nsbox gives its users
			_, err := NewPlan(tc.req)
			assert.Assert(t, err != nil)
			assert.Assert(t, errors.Is(err, tc.want), "got %q", err)
			assert.Assert(t, !strings.Contains(err.Error(), "\n"), "error is one line: %q", err)
			if tc.exact {
				assert.Error(t, err, tc.message)
			} else {
				assert.ErrorContains(t, err, tc.message)
			}
		})
	}

	// The limits are inclusive.
	for i := range atMost {
		atMost[i].Outer = 1000 + uint32(i) // short enough lines to fit a page
	}
	_, err := NewPlan(Request{UID: 0, GID: 0, Users: atMost})
	assert.NilError(t, err)
	_, err = NewPlan(Request{UID: 0, GID: 0, Users: []Extent{{4294967284, 100000, 10}}, Groups: []Extent{{0, 4294967285, 10}}})
	assert.NilError(t, err)
}

func TestValidateEditedPlan(t *testing.T) {
	req := Request{UID: 1000, GID: 1000, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable}
	p, err := NewPlan(req)
	assert.NilError(t, err)
	p.UID = 70000
	assert.Assert(t, errors.Is(p.Validate(req), ErrUnmapped))
	p.UID = 1000
	p.UIDs = nil
	assert.Error(t, p.Validate(req), "uid map is empty; fix: map at least the caller's own uid")
	p.UIDs = []Extent{{0, 5, 1}, {1000, 1000, 1}}
	assert.ErrorContains(t, p.Validate(req), "uid map extent 0:5:1: outer uid 5 is not yours;")
}

// flagNames are nsbox's flags (cmd/nsbox's mapFlags).
var flagNames = Names{Mode: "--map", Users: "--map-users", Groups: "--map-groups", Root: "--root", HostRoot: "--map-host-root"}

// Without Names, errors name the Request fields the caller set.
func TestNewPlanErrorsNameRequestFields(t *testing.T) {
	sub100k := []subid.Range{{Start: 100000, Count: 65536}}
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{UID: 1000, GID: 1000, Mode: 9}, "Request.Mode Mode(9): unknown mode; fix: use auto, single or subids"},
		{Request{UID: 1000, GID: 1000, Mode: Auto, Users: []Extent{{Inner: 0, Outer: 1, Count: 5}}, SubUIDs: sub100k},
			"Request.Users 0:1:5: outer uids 1–5 are not yours"},
		{Request{UID: 1000, GID: 1000, Mode: Auto, Groups: []Extent{{Inner: 0, Outer: 0, Count: 1}}, SubGIDs: sub100k, Root: true},
			"Request.Groups 0:0:1 maps host root (outer gid 0) into the sandbox"},
		{Request{UID: 1000, GID: 1000, Mode: Subids}, "Request.Mode Subids: no subordinate uids and gids for 1000"},
		{Request{UID: 1000, GID: 1000, Mode: Subids}, "fix: Request.Mode Auto (or Single) maps only your own ids"},
	} {
		_, err := NewPlan(tc.req)
		assert.Check(t, is.ErrorContains(err, tc.want))
		assert.Check(t, err == nil || !strings.Contains(err.Error(), "--"), "a flag in %q", err)
	}
}
