// Package subid reads a user's subordinate id allocations: the ranges of
// host uids and gids, listed in /etc/subuid and /etc/subgid (or served by
// an NSS module through shadow's getsubids program), that newuidmap(1) and
// newgidmap(1) let that user map into a user namespace.
//
// A line of either file reads "owner:start:count", where owner is a login
// name or a numeric uid. A user may own several ranges. Blank lines and
// lines starting with '#' are ignored.
//
// The package is strict: a malformed line, a zero count or a range that
// runs past 2^32-2 makes the whole file an error (a [*ParseError] naming
// file and line), even when the line belongs to another user.
package subid

// Range is a run of subordinate ids: Start, Start+1, …, Start+Count-1.
// Count is never zero, and Start+Count-1 never exceeds 2^32-2, the largest
// id a user namespace can map (2^32-1 is the invalid id, (uid_t)-1).
type Range struct {
	Start uint32
	Count uint32
}

// Kind says which id space a range belongs to.
type Kind int

const (
	// UIDs are subordinate user ids, from /etc/subuid.
	UIDs Kind = iota
	// GIDs are subordinate group ids, from /etc/subgid.
	GIDs
)

// String returns "subuid" or "subgid".
func (k Kind) String() string {
	if k == GIDs {
		return "subgid"
	}
	return "subuid"
}

// MaxID is the largest id a range may contain: 2^32-2. The id 2^32-1 is
// (uid_t)-1, which the kernel refuses to map.
const MaxID = 1<<32 - 2

// Owner identifies whose ranges to read. A line matches when its owner
// field equals Name (if Name is not empty), or when the owner field is a
// decimal number equal to UID; real files use both forms.
type Owner struct {
	Name string
	UID  uint32
}
