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
	"debug/elf"
	"fmt"
	"io"
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
	if info, ok := debug.ReadBuildInfo(); ok && c == "" {
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

// linking says how the running binary was linked: "static" when its ELF
// header names no program interpreter (ld.so), else "dynamic".
func linking() string {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return "linking unknown"
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "dynamic"
		}
	}
	return "static"
}
