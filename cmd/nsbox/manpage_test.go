package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The page has a section for every command, and in it every flag its
// parser accepts (hidden ones aside), spelled as troff needs (\-\-root).
func TestManPageHasEveryCommandAndFlag(t *testing.T) {
	page := manPage(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	sections := strings.Split(page, "\n.SS ")
	bySynopsis := map[string]string{}
	for _, s := range sections[1:] {
		head, body, _ := strings.Cut(s, "\n")
		bySynopsis[head] = body
	}
	nflags := 0
	for _, c := range cliCommands() {
		body, ok := bySynopsis[`"`+troffText(c.synopsis)+`"`]
		if !assert.Check(t, ok, "no .SS for nsbox %s", c.name) {
			continue
		}
		assert.Check(t, is.Contains(page, `\fBnsbox `+troffText(c.name)+`\fR`), "synopsis of %s", c.name)
		for _, f := range c.visibleFlags() {
			if f.Name == "help" {
				continue // every command takes it; the page need not say so each time
			}
			nflags++
			name := troffText("--" + f.Name)
			inSynopsis := strings.Contains(troffText(c.synopsis), name)
			assert.Check(t, strings.Contains(body, `\fB`+name) || inSynopsis, "nsbox %s %s", c.name, name)
		}
	}
	assert.Check(t, nflags > 100, "only %d flags seen", nflags)
	assert.Check(t, !strings.Contains(page, "supervise"), "a hidden flag is on the page")
}

// macros are the requests the page may use; any other line starting with
// . or ' would be text that troff took for a request.
var macros = regexp.MustCompile(`^\.(TH|SH|SS|PP|TP|RS|RE|nf|fi|B|I|br)( |$)`)

// No text line is a request, no hyphen is bare, no character is past
// ASCII: what lintian's manpage checks and groff -ww look at.
func TestManPageEscaping(t *testing.T) {
	page := manPage(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	for i, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			assert.Check(t, macros.MatchString(line), "line %d is an unknown request: %q", i+1, line)
		}
		if strings.HasPrefix(line, ".TH ") {
			continue // the date
		}
		bare := strings.NewReplacer(`\-`, "", `\(->`, "").Replace(line)
		assert.Check(t, !strings.Contains(bare, "-"), "line %d has a bare hyphen: %q", i+1, line)
		for _, r := range line {
			if r > 0x7e {
				assert.Check(t, false, "line %d has %q unescaped", i+1, r)
				break
			}
		}
	}
	for _, tc := range []struct{ in, want string }{
		{".hidden", `\&.hidden`},
		{"'quoted", `\&'quoted`},
		{`a\b-c`, `a\eb\-c`},
		{"✓", `\[u2713]`},
	} {
		assert.Check(t, is.Equal(troffLine(tc.in), tc.want))
	}
	// A help text's line that starts with a dot stays text.
	var b strings.Builder
	renderHelp(&b, "Some prose\n.so /etc/passwd\n")
	assert.Check(t, is.Contains(b.String(), "\n\\&.so /etc/passwd\n"))
}

// groff, where installed, renders the page without a warning.
func TestManPageRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(manPage(time.Now()))
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(out), ""))
}
