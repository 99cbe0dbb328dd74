package subid

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Entry is one range line of a subordinate id file, whoever owns it.
type Entry struct {
	// Owner is the owner field as written: a login name or a number.
	Owner string
	Range
	// Line is the 1-based line number; Text is the line, trimmed.
	Line int
	Text string
}

// Entries reads every range of kind's file (see Source.Path), all owners,
// in file order. No file is not an error: it returns nil, nil. A malformed
// line is a *ParseError, as for Lookup. Only the file is read: ranges an
// NSS module serves through getsubids are not listed.
func (s Source) Entries(kind Kind) ([]Entry, error) {
	path := s.Path(kind)
	f, err := openFile(path)
	if f == nil {
		return nil, err
	}
	defer f.Close()
	return parseEntries(f, path)
}

// openFile opens a subordinate id file: nil, nil when it does not exist;
// an error that names the path once (not the *PathError's repeat of it).
func openFile(path string) (*os.File, error) {
	f, err := openPlain(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, pathCause(err))
	}
	return f, nil
}

// openPlain opens path for reading as os.Open does, but outside the
// runtime's poller: os.Open offers every file to it, and for a regular
// file that costs three fcntl calls and an epoll_ctl that fails, on the
// start path of every sandbox (os.NewFile of a blocking descriptor asks
// one fcntl). Reads then block the thread, as they would anyway: regular
// files cannot be polled.
func openPlain(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// pathCause is err without a *fs.PathError around it, whose path the
// message already names.
func pathCause(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// parseEntries reads the range lines of r, named file in errors.
func parseEntries(r io.Reader, file string) ([]Entry, error) {
	var out []Entry
	err := scan(r, file, Owner{}, func(n int, text, owner string, rg Range, _ bool) {
		out = append(out, Entry{Owner: owner, Range: rg, Line: n, Text: text})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Origin names the line of kind's file that gives owner the id, for
// messages: `/etc/subuid line 3 "bob:0:65536"`. It returns "" when no line
// of the file does (the range came from getsubids, or the file cannot be
// read).
func (s Source) Origin(owner Owner, kind Kind, id uint32) string {
	entries, err := s.Entries(kind)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if matches(e.Owner, owner) && e.Contains(id) {
			return fmt.Sprintf("%s line %d %s", oneLine(s.Path(kind)), e.Line, quote(e.Text))
		}
	}
	return ""
}

// Contains reports whether id is one of r's ids.
func (r Range) Contains(id uint32) bool {
	return id >= r.Start && uint64(id) < uint64(r.Start)+uint64(r.Count)
}

// End returns the last id of r.
func (r Range) End() uint32 { return uint32(uint64(r.Start) + uint64(r.Count) - 1) }

// Where FreeRange looks: shadow's defaults for useradd(8), SUB_UID_MIN and
// SUB_UID_MAX in login.defs.
const (
	FreeMin = 100000
	FreeMax = 600100000
)

// FreeRange returns the lowest run of count ids within FreeMin … FreeMax
// that overlaps no range of taken (typically every Entry of /etc/subuid
// and of /etc/subgid, so that the same numbers are free in both). ok is
// false when there is no such run.
func FreeRange(count uint32, taken ...[]Range) (r Range, ok bool) {
	var all []Range
	for _, t := range taken {
		all = append(all, t...)
	}
	slices.SortFunc(all, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	start := uint64(FreeMin)
	for _, t := range all {
		end := uint64(t.Start) + uint64(t.Count) // exclusive
		if end <= start {
			continue
		}
		if uint64(t.Start) >= start+uint64(count) {
			break // the gap before t is large enough
		}
		start = end
	}
	if count == 0 || start+uint64(count)-1 > FreeMax {
		return Range{}, false
	}
	return Range{Start: uint32(start), Count: count}, true
}

// Ranges returns the ranges of entries.
func Ranges(entries []Entry) []Range {
	out := make([]Range, len(entries))
	for i, e := range entries {
		out[i] = e.Range
	}
	return out
}

// FreeRange returns the lowest range of count ids that no line of s's
// subuid or subgid file uses, whoever owns it: what real root maps onto
// without subordinate ids of its own (mapping.RootFallbackCount ids), and
// what `nsbox check` suggests adding. Ranges an NSS module serves are not
// seen.
func (s Source) FreeRange(count uint32) (Range, error) {
	var taken [][]Range
	for _, kind := range []Kind{UIDs, GIDs} {
		entries, err := s.Entries(kind)
		if err != nil {
			return Range{}, err
		}
		taken = append(taken, Ranges(entries))
	}
	r, ok := FreeRange(count, taken...)
	if !ok {
		return Range{}, fmt.Errorf("no range of %d ids is free in %s and %s", count, s.Path(UIDs), s.Path(GIDs))
	}
	return r, nil
}
