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

	"github.com/nsbox/nsbox/mapping"
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

// A Spec that says nothing of the sandbox gets one: its own PID namespace
// (the shell is not a host pid) and the default view, where the host is
// read-only. A Spec with a Mapping keeps zero Namespaces and nil Mounts as
// they are: the host's PID namespace.
func TestZeroSpecIsolated(t *testing.T) {
	requireUnprivileged(t)
	run := func(spec *sandbox.Spec) string {
		var out bytes.Buffer
		spec.Process.Args = []string{"/bin/sh", "-c", "echo $$; touch /etc/nsbox-zero-spec 2>/dev/null && echo wrote || echo ro"}
		spec.Process.Stdout = &out
		sb, err := sandbox.Start(context.Background(), spec)
		assert.NilError(t, err)
		assert.NilError(t, sb.Wait())
		return out.String()
	}
	var pid int
	var what string
	_, err := fmt.Sscan(run(&sandbox.Spec{}), &pid, &what)
	assert.NilError(t, err)
	assert.Check(t, pid < 10, "the shell's pid %d: not a PID namespace of its own", pid)
	assert.Check(t, is.Equal(what, "ro"))

	plan, err := mapping.ForCaller(mapping.Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: mapping.Single, Root: true})
	assert.NilError(t, err)
	_, err = fmt.Sscan(run(&sandbox.Spec{Mapping: plan}), &pid, &what)
	assert.NilError(t, err)
	assert.Check(t, pid > 10, "the shell's pid %d: the host's PID namespace is not shared", pid)
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
