// Package buildstep is a small build runner that embeds nsbox: it runs each
// step of a build in a sandbox of its own, where the source tree is
// read-only and only the output directory is writable, with no network
// (only lo) and nothing surviving the step.
//
// A step is a shell command line, run with /bin/sh -c in the source
// directory, with $SRC and $OUT naming the two trees:
//
//	r := buildstep.Runner{Src: "/work/app", Out: "/work/app/out", Stdout: os.Stdout, Stderr: os.Stderr}
//	err := r.Run(ctx, []string{
//		`cc -o "$OUT/hello" hello.c`,
//		`"$OUT/hello" > "$OUT/greeting.txt"`,
//	})
//
// The program must call sandbox.Init first in main (see cmd/buildstep).
// The view is nsbox's mount list (sandbox.Spec.Mounts): the host
// read-only, the source read-only, the output writable; the step runs as
// the caller's own id with no capabilities, so it cannot undo the
// read-only mounts.
package buildstep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/sandbox"
)

// Runner runs build steps. Src and Out are host directories; Out may be
// inside Src. The zero Stdout and Stderr discard the steps' output.
type Runner struct {
	Src, Out       string
	Stdout, Stderr io.Writer
	// Env is added to each step's environment (KEY=VALUE), after the
	// caller's own and before SRC and OUT.
	Env []string
}

// StepError reports the step that failed.
type StepError struct {
	Index   int // 1-based
	Command string
	Err     error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s): %v", e.Index, e.Command, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Run runs steps in order, each in a new sandbox, and stops at the first
// that fails (a *StepError). Cancelling ctx kills the running step's
// whole sandbox.
func (r *Runner) Run(ctx context.Context, steps []string) error {
	src, out, err := r.dirs()
	if err != nil {
		return err
	}
	for i, step := range steps {
		if err := r.step(ctx, src, out, step); err != nil {
			return &StepError{Index: i + 1, Command: step, Err: err}
		}
	}
	return nil
}

// dirs resolves Src and Out to absolute paths without symlinks, creating
// Out: the sandbox's mounts name real directories.
func (r *Runner) dirs() (src, out string, err error) {
	if r.Src == "" || r.Out == "" {
		return "", "", errors.New("buildstep: Runner needs Src and Out")
	}
	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return "", "", fmt.Errorf("buildstep: create the output directory: %w", err)
	}
	for _, p := range []struct {
		in  string
		out *string
	}{{r.Src, &src}, {r.Out, &out}} {
		abs, err := filepath.Abs(p.in)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return "", "", fmt.Errorf("buildstep: %w", err)
		}
		*p.out = abs
	}
	if out == src || strings.HasPrefix(src, out+"/") {
		return "", "", fmt.Errorf("buildstep: the output directory %s contains the source %s; fix: pick an output directory inside or beside it", out, src)
	}
	return src, out, nil
}

// step runs one command line in a sandbox.
func (r *Runner) step(ctx context.Context, src, out, command string) error {
	spec, err := sandbox.Default("/bin/sh", "-c", command)
	if err != nil {
		return err
	}
	spec.Process.Cwd = src
	spec.Process.Env = append(append(os.Environ(), r.Env...), "SRC="+src, "OUT="+out)
	spec.Process.Stdout, spec.Process.Stderr = r.Stdout, r.Stderr
	readOnlyView(spec, src, out)
	sb, err := sandbox.Start(ctx, spec)
	if err != nil {
		return err
	}
	return sb.Wait()
}
