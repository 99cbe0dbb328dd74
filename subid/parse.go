package subid

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// ParseError reports a malformed line of a subordinate id file. Its Error
// is one line: "FILE:LINE: what is wrong; fix: how to repair it".
type ParseError struct {
	// File names the file, as given to Parse.
	File string
	// Line is the 1-based line number.
	Line int
	// Msg says what is wrong and how to fix it ("…; fix: …"), without
	// newlines.
	Msg string
}

// Error returns "FILE:LINE: MSG".
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", oneLine(e.File), e.Line, e.Msg)
}

// Parse reads subordinate id lines ("owner:start:count") from r and
// returns owner's ranges in file order, or nil when owner has none. file
// names the source in errors. Any malformed line is a *ParseError, even
// one that belongs to another owner; a read error is wrapped with file.
func Parse(r io.Reader, file string, owner Owner) ([]Range, error) {
	var ranges []Range
	err := scan(r, file, owner, func(_ int, _, _ string, rg Range, mine bool) {
		if mine {
			ranges = append(ranges, rg)
		}
	})
	if err != nil {
		return nil, err
	}
	return ranges, nil
}

// scan is the one loop over a subordinate id file: it calls fn with each
// range line's 1-based number, its trimmed text, its owner field, its
// range and whether owner owns it, in file order, and stops at the first
// malformed line (a *ParseError, worded for owner) or read error.
func scan(r io.Reader, file string, owner Owner, fn func(n int, text, lineOwner string, rg Range, mine bool)) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", file, pathCause(err))
		}
		if line == "" && err != nil {
			return nil
		}
		rg, mine, msg := parseLine(line, owner)
		if msg != "" {
			return &ParseError{File: file, Line: n, Msg: msg}
		}
		if text := strings.TrimSpace(line); text != "" && text[0] != '#' {
			lineOwner, _, _ := strings.Cut(text, ":")
			fn(n, text, lineOwner, rg, mine)
		}
		if err != nil {
			return nil
		}
	}
}

// parseLine parses one line. It reports whether the line holds a range of
// owner's; msg is non-empty when the line is malformed.
func parseLine(line string, owner Owner) (rg Range, mine bool, msg string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return Range{}, false, ""
	}
	fields := strings.Split(line, ":")
	mine = matches(fields[0], owner)
	if len(fields) != 3 {
		return Range{}, false, fmt.Sprintf(
			"%s has %d colon-separated fields, want 3 (owner:start:count)%s; fix: write it as owner:start:count, e.g. alice:100000:65536, or delete it",
			quote(line), len(fields), notYours(mine))
	}
	if fields[0] == "" {
		return Range{}, false, fmt.Sprintf(
			"%s has an empty owner field; fix: put a login name or numeric uid before the first colon, or delete the line",
			quote(line))
	}
	rg, what, fix := parseRange(fields[1], fields[2])
	if what != "" {
		return Range{}, false, what + notYours(mine) + "; fix: " + fix
	}
	return rg, mine, ""
}

// parseRange checks a start and count field. On failure it says what is
// wrong and how to fix it.
func parseRange(start, count string) (rg Range, what, fix string) {
	const fixNumber = "use a plain decimal number (no sign, spaces or hex), or delete the line"
	s, what := parseNumber("start", start, 1<<32-1)
	if what != "" {
		return Range{}, what, fixNumber
	}
	c, what := parseNumber("count", count, 1<<32-1)
	if what != "" {
		return Range{}, what, fixNumber
	}
	if c == 0 {
		return Range{}, "count is 0, but a range must hold at least one id",
			"give the range a count of at least 1 (65536 is usual), or delete the line"
	}
	if last := s + c - 1; last > MaxID {
		return Range{}, fmt.Sprintf("range %d+%d ends at id %d, past the largest mappable id %d", s, c, last, uint64(MaxID)),
			fmt.Sprintf("lower start or count so that start+count-1 <= %d", uint64(MaxID))
	}
	return Range{Start: uint32(s), Count: uint32(c)}, "", ""
}

// parseNumber parses field, a decimal number of at most max, named name in
// the message it returns on failure.
func parseNumber(name, field string, max uint64) (uint64, string) {
	if !allDigits(field) {
		return 0, fmt.Sprintf("%s %s is not a decimal number", name, quote(field))
	}
	v, err := strconv.ParseUint(field, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Sprintf("%s %s is larger than %d", name, quote(field), max)
	}
	return v, ""
}

func notYours(mine bool) string {
	if mine {
		return ""
	}
	return " (not your entry, but the file is malformed either way)"
}

// matches reports whether a line's owner field names owner.
func matches(field string, owner Owner) bool {
	if field == "" {
		return false
	}
	if owner.Name != "" && field == owner.Name {
		return true
	}
	if !allDigits(field) {
		return false
	}
	v, err := strconv.ParseUint(field, 10, 32)
	return err == nil && uint32(v) == owner.UID
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// quote quotes s for an error message, shortened so that a huge line
// cannot flood the terminal. The result has no newlines.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// oneLine returns s, quoted if it holds characters that would break a
// one-line message.
func oneLine(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
