package mapping

import (
	"fmt"
	"slices"

	"github.com/nsbox/nsbox/subid"
)

// RootFallbackStart and RootFallbackCount are the unprivileged host ids
// real root maps (inner 0 … RootFallbackCount-1 onto RootFallbackStart …)
// when it has no subordinate ids of its own and did not ask for
// Request.HostRoot. They match the first range useradd(8) hands out.
const (
	RootFallbackStart = 100000
	RootFallbackCount = 65536
)

// span is how many inner ids a full map covers: 0 … 65535, as useradd's
// default subordinate range and most container images expect.
const span = 65536

// Request is what a plan is made from.
type Request struct {
	// UID and GID are the caller's host ids (real uid, primary gid).
	UID, GID uint32
	// SubUIDs and SubGIDs are the caller's subordinate ranges, in file
	// order (nil when it has none).
	SubUIDs, SubGIDs []subid.Range
	// Mode chooses how much to map.
	Mode Mode
	// Root makes the caller inner 0 (--root).
	Root bool
	// Users and Groups are explicit maps (--map-users, --map-groups).
	// When non-empty they replace the computed map of that kind.
	Users, Groups []Extent
	// Helpers are newuidmap and newgidmap, from FindHelpers.
	Helpers Helpers
	// HostRoot (--map-host-root) lets real root (UID 0) map host root
	// into the sandbox; without it real root is mapped onto an
	// unprivileged range.
	HostRoot bool
}

// Plan is a validated pair of maps plus how to write them.
type Plan struct {
	// UIDs and GIDs are the maps, in the order they will be written.
	UIDs, GIDs []Extent
	// UID and GID are the caller's identity inside the namespace: the
	// inner id its host id maps to (0 with Request.Root, and 0 for real
	// root without HostRoot). With explicit maps that leave the caller's
	// host id unmapped it is 0 if inner 0 is mapped, else the lowest
	// mapped inner id.
	UID, GID uint32
	// HostUID and HostGID are the caller's host ids (Request.UID and
	// GID). Apply writes a map directly, without a helper, when it is
	// just HostUID (HostGID) with count 1.
	HostUID, HostGID uint32
	// Helpers is copied from the request; Apply runs them.
	Helpers Helpers
	// Privileged is set when the caller is real root: Apply writes every
	// map directly, with no helpers and no setgroups "deny".
	Privileged bool
	// Notice is one line for stderr when Auto mode fell back to mapping
	// only the caller's own ids although it has subordinate ids; else "".
	Notice string
}

// NewPlan computes the maps for req and validates them (see
// Plan.Validate). The rules:
//
//   - Explicit Users or Groups replace the computed map of that kind.
//   - Real root (UID 0) without HostRoot never maps host root: inner 0 …
//     65535 go onto its subordinate ranges (in order, as many as exist),
//     or onto RootFallbackStart … when it has none. Single mode maps just
//     inner 0 onto the first such id. Privileged is set.
//   - Otherwise, in Auto mode with subordinate ids and usable helpers (or
//     as real root with HostRoot, which needs no helpers), a full map:
//     the caller's id at inner = its own id and subordinate ids filling
//     inner 0 … 65535 around it; with Root, rootlesskit's layout instead:
//     inner 0 is the caller and inner 1 … 65536 are subordinate ids.
//   - Otherwise a single mapping: own id → own id, or → inner 0 with Root.
//     In Auto mode, when subordinate ids exist but the helpers are not
//     usable, Notice says so.
//
// Subordinate ids that overlap an earlier range or the caller's own id
// are skipped.
func NewPlan(req Request) (Plan, error) {
	p := Plan{
		HostUID:    req.UID,
		HostGID:    req.GID,
		Helpers:    req.Helpers,
		Privileged: req.UID == 0,
	}
	var fellU, fellG bool
	p.UIDs, p.UID, fellU = planKind(req, req.UID, req.SubUIDs, req.Users)
	p.GIDs, p.GID, fellG = planKind(req, req.GID, req.SubGIDs, req.Groups)
	if fellU || fellG {
		what := ""
		switch {
		case fellU && fellG:
			what = fmt.Sprintf("uid %d and gid %d", req.UID, req.GID)
		case fellU:
			what = fmt.Sprintf("uid %d", req.UID)
		default:
			what = fmt.Sprintf("gid %d", req.GID)
		}
		p.Notice = fmt.Sprintf("nsbox: cannot map subordinate ids: %s; mapping only %s (--map single silences this)",
			req.Helpers.problem(), what)
	}
	if err := p.Validate(req); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// planKind computes one kind's map and the caller's id inside; fellBack
// is set when Auto mode had to settle for a single mapping.
func planKind(req Request, own uint32, subs []subid.Range, explicit []Extent) (ext []Extent, inside uint32, fellBack bool) {
	if len(explicit) > 0 {
		ext = slices.Clone(explicit)
		return ext, identity(ext, own, req.Root), false
	}
	if req.UID == 0 && !req.HostRoot {
		n := uint64(span)
		if req.Mode == Single {
			n = 1
		}
		free := available(subs, 0)
		if len(free) == 0 {
			return []Extent{{Inner: 0, Outer: RootFallbackStart, Count: uint32(min(n, RootFallbackCount))}}, 0, false
		}
		return fill(nil, free, 0, n, -1), 0, false
	}
	if req.Mode == Auto && len(subs) > 0 {
		if req.UID == 0 || req.Helpers.Usable() {
			free := available(subs, own)
			if req.Root {
				ext = fill([]Extent{{Inner: 0, Outer: own, Count: 1}}, free, 1, 1+span, -1)
				return ext, 0, false
			}
			skip := int64(-1)
			if own < span {
				skip = int64(own)
			}
			ext = fill(nil, free, 0, span, skip)
			i, _ := slices.BinarySearchFunc(ext, own, func(e Extent, id uint32) int {
				if e.Inner < id {
					return -1
				}
				return 1
			})
			ext = slices.Insert(ext, i, Extent{Inner: own, Outer: own, Count: 1})
			return ext, own, false
		}
		fellBack = true
	}
	if req.Root {
		return []Extent{{Inner: 0, Outer: own, Count: 1}}, 0, fellBack
	}
	return []Extent{{Inner: own, Outer: own, Count: 1}}, own, fellBack
}

// identity is the caller's inner id under an explicit map: 0 with root;
// else the inner id its host id maps to; else 0 if mapped; else the lowest
// mapped inner id.
func identity(ext []Extent, own uint32, root bool) uint32 {
	if root {
		return 0
	}
	if in, ok := innerOf(ext, own); ok {
		return in
	}
	if _, ok := outerOf(ext, 0); ok {
		return 0
	}
	lowest := ext[0].Inner
	for _, e := range ext[1:] {
		lowest = min(lowest, e.Inner)
	}
	return lowest
}

// interval is the half-open id range [lo, hi).
type interval struct{ lo, hi uint64 }

// available turns subordinate ranges into disjoint intervals, in order,
// without own and without any id an earlier range already gave.
func available(subs []subid.Range, own uint32) []interval {
	taken := []interval{{uint64(own), uint64(own) + 1}}
	var out []interval
	for _, r := range subs {
		hi := min(uint64(r.Start)+uint64(r.Count), maxID+1)
		pieces := []interval{{uint64(r.Start), hi}}
		for _, t := range taken {
			pieces = subtract(pieces, t)
		}
		out = append(out, pieces...)
		taken = append(taken, interval{uint64(r.Start), hi})
	}
	return out
}

// subtract removes cut from each interval of in.
func subtract(in []interval, cut interval) []interval {
	var out []interval
	for _, iv := range in {
		if cut.hi <= iv.lo || cut.lo >= iv.hi {
			if iv.lo < iv.hi {
				out = append(out, iv)
			}
			continue
		}
		if iv.lo < cut.lo {
			out = append(out, interval{iv.lo, cut.lo})
		}
		if cut.hi < iv.hi {
			out = append(out, interval{cut.hi, iv.hi})
		}
	}
	return out
}

// fill appends to ext extents that give inner ids from, from+1, … (below
// limit, skipping skip unless it is negative) the outer ids of free in
// order, until either runs out.
func fill(ext []Extent, free []interval, from, limit uint64, skip int64) []Extent {
	inner := from
	for _, iv := range free {
		lo := iv.lo
		for lo < iv.hi && inner < limit {
			if skip >= 0 && inner == uint64(skip) {
				inner++
				continue
			}
			n := min(iv.hi-lo, limit-inner)
			if skip >= 0 && inner < uint64(skip) {
				n = min(n, uint64(skip)-inner)
			}
			ext = appendMerged(ext, Extent{Inner: uint32(inner), Outer: uint32(lo), Count: uint32(n)})
			inner += n
			lo += n
		}
	}
	return ext
}

// appendMerged appends e, or grows the last extent when e continues it
// on both sides.
func appendMerged(ext []Extent, e Extent) []Extent {
	if n := len(ext); n > 0 {
		last := &ext[n-1]
		if uint64(last.Inner)+uint64(last.Count) == uint64(e.Inner) &&
			uint64(last.Outer)+uint64(last.Count) == uint64(e.Outer) {
			last.Count += e.Count
			return ext
		}
	}
	return append(ext, e)
}

// outerOf maps an inner id to its outer id.
func outerOf(ext []Extent, inner uint32) (uint32, bool) {
	for _, e := range ext {
		if inner >= e.Inner && uint64(inner) < uint64(e.Inner)+uint64(e.Count) {
			return e.Outer + (inner - e.Inner), true
		}
	}
	return 0, false
}

// innerOf maps an outer id to its inner id.
func innerOf(ext []Extent, outer uint32) (uint32, bool) {
	for _, e := range ext {
		if outer >= e.Outer && uint64(outer) < uint64(e.Outer)+uint64(e.Count) {
			return e.Inner + (outer - e.Outer), true
		}
	}
	return 0, false
}

// MapsInnerUID reports whether inner uid id is mapped (for checking --uid).
func (p Plan) MapsInnerUID(id uint32) bool {
	_, ok := outerOf(p.UIDs, id)
	return ok
}

// MapsInnerGID reports whether inner gid id is mapped (for checking --gid).
func (p Plan) MapsInnerGID(id uint32) bool {
	_, ok := outerOf(p.GIDs, id)
	return ok
}

// OuterUID returns the host uid that inner uid stands for; ok is false if
// inner is not mapped.
func (p Plan) OuterUID(inner uint32) (uint32, bool) { return outerOf(p.UIDs, inner) }

// OuterGID returns the host gid that inner gid stands for; ok is false if
// inner is not mapped.
func (p Plan) OuterGID(inner uint32) (uint32, bool) { return outerOf(p.GIDs, inner) }

// SetgroupsAllowed reports whether setgroups(2) will work inside: false
// when an unprivileged caller writes the gid map directly (it is just its
// own gid), because then Apply must first write "deny" to
// /proc/PID/setgroups; false too when the caller's own user namespace
// already denies it (root inside "unshare -Ur"), as a child namespace
// inherits "deny".
func (p Plan) SetgroupsAllowed() bool {
	return (p.Privileged || !p.ownOnly(true)) && !setgroupsDeniedHere()
}

// ownOnly reports whether the map of that kind is just the caller's own
// host id, which the caller may write without help.
func (p Plan) ownOnly(gid bool) bool {
	ext, own := p.UIDs, p.HostUID
	if gid {
		ext, own = p.GIDs, p.HostGID
	}
	return len(ext) == 1 && ext[0].Count == 1 && ext[0].Outer == own
}
