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
	c, linked := commit, "dynamic"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
				if len(c) > 12 {
					c = c[:12]
				}
			case s.Key == "-ldflags" && containsAny(s.Value, "-static"):
				linked = "static"
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(w, "nsbox %s\ncommit: %s\ngo: %s %s/%s\nlibc: %s (%s)\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH, libc(), linked)
}
