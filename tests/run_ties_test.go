package tests

// nsbox run's options borrowed from bubblewrap (issue 16): --argv0,
// --bind-fd/--ro-bind-fd, --lock-file and --die-with-parent, checked from
// outside the sandbox.

import (
	"os"
	"testing"

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
