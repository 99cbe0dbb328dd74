package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// requiredSteps are the lines nsbox check tries for every sandbox.
var requiredSteps = []string{"user namespace", "mount namespace", "network namespace", "UTS, IPC and cgroup namespaces", "PID namespace with a new /proc", "a default sandbox starts"}

// On this host every step works: each is shown as tried and passed.
func TestCheckTriesEachStep(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("check")
	res.Assert(t, icmd.Success)
	for _, step := range append(requiredSteps, "subordinate id maps", "TAP device") {
		assert.Check(t, is.Contains(res.Stdout(), "✓ "+step+":"))
	}
	assert.Check(t, is.Contains(res.Stdout(), "✓ subordinate id maps: written by newuidmap/newgidmap"))

	var out struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name    string `json:"name"`
			OK      bool   `json:"ok"`
			Skipped bool   `json:"skipped"`
		} `json:"checks"`
	}
	res = nsbox("check", "--json")
	res.Assert(t, icmd.Success)
	assert.NilError(t, json.Unmarshal([]byte(res.Stdout()), &out))
	assert.Check(t, out.OK)
}

// In a user namespace that may have no children (a sysctl its root may
// set), the first step fails with the cause and fix, nothing later is
// tried or shown as passed, and check exits 125; nsbox run says the same.
func TestCheckNoUserNamespaces(t *testing.T) {
	requireUnprivileged(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		cannotRun(t, "no unshare(1) (util-linux)")
	}
	res := icmd.RunCommand("unshare", "--user", "--map-root-user", "sh", "-c",
		"echo 0 >/proc/sys/user/max_user_namespaces && exec "+nsboxBin+" check")
	res.Assert(t, icmd.Expected{ExitCode: 125, Out: "✗ user namespace: create a user namespace (unshare CLONE_NEWUSER): No space left on device\n" +
		"    fix: user namespaces are disabled (user.max_user_namespaces = 0): as root, sysctl -w user.max_user_namespaces=15000\n"})
	for _, step := range requiredSteps[1:] {
		assert.Check(t, is.Contains(res.Stdout(), "– "+step+": not tried"))
		assert.Check(t, !strings.Contains(res.Stdout(), "✓ "+step), step)
	}

	// (A state directory of its own: /tmp/nsbox-0 is not this root's.)
	res = icmd.RunCommand("unshare", "--user", "--map-root-user", "sh", "-c",
		"echo 0 >/proc/sys/user/max_user_namespaces && XDG_RUNTIME_DIR="+t.TempDir()+" exec "+nsboxBin+" run --map-host-root -- true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "(user.max_user_namespaces = 0): as root, sysctl -w user.max_user_namespaces=15000"})
}

// nsbox check from a copy of the binary under /tmp: the mount namespace
// probe hides /tmp, and used to run the probe command by that path
// ("command not found inside the sandbox", exit 125).
func TestCheckFromBinaryUnderTmp(t *testing.T) {
	requireUnprivileged(t)
	dir, err := os.MkdirTemp("/tmp", "nsbox-check-bin-")
	assert.NilError(t, err)
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "nsbox")
	b, err := os.ReadFile(nsboxBin)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(exe, b, 0o755))
	res := icmd.RunCommand(exe, "check")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), "✓ mount namespace:"))
	assert.Check(t, !strings.Contains(res.Stdout(), "not found"), res.Stdout())
}

// A helper missing: the subordinate id maps line fails with the cause,
// neither passed (after the quiet fallback to one id) nor "not tried".
// An overlay refused because $TMPDIR cannot be written names that, not
// the lower layer's filesystem.
func TestCheckNamesTheCause(t *testing.T) {
	requireUnprivileged(t)
	res := nsboxWith([]string{"check"}, icmd.WithEnv(append(os.Environ(), "NSBOX_HELPER_DIR="+t.TempDir())...))
	assert.Check(t, is.Contains(res.Stdout(), "✗ subordinate id maps: cannot map subordinate ids: newuidmap and newgidmap not found in"), res.Stdout())
	assert.Check(t, is.Contains(res.Stdout(), "fix: apt-get install uidmap"))

	res = nsboxWith([]string{"check"}, icmd.WithEnv(append(os.Environ(), "TMPDIR=/usr")...))
	assert.Check(t, is.Contains(res.Stdout(), "✗ overlayfs in a user namespace: create the probe's lower layer in /usr: permission denied"), res.Stdout())
	assert.Check(t, !strings.Contains(res.Stdout(), "refuses the lower layer"), res.Stdout())
}

// A helper that is found, looks usable (setuid root) and fails when it
// runs: check shows ✗ with what it said, not "✓ written by newuidmap"
// after the run fell back to one id. Root makes the helpers (setuid
// copies of false(1)); the user without subordinate ids gets some in a
// private mount namespace, so that the plan calls the helpers.
func TestRealRootCheckHelperFails(t *testing.T) {
	requireRoot(t)
	user := nosubUser(t)
	dir, err := os.MkdirTemp("/var/tmp", "nsbox-helpers-")
	assert.NilError(t, err)
	defer os.RemoveAll(dir)
	assert.NilError(t, os.Chmod(dir, 0o755))
	f, err := os.ReadFile("/bin/false")
	assert.NilError(t, err)
	for _, h := range []string{"newuidmap", "newgidmap"} {
		p := filepath.Join(dir, h)
		assert.NilError(t, os.WriteFile(p, f, 0o755))
		assert.NilError(t, os.Chmod(p, os.ModeSetuid|0o755))
	}
	res := withSubidFiles(t, user+":231072:65536\n", user+":231072:65536\n",
		"runuser", "-u", user, "--", "env", "NSBOX_HELPER_DIR="+dir, "XDG_RUNTIME_DIR=", nsboxBin, "check")
	assert.Check(t, is.Contains(res.Stdout(), "✗ subordinate id maps: set up the uid/gid maps: "+filepath.Join(dir, "newuidmap")), res.Combined())
	assert.Check(t, is.Contains(res.Stdout(), "exit status 1"), res.Stdout())
	assert.Check(t, !strings.Contains(res.Stdout(), "✓ subordinate id maps"), res.Stdout())
}
