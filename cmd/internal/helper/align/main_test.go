package main

import (
	"encoding/binary"
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

func TestMarkWritesWhereTheHelperAndLoaderAre(t *testing.T) {
	dir := t.TempDir()
	helper, loader, bin := filepath.Join(dir, "helper"), filepath.Join(dir, "loader"), filepath.Join(dir, "nsbox")
	h, l := "\x7fELF the helper program", "\x7fELF the loader NSBXLDR1"
	assert.NilError(t, os.WriteFile(helper, []byte(h), 0o644))
	assert.NilError(t, os.WriteFile(loader, []byte(l), 0o644))
	record := recordMagic + strings.Repeat("\x00", 24)
	content := "x" + l + strings.Repeat("y", 4096-1-len(l)) + h + "z" + record + "tail"
	assert.NilError(t, os.WriteFile(bin, []byte(content), 0o755))
	assert.NilError(t, mark(bin, helper, loader, 4096))
	b, err := os.ReadFile(bin)
	assert.NilError(t, err)
	at := strings.Index(string(b), recordMagic) + len(recordMagic)
	assert.DeepEqual(t, []uint64{binary.LittleEndian.Uint64(b[at:]), binary.LittleEndian.Uint64(b[at+8:]), binary.LittleEndian.Uint64(b[at+16:])},
		[]uint64{4096, 1, uint64(len(l))})
	assert.Equal(t, len(b), len(content))

	// Marked already, or no record at all: left as it is.
	assert.NilError(t, mark(bin, helper, loader, 4096))
	again, _ := os.ReadFile(bin)
	assert.DeepEqual(t, again, b)
	// A helper off a page boundary is refused.
	assert.NilError(t, os.WriteFile(bin, []byte("xx"+h+l+record), 0o755))
	assert.ErrorContains(t, mark(bin, helper, loader, 4096), "not page-aligned")
}
