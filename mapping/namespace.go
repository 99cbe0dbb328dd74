package mapping

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/internal/procfs"
)

// Namespace describes the user namespace the caller runs in: which ids
// exist there, and whether the caller may map them without helpers. Maps
// written from here can only use ids that exist here (user_namespaces(7):
// "the mapped user IDs must in turn have a mapping in the parent user
// namespace"), and uid 0 here is real root only in the initial namespace.
//
// The zero value is the initial user namespace, where every id exists and
// uid 0 is real root.
type Namespace struct {
	// Nested is set when this is not the initial user namespace: its
	// uid_map or gid_map is not "0 0 4294967295" (inside unshare -r, a
	// rootless container, or another sandbox).
	Nested bool
	// UIDs and GIDs are this namespace's own maps, as /proc/self/uid_map
	// and gid_map show them: their inner ids are the ids that exist here,
	// their outer ids are the parent namespace's. Used when Nested.
	UIDs, GIDs []Extent
	// SetID is set when the caller holds CAP_SETUID and CAP_SETGID in
	// this namespace, so it may write any map of ids that exist here
	// itself. Used when Nested (in the initial namespace, uid 0 is taken
	// as privileged).
	SetID bool
	// HostRootHidden is set when the initial namespace's root is mapped
	// nowhere in here (see hostRootHidden): then no id here owns host
	// root's files, whatever this namespace's parent maps its 0 to.
	HostRootHidden bool
}

// hostRootHidden tells whether host root (kernel uid and gid 0) is unmapped
// in the caller's user namespace. Procfs's root directory always belongs
// to host root; the kernel shows an id with no mapping here as the
// overflow id, so /proc owned by the overflow uid and gid means host root
// is not among the ids here. That tells a sandbox of nsbox (whose root
// maps onto subordinate ids, or onto the caller) from `unshare -r` run by
// real root (whose 0 is host root), which /proc/self/uid_map cannot: it
// only shows the parent namespace's ids.
func hostRootHidden() bool {
	var st syscall.Stat_t
	if syscall.Stat("/proc", &st) != nil {
		return false
	}
	overflow := func(file string) uint32 {
		b, err := procfs.ReadFile("/proc/sys/kernel/" + file)
		if n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && perr == nil {
			return uint32(n)
		}
		return 65534
	}
	return st.Uid == overflow("overflowuid") && st.Gid == overflow("overflowgid")
}

// Capability bits in /proc/self/status's CapEff.
const capsSetID = 1<<capSetuid | 1<<capSetgid

// CurrentNamespace reads the caller's user namespace from /proc/self.
func CurrentNamespace() (Namespace, error) {
	uids, err := readMap("/proc/self/uid_map")
	if err != nil {
		return Namespace{}, err
	}
	gids, err := readMap("/proc/self/gid_map")
	if err != nil {
		return Namespace{}, err
	}
	whole := []Extent{{Inner: 0, Outer: 0, Count: 1<<32 - 1}}
	if equalExtents(uids, whole) && equalExtents(gids, whole) {
		return Namespace{}, nil
	}
	ns := Namespace{Nested: true, UIDs: uids, GIDs: gids, HostRootHidden: hostRootHidden()}
	status, err := procfs.ReadFile("/proc/self/status")
	if err != nil {
		return Namespace{}, fmt.Errorf("read /proc/self/status: %w", unwrapPath(err))
	}
	if v, ok := procfs.StatusField(status, "CapEff"); ok {
		caps, err := strconv.ParseUint(v, 16, 64)
		ns.SetID = err == nil && caps&capsSetID == capsSetID
	}
	return ns, nil
}

// readMap reads a uid_map or gid_map file.
func readMap(path string) ([]Extent, error) {
	b, err := procfs.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	ext, err := ParseMap(string(b))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return ext, nil
}

// ParseMap parses the text of a uid_map or gid_map file: lines of three
// decimal numbers separated by blanks ("inner outer count").
func ParseMap(text string) ([]Extent, error) {
	var ext []Extent
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("map line %q: want 3 numbers", strings.TrimSpace(line))
		}
		var v [3]uint32
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("map line %q: %w", strings.TrimSpace(line), err)
			}
			v[i] = uint32(n)
		}
		ext = append(ext, Extent{Inner: v[0], Outer: v[1], Count: v[2]})
	}
	return ext, nil
}

func equalExtents(a, b []Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ext returns this namespace's map of that kind.
func (n Namespace) ext(gid bool) []Extent {
	if gid {
		return n.GIDs
	}
	return n.UIDs
}

// HostRoot returns the id here that stands for the parent namespace's
// uid (gid) 0: 0 in the initial namespace; in a nested one, the id mapped
// onto outer 0, if any, unless host root is known to be mapped nowhere
// here (HostRootHidden): then the parent's 0 is some other user's id.
// Mapping it into a sandbox hands out root's files.
func (n Namespace) HostRoot(gid bool) (uint32, bool) {
	if !n.Nested {
		return 0, true
	}
	if n.HostRootHidden {
		return 0, false
	}
	return innerOf(n.ext(gid), 0)
}

// Exists reports whether id exists here (is mapped by this namespace).
func (n Namespace) Exists(gid bool, id uint32) bool {
	if !n.Nested {
		return id <= maxID
	}
	_, ok := outerOf(n.ext(gid), id)
	return ok
}

// ids returns the ids that exist here as intervals, ascending.
func (n Namespace) ids(gid bool) []interval {
	if !n.Nested {
		return []interval{{0, maxID + 1}}
	}
	var out []interval
	for _, e := range n.ext(gid) {
		out = append(out, interval{uint64(e.Inner), uint64(e.Inner) + uint64(e.Count)})
	}
	return sortIntervals(out)
}

// missing returns the first id of e's outer range that does not exist
// here, if any.
func (n Namespace) missing(gid bool, e Extent) (uint32, bool) {
	if !n.Nested {
		return 0, false
	}
	rest := []interval{{uint64(e.Outer), uint64(e.Outer) + uint64(e.Count)}}
	for _, iv := range n.ids(gid) {
		rest = subtract(rest, iv)
	}
	if len(rest) == 0 {
		return 0, false
	}
	first := rest[0].lo
	for _, iv := range rest {
		first = min(first, iv.lo)
	}
	return uint32(first), true
}

// describe renders this namespace's map of that kind for messages:
// `"0 1000 1, 1 100000 65536" (/proc/self/uid_map)`.
func (n Namespace) describe(gid bool) string {
	file := "/proc/self/uid_map"
	if gid {
		file = "/proc/self/gid_map"
	}
	text := strings.ReplaceAll(strings.TrimSpace(Format(n.ext(gid))), "\n", ", ")
	return strconv.Quote(text) + " (" + file + ")"
}

// split cuts each extent of ext where its outer range crosses from one
// extent of this namespace's map into the next: the kernel maps each
// extent down through a single extent of the parent's map, and refuses
// (EPERM) one that spans two, even when every id exists.
func (n Namespace) split(gid bool, ext []Extent) []Extent {
	if !n.Nested {
		return ext
	}
	var out []Extent
	for _, e := range ext {
		lo, hi := uint64(e.Outer), uint64(e.Outer)+uint64(e.Count)
		for lo < hi {
			end := hi
			for _, iv := range n.ids(gid) {
				if iv.lo <= lo && lo < iv.hi {
					end = min(end, iv.hi)
				}
			}
			inner := uint64(e.Inner) + lo - uint64(e.Outer)
			out = append(out, Extent{Inner: uint32(inner), Outer: uint32(lo), Count: uint32(end - lo)})
			lo = end
		}
	}
	return out
}
