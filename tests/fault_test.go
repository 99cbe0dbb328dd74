package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// adoptOrphans makes the test process the reaper of its descendants'
// orphans (PR_SET_CHILD_SUBREAPER): whatever a killed launcher leaves
// behind becomes our child, so "nothing left" is checked exactly, even with
// other sandboxes running on the machine.
func adoptOrphans(t *testing.T) {
	t.Helper()
	assert.NilError(t, unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// leftovers reaps our exited children and returns the ones still alive
// (pid and command line), the launcher of the test excepted.
func leftovers() []string {
	for {
		pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			break
		}
	}
	me := strconv.Itoa(os.Getpid())
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "PPid:"); ok && strings.TrimSpace(v) == me {
				cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return out
}

func mountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	assert.NilError(t, err)
	return string(b)
}

// TestFaultKillStorm kills the launcher with SIGKILL at random moments of
// startup, 100 times: no process and no mount may survive it. (Named
// sandboxes' state entries and TAP devices belong to other areas.)
func TestFaultKillStorm(t *testing.T) {
	requireUnprivileged(t)
	adoptOrphans(t)
	before := mountinfo(t)
	var survivors []string
	for i := 0; i < 100; i++ {
		cmd := exec.Command(nsboxBin, "run", "--", "sleep", "1000")
		assert.NilError(t, cmd.Start())
		time.Sleep(time.Duration(rand.IntN(30000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
		deadline := time.Now().Add(5 * time.Second)
		left := leftovers()
		for len(left) > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			left = leftovers()
		}
		if len(left) > 0 {
			survivors = append(survivors, fmt.Sprintf("iteration %d: %v", i, left))
			for _, p := range left {
				pid, _ := strconv.Atoi(strings.Fields(p)[0])
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	assert.Check(t, is.Len(survivors, 0), "processes survived the launcher: %v", survivors)
	assert.Check(t, is.Equal(mountinfo(t), before), "the host's mounts changed")
}

// TestFaultNewgidmapFails: newuidmap succeeds, then newgidmap refuses
// (nsbox was told of subordinate gids that /etc/subgid does not grant):
// under --map subids one line, 125, nothing left; under --map auto a
// fresh stage with only our own ids, one notice, nothing left.
func TestFaultNewgidmapFails(t *testing.T) {
	requireUnprivileged(t)
	adoptOrphans(t)
	subids(t, "/etc/subuid")
	name, err := exec.Command("id", "-un").Output()
	assert.NilError(t, err)
	fake := filepath.Join(t.TempDir(), "subgid")
	// gids nobody granted us: newgidmap checks the real /etc/subgid.
	assert.NilError(t, os.WriteFile(fake, []byte(strings.TrimSpace(string(name))+":3000000000:65536\n"), 0o644))
	env := icmd.WithEnv(append(os.Environ(), "NSBOX_SUBGID_FILE="+fake)...)
	res := nsboxWith([]string{"run", "--map", "subids", "--", "sleep", "1000"}, env)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "newgidmap"})
	assert.Check(t, is.Len(splitLines(res.Stderr()), 1), res.Stderr())
	assert.Check(t, is.Len(leftovers(), 0))

	res = nsboxWith([]string{"run", "--", "cat", "/proc/self/gid_map"}, env)
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(normalizeMap(res.Stdout()), fmt.Sprintf("%d 0 1", os.Getgid())))
	assert.Check(t, is.Len(splitLines(res.Stderr()), 1), res.Stderr())
	assert.Check(t, is.Contains(res.Stderr(), "newgidmap: gid range"))
	assert.Check(t, is.Len(leftovers(), 0))
}

// TestFaultUserNamespacesExhausted runs nsbox where no user namespace can
// be created any more: in an outer user namespace whose
// user.max_user_namespaces is 1, with that one already in use.
func TestFaultUserNamespacesExhausted(t *testing.T) {
	requireUnprivileged(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		cannotRun(t, "no unshare(1)")
	}
	script := `echo 1 > /proc/sys/user/max_user_namespaces || exit 4
unshare -U sleep 30 & holder=$!
sleep 0.2
if unshare -U true 2>/dev/null; then echo "limit not reached"; kill $holder; exit 3; fi
"$0" run --map single -- true; rc=$?
kill $holder
exit $rc`
	// Root inside unshare -Ur would use /tmp/nsbox-0, which may exist
	// and belong to the real root: give it a state directory of its own.
	res := icmd.RunCmd(icmd.Command("unshare", "-Ur", "sh", "-c", script, nsboxBin),
		icmd.WithEnv(append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())...))
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "No space left on device"})
	assert.Check(t, is.Contains(res.Stderr(), "max_user_namespaces"))
	assert.Check(t, is.Contains(res.Stderr(), "fix:"))
}
