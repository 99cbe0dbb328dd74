package bwrap

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// helpLineRE is the regular expression parseHelpLine stands for.
var helpLineRE = regexp.MustCompile(`^    (--[a-z0-9-]+)((?: [A-Z][A-Z0-9_]*)*)\s+(\S.*)$`)

// checkHelpLine fails when parseHelpLine reads line otherwise than
// helpLineRE.
func checkHelpLine(t *testing.T, line string) {
	t.Helper()
	var want, got [4]string
	if m := helpLineRE.FindStringSubmatch(line); m != nil {
		want = [4]string{m[1], m[2], m[3], "ok"}
	}
	if option, args, help, ok := parseHelpLine(line); ok {
		got = [4]string{option, args, help, "ok"}
	}
	assert.Equal(t, got, want, "parseHelpLine(%q)", line)
}

// TestHelpLineMatchesRegexp checks parseHelpLine against helpLineRE on
// optionHelp and on random lines of the characters the expression tells
// apart; and that every option of options has its help.
func TestHelpLineMatchesRegexp(t *testing.T) {
	for _, line := range strings.Split(optionHelp, "\n") {
		checkHelpLine(t, line)
	}
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{" ", "  ", "\t", "\v", "a", "z", "0", "-", "A", "Z", "9", "_", " A", " B_1", "x", "é", "\xff"}
	for range 200000 {
		var b strings.Builder
		b.WriteString([]string{"", "   --", "    --", "    --a"}[r.IntN(4)])
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		checkHelpLine(t, b.String())
	}
	fs := FlagSet()
	for _, o := range options {
		f := fs.Lookup(strings.TrimPrefix(o.name, "--"))
		assert.Assert(t, f != nil && f.Usage != "", "%s has no help in optionHelp", o.name)
	}
}

// TestOptionsSorted: arity's binary search needs options sorted by name,
// each once.
func TestOptionsSorted(t *testing.T) {
	for i := 1; i < len(options); i++ {
		assert.Check(t, options[i-1].name < options[i].name, "options: %s before %s", options[i-1].name, options[i].name)
	}
	for _, o := range options {
		words, known := arity(o.name)
		assert.Check(t, known && words == o.words, o.name)
	}
	for _, name := range []string{"", "--", "--a", "--zzz", "--bind=", "-bind", "--Bind"} {
		_, known := arity(name)
		assert.Check(t, !known, name)
	}
}

func FuzzHelpLine(f *testing.F) {
	for _, line := range strings.Split(optionHelp, "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			return // parseHelpLine reads lines
		}
		checkHelpLine(t, line)
	})
}
