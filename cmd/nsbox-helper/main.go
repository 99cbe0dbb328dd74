// Command nsbox-helper runs the jobs of nsbox whose packages are too heavy
// to link into nsbox itself (cmd/internal/helper says why and how nsbox
// carries it). It is not meant to be run by hand: each job speaks a
// protocol with the launcher that started it.
//
// A job is one entry of jobs, in a file of its own that adds its entry in
// an init function: net.go runs --net user's stack, image.go pulls images.
// The program is built twice (Makefile): nsbox-helper with net.go, and,
// with the build tag nsbox_helper_image, nsbox-image-helper with image.go,
// so that the network's helper does not pay the image packages' inits.
package main

import (
	"fmt"
	"os"

	"github.com/nsbox/nsbox/cmd/internal/helper"
)

// A job is a subcommand: its function, which returns the exit status, and
// how many descriptors the launcher passes it, from fd 4 up (fd 3 is the
// helper's own program).
type job struct {
	run   func(args []string) int
	files int
}

// jobs holds each job by name; each job's file adds its entry in init.
var jobs = map[string]job{}

// first, if set (by a job's file), runs before anything else in main: the
// image job's unpacker is this program again, in a user namespace, and
// must find its descriptors as they were passed (image.Init).
var first func()

func main() {
	j, ok := job{}, len(os.Args) >= 2
	if ok {
		j, ok = jobs[os.Args[1]]
	}
	if first != nil {
		first()
	}
	helper.Init(j.files) // closes its program and all it was not given
	if !ok {
		fmt.Fprintln(os.Stderr, "nsbox-helper: run by nsbox, not by hand (it names the job as the first argument)")
		os.Exit(2)
	}
	os.Exit(j.run(os.Args[2:]))
}
