package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nsbox/nsbox/subid"
)

// RootFallbackStart and RootFallbackCount are the unprivileged host ids
// real root maps (inner 0 … RootFallbackCount-1 onto RootFallbackStart …)
// when it has no subordinate ids of its own and did not ask for
// Request.HostRoot, when Request.Free is not set. They match the first
// range useradd(8) hands out (usually someone else's: the launcher sets
// Free to a range no line of /etc/subuid or /etc/subgid uses).
const (
	RootFallbackStart = 100000
	RootFallbackCount = 65536
)

// span is how many inner ids a full map covers: 0 … 65535, as useradd's
// default subordinate range and most container images expect.
const span = 65536

// Request is what a plan is made from.
type Request struct {
	// UID and GID are the caller's ids (real uid, primary gid), as the
	// namespace it runs in (Here) sees them.
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
	// unprivileged range, and no caller may map host root.
	HostRoot bool
	// Here is the user namespace the caller runs in (CurrentNamespace).
	// The zero value is the initial namespace.
	Here Namespace
	// Free is a range of ids that no line of /etc/subuid or /etc/subgid
	// uses (subid.FreeRange): real root without subordinate ids of its
	// own maps onto it, and fixes suggest it. The zero value stands for
	// RootFallbackStart, RootFallbackCount.
	Free subid.Range
	// Names says how the caller's user sets the fields above, for errors
	// and notices; the zero value names the Request fields.
	Names Names
	// Owner names the caller in fixes (its login name); "" uses UID.
	Owner string
	// SubUIDFile and SubGIDFile name where SubUIDs and SubGIDs come from,
	// for messages; "" means /etc/subuid and /etc/subgid.
	SubUIDFile, SubGIDFile string
}

// Privileged reports whether the caller may write any map of ids that
// exist here itself: uid 0 in the initial namespace; elsewhere, holding
// CAP_SETUID and CAP_SETGID (uid 0 inside unshare -r does).
func (r Request) Privileged() bool {
	if r.Here.Nested {
		return r.Here.SetID
	}
	return r.UID == 0
}

// realRoot reports whether the caller is root of the parent namespace:
// privileged and its own uid is host root.
func (r Request) realRoot() bool {
	h, ok := r.Here.HostRoot(false)
	return r.Privileged() && ok && r.UID == h
}

// free is Free, or the fallback range.
func (r Request) free() subid.Range {
	if r.Free.Count == 0 {
		return subid.Range{Start: RootFallbackStart, Count: RootFallbackCount}
	}
	return r.Free
}

// owner names the caller in fixes.
func (r Request) owner() string {
	if r.Owner != "" {
		return r.Owner
	}
	return fmt.Sprint(r.UID)
}

// file names where subordinate ids of that kind come from.
func (r Request) file(gid bool) string {
	switch {
	case gid && r.SubGIDFile != "":
		return r.SubGIDFile
	case gid:
		return "/etc/subgid"
	case r.SubUIDFile != "":
		return r.SubUIDFile
	}
	return "/etc/subuid"
}

// usableSubs returns the subordinate ranges of that kind that the caller
// can use here: all of them in the initial namespace; nested, only the
// ids that exist here (a subordinate range belongs to the host user; a
// nested namespace rarely has those ids).
func (r Request) usableSubs(gid bool) []subid.Range {
	subs := r.SubUIDs
	if gid {
		subs = r.SubGIDs
	}
	if !r.Here.Nested {
		return subs
	}
	var out []subid.Range
	for _, iv := range available(subs) {
		for _, here := range r.Here.ids(gid) {
			lo, hi := max(iv.lo, here.lo), min(iv.hi, here.hi)
			if lo < hi {
				out = append(out, subid.Range{Start: uint32(lo), Count: uint32(hi - lo)})
			}
		}
	}
	return out
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
	// Privileged is set when the caller may write any map itself (real
	// root, or CAP_SETUID and CAP_SETGID in a nested namespace): Apply
	// writes every map directly, with no helpers and no setgroups "deny".
	Privileged bool
	// Notice is one line for the user when Auto mode fell back to
	// mapping only the caller's own ids although it has subordinate ids;
	// else "". The caller prefixes it as it prints notices.
	Notice string
	// Fallback is set when Auto mode chose the helpers: if one fails when
	// Apply runs it, the launcher may start over with Single's maps and
	// FallbackNotice (an explicit map or --map subids never falls back).
	Fallback bool `json:",omitempty"`
	// Names words the Request fields in Notice and FallbackNotice
	// (Request.Names); NewPlan copies it from the request.
	Names Names `json:"-"`
}

// NewPlan computes the maps for req and validates them (see
// Plan.Validate). The rules:
//
//   - Explicit Users or Groups replace the computed map of that kind.
//   - Real root (UID 0 in the initial namespace) without HostRoot never
//     maps host root: inner 0 … 65535 go onto its subordinate ranges (in
//     order, as many as exist), or onto Free when it has none. Single
//     mode maps just inner 0 onto the first such id. Privileged is set.
//   - In a nested namespace, uid 0 is not real root: with CAP_SETUID and
//     CAP_SETGID the caller maps the ids that exist here (its own at its
//     own inner id, the others filling inner 0 … 65535 around it) without
//     helpers; without them, only subordinate ids that exist here count.
//   - Otherwise, in Auto or Subids mode with subordinate uids and gids
//     and usable helpers (or as real root with HostRoot, which needs no
//     helpers), a full map: the caller's id at inner = its own id and
//     subordinate ids filling inner 0 … 65535 around it; with Root,
//     rootlesskit's layout instead: inner 0 is the caller and inner 1 …
//     65536 are subordinate ids.
//   - Otherwise a single mapping: own id → own id, or → inner 0 with Root.
//     In Auto mode, when subordinate ids exist but cannot be used (the
//     helpers are not usable, or only one of /etc/subuid and /etc/subgid
//     has a line for the caller), Notice says so; Subids mode fails.
//
// Subordinate ids that overlap an earlier range or the caller's own id
// are skipped; a range that holds host root is kept, and refused by
// Validate (an administrator's mistake newuidmap would honour).
func NewPlan(req Request) (Plan, error) {
	p := Plan{
		HostUID:    req.UID,
		HostGID:    req.GID,
		Helpers:    req.Helpers,
		Privileged: req.Privileged(),
		Names:      req.Names,
	}
	subU, subG := req.usableSubs(false), req.usableSubs(true)
	explicit := len(req.Users) > 0 || len(req.Groups) > 0
	reason := "" // why subordinate ids cannot be used, for Notice
	if req.Mode != Single && !p.Privileged && !explicit {
		switch {
		case len(subU) > 0 && len(subG) == 0:
			reason = fmt.Sprintf("you have subordinate uids (%s) but no subordinate gids (no line for %s in %s); fix: as root, usermod --add-subgids %s %s",
				req.file(false), req.owner(), req.file(true), dashRange(req.free()), req.owner())
		case len(subG) > 0 && len(subU) == 0:
			reason = fmt.Sprintf("you have subordinate gids (%s) but no subordinate uids (no line for %s in %s); fix: as root, usermod --add-subuids %s %s",
				req.file(true), req.owner(), req.file(false), dashRange(req.free()), req.owner())
		case len(subU) > 0 && !req.Helpers.Usable():
			reason = req.Helpers.problem()
		}
		if reason != "" {
			subU, subG = nil, nil
		}
	}
	if req.Mode == Subids && !p.Privileged && !explicit && (len(subU) == 0 || len(subG) == 0) {
		if reason == "" {
			reason = fmt.Sprintf("no subordinate uids and gids for %s in %s and %s", req.owner(), req.file(false), req.file(true))
			if req.Here.Nested {
				reason = fmt.Sprintf("no subordinate ids of %s exist in this nested user namespace, which maps only uids %s", req.owner(), req.Here.describe(false))
			}
			reason += "; fix: " + req.Names.mode(Auto) + " (or " + req.Names.modeValue(Single) + ") maps only your own ids"
		}
		return Plan{}, fail(ErrNoSubids, "%s: %s", req.Names.mode(Subids), reason)
	}
	var fellU, fellG bool
	p.UIDs, p.UID, fellU = planKind(req, false, subU)
	p.GIDs, p.GID, fellG = planKind(req, true, subG)
	p.UIDs, p.GIDs = req.Here.split(false, p.UIDs), req.Here.split(true, p.GIDs)
	if reason != "" && (len(req.SubUIDs) > 0 || len(req.SubGIDs) > 0) {
		fellU, fellG = true, true
	}
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
		if reason == "" {
			reason = req.Helpers.problem()
		}
		if req.Mode == Subids {
			return Plan{}, fail(ErrNoSubids, "%s: cannot map subordinate ids: %s", req.Names.mode(Subids), reason)
		}
		p.Notice = fmt.Sprintf("cannot map subordinate ids: %s; mapping only %s (%s silences this)",
			reason, what, req.Names.mode(Single))
	}
	p.Fallback = req.Mode == Auto && !explicit && !p.Privileged && (!p.ownOnly(false) || !p.ownOnly(true))
	if err := p.Validate(req); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// ErrNoSubids is wrapped by NewPlan's error when Subids mode cannot map
// subordinate ids.
var ErrNoSubids = errors.New("no usable subordinate ids")

// planKind computes one kind's map and the caller's id inside; fellBack
// is set when Auto mode had to settle for a single mapping. subs are the
// usable subordinate ranges of that kind.
func planKind(req Request, gid bool, subs []subid.Range) (ext []Extent, inside uint32, fellBack bool) {
	own, explicit := req.UID, req.Users
	if gid {
		own, explicit = req.GID, req.Groups
	}
	if len(explicit) > 0 {
		ext = slices.Clone(explicit)
		return ext, identity(ext, own, req.Root), false
	}
	n := uint64(span)
	if req.Mode == Single {
		n = 1
	}
	if req.realRoot() && !req.HostRoot && !req.Here.Nested {
		free := available(subs)
		if len(free) == 0 {
			r := req.free()
			return []Extent{{Inner: 0, Outer: r.Start, Count: uint32(min(n, uint64(r.Count)))}}, 0, false
		}
		return fill(nil, free, 0, n, -1), 0, false
	}
	var pool []interval
	if req.Mode != Single {
		switch {
		case req.Privileged() && req.Here.Nested:
			pool = []interval{{uint64(own), uint64(own) + 1}}
			if h, ok := req.Here.HostRoot(gid); ok {
				pool = append(pool, interval{uint64(h), uint64(h) + 1})
			}
			pool = without(req.Here.ids(gid), pool)
		case len(subs) > 0 && (req.Privileged() || req.Helpers.Usable()):
			pool = available(subs, own)
		case len(subs) > 0:
			fellBack = true
		}
	}
	if len(pool) > 0 {
		if req.Root {
			ext = fill([]Extent{{Inner: 0, Outer: own, Count: 1}}, pool, 1, 1+span, -1)
			return ext, 0, false
		}
		skip := int64(-1)
		if own < span {
			skip = int64(own)
		}
		ext = fill(nil, pool, 0, span, skip)
		i, _ := slices.BinarySearchFunc(ext, own, func(e Extent, id uint32) int {
			if e.Inner < id {
				return -1
			}
			return 1
		})
		ext = merge(slices.Insert(ext, i, Extent{Inner: own, Outer: own, Count: 1}))
		return ext, own, false
	}
	if req.Root {
		return []Extent{{Inner: 0, Outer: own, Count: 1}}, 0, fellBack
	}
	return []Extent{{Inner: own, Outer: own, Count: 1}}, own, fellBack
}

// merge joins extents that continue one another on both sides.
func merge(ext []Extent) []Extent {
	var out []Extent
	for _, e := range ext {
		out = appendMerged(out, e)
	}
	return out
}

// dashRange renders r as usermod's "FIRST-LAST".
func dashRange(r subid.Range) string {
	return fmt.Sprintf("%d-%d", r.Start, r.End())
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
// without the ids of skip and without any id an earlier range already
// gave.
func available(subs []subid.Range, skip ...uint32) []interval {
	var taken []interval
	for _, id := range skip {
		taken = append(taken, interval{uint64(id), uint64(id) + 1})
	}
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

// without removes the intervals of cut from in.
func without(in, cut []interval) []interval {
	for _, c := range cut {
		in = subtract(in, c)
	}
	return in
}

// sortIntervals sorts intervals by their start.
func sortIntervals(in []interval) []interval {
	slices.SortFunc(in, func(a, b interval) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	return in
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

// Names says how a caller's user sets the Request fields that mapping's
// errors and notices name: the nsbox command names its flags
// (Names{Mode: "--map", Users: "--map-users", …}). An empty field names
// the Request field itself ("Request.Users").
type Names struct {
	Mode, Users, Groups, Root, HostRoot string
}

// mode names Request.Mode set to m: "--map single", "Request.Mode Single".
func (n Names) mode(m Mode) string {
	if n.Mode == "" {
		return "Request.Mode " + n.modeValue(m)
	}
	return n.Mode + " " + n.modeValue(m)
}

// modeValue names mode m alone: "single", or the constant "Single".
func (n Names) modeValue(m Mode) string {
	if n.Mode == "" {
		s := m.String()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return m.String()
}

func (n Names) or(name, field string) string {
	if name == "" {
		return "Request." + field
	}
	return name
}

func (n Names) users() string    { return n.or(n.Users, "Users") }
func (n Names) groups() string   { return n.or(n.Groups, "Groups") }
func (n Names) root() string     { return n.or(n.Root, "Root") }
func (n Names) hostRoot() string { return n.or(n.HostRoot, "HostRoot") }
