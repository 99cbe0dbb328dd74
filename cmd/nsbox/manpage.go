package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// `nsbox man` (hidden) prints nsbox(1), the man page, in troff: the
// usage text and every command's help (`nsbox help COMMAND`) turned into
// man(7) markup, so the page says what the binary it came from says.
// make deb runs it; nothing is generated into the source tree.
//
// The help texts are plain text in a few shapes, and each has its markup:
//
//	Usage: nsbox run …           the command's synopsis (.SS heading)
//	a paragraph of prose         .PP, filled
//	Flags: / Examples:           a heading line alone: bold, .PP
//	  --flag ARG   what it does  an option line (two spaces, a dash): .TP
//	  nsbox run -- id  # …       other indented lines: .nf, as written
//
// Text goes through troffText: \ becomes \e, - becomes \- (a hyphen
// would break lines and not be searchable), and a line starting with . or
// ' (a request to troff) gets \& before it.

// manCommand is `nsbox man`.
func manCommand(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"man: takes no arguments; fix: nsbox man > nsbox.1"}
	}
	_, err := io.WriteString(stdout, manPage(manDate()))
	return err
}

// manDate is the page's date: SOURCE_DATE_EPOCH's (reproducible builds;
// make deb sets it to the commit's time), else today's.
func manDate() time.Time {
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(s, 0).UTC()
	}
	return time.Now().UTC()
}

// manPage renders nsbox(1).
func manPage(date time.Time) string {
	var b strings.Builder
	title, _, _ := strings.Cut(usage, "\n")
	title = strings.TrimPrefix(title, "nsbox: ")
	fmt.Fprintf(&b, ".TH NSBOX 1 %q %q \"User Commands\"\n", date.Format("2006-01-02"), "nsbox "+troffText(version))
	b.WriteString(".SH NAME\nnsbox \\- " + troffText(title) + "\n")
	b.WriteString(".SH SYNOPSIS\n")
	cmds := cliCommands()
	for i, c := range cmds {
		if i > 0 {
			b.WriteString(".br\n")
		}
		name, rest, _ := strings.Cut(c.synopsis, " "+c.name)
		fmt.Fprintf(&b, "\\fB%s %s\\fR%s\n", troffText(name), troffText(c.name), troffText(rest))
	}
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString("\\fBnsbox\\fR: " + troffText(title) + ".\n")
	// The usage text past its command list: examples, exit status.
	_, after, _ := strings.Cut(usage, "\nExamples:")
	renderHelp(&b, "Examples:"+after)
	b.WriteString(".SH COMMANDS\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, ".SS \"%s\"\n", troffText(c.synopsis))
		b.WriteString(troffText(c.summary) + ".\n")
		renderHelp(&b, withoutUsageLines(c.longHelp()))
	}
	b.WriteString(manTail)
	return b.String()
}

// manTail is the end of the page: what no command's help says.
const manTail = `.SH FILES
.TP
.I $XDG_RUNTIME_DIR/nsbox/ \fR(else\fP /tmp/nsbox\-UID/\fR)\fP
The running sandboxes' state, one directory each (\fBnsbox ps\fR).
.TP
.I $XDG_CACHE_HOME/nsbox/ \fR(else\fP ~/.cache/nsbox/\fR)\fP
The caches and homes of \fBrun \-\-cache\fR and \fBrun \-\-home\fR (\fBnsbox cache\fR).
.TP
.I /etc/subuid\fR,\fP /etc/subgid
Your subordinate ids, mapped into sandboxes through \fBnewuidmap\fR(1) and \fBnewgidmap\fR(1).
.TP
.I /etc/apparmor.d/nsbox
The AppArmor profile that lets nsbox create user namespaces where AppArmor restricts them (Ubuntu 23.10 and later).
.SH SEE ALSO
\fBbwrap\fR(1), \fBunshare\fR(1), \fBnewuidmap\fR(1), \fBsubuid\fR(5), \fBuser_namespaces\fR(7), \fBnamespaces\fR(7)
`

// withoutUsageLines drops the help's "Usage: …" line and its
// continuations: the synopsis is the section's heading already.
func withoutUsageLines(help string) string {
	lines := strings.Split(help, "\n")
	i := 0
	for i < len(lines) && (i == 0 && strings.HasPrefix(strings.ToLower(lines[i]), "usage:") ||
		i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i]), "nsbox ") && strings.HasPrefix(lines[i], " ")) {
		i++
	}
	return strings.Join(lines[i:], "\n")
}

// renderHelp appends the man markup of a help text to b.
func renderHelp(b *strings.Builder, help string) {
	const (
		none = iota
		prose
		verbatim
		option
	)
	mode := none
	end := func() {
		if mode == verbatim {
			b.WriteString(".fi\n.RE\n")
		}
		mode = none
	}
	for _, line := range strings.Split(help, "\n") {
		trimmed := strings.TrimSpace(line)
		indented := strings.HasPrefix(line, " ")
		opt, optHelp, isOption := parseOptionLine(line)
		switch {
		case trimmed == "":
			end()
		case isHeadingLine(line):
			end()
			b.WriteString(".PP\n.B " + troffText(line) + "\n")
		case indented && isOption && !(mode == verbatim):
			end()
			b.WriteString(".TP\n" + boldOptions(opt) + "\n")
			if optHelp != "" {
				b.WriteString(troffLine(optHelp) + "\n")
			}
			mode = option
		case indented && mode == option:
			// The wrapped end of an option's help.
			b.WriteString(troffLine(trimmed) + "\n")
		case indented:
			if mode != verbatim {
				end()
				b.WriteString(".PP\n.RS 2\n.nf\n")
				mode = verbatim
			}
			b.WriteString(troffLine(strings.TrimPrefix(line, "  ")) + "\n")
		default:
			if mode != prose {
				end()
				b.WriteString(".PP\n")
				mode = prose
			}
			b.WriteString(troffLine(line) + "\n")
		}
	}
	end()
}

// boldOptions sets an option's names in bold and its arguments in
// italics: "-t, --tty" → \fB\-t\fR, \fB\-\-tty\fR; "--uid UID" → … \fIUID\fR.
func boldOptions(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		name := strings.TrimSuffix(w, ",")
		if strings.HasPrefix(name, "-") {
			words[i] = "\\fB" + troffText(name) + "\\fR" + strings.TrimPrefix(w, name)
		} else {
			words[i] = "\\fI" + troffText(w) + "\\fR"
		}
	}
	return guardLine(strings.Join(words, " "))
}

// troffEscapes are what troffText replaces: the escape character first.
var troffEscapes = strings.NewReplacer(
	`\`, `\e`,
	"-", `\-`,
	"…", "...",
	"–", `\(en`,
	"—", `\(em`,
	"→", `\(->`,
	"’", "'",
)

// troffText escapes s for troff: backslashes and hyphens, and any other
// character past ASCII as \[uXXXX] (✓ in check's help), which troff
// reads whatever the page's encoding is taken to be.
func troffText(s string) string {
	s = troffEscapes.Replace(s)
	var b strings.Builder
	for _, r := range s {
		if r > 0x7e {
			fmt.Fprintf(&b, `\[u%04X]`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// troffLine escapes s and makes it safe as a whole input line.
func troffLine(s string) string { return guardLine(troffText(s)) }

// guardLine makes an escaped line safe as an input line: one starting
// with . or ' would be a request to troff, so \& (nothing) goes first.
func guardLine(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}
