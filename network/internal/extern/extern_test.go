package extern

import (
	"io"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

func TestLastLineKeepsTheHelpersLastWords(t *testing.T) {
	var l LastLine
	assert.Equal(t, l.String(), "")
	io.WriteString(&l, "starting\nWARNING: x\n")
	io.WriteString(&l, "\n  \n")
	assert.Equal(t, l.String(), "WARNING: x")
	io.WriteString(&l, "setns: Operation ")
	io.WriteString(&l, "not permitted")
	assert.Equal(t, l.String(), "setns: Operation not permitted")
	io.WriteString(&l, strings.Repeat("y", 2000)+"\n")
	assert.Equal(t, len(l.String()), 512)
}

func TestLookNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Look("slirp4netns", "slirp4netns")
	assert.Error(t, err, "slirp4netns: slirp4netns is not installed (not in PATH); fix: install the slirp4netns package (e.g. apt-get install slirp4netns), or use usernet")
}
