// Command buildstep runs a build, one sandboxed step per line of a steps
// file, with the source tree read-only and only the output directory
// writable.
//
//	buildstep [-src DIR] [-out DIR] STEPS
//
// STEPS holds one shell command line per line; blank lines and lines
// starting with # are skipped. Each runs with /bin/sh -c in the source
// directory, with $SRC and $OUT set. The first failing step ends the
// build with its exit status.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/examples/buildstep"
	"github.com/nsbox/nsbox/sandbox"
)

func main() {
	sandbox.Init()

	src := flag.String("src", ".", "the source `DIR`, read-only to the steps")
	out := flag.String("out", "out", "the output `DIR`, the only place steps may write")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: buildstep [-src DIR] [-out DIR] STEPS")
		os.Exit(2)
	}
	steps, err := readSteps(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildstep:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := buildstep.Runner{Src: *src, Out: *out, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := r.Run(ctx, steps); err != nil {
		fmt.Fprintln(os.Stderr, "buildstep:", err)
		os.Exit(max(sandbox.ExitCode(err), 1))
	}
}

func readSteps(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var steps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			steps = append(steps, l)
		}
	}
	return steps, sc.Err()
}
