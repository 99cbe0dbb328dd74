package buildstep_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/nsbox/nsbox/examples/buildstep"
	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}

func requireUser(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 {
		// The steps run as the caller's own id in a view the sandbox's
		// root builds: as real root that root is an unprivileged range
		// that may not write root's directories. tests/buildstep_test.go
		// runs this as the unprivileged test user under make test.
		t.Skip("runs as an unprivileged user with subordinate ids (make test runs it from tests/)")
	}
}

// Steps write to the output directory; the source tree stays read-only
// and the first failing step stops the build.
func TestBuildSteps(t *testing.T) {
	requireUser(t)
	src := fs.NewDir(t, "src", fs.WithFile("hello.txt", "hello\n"), fs.WithDir("sub", fs.WithFile("deep.txt", "deep\n")))
	out := filepath.Join(src.Path(), "out") // inside the source: still writable
	var stdout, stderr bytes.Buffer
	r := buildstep.Runner{Src: src.Path(), Out: out, Stdout: &stdout, Stderr: &stderr}
	err := r.Run(context.Background(), []string{
		`tr a-z A-Z < hello.txt > "$OUT/HELLO.txt"`,
		`cat sub/deep.txt >> "$OUT/HELLO.txt"; id -u`,
		`echo changed > hello.txt`,
		`touch "$OUT/never"`,
	})
	var se *buildstep.StepError
	assert.Assert(t, errors.As(err, &se), "Run: %v", err)
	assert.Equal(t, se.Index, 3)
	assert.Check(t, is.Contains(stderr.String(), "Read-only file system"))

	b, err := os.ReadFile(filepath.Join(out, "HELLO.txt"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "HELLO\ndeep\n")
	var st syscall.Stat_t
	assert.NilError(t, syscall.Stat(filepath.Join(out, "HELLO.txt"), &st))
	assert.Equal(t, int(st.Uid), os.Getuid(), "the output belongs to the caller on the host")
	assert.Equal(t, stdout.String(), strconv.Itoa(os.Getuid())+"\n", "step 2 ran as the caller's own uid")
	b, err = os.ReadFile(filepath.Join(src.Path(), "hello.txt"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "hello\n", "the source was changed")
	_, err = os.Stat(filepath.Join(out, "never"))
	assert.Check(t, os.IsNotExist(err), "a step after the failing one ran")
}

// Submounts of the source are read-only too, and the step cannot undo
// the read-only mount: it has no capabilities left.
func TestStepCannotRemount(t *testing.T) {
	requireUser(t)
	src := fs.NewDir(t, "src", fs.WithFile("a", "a\n"))
	out := fs.NewDir(t, "out")
	var stderr bytes.Buffer
	r := buildstep.Runner{Src: src.Path(), Out: out.Path(), Stderr: &stderr}
	err := r.Run(context.Background(), []string{`grep Cap[EP] /proc/self/status > "$OUT/caps"; mount -o remount,rw "$SRC" || exit 9`})
	assert.Equal(t, sandbox.ExitCode(err), 9, "Run: %v; stderr: %s", err, stderr.String())
	b, err := os.ReadFile(filepath.Join(out.Path(), "caps"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n")
}

func TestOutputMayNotContainSource(t *testing.T) {
	dir := fs.NewDir(t, "both")
	r := buildstep.Runner{Src: filepath.Join(dir.Path(), "src"), Out: dir.Path()}
	assert.NilError(t, os.Mkdir(r.Src, 0o755))
	err := r.Run(context.Background(), []string{"true"})
	assert.Check(t, is.ErrorContains(err, "contains the source"))
}
