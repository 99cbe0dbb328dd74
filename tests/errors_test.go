package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
	"gotest.tools/v3/icmd"
)

// oneErrorLine asserts nsbox failed with code and printed exactly one line
// on stderr, prefixed nsbox:, containing each of want.
func oneErrorLine(t *testing.T, res *icmd.Result, code int, want ...string) {
	t.Helper()
	assert.Equal(t, res.ExitCode, code, "stdout: %s\nstderr: %s", res.Stdout(), res.Stderr())
	lines := strings.Split(strings.TrimRight(res.Stderr(), "\n"), "\n")
	assert.Equal(t, len(lines), 1, "stderr: %q", res.Stderr())
	assert.Check(t, is.Contains(lines[0], "nsbox: "))
	for _, w := range want {
		assert.Check(t, is.Contains(lines[0], w))
	}
}

func TestExitStatusPassesThrough(t *testing.T) {
	requireUnprivileged(t)
	assert.Equal(t, nsbox("run", "--", "sh", "-c", "exit 7").ExitCode, 7)
	assert.Equal(t, nsbox("run", "--", "sh", "-c", "kill -9 $$").ExitCode, 137)
	assert.Equal(t, nsbox("run", "--", "true").ExitCode, 0)
}

func TestCommandNotFound(t *testing.T) {
	requireUnprivileged(t)
	oneErrorLine(t, nsbox("run", "--", "no-such-command-nsbox"), 127, "no-such-command-nsbox", "not found")

	// A PATH directory the user may not search does not turn "not found"
	// into "permission denied" (execvp's answer), and the search goes on.
	locked := fs.NewDir(t, "locked", fs.WithMode(0o000))
	bin := fs.NewDir(t, "bin", fs.WithFile("hello", "echo hello from a script without a shebang\n", fs.WithMode(0o755)))
	env := icmd.WithEnv("PATH=" + locked.Path() + ":" + bin.Path() + ":/usr/bin:/bin")
	// Both live in the host's /tmp, which the sandbox replaces: bind them.
	binds := []string{"run", "--ro-bind", locked.Path(), "--ro-bind", bin.Path(), "--"}
	oneErrorLine(t, nsboxWith(append(binds, "no-such-command-nsbox"), env), 127, "not found")
	res := nsboxWith(append(binds, "hello"), env)
	res.Assert(t, icmd.Expected{Out: "hello from a script without a shebang"})
}

func TestCommandNotExecutable(t *testing.T) {
	requireUnprivileged(t)
	f := fs.NewFile(t, "not-executable", fs.WithContent("echo hi\n"), fs.WithMode(0o644))
	oneErrorLine(t, nsbox("run", "--ro-bind", f.Path(), "--", f.Path()), 126, f.Path())
}

func TestMapUsersNotYours(t *testing.T) {
	requireUnprivileged(t)
	oneErrorLine(t, nsbox("run", "--map-users", "0:1:999999999", "--", "true"), 125, "--map-users")
}

func TestMalformedSubuidFile(t *testing.T) {
	requireUnprivileged(t)
	bad := fs.NewFile(t, "subuid", fs.WithContent("# header\n"+currentUser(t)+":abc:65536\n"))
	res := nsboxWith([]string{"run", "--", "true"}, icmd.WithEnv(append(os.Environ(), "NSBOX_SUBUID_FILE="+bad.Path())...))
	oneErrorLine(t, res, 125, bad.Path()+":2")
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"run", "--no-such-flag", "--", "true"}, "--no-such-flag"},
		{"no command", []string{"run"}, "no command"},
		{"bad map mode", []string{"run", "--map", "many", "--", "true"}, "--map"},
		{"bad extent", []string{"run", "--map-users", "0:1", "--", "true"}, "--map-users"},
		{"bad namespace", []string{"run", "--unshare", "time", "--", "true"}, "--unshare"},
		{"unmapped uid", []string{"run", "--map", "single", "--uid", "4242", "--", "true"}, "--uid 4242"},
		{"bad setenv", []string{"run", "--setenv", "NOEQUALS", "--", "true"}, "--setenv"},
		{"hostname without uts", []string{"run", "--share", "uts", "--hostname", "x", "--", "true"}, "--hostname"},
		{"unknown command", []string{"frobnicate"}, "frobnicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oneErrorLine(t, nsbox(tc.args...), 125, tc.want)
		})
	}
}

func TestBadChdirIsOneLine(t *testing.T) {
	requireUnprivileged(t)
	missing := filepath.Join(t.TempDir(), "gone")
	oneErrorLine(t, nsbox("run", "--chdir", missing, "--", "true"), 125, "--chdir "+missing, "fix:")
}

func currentUser(t *testing.T) string {
	t.Helper()
	res := icmd.RunCommand("id", "-un")
	res.Assert(t, icmd.Success)
	return strings.TrimSpace(res.Stdout())
}
