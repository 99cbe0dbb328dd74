package tests

import (
	"strings"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
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
