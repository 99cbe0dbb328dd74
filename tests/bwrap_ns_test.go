package tests

// nsbox as bwrap: the options about namespaces and PID 1 (--as-pid-1,
// --userns, --userns2, --pidns), checked from outside the sandbox.

import (
	"os"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestBwrapAsPID1: with --as-pid-1 the command is PID 1 of the new PID
// namespace (NSpid ends in 1, seen from the host), nothing else runs
// there (PID 1 has no child while it waits), and its exit status is
// bwrap's. Without --unshare-pid it is refused with bubblewrap's words.
func TestBwrapAsPID1(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	script := `set -e
rm -f go info; mkfifo go
$B --ro-bind / / --bind "$PWD" "$PWD" --proc /proc --dev /dev --unshare-pid --as-pid-1 --info-fd 3 \
  sh -c 'echo "pid=$$"; tr "\0" " " </proc/1/cmdline; echo; read x < go; exit 7' 3>info &
for i in $(seq 200); do grep -q child-pid info 2>/dev/null && break; sleep 0.05; done
pid=$(sed -n 's/.*"child-pid": \([0-9]*\).*/\1/p' info)
sleep 0.3
echo "outside: NSpid ends in $(awk '/^NSpid/ {print $NF}' /proc/$pid/status)"
echo "outside: cmdline $(tr '\0' ' ' </proc/$pid/cmdline | cut -c1-5)"
echo "outside: children [$(cat /proc/$pid/task/$pid/children)]"
echo > go
wait $! || echo "exit $?"
$B --ro-bind / / --as-pid-1 true || echo "exit $?"`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Expected{Out: "pid=1\nsh -c echo \"pid=$$\"; tr \"\\0\" \" \" </proc/1/cmdline; echo; read x < go; exit 7 \n" +
		"outside: NSpid ends in 1\noutside: cmdline sh -c\noutside: children []\nexit 7\nexit 1\n",
		Err: "bwrap: Specifying --as-pid-1 requires --unshare-pid\n"})

	// nsbox's own: the command keeps the locked mounts of a forked one:
	// root with every capability of its namespace cannot make the
	// read-only root writable.
	b := bwrapLink(t)
	res = icmd.RunCmd(icmd.Command(b, "--ro-bind", "/", "/", "--unshare-pid", "--as-pid-1", "--uid", "0", "--cap-add", "ALL",
		"sh", "-c", `echo "pid=$$"; grep CapEff /proc/self/status; mount -o remount,bind,rw / 2>/dev/null && echo remounted || echo locked`))
	res.Assert(t, icmd.Expected{Out: "pid=1\nCapEff:\t000001ffffffffff\nlocked\n"})
	// A command that cannot run is reported, as for a forked one.
	res = icmd.RunCmd(icmd.Command(b, "--ro-bind", "/", "/", "--unshare-pid", "--as-pid-1", "nsbox-no-such-command"))
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: execvp nsbox-no-such-command: No such file or directory\n"})
	assert.Assert(t, !strings.Contains(res.Stdout(), "pid"))
}
