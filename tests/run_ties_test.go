package tests

// nsbox run's options borrowed from bubblewrap (issue 16): --argv0,
// --bind-fd/--ro-bind-fd, --lock-file and --die-with-parent, checked from
// outside the sandbox.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// runShell runs script with bash in dir, $N naming the nsbox under test.
func runShell(dir, script string) *icmd.Result {
	return icmd.RunCmd(icmd.Command("bash", "-c", script), icmd.Dir(dir),
		icmd.WithEnv(append(os.Environ(), "N="+nsboxBin)...))
}

// TestRunArgv0: the command sees --argv0 in its cmdline while the program
// run is still COMMAND; an empty value is one error line, exit 125.
func TestRunArgv0(t *testing.T) {
	requireUnprivileged(t)
	res := runShell(t.TempDir(), `$N run --argv0 renamed-shell -- sh -c 'cat /proc/$$/comm; head -c 13 /proc/$$/cmdline; echo'
$N run --argv0 -bash -- bash -c 'echo "$0"; shopt -q login_shell && echo login'`)
	res.Assert(t, icmd.Expected{Out: "sh\nrenamed-shell\n-bash\nlogin\n"})
	bad := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--argv0", "", "--", "true"))
	bad.Assert(t, icmd.Expected{ExitCode: 125,
		Err: "nsbox: --argv0: empty VALUE; fix: give the name the command should see, e.g. --argv0 -bash\n"})
}

// TestRunBindFD: --ro-bind-fd and --bind-fd show the directory the
// inherited fd is open on; only the read-write one can be written.
func TestRunBindFD(t *testing.T) {
	requireUnprivileged(t)
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	data := filepath.Join(dir, "data")
	assert.NilError(t, os.Mkdir(data, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(data, "hello"), []byte("hello from fd\n"), 0o644))
	res := runShell(dir, `$N run --ro-bind-fd 5:/mnt/ro --bind-fd 6:/mnt/rw -- sh -c '
cat /mnt/ro/hello; touch /mnt/ro/x 2>/dev/null || echo ro-read-only; touch /mnt/rw/made && echo rw-written' 5<data 6<data
ls data`)
	res.Assert(t, icmd.Expected{Out: "hello from fd\nro-read-only\nrw-written\nhello\nmade\n"})

	bad := runShell(dir, `$N run --ro-bind-fd 9:/mnt -- true`)
	bad.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Equal(t, bad.Stderr(), `nsbox: run: invalid argument "9:/mnt" for "--ro-bind-fd" flag: fd 9: bad file descriptor; fix: open the directory on fd 9 for nsbox, e.g. --ro-bind-fd 9:/mnt 9<DIR`+"\n")
	bad = runShell(dir, `$N run --bind-fd /mnt -- true`)
	bad.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Assert(t, strings.Contains(bad.Stderr(), `"/mnt" is not FD:DST; fix: e.g. --bind-fd 3:/data 3</srv/data`), bad.Stderr())
	assert.Equal(t, strings.Count(bad.Stderr(), "\n"), 1)
}

// TestRunLockFile: while the sandbox runs, a lock on the file taken from
// outside (fcntl, as bubblewrap's lock is) fails, also after the hand-off
// (or past its moment with the fast path off); once it ends it works.
func TestRunLockFile(t *testing.T) {
	requireUnprivileged(t)
	if _, err := exec.LookPath("python3"); err != nil {
		cannotRun(t, "python3 is needed to test the lock from outside (hack/setup-host.sh installs it)")
	}
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	res := runShell(dir, `set -e
`+lockCheck+`touch .lock; rm -f ready go; mkfifo ready go
python3 -c "$lockcheck" .lock
$N run --lock-file "$PWD/.lock" -- sh -c 'echo > ready; read x < go; echo ran' &
cat ready >/dev/null
python3 -c "$lockcheck" .lock
# Past the hand-off: the launcher execs the small supervisor, and the
# lock must outlive that exec. With the fast path off there is no hand-off:
# past its moment the Go launcher (its threads) still holds the lock.
if [ "$NSBOX_FASTPATH" = off ]; then
	sleep 0.3
	threads=$(awk '$1 == "Threads:" {print $2}' /proc/$!/status)
	tr '\0' '\n' </proc/$!/environ | grep -q '^_NSBOX_HANDOFF=' || { [ "$threads" -gt 1 ] && echo held-by-go; }
else
	for i in $(seq 200); do tr '\0' '\n' </proc/$!/environ | grep -q '^_NSBOX_HANDOFF=' && break; sleep 0.05; done
	tr '\0' '\n' </proc/$!/environ | grep -q '^_NSBOX_HANDOFF=' && echo handed-off
fi
python3 -c "$lockcheck" .lock
echo > go; wait $!
python3 -c "$lockcheck" .lock`)
	past := "handed-off" // the suite's mode, which the launcher inherits
	if os.Getenv("NSBOX_FASTPATH") == "off" {
		past = "held-by-go"
	}
	res.Assert(t, icmd.Expected{Out: "unlocked\nlocked\n" + past + "\nlocked\nran\nunlocked\n"})

	bad := runShell(dir, `$N run --lock-file /tmp/x -- true`)
	bad.Assert(t, icmd.Expected{ExitCode: 125,
		Err: "nsbox: --lock-file /tmp/x: /tmp/x is not on a bind from the host in the sandbox, so nothing outside could see the lock; fix: lock a file under the current directory or a --bind/--ro-bind destination\n"})
	bad = runShell(dir, `$N run --lock-file nosuch -- true`)
	bad.Assert(t, icmd.Expected{ExitCode: 125})
	assert.Assert(t, strings.HasPrefix(bad.Stderr(), "nsbox: --lock-file nosuch: open "+filepath.Join(dir, "nosuch")+": no such file or directory; fix: "), bad.Stderr())
}

// TestRunDieWithParent: killing the process that started nsbox run
// --die-with-parent leaves no process of the sandbox; without the flag
// the sandbox outlives it (so the check can fail).
func TestRunDieWithParent(t *testing.T) {
	requireUnprivileged(t)
	marker := "nsbox-run-dwp-" + strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	running := func() bool {
		out, _ := exec.Command("pgrep", "-f", "^"+regexp.QuoteMeta(marker)).Output()
		return len(strings.TrimSpace(string(out))) > 0
	}
	start := func(flag string) (caller *exec.Cmd, launcher int) {
		pidFile := filepath.Join(dir, "pid"+flag)
		caller = exec.Command("sh", "-c", nsboxBin+" run "+flag+" -- bash -c 'exec -a "+marker+" sleep 300' & echo $! > "+pidFile+"; wait")
		assert.NilError(t, caller.Start())
		deadline := time.Now().Add(10 * time.Second)
		for !running() {
			assert.Assert(t, time.Now().Before(deadline), "the sandboxed command never started")
			time.Sleep(20 * time.Millisecond)
		}
		b, err := os.ReadFile(pidFile)
		assert.NilError(t, err)
		launcher, err = strconv.Atoi(strings.TrimSpace(string(b)))
		assert.NilError(t, err)
		return caller, launcher
	}
	gone := func(pid int) bool { return exec.Command("kill", "-0", strconv.Itoa(pid)).Run() != nil }

	caller, launcher := start("--die-with-parent")
	assert.NilError(t, caller.Process.Kill())
	caller.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for running() || !gone(launcher) {
		assert.Assert(t, time.Now().Before(deadline), "the sandbox outlived nsbox's caller")
		time.Sleep(20 * time.Millisecond)
	}

	caller, launcher = start("")
	assert.NilError(t, caller.Process.Kill())
	caller.Wait()
	time.Sleep(time.Second)
	survived := running()
	assert.NilError(t, exec.Command("kill", "-KILL", strconv.Itoa(launcher)).Run())
	deadline = time.Now().Add(5 * time.Second)
	for running() {
		assert.Assert(t, time.Now().Before(deadline), "the sandbox outlived its launcher")
		time.Sleep(20 * time.Millisecond)
	}
	assert.Assert(t, survived, "without --die-with-parent the sandbox should outlive nsbox's caller")

	bad := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--die-with-parent", "--detach", "--", "true"))
	bad.Assert(t, icmd.Expected{ExitCode: 125,
		Err: "nsbox: --die-with-parent cannot be combined with --detach: a detached sandbox outlives its caller by design; fix: drop one\n"})
}
