package main

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// The regular expressions helplines.go's parsers stand for.
var (
	usageLineRE   = regexp.MustCompile(`^  (nsbox ([a-z][a-z0-9-]*)\b.*?)\s{2,}(\S.*)$`)
	optionLineRE  = regexp.MustCompile(`^\s+(-[^ ].*?)(?:\s{2,}(\S.*))?$`)
	headingLineRE = regexp.MustCompile(`^[A-Z][A-Za-z ]*:$`)
)

// checkHelpLine fails when a parser of helplines.go reads line otherwise
// than its regular expression.
func checkHelpLine(t *testing.T, line string) {
	t.Helper()
	var want [4]string
	m := usageLineRE.FindStringSubmatch(line)
	if m != nil {
		want = [4]string{m[1], m[2], m[3], "ok"}
	}
	synopsis, name, summary, ok := parseUsageLine(line)
	var got [4]string
	if ok {
		got = [4]string{synopsis, name, summary, "ok"}
	}
	assert.Equal(t, got, want, "parseUsageLine(%q)", line)

	want = [4]string{}
	if m := optionLineRE.FindStringSubmatch(line); m != nil {
		want = [4]string{m[1], m[2], "ok"}
	}
	got = [4]string{}
	if opt, help, ok := parseOptionLine(line); ok {
		got = [4]string{opt, help, "ok"}
	}
	assert.Equal(t, got, want, "parseOptionLine(%q)", line)

	assert.Equal(t, isHeadingLine(line), headingLineRE.MatchString(line), "isHeadingLine(%q)", line)
}

// helpLines are the lines the parsers read in nsbox: the usage text's
// and every command's help.
func helpLines() []string {
	lines := strings.Split(usage, "\n")
	for _, c := range cliCommands() {
		lines = append(lines, strings.Split(c.longHelp(), "\n")...)
	}
	return lines
}

// TestHelpLinesMatchRegexp checks the parsers against their regular
// expressions on nsbox's own texts and on random lines of the characters
// the expressions tell apart.
func TestHelpLinesMatchRegexp(t *testing.T) {
	lines := helpLines()
	assert.Assert(t, len(lines) > 500)
	for _, line := range lines {
		checkHelpLine(t, line)
	}
	r := rand.New(rand.NewPCG(1, 2))
	starts := []string{"", " ", "  ", "  nsbox ", "  nsbox run", "    --", "\t-", "  -", "Flags"}
	pieces := []string{" ", "  ", "\t", "\f", "\v", "a", "z", "A", "Z", "0", "9", "-", "_", ":", "x-", "é", "\xff", "nsbox ", "--"}
	for range 200000 {
		var b strings.Builder
		b.WriteString(starts[r.IntN(len(starts))])
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		checkHelpLine(t, b.String())
	}
}

func FuzzHelpLines(f *testing.F) {
	for _, line := range helpLines() {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			return // the parsers read lines
		}
		checkHelpLine(t, line)
	})
}
