package mapping

// Extent is one line of a /proc/PID/uid_map or gid_map file: inner ids
// Inner … Inner+Count-1 in the new user namespace stand for outer ids
// Outer … Outer+Count-1 in the parent namespace.
type Extent struct {
	Inner uint32
	Outer uint32
	Count uint32
}
