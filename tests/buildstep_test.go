package tests

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsbox/nsbox/examples/buildstep"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
)

// The embedding example, as the unprivileged user (examples/buildstep's
// own tests skip as root, where make test runs unit tests): a step writes
// its output, a step that writes to the source fails on a read-only
// file system and ends the build.
func TestBuildstepExample(t *testing.T) {
	requireUnprivileged(t)
	src := fs.NewDir(t, "src", fs.WithFile("in.txt", "input\n"))
	out := fs.NewDir(t, "out")
	var stderr bytes.Buffer
	r := buildstep.Runner{Src: src.Path(), Out: out.Path(), Stderr: &stderr}
	err := r.Run(context.Background(), []string{
		`sort -r in.txt > "$OUT/sorted.txt"`,
		`rm in.txt`,
		`touch "$OUT/after-failure"`,
	})
	var se *buildstep.StepError
	assert.Assert(t, errors.As(err, &se), "Run: %v", err)
	assert.Equal(t, se.Index, 2)
	assert.Check(t, is.Contains(stderr.String(), "Read-only file system"))
	b, err := os.ReadFile(filepath.Join(out.Path(), "sorted.txt"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "input\n")
	_, err = os.Stat(filepath.Join(src.Path(), "in.txt"))
	assert.NilError(t, err, "the source lost a file")
	_, err = os.Stat(filepath.Join(out.Path(), "after-failure"))
	assert.Check(t, os.IsNotExist(err))
}
