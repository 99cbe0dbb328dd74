package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// The speed tricks (sandbox/fastpath: the pre-forked stage, its early
// namespaces, the hand-off to the small supervisor) change how fast a
// sandbox starts and how much a waiting launcher holds, never what the
// sandbox is: NSBOX_FASTPATH=off gives the same results.

// fastPathOff is the switch that turns every trick off.
const fastPathOff = "NSBOX_FASTPATH=off"

// fastPathOn is env with the tricks on: as the suite runs them, or the
// default where the suite itself runs with them off (hack/test.sh runs it
// three ways: default, NSBOX_FASTPATH=off, NSBOX_FASTPATH=replay). The
// comparisons with off start their "on" side with it, so that they
// compare two ways in every run of the suite.
func fastPathOn(env []string) []string {
	var on []string
	for _, kv := range env {
		if kv != fastPathOff {
			on = append(on, kv)
		}
	}
	return on
}

// sandboxView is what a command sees of its sandbox: its maps, ids,
// capabilities, which namespaces it shares with the host (by type: the
// inode numbers differ from one sandbox to the next), the root's names.
const sandboxView = `cat /proc/self/uid_map /proc/self/gid_map; id; hostname
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
for n in cgroup ipc mnt net pid user uts; do
	if [ "$(readlink /proc/self/ns/$n)" = "$(cat "$HOSTNS/$n")" ]; then echo "$n host"; else echo "$n own"; fi
done
ls /`

// hostNamespaces writes the host's namespace links into a directory the
// sandbox can read (the working directory is bound), one file each.
func hostNamespaces(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"} {
		link, err := os.Readlink("/proc/self/ns/" + n)
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(dir, n), []byte(link+"\n"), 0o644))
	}
	return dir
}

func TestFastPathOffGivesTheSameSandbox(t *testing.T) {
	requireUnprivileged(t)
	hostns := hostNamespaces(t)
	for name, args := range map[string][]string{
		"default":        {"run", "--", "sh", "-c", sandboxView},
		"--map single":   {"run", "--map", "single", "--", "sh", "-c", sandboxView},
		"--share-home":   {"run", "--share-home", "--", "sh", "-c", sandboxView},
		"--share net":    {"run", "--share", "net", "--", "sh", "-c", sandboxView},
		"--unshare":      {"run", "--unshare", "mnt,pid", "--", "sh", "-c", sandboxView},
		"--root":         {"run", "--root", "--", "sh", "-c", sandboxView},
		"exit status":    {"run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"},
		"not found":      {"run", "--", "/nonexistent/command"},
		"bad flag value": {"run", "--share", "bogus", "--", "true"},
	} {
		t.Run(name, func(t *testing.T) {
			env := []string{"HOSTNS=" + hostns}
			var results [2]*icmd.Result
			// Alternating, each way twice: a difference between two runs
			// of the same way would be noise, not the switch.
			for i := range 4 {
				on := append(fastPathOn(os.Environ()), env...)
				ops := []icmd.CmdOp{icmd.WithEnv(on...), icmd.Dir(hostns)}
				if i%2 == 1 {
					ops[0] = icmd.WithEnv(append(on, fastPathOff)...)
				}
				res := nsboxWith(args, ops...)
				if results[i%2] == nil {
					results[i%2] = res
					continue
				}
				assert.Equal(t, res.Combined(), results[i%2].Combined(), "two runs the same way differ")
			}
			on, off := results[0], results[1]
			assert.Check(t, is.Equal(off.ExitCode, on.ExitCode))
			assert.Check(t, is.Equal(off.Stdout(), on.Stdout()))
			// (Under hack/test.sh's pass with the replay forced, "on" says
			// when a failing start was left to the Go launcher.)
			assert.Check(t, is.Equal(off.Stderr(), withoutReplayNotes(on.Stderr())))
			if strings.Contains(strings.Join(args, " "), sandboxView) {
				assert.Check(t, on.ExitCode == 0 && strings.Contains(on.Stdout(), "mnt own"), on.Combined())
			}
		})
	}
}

// A sandbox that outlives the hand-off (on) and one held by the Go
// launcher to the end (off) keep the same state record, take the same
// signal the same way and leave nothing behind.
func TestFastPathOffSameStateAndEnd(t *testing.T) {
	var got [2]struct {
		record inspected
		code   int
		out    string
	}
	for i, off := range []bool{false, true} {
		s := newStateEnv(t)
		cmd := exec.Command(nsboxBin, "run", "--name", "fp", "--", "sh", "-c",
			`trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
		cmd.Env = fastPathOn(s.env())
		if off {
			cmd.Env = append(cmd.Env, fastPathOff)
		}
		r := startUntilReady(t, cmd)
		// On, the launcher hands off; off, the Go launcher still holds
		// the sandbox past the hand-off's moment.
		assert.Check(t, is.Equal(launcherHandsOff(t, cmd.Process.Pid), !off))
		waitPastHandOff(t, cmd.Process.Pid)
		// A replayed launcher is the supervisor from the start, and
		// writes the record beside the command's first line.
		s.waitListed("fp")
		e := s.inspect("fp")
		assert.Check(t, is.Equal(e.LauncherPid, cmd.Process.Pid))
		// What differs by nature: pids, start time, namespace inodes.
		e.Pid, e.PidStartTime, e.LauncherPid = 0, 0, 0
		for k := range e.Namespaces {
			e.Namespaces[k] = 0
		}
		got[i].record = e
		assert.NilError(t, cmd.Process.Signal(syscall.SIGTERM))
		got[i].out, _ = r.ReadString('\n')
		got[i].code = exitCode(t, cmd)
		assert.Check(t, len(s.entries()) == 0, "entries left: %v", s.entries())
	}
	assert.Check(t, is.DeepEqual(got[1].record, got[0].record))
	assert.Check(t, is.Equal(got[1].out, got[0].out))
	assert.Check(t, is.Equal(got[1].code, got[0].code))
	assert.Check(t, is.Equal(got[0].code, 3), fmt.Sprint(got))
}
