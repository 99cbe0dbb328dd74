package main

import "strings"

// The shapes of the usage text's and the help texts' lines that the
// shell completions (commands.go) and the man page (manpage.go) read,
// parsed by hand rather than by regular expressions: regexp, and the
// unicode tables it keeps in the binary, would be linked into nsbox for
// these three alone, and their package inits run at every start of
// nsbox. Each function gives the submatches its regular expression,
// quoted in its comment, gave (Perl's leftmost-first match), on every
// line; helplines_test.go checks that against regexp.

// isSpace is regexp's \s: space, \t, \n, \f and \r.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isWord is regexp's \w, which \b tells from the rest.
func isWord(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) || c == '_' }

// splitColumns splits s at the first run of two or more whitespace
// characters at or after from that a non-whitespace character follows
// (`.*?\s{2,}(\S.*)$`): what is before the run, and after it.
func splitColumns(s string, from int) (left, right string, ok bool) {
	for i := from; i < len(s); i++ {
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j-i >= 2 && j < len(s) {
			return s[:i], s[j:], true
		}
	}
	return "", "", false
}

// parseUsageLine reads a command's line of the usage text: two spaces,
// "nsbox NAME ARGS" (the synopsis), two or more spaces, the summary:
// `^  (nsbox ([a-z][a-z0-9-]*)\b.*?)\s{2,}(\S.*)$`. ok is false for any
// other line.
func parseUsageLine(line string) (synopsis, name, summary string, ok bool) {
	const prefix = "  nsbox "
	rest, found := strings.CutPrefix(line, prefix)
	if !found || rest == "" || !isLower(rest[0]) {
		return "", "", "", false
	}
	n := 1
	for n < len(rest) && (isLower(rest[n]) || isDigit(rest[n]) || rest[n] == '-') {
		n++
	}
	// \b: the name gives back its last characters until it ends at a
	// word boundary; a name the run of spaces cannot follow at its
	// longest cannot at a shorter length either (no space is in it).
	for n > 0 && isWord(rest[n-1]) == (n < len(rest) && isWord(rest[n])) {
		n--
	}
	if n == 0 {
		return "", "", "", false
	}
	left, summary, ok := splitColumns(line, len(prefix)+n)
	if !ok {
		return "", "", "", false
	}
	return left[2:], rest[:n], summary, true
}

// parseOptionLine reads an indented line naming an option: "  -t, --tty
// help" or "    --bind SRC DEST    help", the help past two or more
// spaces, if any: `^\s+(-[^ ].*?)(?:\s{2,}(\S.*))?$`. ok is false for any
// other line.
func parseOptionLine(line string) (option, help string, ok bool) {
	i := 0
	for i < len(line) && isSpace(line[i]) {
		i++
	}
	if i == 0 || i+1 >= len(line) || line[i] != '-' || line[i+1] == ' ' {
		return "", "", false
	}
	// The run of spaces starts past the character after the dash (which
	// may take several bytes; none of them is a space).
	if left, right, ok := splitColumns(line, i+2); ok {
		return left[i:], right, true
	}
	return line[i:], "", true
}

// isHeadingLine reports whether line is a heading, alone on its line and
// ending in a colon: "Flags:", "Examples:" (`^[A-Z][A-Za-z ]*:$`).
func isHeadingLine(line string) bool {
	if len(line) < 2 || !isUpper(line[0]) || line[len(line)-1] != ':' {
		return false
	}
	for i := 1; i < len(line)-1; i++ {
		if c := line[i]; !isUpper(c) && !isLower(c) && c != ' ' {
			return false
		}
	}
	return true
}
