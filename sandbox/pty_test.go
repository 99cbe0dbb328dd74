package sandbox

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/creack/pty"
	"gotest.tools/v3/assert"
)

// Only the caller's terminal ends are replaced by the sandbox's pty; with
// no terminal at all (a pty asked for with pipes) it carries all three.
func TestTerminalEnds(t *testing.T) {
	master, slave, err := pty.Open()
	assert.NilError(t, err)
	defer master.Close()
	defer slave.Close()
	r, w, err := os.Pipe()
	assert.NilError(t, err)
	defer r.Close()
	defer w.Close()

	cases := []struct {
		name           string
		stdin          io.Reader
		stdout, stderr io.Writer
		ends           [3]bool
		keep           int
	}{
		{"all terminal", slave, slave, slave, [3]bool{true, true, true}, 0},
		{"stdout a pipe (| less)", slave, w, slave, [3]bool{true, false, true}, 2},
		{"stdin a pipe", r, slave, slave, [3]bool{false, true, true}, 1},
		{"only stderr", r, w, slave, [3]bool{false, false, true}, 3},
		{"no terminal", r, w, w, [3]bool{true, true, true}, 0},
		{"not files", strings.NewReader(""), nil, nil, [3]bool{true, true, true}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Process{Terminal: true, Stdin: tc.stdin, Stdout: tc.stdout, Stderr: tc.stderr}
			ends := terminalEnds(p)
			assert.Equal(t, ends, tc.ends)
			assert.Equal(t, ptyKeep(ends), tc.keep)
		})
	}
}
