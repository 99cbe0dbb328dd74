package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

func TestPaddingPutsTheHelperOnAPageBoundary(t *testing.T) {
	dir := t.TempDir()
	helper := filepath.Join(dir, "helper")
	h := "\x7fELF the helper program"
	assert.NilError(t, os.WriteFile(helper, []byte(h), 0o644))
	for _, before := range []int{0, 1, 192, 4095, 4096, 4097, 8191} {
		bin := filepath.Join(dir, "nsbox")
		assert.NilError(t, os.WriteFile(bin, []byte(strings.Repeat("x", before)+h+"tail"), 0o644))
		need, err := padding(bin, helper, 4096)
		assert.NilError(t, err)
		assert.Equal(t, (before+need)%4096, 0, "helper at %d", before)
		assert.Assert(t, need >= 0 && need < 4096)
	}
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "nsbox"), []byte("no helper here"), 0o644))
	_, err := padding(filepath.Join(dir, "nsbox"), helper, 4096)
	assert.ErrorContains(t, err, "is not embedded in")
}
