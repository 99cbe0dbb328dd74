package tests

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// Two honest callers racing to end one sandbox: the loser must see
// success or "no such sandbox", never the tampering alarm. Before the fix
// the loser's checks ran against a sandbox that was losing its command
// and namespaces under them, and 7 rounds in 10 read as a changed record.
func TestConcurrentKillLoserSeesNoSuchSandbox(t *testing.T) {
	s := newStateEnv(t)
	for round := 0; round < 10; round++ {
		s.run("run", "-d", "--name", "kr", "--", "sleep", "60").Assert(t, icmd.Success)
		var wg sync.WaitGroup
		results := make([]*icmd.Result, 2)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = s.run("kill", "kr")
			}()
		}
		wg.Wait()
		wins := 0
		for _, r := range results {
			if r.ExitCode == 0 {
				wins++
				continue
			}
			assert.Check(t, r.ExitCode == 125 && strings.Contains(r.Stderr(), "no such sandbox"),
				"round %d: the loser: exit %d, %q", round, r.ExitCode, r.Stderr())
			assert.Check(t, !strings.Contains(r.Stderr(), "does not match"), "round %d: %q", round, r.Stderr())
			assert.Check(t, strings.Count(strings.TrimSpace(r.Stderr()), "\n") == 0, "round %d: one line: %q", round, r.Stderr())
		}
		assert.Check(t, wins >= 1, "round %d: nobody killed it", round)
		assert.Check(t, !s.listed("kr"), "round %d", round)
	}
}

// $XDG_RUNTIME_DIR inside the current directory, then inside a --bind
// source: nsbox's state directory in it must show nothing of the other
// sandboxes, from the first run on, and runs keep working. Before the
// fix the first run saw the real state directory read-write (the cwd bind
// came after the tmpfs that hid it, and the state directory was made
// after the hiding was planned).
func TestStateDirHiddenWhenRuntimeDirIsBound(t *testing.T) {
	requireUnprivileged(t)
	for _, tc := range []struct {
		name  string
		flags func(proj string) []string
		dir   func(proj string) string
	}{
		{"inside the current directory", func(string) []string { return nil }, func(proj string) string { return proj }},
		{"inside a --bind source", func(proj string) []string { return []string{"--bind", proj} }, func(string) string { return "/" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proj := filepath.Join(t.TempDir(), "proj")
			rt := filepath.Join(proj, "run")
			assert.NilError(t, os.MkdirAll(rt, 0o700))
			env := icmd.WithEnv(append(os.Environ(), "XDG_RUNTIME_DIR="+rt)...)
			dir := icmd.Dir(tc.dir(proj))
			probe := func(run int) {
				t.Helper()
				args := append([]string{"run"}, tc.flags(proj)...)
				args = append(args, "--", "sh", "-c", `ls -A "$0"/nsbox 2>/dev/null; echo planted > "$0"/nsbox/other/state.json 2>/dev/null && echo WROTE; true`, rt)
				res := nsboxWith(args, env, dir)
				res.Assert(t, icmd.Success)
				assert.Check(t, is.Equal(res.Stdout(), ""), "run %d: the sandbox sees the state directory", run)
			}
			// The first run makes the state directory (its own entry is
			// in it): hidden from the first run on, run after run.
			for run := 0; run < 3; run++ {
				probe(run)
			}
			// A sandbox of the user's, whose record must stay out of sight.
			nsboxWith([]string{"run", "-d", "--name", "other", "--", "sleep", "60"}, env).Assert(t, icmd.Success)
			t.Cleanup(func() { nsboxWith([]string{"kill", "other"}, env) })
			probe(3)
			// The record is still the launcher's own.
			nsboxWith([]string{"inspect", "other"}, env).Assert(t, icmd.Success)
			nsboxWith([]string{"kill", "other"}, env).Assert(t, icmd.Success)
		})
	}
}
