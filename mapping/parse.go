package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode chooses how much of the id space a plan maps.
type Mode int

const (
	// Auto maps the caller's own id and, when it has subordinate ids and
	// newuidmap/newgidmap are usable, up to 65536 of them as well.
	Auto Mode = iota
	// Single maps only the caller's own id.
	Single
	// Subids maps subordinate ids as Auto does, but fails where Auto
	// would fall back to a single mapping (no subordinate ids, unusable
	// or failing helpers).
	Subids
)

// String returns "auto" or "single" ("Mode(N)" for anything else).
func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Single:
		return "single"
	case Subids:
		return "subids"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ErrUnknownMode is wrapped by the errors of ParseMode and NewPlan for a
// mode that is neither Auto nor Single.
var ErrUnknownMode = errors.New("unknown mode")

// ParseMode parses the value of --map: "auto", "single" or "subids".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "single":
		return Single, nil
	case "subids":
		return Subids, nil
	}
	return 0, &planError{
		msg: fmt.Sprintf("%s: unknown mode; fix: use auto, single or subids", printable(s)),
		err: ErrUnknownMode,
	}
}

// MaxExtents is the most lines the kernel accepts in one uid_map or
// gid_map.
const MaxExtents = 340

// maxID is the largest id a map may contain: 2^32-2. 2^32-1 is (uid_t)-1.
const maxID = 1<<32 - 2

// ErrInvalidExtent is wrapped by errors about one malformed extent: bad
// syntax, a zero count or a range that runs past the largest id.
var ErrInvalidExtent = errors.New("invalid extent")

// ParseExtent parses util-linux's INNER:OUTER:COUNT (the syntax of
// unshare --map-users): three decimal numbers, each fitting 32 bits, with
// COUNT at least 1 and neither range reaching 2^32-1. The error is one
// line naming the input; it wraps ErrInvalidExtent.
func ParseExtent(s string) (Extent, error) {
	fields := strings.Split(s, ":")
	if len(fields) != 3 {
		return Extent{}, extentError(s, fmt.Sprintf(
			"has %d colon-separated fields, want 3 (INNER:OUTER:COUNT)", len(fields)),
			"write it like 0:1000:1 (inner id 0 is host id 1000, one id)")
	}
	var v [3]uint32
	for i, name := range [3]string{"inner", "outer", "count"} {
		n, err := strconv.ParseUint(fields[i], 10, 32)
		if err != nil {
			what := fmt.Sprintf("%s %s is not a decimal number", name, printable(fields[i]))
			if errors.Is(err, strconv.ErrRange) {
				what = fmt.Sprintf("%s %s is larger than 4294967295", name, printable(fields[i]))
			}
			return Extent{}, extentError(s, what,
				"use plain decimal numbers (no sign, spaces or hex), e.g. 0:1000:1")
		}
		v[i] = uint32(n)
	}
	e := Extent{Inner: v[0], Outer: v[1], Count: v[2]}
	if what, fix := checkExtent(e, "ids"); what != "" {
		return Extent{}, extentError(s, what, fix)
	}
	return e, nil
}

// checkExtent reports what is wrong with e alone (zero count, a range
// running past maxID) and how to fix it, or "", "". ids names the ids in
// the message ("ids", "uids", "gids").
func checkExtent(e Extent, ids string) (what, fix string) {
	if e.Count == 0 {
		return "count is 0, but an extent must map at least one id",
			"use a count of at least 1"
	}
	for _, r := range []struct {
		side  string
		start uint32
	}{{"inner", e.Inner}, {"outer", e.Outer}} {
		if end := uint64(r.start) + uint64(e.Count); end > maxID+1 {
			return fmt.Sprintf("%s %s %d–%d run past %d, the largest id a user namespace can map (%d is (uid_t)-1)",
					r.side, ids, r.start, end-1, uint64(maxID), uint64(maxID+1)),
				"lower the start or the count"
		}
	}
	return "", ""
}

func extentError(input, what, fix string) error {
	return &planError{
		msg: fmt.Sprintf("extent %s: %s; fix: %s", strconv.Quote(input), what, fix),
		err: ErrInvalidExtent,
	}
}

// Format renders extents as map-file text: one "inner outer count\n" line
// each, which is what /proc/PID/uid_map and gid_map accept (and, up to
// column padding, what reading them returns).
func Format(ext []Extent) string {
	b := make([]byte, 0, len(ext)*24)
	for _, e := range ext {
		b = strconv.AppendUint(b, uint64(e.Inner), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(e.Outer), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(e.Count), 10)
		b = append(b, '\n')
	}
	return string(b)
}

// colon renders e as INNER:OUTER:COUNT.
func colon(e Extent) string {
	return fmt.Sprintf("%d:%d:%d", e.Inner, e.Outer, e.Count)
}

// colons renders extents as INNER:OUTER:COUNT,INNER:OUTER:COUNT….
func colons(ext []Extent) string {
	parts := make([]string, len(ext))
	for i, e := range ext {
		parts[i] = colon(e)
	}
	return strings.Join(parts, ",")
}

// printable returns s, or s quoted when it is empty or holds anything that
// could break a one-line message.
func printable(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == '"' || r == '\\' {
			return strconv.Quote(s)
		}
	}
	if !strconv.CanBackquote(s) {
		return strconv.Quote(s)
	}
	return s
}

// planError is a one-line message that wraps a sentinel without
// repeating the sentinel's text.
type planError struct {
	msg string
	err error
}

func (e *planError) Error() string { return e.msg }
func (e *planError) Unwrap() error { return e.err }
