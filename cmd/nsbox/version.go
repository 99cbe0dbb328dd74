package main

// The C library nsbox was linked with, decided when the C compiler saw
// this file: glibc defines __GLIBC__ in every header, musl defines no
// macro of its own (on purpose), so "not glibc" on Linux is musl here,
// the only other C library the Makefile builds with.

/*
#include <stdlib.h>
#ifdef __GLIBC__
#define NSBOX_LIBC "glibc"
#else
#define NSBOX_LIBC "musl"
#endif
static const char *nsbox_libc(void) { return NSBOX_LIBC; }
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// libc names the C library of this binary: "glibc" or "musl". A call,
// not a variable, so no nsbox start pays for it but nsbox version.
func libc() string { return C.GoString(C.nsbox_libc()) }

// commit is set by the Makefile (-X main.commit=…); without it, the
// revision go build recorded (a build from a git checkout), else "unknown".
var commit = ""

const versionUsage = `Usage: nsbox version

Prints the version of nsbox, the commit it was built from, the Go version
and the C library (glibc or musl) it was built with, and whether it is
statically linked.
`

// printVersion is `nsbox version`: the version on the first line (scripts
// read that one), then how the binary was built.
func printVersion(w io.Writer) {
	c := commit
	// The build info is parsed only when the Makefile set no commit.
	if info, ok := readBuildInfo(c); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				c = s.Value[:min(12, len(s.Value))]
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(w, "nsbox %s\ncommit: %s\ngo: %s %s/%s\nlibc: %s (%s)\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH, libc(), linking())
}

// readBuildInfo is debug.ReadBuildInfo when commit is "" (it parses the
// whole module list, which a Makefile build does not need).
func readBuildInfo(commit string) (*debug.BuildInfo, bool) {
	if commit != "" {
		return nil, false
	}
	return debug.ReadBuildInfo()
}

// linking says how the running binary was linked: "static" when its ELF
// header names no program interpreter (ld.so), else "dynamic". It reads
// the file header and the program headers only: debug/elf.Open would
// also parse every section header and string table.
func linking() string {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return "linking unknown"
	}
	defer f.Close()
	interp, err := hasInterp(f)
	switch {
	case err != nil:
		return "linking unknown"
	case interp:
		return "dynamic"
	}
	return "static"
}

// The ELF values hasInterp reads (elf(5)), named as in debug/elf. That
// package is not imported for six constants: it brings debug/dwarf,
// compress/zlib and internal/zstd into the binary, and their package inits
// into every nsbox start. TestELFConstants checks them against it.
const (
	elfMag        = "\x7fELF" // elf.ELFMAG
	elfIdentClass = 4         // elf.EI_CLASS
	elfIdentData  = 5         // elf.EI_DATA
	elfClass64    = 2         // elf.ELFCLASS64
	elfData2LSB   = 1         // elf.ELFDATA2LSB
	elfPTInterp   = 3         // elf.PT_INTERP
)

// hasInterp reports whether the 64-bit little-endian ELF file r (the only
// kind nsbox builds as) has a PT_INTERP program header.
func hasInterp(r io.ReaderAt) (bool, error) {
	var h [64]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return false, err
	}
	if string(h[:4]) != elfMag || h[elfIdentClass] != elfClass64 || h[elfIdentData] != elfData2LSB {
		return false, fmt.Errorf("not a 64-bit little-endian ELF file")
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := int64(le.Uint64(h[32:])), int64(le.Uint16(h[54:])), int(le.Uint16(h[56:]))
	if phentsize < 4 || phnum > 1024 {
		return false, fmt.Errorf("bad program header table")
	}
	ph := make([]byte, phentsize*int64(phnum))
	if _, err := r.ReadAt(ph, phoff); err != nil {
		return false, err
	}
	for i := 0; i < phnum; i++ {
		if le.Uint32(ph[int64(i)*phentsize:]) == elfPTInterp {
			return true, nil
		}
	}
	return false, nil
}
