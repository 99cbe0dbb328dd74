package main

import (
	"debug/elf"
	"os"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// TestHasInterp checks the program-header scan against debug/elf on
// real binaries, dynamic and static, and refuses what is not ELF.
func TestHasInterp(t *testing.T) {
	self, err := os.Executable()
	assert.NilError(t, err)
	for _, path := range []string{"/bin/true", "/bin/busybox", "/usr/bin/newuidmap", self} {
		f, err := elf.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		assert.NilError(t, err)
		want := false
		for _, p := range f.Progs {
			want = want || p.Type == elf.PT_INTERP
		}
		f.Close()
		r, err := os.Open(path)
		assert.NilError(t, err)
		got, err := hasInterp(r)
		r.Close()
		assert.NilError(t, err, path)
		assert.Equal(t, got, want, path)
	}
	_, err = hasInterp(strings.NewReader("#!/bin/sh\n" + strings.Repeat("x", 100)))
	assert.ErrorContains(t, err, "not a 64-bit little-endian ELF file")
	_, err = hasInterp(strings.NewReader("\x7fELF"))
	assert.Assert(t, err != nil)
}

// TestELFConstants checks version.go's copies of debug/elf's constants,
// which it does not import (see there).
func TestELFConstants(t *testing.T) {
	assert.Equal(t, elfMag, elf.ELFMAG)
	assert.Equal(t, elfIdentClass, elf.EI_CLASS)
	assert.Equal(t, elfIdentData, elf.EI_DATA)
	assert.Equal(t, elf.Class(elfClass64), elf.ELFCLASS64)
	assert.Equal(t, elf.Data(elfData2LSB), elf.ELFDATA2LSB)
	assert.Equal(t, elf.ProgType(elfPTInterp), elf.PT_INTERP)
}
