package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// embedExampleEnv names a built examples/embed; without it the test builds
// one with the go tool.
const embedExampleEnv = "NSBOX_EXAMPLE_EMBED"

// The ten-line embedding example (examples/embed, also in package
// sandbox's doc), built and run as the test user: a Spec with nothing but
// Process.Args starts, the command is uid 0 inside, and the sandbox's
// uid_map, read from the host, maps inner 0 onto the caller's own uid and
// nothing else.
func TestEmbedExample(t *testing.T) {
	requireUnprivileged(t)
	bin := os.Getenv(embedExampleEnv)
	if bin == "" {
		if _, err := exec.LookPath("go"); err != nil {
			cannotRun(t, "no go tool to build examples/embed; set %s to a built one", embedExampleEnv)
		}
		bin = filepath.Join(t.TempDir(), "embed")
		icmd.RunCommand("go", "build", "-o", bin, "github.com/nsbox/nsbox/examples/embed").Assert(t, icmd.Success)
	}
	res := icmd.RunCmd(icmd.Command(bin))
	res.Assert(t, icmd.Success)
	lines := strings.Split(strings.TrimSpace(res.Stdout()), "\n")
	slices.Sort(lines) // the command's line and the launcher's may come in either order
	assert.Assert(t, is.Len(lines, 2), res.Stdout())
	assert.Check(t, is.Equal(lines[0], "0"), "the command's uid inside")
	m, ok := strings.CutPrefix(lines[1], "uid_map:")
	assert.Assert(t, ok, lines[1])
	assert.Check(t, is.DeepEqual(strings.Fields(m), []string{"0", fmt.Sprint(os.Getuid()), "1"}), "the sandbox's uid_map from the host")
}

// A nil Process.Env is the caller's environment, as in os/exec; an empty
// one is none. Join follows the same rule.
func TestZeroSpecEnv(t *testing.T) {
	requireUnprivileged(t)
	t.Setenv("NSBOX_ZERO_SPEC", "inherited")
	run := func(env []string) string {
		var out bytes.Buffer
		spec := &sandbox.Spec{Process: sandbox.Process{Args: []string{"/bin/sh", "-c", "echo ${NSBOX_ZERO_SPEC-unset} $(id -u) $(id -g)"}, Env: env, Stdout: &out}}
		sb, err := sandbox.Start(context.Background(), spec)
		assert.NilError(t, err)
		assert.NilError(t, sb.Wait())
		return out.String()
	}
	assert.Check(t, is.Equal(run(nil), "inherited 0 0\n"))
	assert.Check(t, is.Equal(run([]string{}), "unset 0 0\n"))
	assert.Check(t, is.Equal(run([]string{"NSBOX_ZERO_SPEC=given"}), "given 0 0\n"))
}
