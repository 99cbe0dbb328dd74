package bwrap

import (
	"strings"

	"github.com/spf13/pflag"
)

// FlagSet describes bwrap's options (the table options, which its own
// parser reads, with the words of optionHelp) as a flag set, for
// completion only: bubblewrap's options take several words each, which
// pflag cannot parse.
func FlagSet() *pflag.FlagSet {
	help := map[string][2]string{} // --bind: {"SRC DEST", "Bind mount …"}
	for _, line := range strings.Split(optionHelp, "\n") {
		if option, args, text, ok := parseHelpLine(line); ok {
			help[option] = [2]string{args, text}
		}
	}
	fs := pflag.NewFlagSet("bwrap", pflag.ContinueOnError)
	for _, o := range options { // sorted by name
		n := o.name
		h := help[n]
		if o.words == 0 {
			fs.Bool(strings.TrimPrefix(n, "--"), false, h[1])
			continue
		}
		args := h[0]
		if args == "" {
			args = "ARG"
		}
		fs.String(strings.TrimPrefix(n, "--"), "", h[1]+" (takes `"+strings.TrimSpace(args)+"`)")
	}
	return fs
}

// parseHelpLine reads an option's line of optionHelp: the option, its
// arguments, two or more spaces (or one, where the words fill the
// column), the help: what
// `^    (--[a-z0-9-]+)((?: [A-Z][A-Z0-9_]*)*)\s+(\S.*)$` gives (Perl's
// leftmost-first match; flagset_test.go checks it against regexp). By
// hand, not with regexp: nsbox would link regexp, and the unicode tables
// it keeps, for this and the man page alone, and their package inits run
// at every start of nsbox.
func parseHelpLine(line string) (option, args, help string, ok bool) {
	const prefix = "    --"
	rest, found := strings.CutPrefix(line, prefix)
	if !found {
		return "", "", "", false
	}
	n := 0
	for n < len(rest) && (isLower(rest[n]) || isDigit(rest[n]) || rest[n] == '-') {
		n++
	}
	if n == 0 {
		return "", "", "", false
	}
	// ends[k] is where the arguments end when they are k words, as many
	// as there are first; where no help follows that many, one fewer
	// (the last word then starts the help).
	ends := []int{n}
	for p := n; p+1 < len(rest) && rest[p] == ' ' && isUpper(rest[p+1]); ends = append(ends, p) {
		p += 2
		for p < len(rest) && (isUpper(rest[p]) || isDigit(rest[p]) || rest[p] == '_') {
			p++
		}
	}
	for k := len(ends) - 1; k >= 0; k-- {
		p := ends[k]
		q := p
		for q < len(rest) && isSpace(rest[q]) {
			q++
		}
		if q > p && q < len(rest) {
			return "--" + rest[:n], rest[n:p], rest[q:], true
		}
	}
	return "", "", "", false
}

// isSpace is regexp's \s: space, \t, \n, \f and \r.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
