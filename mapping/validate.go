package mapping

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nsbox/nsbox/subid"
)

// Sentinel errors wrapped by Validate (and so NewPlan). The messages
// themselves are one line each: the flag or map concerned, the cause, and
// "fix: …".
var (
	// ErrOverlap reports two extents that share inner ids, or outer ids.
	ErrOverlap = errors.New("overlapping extents")
	// ErrTooManyExtents reports a map of more than MaxExtents lines.
	ErrTooManyExtents = errors.New("too many extents")
	// ErrNotYours reports an unprivileged caller mapping outer ids that
	// are neither its own nor among its subordinate ids.
	ErrNotYours = errors.New("outer ids not yours")
	// ErrHostRoot reports a map that would give the sandbox host root's
	// uid or gid (see HostRootError).
	ErrHostRoot = errors.New("host root mapped")
	// ErrNotHere reports outer ids that do not exist in the caller's
	// nested user namespace (see Namespace).
	ErrNotHere = errors.New("outer ids do not exist here")
	// ErrUnmapped reports an id that must be mapped but is not: the
	// primary gid, inner 0 with Request.Root, or the caller's identity
	// inside (or an empty map).
	ErrUnmapped = errors.New("required id not mapped")
	// ErrHelperUnusable reports a map that needs newuidmap/newgidmap
	// when they are missing or cannot work (from Validate and Apply).
	ErrHelperUnusable = errors.New("newuidmap/newgidmap unusable")
)

// Validate checks p against the request it was made from, before anything
// runs, and returns the first problem. req supplies what the plan does not
// record: the caller's subordinate ranges, which maps were explicit (to
// name --map-users / --map-groups in errors), and the Root and HostRoot
// flags. NewPlan calls it; call it again after editing a plan.
//
// Each map must: be non-empty, at most MaxExtents lines and less than a
// page of text (what one write(2) to a map file may carry); have counts
// of at least 1 and no range reaching 2^32-1; have no two extents sharing
// inner ids or outer ids. Unless p.Privileged, every outer id must be the
// caller's own or inside its subordinate ranges, and a map that is more
// than the caller's own id needs usable helpers. Real root without
// HostRoot may not map host id 0. The gid map must cover the caller's
// primary gid (except for real root without HostRoot); with Root both
// maps must map inner 0; and p.UID and p.GID must be mapped.
func (p Plan) Validate(req Request) error {
	if req.Mode != Auto && req.Mode != Single && req.Mode != Subids {
		return &planError{
			msg: fmt.Sprintf("%s %s: unknown mode; fix: use auto, single or subids", req.Names.or(req.Names.Mode, "Mode"), req.Mode),
			err: ErrUnknownMode,
		}
	}
	for _, k := range []kind{
		{gid: false, ext: p.UIDs, explicit: len(req.Users) > 0, own: req.UID, subs: req.SubUIDs, names: req.Names},
		{gid: true, ext: p.GIDs, explicit: len(req.Groups) > 0, own: req.GID, subs: req.SubGIDs, names: req.Names},
	} {
		if err := p.validateKind(req, k); err != nil {
			return err
		}
	}
	return nil
}

// kind is one of the two maps, with what validating it needs.
type kind struct {
	gid      bool
	ext      []Extent
	explicit bool
	own      uint32
	subs     []subid.Range
	names    Names
}

func (k kind) ids() string {
	if k.gid {
		return "gids"
	}
	return "uids"
}

func (k kind) id() string { return strings.TrimSuffix(k.ids(), "s") }

func (k kind) subKind() subid.Kind {
	if k.gid {
		return subid.GIDs
	}
	return subid.UIDs
}

// flag names the explicit map as the caller's user set it.
func (k kind) flag() string {
	if k.gid {
		return k.names.groups()
	}
	return k.names.users()
}

func (k kind) helper() string {
	if k.gid {
		return "newgidmap"
	}
	return "newuidmap"
}

// name names the whole map in messages.
func (k kind) name() string {
	if k.explicit {
		return k.flag()
	}
	return k.id() + " map"
}

// one names extent e in messages.
func (k kind) one(e Extent) string {
	if k.explicit {
		return k.flag() + " " + colon(e)
	}
	return k.id() + " map extent " + colon(e)
}

// all names the whole map with its extents.
func (k kind) all() string {
	if k.explicit {
		return k.flag() + " " + colons(k.ext)
	}
	return k.id() + " map " + colons(k.ext)
}

func fail(sentinel error, format string, a ...any) error {
	return &planError{msg: fmt.Sprintf(format, a...), err: sentinel}
}

// span renders lo … lo+n-1 as "uid 5" or "uids 5–9".
func (k kind) span(lo uint32, n uint64) string {
	if n == 1 {
		return fmt.Sprintf("%s %d", k.id(), lo)
	}
	return fmt.Sprintf("%s %d–%d", k.ids(), lo, uint64(lo)+n-1)
}

func (p Plan) validateKind(req Request, k kind) error {
	ext := k.ext
	if len(ext) == 0 {
		return fail(ErrUnmapped, "%s is empty; fix: map at least the caller's own %s", k.name(), k.id())
	}
	if len(ext) > MaxExtents {
		return fail(ErrTooManyExtents, "%s: %d extents, but the kernel accepts at most %d; fix: merge adjacent extents or map fewer ranges",
			k.name(), len(ext), MaxExtents)
	}
	if n, page := len(Format(ext)), os.Getpagesize(); n >= page {
		return fail(ErrTooManyExtents, "%s: the map text is %d bytes, but the kernel accepts less than %d (one page); fix: merge adjacent extents or map fewer ranges",
			k.name(), n, page)
	}
	for _, e := range ext {
		if what, fix := checkExtent(e, k.ids()); what != "" {
			return fail(ErrInvalidExtent, "%s: %s; fix: %s", k.one(e), what, fix)
		}
	}
	if err := k.overlaps(false); err != nil {
		return err
	}
	if err := k.overlaps(true); err != nil {
		return err
	}
	hostRootBarred := req.realRoot() && !req.HostRoot && !req.Here.Nested
	if h, ok := req.Here.HostRoot(k.gid); ok && !(req.HostRoot && req.realRoot()) {
		for _, e := range ext {
			if _, in := innerOf([]Extent{e}, h); in {
				return k.hostRootError(req, e, h)
			}
		}
	}
	for _, e := range ext {
		if id, missing := req.Here.missing(k.gid, e); missing {
			return fail(ErrNotHere, "%s: outer %s %d does not exist in this nested user namespace, which maps only %s %s; fix: %s (only your own ids), or map only ids listed there",
				k.one(e), k.id(), id, k.ids(), req.Here.describe(k.gid), req.Names.mode(Single))
		}
	}
	if !p.Privileged {
		for _, e := range ext {
			if covered(e, k.own, k.subs) {
				continue
			}
			if len(k.subs) == 0 {
				return fail(ErrNotYours, "%s: outer %s not yours; %s %d may map only itself and has no %s ranges; fix: map only outer %s %d, or have an administrator add a range for you to /etc/%s",
					k.one(e), k.notYours(e), k.id(), k.own, k.subKind(), k.id(), k.own, k.subKind())
			}
			return fail(ErrNotYours, "%s: outer %s not yours; %s %d may map only itself and its %s ranges %s; fix: choose outer ids inside those ranges",
				k.one(e), k.notYours(e), k.id(), k.own, k.subKind(), ranges(k.subs))
		}
		own := len(ext) == 1 && ext[0].Count == 1 && ext[0].Outer == k.own
		if !own && !p.Helpers.Usable() {
			return fail(ErrHelperUnusable, "%s needs %s (only the caller's own %s can be mapped without it), but %s",
				k.all(), k.helper(), k.id(), p.Helpers.problem())
		}
	}
	if k.gid && !hostRootBarred {
		if _, ok := innerOf(ext, k.own); !ok {
			return fail(ErrUnmapped, "%s does not map your primary gid %d; fix: add an extent with outer gid %d, e.g. %d:%d:1",
				k.all(), k.own, k.own, k.own, k.own)
		}
	}
	inside := p.UID
	if k.gid {
		inside = p.GID
	}
	if req.Root {
		if _, ok := outerOf(ext, 0); !ok {
			return fail(ErrUnmapped, "%s needs inner %s 0 mapped, but %s does not map it; fix: add an extent with inner 0, e.g. 0:%d:1",
				req.Names.root(), k.id(), k.all(), k.own)
		}
		inside = 0
	}
	if _, ok := outerOf(ext, inside); !ok {
		return fail(ErrUnmapped, "%s does not map inner %s %d, the caller's %s inside; fix: map it, or rebuild the plan with NewPlan",
			k.all(), k.id(), inside, k.id())
	}
	return nil
}

// notYours renders e's outer range with its verb: "uids 1–9 are",
// "uid 5 is".
func (k kind) notYours(e Extent) string {
	if e.Count == 1 {
		return k.span(e.Outer, 1) + " is"
	}
	return k.span(e.Outer, uint64(e.Count)) + " are"
}

// overlaps reports two extents sharing inner (outer=false) or outer ids.
func (k kind) overlaps(outer bool) error {
	start := func(e Extent) uint64 {
		if outer {
			return uint64(e.Outer)
		}
		return uint64(e.Inner)
	}
	idx := make([]int, len(k.ext))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		sa, sb := start(k.ext[a]), start(k.ext[b])
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	for j := 1; j < len(idx); j++ {
		a, b := k.ext[idx[j-1]], k.ext[idx[j]]
		aEnd, bEnd := start(a)+uint64(a.Count), start(b)+uint64(b.Count)
		if aEnd <= start(b) {
			continue
		}
		if idx[j-1] > idx[j] {
			a, b = b, a // name them in the order given
		}
		side, fix := "inner", "give each extent its own inner ids"
		if outer {
			side, fix = "outer", "give each extent its own outer ids"
		}
		lo := max(start(a), start(b))
		return fail(ErrOverlap, "%s: extents %s and %s both map %s %s; fix: %s",
			k.name(), colon(a), colon(b), side, k.span(uint32(lo), min(aEnd, bEnd)-lo), fix)
	}
	return nil
}

// covered reports whether every outer id of e is own or inside subs.
func covered(e Extent, own uint32, subs []subid.Range) bool {
	have := []interval{{uint64(own), uint64(own) + 1}}
	for _, r := range subs {
		have = append(have, interval{uint64(r.Start), uint64(r.Start) + uint64(r.Count)})
	}
	cur, end := uint64(e.Outer), uint64(e.Outer)+uint64(e.Count)
	for cur < end {
		next := cur
		for _, iv := range have {
			if iv.lo <= cur && cur < iv.hi {
				next = max(next, iv.hi)
			}
		}
		if next == cur {
			return false
		}
		cur = next
	}
	return true
}

// ranges renders subordinate ranges as "100000–165535, 200000–200999".
func ranges(subs []subid.Range) string {
	parts := make([]string, len(subs))
	for i, r := range subs {
		parts[i] = fmt.Sprintf("%d–%d", r.Start, uint64(r.Start)+uint64(r.Count)-1)
	}
	return strings.Join(parts, ", ")
}

// HostRootError reports a map whose outer ids include host root (uid or
// gid 0; in a nested namespace, the id mapped onto its parent's 0):
// inside, that id would own every file root owns. Only real root may map
// it, and only when it asks (Request.HostRoot, --map-host-root). It
// wraps ErrHostRoot.
type HostRootError struct {
	// GID is set for the gid map.
	GID bool
	// Extent is the offending extent; ID the host root id it holds.
	Extent Extent
	ID     uint32
	// Explicit is set when the extent came from --map-users or
	// --map-groups; else it came from a subordinate range, Range.
	Explicit bool
	Range    subid.Range
	// Origin, when the caller sets it, names the line that granted
	// Range (subid.Source.Origin), e.g.
	// `/etc/subuid line 3 "bob:0:65536"`.
	Origin string
	// Nested is set when ID is the parent namespace's root, not the
	// initial namespace's.
	Nested bool
	// RealRoot is set when the caller could pass --map-host-root.
	RealRoot bool
	// Own is set when ID is the caller's own id (real root in a nested
	// namespace that maps it onto its parent's root).
	Own bool
	// Owner and Free shape the fix (Request.Owner, Request.Free).
	Owner string
	Free  subid.Range
	// File is the subordinate id file of that kind (for the fix).
	File string
	// Names words the Request fields in the fix (Request.Names).
	Names Names
}

// Error is one line: what holds host root, and the fix.
func (e *HostRootError) Error() string {
	id, ids, opt := "uid", "subuids", e.Names.users()
	if e.GID {
		id, ids, opt = "gid", "subgids", e.Names.groups()
	}
	root := fmt.Sprintf("host %s %d", id, e.ID)
	if e.Nested {
		root = fmt.Sprintf("%s %d (root of the parent user namespace)", id, e.ID)
	}
	orHostRoot := ""
	if e.RealRoot {
		orHostRoot = ", or add " + e.Names.hostRoot() + " if you mean it"
	}
	if e.Own {
		return fmt.Sprintf("%s map %s maps your own %s %d, which is root of the parent user namespace, into the sandbox; fix: add %s if you mean it, or run nsbox as another user",
			id, colon(e.Extent), id, e.ID, e.Names.hostRoot())
	}
	if e.Explicit {
		return fmt.Sprintf("%s %s maps host root (outer %s) into the sandbox; fix: choose other outer ids%s", opt, colon(e.Extent), strings.TrimPrefix(root, "host "), orHostRoot)
	}
	src := e.Origin
	if src == "" {
		src = fmt.Sprintf("your subordinate %s range %d–%d", id, e.Range.Start, e.Range.End())
	}
	if orHostRoot == "" {
		orHostRoot = ", or run with " + e.Names.mode(Single)
	}
	return fmt.Sprintf("%s includes %s, which nsbox refuses to map into a sandbox; fix: have an administrator move that range in %s off it (as root: usermod --del-%s %d-%d --add-%s %s %s)%s",
		src, root, e.File, ids, e.Range.Start, e.Range.End(), ids, dashRange(e.Free), e.Owner, orHostRoot)
}

// Is makes errors.Is(err, ErrHostRoot) hold.
func (e *HostRootError) Is(target error) bool { return target == ErrHostRoot }

// hostRootError builds the HostRootError for extent e holding id h.
func (k kind) hostRootError(req Request, e Extent, h uint32) error {
	he := &HostRootError{
		GID: k.gid, Extent: e, ID: h, Explicit: k.explicit, Nested: req.Here.Nested,
		RealRoot: req.realRoot(), Owner: req.owner(), Free: req.free(), File: req.file(k.gid),
		Range: subid.Range{Start: e.Outer, Count: e.Count},
		Own:   !k.explicit && h == k.own && req.Here.Nested,
		Names: req.Names,
	}
	for _, r := range k.subs {
		if r.Contains(h) {
			he.Range = r
			break
		}
	}
	return he
}
