package tests

import (
	"encoding/json"
	"os/exec"
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
