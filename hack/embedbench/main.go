// Command embed is the embedding benchmark's program: a Go program that has
// already started and runs sandboxes one after the other, or many at once,
// the way a build tool that embeds nsbox would: through sandbox.Start and
// Wait, or through os/exec running bwrap with the same job, for
// comparison. It prints each sandbox's wall time in ms, one per line, then
// "batch MS" for the whole run.
//
// Usage: embed nsbox|nsbox-auto|bwrap N PARALLEL
//
// nsbox maps only the caller's own ids (as bwrap does); nsbox-auto is
// sandbox.Default's plan (subordinate ids through newuidmap/newgidmap).
// Built like nsbox (cgo, static: hack/bench.sh), since Start re-executes
// this binary as the sandbox's stage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
)

var bwrapArgs = []string{"--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"}

func main() {
	sandbox.Init()
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: embed nsbox|nsbox-auto|bwrap N PARALLEL"))
	}
	n, err1 := strconv.Atoi(os.Args[2])
	par, err2 := strconv.Atoi(os.Args[3])
	if err1 != nil || err2 != nil || n < 1 || par < 1 {
		fail(fmt.Errorf("N and PARALLEL must be positive numbers"))
	}
	one, err := runner(os.Args[1])
	if err != nil {
		fail(err)
	}
	times := make([]float64, n)
	errs := make(chan error, n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t := time.Now()
				if err := one(); err != nil {
					errs <- err
					continue
				}
				times[i] = float64(time.Since(t).Microseconds()) / 1000
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	batch := float64(time.Since(start).Microseconds()) / 1000
	close(errs)
	if err := <-errs; err != nil {
		fail(err)
	}
	for _, t := range times {
		fmt.Printf("%.3f\n", t)
	}
	fmt.Printf("batch %.3f\n", batch)
}

// runner returns what runs one sandbox of kind.
func runner(kind string) (func() error, error) {
	switch kind {
	case "bwrap":
		return func() error {
			if out, err := exec.Command("bwrap", bwrapArgs...).CombinedOutput(); err != nil {
				return fmt.Errorf("bwrap: %v: %s", err, out)
			}
			return nil
		}, nil
	case "nsbox", "nsbox-auto":
		spec, err := sandbox.Default("true")
		if err != nil {
			return nil, err
		}
		if kind == "nsbox" {
			plan, err := mapping.ForCaller(mapping.Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: mapping.Single})
			if err != nil {
				return nil, err
			}
			spec.Mapping = plan
		}
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		return func() error {
			s := *spec // Start fills in the copy; the template stays as it is
			sb, err := sandbox.Start(context.Background(), &s)
			if err != nil {
				return err
			}
			return sb.Wait()
		}, nil
	}
	return nil, fmt.Errorf("embed: unknown kind %q; fix: nsbox, nsbox-auto or bwrap", kind)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "embed:", err)
	os.Exit(1)
}
