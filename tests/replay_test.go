package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// The replay (internal/replay, sandbox/internal/stage/replay.c): an
// `nsbox run` the Go launcher planned before is started again by the ELF
// constructor, without the Go runtime. NSBOX_FASTPATH=replay forces it:
// every run that can get a plan records it, then re-executes itself so
// that the constructor replays it, and the Go launcher says on stderr
// when the constructor did not.

const notReplayed = "nsbox: replay: not replayed"

// replayEnv is the environment with the fast path set to mode ("off",
// "replay", or "" for the default) and the state directory in xdg.
func replayEnv(mode, xdg string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NSBOX_FASTPATH=") && !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			env = append(env, kv)
		}
	}
	if mode != "" {
		env = append(env, "NSBOX_FASTPATH="+mode)
	}
	return append(append(env, "XDG_RUNTIME_DIR="+xdg), extra...)
}

// withoutReplayNotes drops the forced mode's own line from stderr.
func withoutReplayNotes(s string) string {
	var out []string
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, notReplayed) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// A replayed run gives what the Go launcher gives: output, exit status,
// the sandbox its command sees, for every flag a plan may hold.
func TestFastPathReplayGivesTheSameResults(t *testing.T) {
	requireUnprivileged(t)
	hostns := hostNamespaces(t)
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    string
		replayed bool   // the command runs (else the start fails and Go reports it)
		dir      string // where it runs, if not in a directory of the test's
	}{
		{"default", []string{"run", "--", "sh", "-c", sandboxView}, "", true, ""},
		{"--map single", []string{"run", "--map", "single", "--", "sh", "-c", sandboxView}, "", true, ""},
		{"--root", []string{"run", "--root", "--", "sh", "-c", sandboxView}, "", true, ""},
		{"--map single --root", []string{"run", "--map", "single", "--root", "--", "sh", "-c", sandboxView}, "", true, ""},
		{"--uid --gid", []string{"run", "--uid", "0", "--gid", "0", "--", "id"}, "", true, ""},
		{"environment", []string{"run", "--setenv", "A=1", "--unsetenv", "HOME", "--", "sh", "-c", "echo $A ${HOME-unset} $container"}, "", true, ""},
		{"--clearenv", []string{"run", "--clearenv", "--setenv", "B=2", "--", "/usr/bin/env"}, "", true, ""},
		{"--hostname", []string{"run", "--hostname", "box", "--", "hostname"}, "", true, ""},
		{"--argv0", []string{"run", "--argv0", "zero", "--", "sh", "-c", "echo $0"}, "", true, ""},
		{"exit status", []string{"run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"}, "", true, ""},
		{"killed by a signal", []string{"run", "--", "sh", "-c", "kill -TERM $$"}, "", true, ""},
		{"stdin", []string{"run", "--", "sh", "-c", "cat; echo done"}, "piped in\n", true, ""},
		{"not found", []string{"run", "--", "/nonexistent/command"}, "", false, ""},
		{"not executable", []string{"run", "--", "/etc/passwd"}, "", false, ""},
		{"a notice", []string{"run", "--", "true"}, "", true, "/"},
		{"--bind --chdir", []string{"run", "--bind", ".:/src", "--chdir", "/src", "--", "sh", "-c", "pwd; echo w >/src/out; ls /src"}, "", true, ""},
		{"--ro-bind", []string{"run", "--ro-bind", "/etc:/hostetc", "--", "sh", "-c", "test -s /hostetc/passwd && touch /hostetc/x"}, "", true, ""},
		{"--dev-bind", []string{"run", "--dev-bind", "/dev/null:/n", "--", "sh", "-c", "echo hi >/n && echo wrote"}, "", true, ""},
		{"--bind-try, no source", []string{"run", "--ro-bind-try", "/nonexistent-nsbox:/x", "--bind-try", "/nonexistent-nsbox:/y", "--dev-bind-try", "/nonexistent-nsbox:/z",
			"--", "sh", "-c", "ls -d /x /y /z"}, "", true, ""},
		{"--tmpfs", []string{"run", "--tmpfs", "/scratch:size=1m,mode=0750", "--", "sh", "-c", "stat -c %a /scratch; df -k /scratch | tail -n 1"}, "", true, ""},
		{"--dir --symlink --chmod --remount-ro", []string{"run", "--dir", "/d", "--chmod", "0700:/d", "--symlink", "/d:/l", "--tmpfs", "/t", "--remount-ro", "/t",
			"--", "sh", "-c", "stat -c %a /d; readlink /l; touch /t/x"}, "", true, ""},
		{"--chdir", []string{"run", "--chdir", "/etc", "--", "pwd"}, "", true, ""},
		{"--name", []string{"run", "--name", "replayed-name", "--", "echo", "named"}, "", true, ""},
		{"a bind whose destination cannot be made", []string{"run", "--bind", ".:/proc/x", "--", "true"}, "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xdg := t.TempDir()
			dir := hostns
			if tc.dir != "" {
				dir = tc.dir
			}
			run := func(mode string) *icmd.Result {
				return nsboxWith(tc.args, icmd.WithEnv(replayEnv(mode, xdg, "HOSTNS="+hostns)...), icmd.Dir(dir),
					icmd.WithStdin(strings.NewReader(tc.stdin)))
			}
			// Alternating: the Go launcher, the forced replay, and the
			// default way twice (the first run plans, the second replays).
			off, forced, first := run("off"), run("replay"), run("")
			// A run the constructor replays leaves the plan as it was; a
			// Go launcher that ran instead saves it again.
			saved := planTimes(t, xdg)
			again := run("")
			if tc.replayed {
				assert.Check(t, is.DeepEqual(planTimes(t, xdg), saved), "the second run was not replayed")
			}
			for name, res := range map[string]*icmd.Result{"forced": forced, "first": first, "again": again} {
				assert.Check(t, is.Equal(res.ExitCode, off.ExitCode), name)
				assert.Check(t, is.Equal(res.Stdout(), off.Stdout()), name)
				assert.Check(t, is.Equal(withoutReplayNotes(res.Stderr()), off.Stderr()), name)
			}
			// A start that fails before the command runs (replayed:
			// false) is left to the Go launcher, which reports it, as
			// the launcher always does: the forced mode says nothing.
			assert.Check(t, !strings.Contains(forced.Stderr(), notReplayed), forced.Stderr())
			plans, _ := os.ReadDir(filepath.Join(xdg, "nsbox", ".replay"))
			assert.Check(t, len(plans) > 0, "no plan was kept")
			if tc.dir == "/" {
				assert.Check(t, is.Equal(strings.Count(again.Stderr(), "nsbox: notice:"), 1), again.Stderr())
			}
			if strings.Contains(strings.Join(tc.args, " "), sandboxView) {
				assert.Check(t, off.ExitCode == 0 && strings.Contains(off.Stdout(), "mnt own"), off.Combined())
			}
		})
	}
}

// planTimes are the plans in the store, each with its mtime.
func planTimes(t *testing.T, xdg string) map[string]time.Time {
	t.Helper()
	plans, err := os.ReadDir(filepath.Join(xdg, "nsbox", ".replay"))
	assert.NilError(t, err)
	times := map[string]time.Time{}
	for _, p := range plans {
		fi, err := p.Info()
		assert.NilError(t, err)
		times[p.Name()] = fi.ModTime()
	}
	return times
}

// Runs that a plan cannot serve fall through to the Go launcher, whose
// part the C side cannot do the same way: a terminal, a flag outside the
// allow-list. The forced mode then plans nothing and says nothing.
func TestFastPathReplayLeavesOtherRunsToGo(t *testing.T) {
	requireUnprivileged(t)
	xdg := t.TempDir()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"run", "--share", "net", "--", "true"},
		{"run", "--file", "/etc/hostname:/x", "--", "true"},
		{"run", "--mount", "type=bind,source=/etc,target=/x", "--", "true"},
		{"run", "--json-status-fd", "1", "--", "true"},
	} {
		res := nsboxWith(args, icmd.WithEnv(replayEnv("replay", xdg)...), icmd.Dir(dir))
		assert.Check(t, !strings.Contains(res.Stderr(), notReplayed), "%v: %s", args, res.Stderr())
		plans, _ := os.ReadDir(filepath.Join(xdg, "nsbox", ".replay"))
		assert.Check(t, is.Len(plans, 0), "%v made a plan", args)
	}
}

// holes are the values of a state record only its start knows
// (state.Template's holes), blanked for a comparison.
var holes = regexp.MustCompile(`("(name|created)": )"[^"]*"|("(pid|pidStartTime|launcherPid|recordFD|user|mnt|ipc|net|uts|cgroup)": )[0-9]+`)

// A replayed sandbox's state record is the Go launcher's, byte for byte
// but for the holes; nsbox ps, exec and kill work on it, and it leaves
// no entry behind: unnamed, named, and with a bind and --chdir (the
// record holds the mounts and the working directory).
func TestFastPathReplaySameRecord(t *testing.T) {
	requireUnprivileged(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unnamed", nil},
		{"--name", []string{"--name", "recorded"}},
		{"--bind --chdir", []string{"--bind", ".:/src", "--chdir", "/src", "--tmpfs", "/scratch"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testReplaySameRecord(t, tc.args) })
	}
}

func testReplaySameRecord(t *testing.T, flags []string) {
	dir := t.TempDir()
	var records [2][]byte
	s := newStateEnv(t)
	for i, mode := range []string{"off", "replay"} {
		args := append(append([]string{"run"}, flags...), "--", "sh", "-c", `trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
		cmd := exec.Command(nsboxBin, args...)
		cmd.Env = replayEnv(mode, s.xdg)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		r := startUntilReady(t, cmd)
		ents := s.entries()
		assert.Assert(t, is.Len(ents, 1))
		// The launcher writes the record once the command runs, which
		// may be after it printed.
		var raw []byte
		var err error
		for try := 0; try < 200; try++ {
			if raw, err = os.ReadFile(filepath.Join(s.xdg, "nsbox", ents[0], "state.json")); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		assert.NilError(t, err)
		records[i] = holes.ReplaceAll(raw, []byte("$1$3HOLE"))
		e := s.inspect(ents[0])
		assert.Check(t, is.Equal(e.LauncherPid, cmd.Process.Pid))
		if len(flags) > 0 && flags[0] == "--name" {
			assert.Check(t, is.Equal(ents[0], flags[1]))
			assert.Check(t, is.Equal(e.Name, flags[1]))
		}
		res := s.run("exec", ents[0], "--", "sh", "-c", "echo joined")
		assert.Check(t, is.Equal(res.Stdout(), "joined\n"), res.Combined())
		assert.Check(t, is.Contains(s.run("ps").Stdout(), ents[0]))
		assert.NilError(t, cmd.Process.Signal(syscall.SIGTERM))
		out, _ := r.ReadString('\n')
		assert.Check(t, is.Equal(out, "got TERM\n"))
		assert.Check(t, is.Equal(exitCode(t, cmd), 3))
		assert.Check(t, is.Len(s.entries(), 0))
		assert.Check(t, !strings.Contains(stderr.String(), notReplayed), stderr.String())
	}
	// The environment differs by the switch itself.
	records[1] = bytes.ReplaceAll(records[1], []byte(`"NSBOX_FASTPATH=replay"`), []byte(`"NSBOX_FASTPATH=off"`))
	assert.Check(t, is.Equal(string(records[1]), string(records[0])))
}

// The attack: a sandbox given the plan store writable (a --bind of it,
// which nsbox allows: the hiding of the state directory covers a bind of
// the directory or one above it, not of one inside) rewrites a plan, or
// swaps one for another; the next run on the host must not obey it. And
// a bind of the whole state directory shows neither plans nor key.
func TestFastPathReplayRefusesPlantedPlans(t *testing.T) {
	requireUnprivileged(t)
	s := newStateEnv(t)
	dir := t.TempDir()
	run := func(args ...string) *icmd.Result {
		return nsboxWith(args, icmd.WithEnv(replayEnv("", s.xdg)...), icmd.Dir(dir))
	}
	store := filepath.Join(s.xdg, "nsbox", ".replay")
	safe := []string{"run", "--", "echo", "safe"}
	evil := []string{"run", "--", "echo", "evil"}
	run(safe...).Assert(t, icmd.Expected{Out: "safe\n"})
	run(evil...).Assert(t, icmd.Expected{Out: "evil\n"})
	plans, err := os.ReadDir(store)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(plans, 2))

	// A rewritten plan: its CONFIG now runs "evil". The HMAC fails: the
	// plan is removed and the Go launcher runs what was asked.
	run("run", "--bind", store+":/plans", "--", "perl", "-0777", "-pi", "-e", `s/arg=safe\0/arg=evil\0/g`,
		"/plans/"+plans[0].Name(), "/plans/"+plans[1].Name()).Assert(t, icmd.Success)
	run(safe...).Assert(t, icmd.Expected{Out: "safe\n"})
	// A plan authentic for another command line, under this one's name:
	// its command line is checked. (The runs that edit the store, binds
	// being replayed too, have plans of their own: the two swapped are
	// safe's and evil's, whose names are their command lines'.)
	run(evil...).Assert(t, icmd.Expected{Out: "evil\n"})
	run(safe...).Assert(t, icmd.Expected{Out: "safe\n"})
	for _, p := range plans {
		_, err := os.Stat(filepath.Join(store, p.Name()))
		assert.NilError(t, err)
	}
	swap := `cd /plans && mv "$1" tmp && mv "$2" "$1" && mv tmp "$2"`
	run("run", "--bind", store+":/plans", "--", "sh", "-c", swap, "sh", plans[0].Name(), plans[1].Name()).Assert(t, icmd.Success)
	run(safe...).Assert(t, icmd.Expected{Out: "safe\n"})
	run(evil...).Assert(t, icmd.Expected{Out: "evil\n"})

	// The whole state directory bound: the key and the plans are hidden.
	res := run("run", "--bind", filepath.Join(s.xdg, "nsbox")+":/st", "--", "sh", "-c", "ls -A /st; cat /st/.replay-key")
	assert.Check(t, res.ExitCode != 0, res.Combined())
	assert.Check(t, !strings.Contains(res.Stdout(), ".replay"), res.Stdout())
}

// The replay starts newuidmap and newgidmap on a stage born in its user
// namespace before it checks the plan's files (replay.c, struct maps).
// A file that changed since the plan (here the working directory's mode)
// is found only then: the helpers and the stage are killed and reaped, a
// fresh stage is forked, and the Go launcher runs the same invocation,
// with the same result, and plans it again; the next run is replayed.
func TestFastPathReplayCheckFailsAfterTheMapsStarted(t *testing.T) {
	requireUnprivileged(t)
	adoptOrphans(t)
	xdg := t.TempDir()
	dir := t.TempDir()
	args := []string{"run", "--", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; echo done"}
	run := func(mode string) *icmd.Result {
		res := nsboxWith(args, icmd.WithEnv(replayEnv(mode, xdg)...), icmd.Dir(dir))
		assert.Check(t, is.Len(leftovers(), 0))
		return res
	}
	want := run("off")
	want.Assert(t, icmd.Success)
	// The default map: more than one extent each, which only newuidmap
	// and newgidmap write.
	assert.Check(t, len(splitLines(want.Stdout())) >= 5, want.Stdout())
	run("").Assert(t, icmd.Expected{Out: want.Stdout(), Err: want.Stderr()})
	planned := planTimes(t, xdg)
	assert.Assert(t, is.Len(planned, 1))
	run("").Assert(t, icmd.Expected{Out: want.Stdout(), Err: want.Stderr()})
	assert.Check(t, is.DeepEqual(planTimes(t, xdg), planned), "the second run was not replayed")

	assert.NilError(t, os.Chmod(dir, 0o750))
	run("").Assert(t, icmd.Expected{Out: want.Stdout(), Err: want.Stderr()})
	replanned := planTimes(t, xdg)
	assert.Check(t, !is.DeepEqual(replanned, planned)().Success(), "the run after the change was not planned again")
	run("").Assert(t, icmd.Expected{Out: want.Stdout(), Err: want.Stderr()})
	assert.Check(t, is.DeepEqual(planTimes(t, xdg), replanned), "the run after the new plan was not replayed")
}

// runIn runs nsbox with args in dir, the fast path set to mode and the
// state directory in xdg.
func runIn(dir, xdg, mode string, args ...string) *icmd.Result {
	return nsboxWith(args, icmd.WithEnv(replayEnv(mode, xdg)...), icmd.Dir(dir))
}

// assertSameAs checks that res is what the Go launcher gave (off).
func assertSameAs(t *testing.T, res, off *icmd.Result, what string) {
	t.Helper()
	assert.Check(t, is.Equal(res.ExitCode, off.ExitCode), what)
	assert.Check(t, is.Equal(res.Stdout(), off.Stdout()), what)
	assert.Check(t, is.Equal(withoutReplayNotes(res.Stderr()), off.Stderr()), what)
}

// The attack on a bind's source: a sandbox that can write the directory
// above it replaces the source, between the run that planned and the
// next, by a symlink to the state directory, where the plans and their
// key are. PID 1 follows a symlink in a source, on either path (it is
// the caller's own path); what the Go launcher adds is that it resolves
// every source against the state directories and hides them
// (hideStateDirs). A replay of the old plan would not, so a source that
// changed in any way (a symlink now, another directory, gone) must send
// the start back to the Go launcher: the results are the Go launcher's,
// and the key stays hidden.
func TestFastPathReplayBindSourceChanged(t *testing.T) {
	requireUnprivileged(t)
	xdg, work := t.TempDir(), t.TempDir()
	stateDir := filepath.Join(xdg, "nsbox")
	data := filepath.Join(work, "data")
	mkData := func(content string) {
		assert.NilError(t, os.Mkdir(data, 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(data, "file"), []byte(content), 0o644))
	}
	mkData("public\n")
	secret := filepath.Join(work, "secret")
	assert.NilError(t, os.Mkdir(secret, 0o700))
	assert.NilError(t, os.WriteFile(filepath.Join(secret, "file"), []byte("secret\n"), 0o600))
	args := []string{"run", "--ro-bind", data + ":/data", "--", "sh", "-c",
		"ls -A /data; cat /data/file; if cat /data/.replay-key >/dev/null 2>&1; then echo key read; fi"}
	runIn(work, xdg, "", args...).Assert(t, icmd.Expected{Out: "file\npublic\n"})
	saved := planTimes(t, xdg)
	runIn(work, xdg, "", args...).Assert(t, icmd.Expected{Out: "file\npublic\n"})
	assert.Assert(t, is.DeepEqual(planTimes(t, xdg), saved), "the second run was not replayed")

	for _, tc := range []struct {
		name   string
		change func()
		undo   func()
		saved  bool // the Go launcher's start runs, and saves a plan
	}{
		{"a symlink to the state directory, made by a sandbox", func() {
			runIn(work, xdg, "", "run", "--bind", work+":/w", "--", "sh", "-c", "rm -r /w/data && ln -s "+stateDir+" /w/data").Assert(t, icmd.Success)
		}, func() { assert.NilError(t, os.Remove(data)); mkData("public\n") }, true},
		{"a symlink to another directory", func() {
			assert.NilError(t, os.RemoveAll(data))
			assert.NilError(t, os.Symlink(secret, data))
		}, func() { assert.NilError(t, os.Remove(data)); mkData("public\n") }, true},
		{"another directory", func() {
			// Made before the old one goes, so that it cannot get the
			// old one's inode (a directory made again at the same path
			// with the same inode, mode and owner is the same input:
			// the Go launcher would plan the same).
			next := data + ".new"
			assert.NilError(t, os.Mkdir(next, 0o755))
			assert.NilError(t, os.WriteFile(filepath.Join(next, "file"), []byte("replaced\n"), 0o644))
			assert.NilError(t, os.RemoveAll(data))
			assert.NilError(t, os.Rename(next, data))
		}, func() {}, true},
		{"removed", func() { assert.NilError(t, os.RemoveAll(data)) }, func() { mkData("public\n") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A plan of the source as it is now, replayed.
			runIn(work, xdg, "", args...)
			before := planTimes(t, xdg)
			assert.Assert(t, is.Equal(runIn(work, xdg, "", args...).ExitCode, 0))
			assert.Assert(t, is.DeepEqual(planTimes(t, xdg), before), "not replayed before the change")
			tc.change()
			defer tc.undo()
			off := runIn(work, xdg, "off", args...)
			got := runIn(work, xdg, "", args...)
			after := planTimes(t, xdg)
			assertSameAs(t, got, off, "default")
			assertSameAs(t, runIn(work, xdg, "replay", args...), off, "forced")
			assert.Check(t, !strings.Contains(got.Stdout(), "key read"), got.Stdout())
			assert.Check(t, !strings.Contains(got.Stdout(), ".replay"), got.Stdout())
			if tc.saved {
				assert.Check(t, !is.DeepEqual(after, before)().Success(), "the start after the change was replayed")
			} else {
				assert.Check(t, is.Equal(off.ExitCode, 125), off.Combined())
				assert.Check(t, is.Contains(off.Stderr(), "source does not exist"))
			}
		})
	}
}

// A plan that a sandbox rewrote to bind another source (it was shown the
// store: a --bind of it) is refused: its HMAC fails, it is removed, and
// the Go launcher binds what the command line says.
func TestFastPathReplayRefusesAnEditedBind(t *testing.T) {
	requireUnprivileged(t)
	xdg, work := t.TempDir(), t.TempDir()
	for dir, content := range map[string]string{"pub": "public\n", "sec": "secret\n"} {
		assert.NilError(t, os.Mkdir(filepath.Join(work, dir), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(work, dir, "f"), []byte(content), 0o644))
	}
	args := []string{"run", "--ro-bind", filepath.Join(work, "pub") + ":/data", "--", "cat", "/data/f"}
	runIn(work, xdg, "", args...).Assert(t, icmd.Expected{Out: "public\n"})
	store := filepath.Join(xdg, "nsbox", ".replay")
	plans, err := os.ReadDir(store)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(plans, 1))
	runIn(work, xdg, "", "run", "--bind", store+":/plans", "--", "perl", "-0777", "-pi", "-e", `s{/pub\0}{/sec\0}g`,
		"/plans/"+plans[0].Name()).Assert(t, icmd.Success)
	b, err := os.ReadFile(filepath.Join(store, plans[0].Name()))
	assert.NilError(t, err)
	assert.Assert(t, bytes.Contains(b, []byte("/sec\x00")), "the plan was not edited")
	runIn(work, xdg, "", args...).Assert(t, icmd.Expected{Out: "public\n"})
}

// --name replayed: a name in use falls through to the Go launcher, which
// says so as it always does; a name whose launcher was killed is taken
// over as the Go launcher takes it over.
func TestFastPathReplayNameInUse(t *testing.T) {
	s := newStateEnv(t)
	dir := t.TempDir()
	named := []string{"run", "--name", "taken", "--", "echo", "hi"}
	runIn(dir, s.xdg, "", named...).Assert(t, icmd.Expected{Out: "hi\n"})
	saved := planTimes(t, s.xdg)
	runIn(dir, s.xdg, "", named...).Assert(t, icmd.Expected{Out: "hi\n"})
	assert.Assert(t, is.DeepEqual(planTimes(t, s.xdg), saved), "the second run was not replayed")

	for _, holder := range []string{"off", "replay"} {
		t.Run("held by a launcher, fast path "+holder, func(t *testing.T) {
			cmd := exec.Command(nsboxBin, "run", "--name", "taken", "--", "sh", "-c", "echo ready; exec sleep 60")
			cmd.Env = replayEnv(holder, s.xdg)
			cmd.Dir = dir
			startUntilReady(t, cmd)
			off := runIn(dir, s.xdg, "off", named...)
			assert.Check(t, is.Equal(off.ExitCode, 125), off.Combined())
			assert.Check(t, is.Contains(off.Stderr(), `sandbox name "taken": name in use`))
			assertSameAs(t, runIn(dir, s.xdg, "", named...), off, "default")
			assertSameAs(t, runIn(dir, s.xdg, "replay", named...), off, "forced")
			assert.Check(t, is.Equal(s.inspect("taken").LauncherPid, cmd.Process.Pid))
			// Killed: its entry stays, stale, and the next start of that
			// name removes it.
			assert.NilError(t, cmd.Process.Kill())
			cmd.Wait()
			assert.Check(t, is.DeepEqual(s.entries(), []string{"taken"}))
			runIn(dir, s.xdg, "", named...).Assert(t, icmd.Expected{Out: "hi\n"})
			assert.Check(t, is.Len(s.entries(), 0))
		})
	}
}

// A start that would be replayed while a sweep for stale entries is due
// (state.MaybeClean) is left to the Go launcher, which sweeps: where every
// start is replayed, the entries of launchers that were killed do not
// pile up. Once swept, the starts are replayed again.
func TestFastPathReplaySweepsStaleEntries(t *testing.T) {
	s := newStateEnv(t)
	dir := t.TempDir()
	// A stale entry: a replayed launcher, killed.
	cmd := exec.Command(nsboxBin, "run", "--", "sh", "-c", "echo ready; exec sleep 60")
	cmd.Env = replayEnv("replay", s.xdg)
	cmd.Dir = dir
	startUntilReady(t, cmd)
	assert.NilError(t, cmd.Process.Kill())
	cmd.Wait()
	assert.Assert(t, is.Len(s.entries(), 1))

	args := []string{"run", "--", "sleep", "0.1"}
	runIn(dir, s.xdg, "", args...).Assert(t, icmd.Success)
	saved := planTimes(t, s.xdg)
	long := time.Now().Add(-2 * time.Minute)
	assert.NilError(t, os.Chtimes(filepath.Join(s.xdg, "nsbox", ".swept"), long, long))
	runIn(dir, s.xdg, "", args...).Assert(t, icmd.Success)
	assert.Check(t, !is.DeepEqual(planTimes(t, s.xdg), saved)().Success(), "replayed while a sweep was due")
	assert.Check(t, is.Len(s.entries(), 0))
	saved = planTimes(t, s.xdg)
	runIn(dir, s.xdg, "", args...).Assert(t, icmd.Success)
	assert.Check(t, is.DeepEqual(planTimes(t, s.xdg), saved), "not replayed once swept")
}
