package tests

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// The cgroup v2 freezer (nsbox run --cgroup own, Limits.OwnCgroup):
// pause, resume, kill, stop, exec and ps of a frozen sandbox, a sandbox
// forking without end, and what root inside may try against its cgroup.
// hack/test.sh runs the tests in a cgroup delegated to the test user
// (hack/delegated-cgroup.sh), as a systemd user session would.

// requireDelegatedCgroup returns the test's own cgroup v2 directory,
// which must be delegated to it; without one (no cgroup v2 hierarchy, or
// not run in a delegated cgroup) the test cannot run, which under CI
// fails it.
func requireDelegatedCgroup(t *testing.T) string {
	t.Helper()
	requireUnprivileged(t)
	mount := cgroupMount(t)
	if mount == "" {
		cannotRun(t, "this host has no cgroup v2 hierarchy: the freezer needs one")
		return ""
	}
	dir := filepath.Join(mount, cgroupOf(os.Getpid()))
	if exec.Command("test", "-w", filepath.Join(dir, "cgroup.procs")).Run() != nil {
		cannotRun(t, "the test runs in cgroup %q, not delegated to it; fix: run it in one (hack/test.sh does, with hack/delegated-cgroup.sh)", dir)
	}
	return dir
}

// cgroupMount is where the whole cgroup v2 hierarchy is mounted, read
// from mountinfo here independently of nsbox; "" if nowhere.
func cgroupMount(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	assert.NilError(t, err)
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); strings.Contains(line, " - cgroup2 ") && len(f) > 4 && f[3] == "/" {
			return f[4]
		}
	}
	return ""
}

// cgroupOf is /proc/PID/cgroup's v2 path, as the host sees it.
func cgroupOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return p
		}
	}
	return ""
}

// counter reads the number a sandbox's loop writes to a file.
func counter(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// stillFor checks that read gives the same value for d.
func stillFor(t *testing.T, read func() string, d time.Duration, what string) {
	t.Helper()
	was := read()
	time.Sleep(d)
	assert.Check(t, is.Equal(read(), was), "%s ran on while paused", what)
}

func TestLiveFreeze(t *testing.T) {
	requireDelegatedCgroup(t)
	s := newStateEnv(t)
	out := t.TempDir()
	assert.NilError(t, os.Chmod(out, 0o777))
	// A hundred sleepers, a ticker, and a loop that forks a child for
	// each count (a signal walk chases it; the freezer takes it at once).
	s.detached("f", "--cgroup", "own", "--bind", out+":/out", "--", "sh", "-c",
		"for i in $(seq 100); do sleep 600 & done; "+
			"(n=0; while :; do n=$((n+1)); sh -c \"echo $n > /out/forks\"; done) & "+
			"while :; do date +%s%N > /out/tick; sleep 0.01; done")
	e := s.inspect("f")
	tick := func() string { return counter(t, filepath.Join(out, "tick")) }
	forks := func() string { return counter(t, filepath.Join(out, "forks")) }
	waitFor(t, func() bool { return tick() != "" && forks() != "" }, "the ticker and the forker")
	waitFor(t, func() bool { return len(sandboxProcs(t, e.Pid)) >= 102 }, "the sleepers")
	res := s.run("inspect", "f")
	cg := jsonString(res.Stdout(), "cgroup")
	assert.Assert(t, strings.HasPrefix(cg, "/"), res.Stdout())
	assert.Check(t, is.Equal(filepath.Base(filepath.Dir(cgroupOf(e.Pid))), filepath.Base(cg)), "PID 1 is not in the recorded cgroup's leaf")

	s.run("pause", "f").Assert(t, icmd.Success)
	b, err := os.ReadFile(filepath.Join(cg, "cgroup.events"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), "frozen 1"))
	// Frozen, not stopped: no process is in the T state (the fallback's).
	procs := sandboxProcs(t, e.Pid)
	assert.Check(t, len(procs) >= 102)
	for pid, st := range procs {
		assert.Check(t, st != "T", "pid %d is stopped, not frozen", pid)
	}
	stillFor(t, tick, 300*time.Millisecond, "the ticker")
	stillFor(t, forks, 100*time.Millisecond, "the forker")
	assert.Check(t, is.Contains(s.run("ps").Stdout(), "(paused)"))
	assert.Check(t, is.Contains(s.run("inspect", "f").Stdout(), `"paused": true`))
	res = s.run("exec", "f", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: sandbox f is paused: the command would stop at once; fix: nsbox resume f\n"})

	s.run("resume", "f").Assert(t, icmd.Success)
	was := tick()
	waitFor(t, func() bool { return tick() != was }, "the ticker to run again")
	assert.Check(t, !strings.Contains(s.run("ps").Stdout(), "(paused)"))

	// A command of nsbox exec joins the cgroup, and freezes with the rest.
	res = s.run("exec", "f", "--", "cat", "/proc/self/cgroup")
	res.Assert(t, icmd.Success)
	exe := exec.Command(nsboxBin, "exec", "f", "--", "sh", "-c", "while :; do date +%s%N > /out/exec; sleep 0.01; done")
	exe.Env = s.env()
	assert.NilError(t, exe.Start())
	defer func() { exe.Process.Kill(); exe.Wait() }()
	execTick := func() string { return counter(t, filepath.Join(out, "exec")) }
	waitFor(t, func() bool { return execTick() != "" }, "the exec'd ticker")
	s.run("pause", "f").Assert(t, icmd.Success)
	stillFor(t, execTick, 300*time.Millisecond, "the exec'd ticker")

	// Paused, then killed: nothing left, the cgroup removed.
	procs = sandboxProcs(t, e.Pid)
	s.run("kill", "f").Assert(t, icmd.Success)
	for pid := range procs {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		assert.Check(t, os.IsNotExist(err), "pid %d is left", pid)
	}
	assert.Check(t, is.Len(s.entries(), 0))
	waitFor(t, func() bool { _, err := os.Stat(cg); return os.IsNotExist(err) }, "the cgroup's removal")

	// Paused, then stopped: SIGTERM, then thawed to act on it; the
	// command's handler runs (it did not take the grace's SIGKILL).
	// (Paused only once the handler is set: frozen before the trap ran,
	// the shell would die of the SIGTERM.)
	s.detached("q", "--cgroup", "own", "--bind", out+":/out", "--", "sh", "-c",
		"trap 'echo term > /out/term; exit 0' TERM; echo set > /out/trap; while :; do sleep 0.01; done")
	waitFor(t, func() bool { return counter(t, filepath.Join(out, "trap")) == "set" }, "the command's TERM handler")
	s.run("pause", "q").Assert(t, icmd.Success)
	start := time.Now()
	s.run("stop", "--timeout", "20", "q").Assert(t, icmd.Success)
	assert.Check(t, time.Since(start) < 10*time.Second)
	assert.Check(t, is.Equal(counter(t, filepath.Join(out, "term")), "term"))

	// With a cgroup of its own, a sandbox sharing the host's PID
	// namespace can be frozen too: the cgroup sets its processes apart.
	// Killed, nothing of it is left: not its processes (no PID namespace
	// takes them with PID 1), not its cgroup.
	s.detached("h", "--cgroup", "own", "--share", "pid", "--", "sh", "-c", "sleep 600 & sleep 600")
	hcg := jsonString(s.run("inspect", "h").Stdout(), "cgroup")
	s.run("pause", "h").Assert(t, icmd.Success)
	assert.Check(t, is.Contains(s.run("ps").Stdout(), "(paused)"))
	s.run("kill", "h").Assert(t, icmd.Success)
	waitFor(t, func() bool { _, err := os.Stat(hcg); return os.IsNotExist(err) }, "the cgroup's removal")
}

// jsonString finds "key": "value" in JSON text (the first occurrence).
func jsonString(text, key string) string {
	_, after, ok := strings.Cut(text, `"`+key+`": "`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, `"`)
	return v
}

// TestLiveFreezeAttacks: root inside a sandbox with a cgroup of its own
// tries to leave it for the delegated cgroup above, to thaw itself, and
// to kill the cgroups above; each must fail.
func TestLiveFreezeAttacks(t *testing.T) {
	parent := requireDelegatedCgroup(t)
	s := newStateEnv(t)
	out := t.TempDir()
	assert.NilError(t, os.Chmod(out, 0o777))
	// Root inside: a cgroup namespace and a cgroup2 mount of its own
	// (rooted at its leaf, whose files it owns), from which a loop keeps
	// writing 0 to cgroup.freeze while it ticks. (In a child: a command
	// that changes its own namespaces makes nsbox refuse its state record,
	// docs/security.md "State records".)
	script := `exec >/out/log 2>&1
U=` + cgroupMount(t) + `
P=` + parent + `
echo $$ > $P/cgroup.procs && echo ESCAPED-VIA-SYS
for d in $P $P/nsbox-*; do echo 1 > $d/cgroup.kill && echo KILLED-VIA-SYS; echo 0 > $d/cgroup.freeze && echo THAWED-VIA-SYS; done
mount -o remount,rw $U && echo REMOUNTED
mkdir -p /tmp/c
unshare -C sh -c '
mount -t cgroup2 none /tmp/c || exit 1
echo 0 > /tmp/c/cgroup.freeze && echo OWN-LEAF-WRITABLE
echo $$ > /tmp/c/../cgroup.procs 2>/dev/null; grep -q "^0::/$" /proc/self/cgroup || echo ESCAPED-VIA-DOTDOT
mkdir /tmp/c/x && echo $$ > /tmp/c/x/cgroup.procs && echo MOVED-BELOW
p=/tmp/c/x; n=1; while mkdir $p/d 2>/dev/null; do p=$p/d; n=$((n+1)); done; echo DEPTH $n
i=0; while [ $i -lt 400 ] && mkdir /tmp/c/w$i 2>/dev/null; do i=$((i+1)); done; echo WIDTH $i
echo ready > /out/ready
while :; do echo 0 > /tmp/c/cgroup.freeze; echo 0 > /tmp/c/x/cgroup.freeze; date +%s%N > /out/tick; sleep 0.01; done' &
wait`
	s.detached("a", "--cgroup", "own", "--root", "--bind", out+":/out", "--", "sh", "-c", script)
	e := s.inspect("a")
	cg := jsonString(s.run("inspect", "a").Stdout(), "cgroup")
	waitFor(t, func() bool { return counter(t, filepath.Join(out, "ready")) == "ready" }, "the attacker's setup")
	log := counter(t, filepath.Join(out, "log"))
	for _, bad := range []string{"ESCAPED-VIA-SYS", "KILLED-VIA-SYS", "THAWED-VIA-SYS", "REMOUNTED", "ESCAPED-VIA-DOTDOT"} {
		assert.Check(t, !strings.Contains(log, bad), "%s:\n%s", bad, log)
	}
	// What it may do stays inside: its own leaf, a cgroup below it.
	assert.Check(t, is.Contains(log, "OWN-LEAF-WRITABLE"), log)
	assert.Check(t, is.Contains(log, "MOVED-BELOW"), log)
	// What it can make below its leaf, for the launcher to walk and
	// remove, is bounded (cgroup.max.depth 8 and cgroup.max.descendants
	// 256 on the cgroup above, which it cannot reach): below the leaf
	// (depth 1), x and its chain of d reach depth 8, and the leaf, x and
	// the chain take 8 of the 256.
	assert.Check(t, is.Contains(log, "DEPTH 7\n"), log)
	assert.Check(t, is.Contains(log+"\n", "WIDTH 248\n"), log)
	// Every process of it is still inside its cgroup, seen from the host.
	rel := strings.TrimPrefix(cg, cgroupMount(t))
	// (The loop's date and sleep may end between the listing and the
	// read: a process gone has no cgroup to show, and is skipped.)
	for pid := range sandboxProcs(t, e.Pid) {
		in := cgroupOf(pid)
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); in == "" && err != nil {
			continue // a short-lived process of the sandbox, gone since the listing
		}
		assert.Check(t, strings.HasPrefix(in, rel+"/"), "pid %d is in %s, outside %s", pid, in, rel)
	}

	// Pause freezes it whatever its leaf says; resume thaws it.
	tick := func() string { return counter(t, filepath.Join(out, "tick")) }
	s.run("pause", "a").Assert(t, icmd.Success)
	stillFor(t, tick, 300*time.Millisecond, "the thawing loop")
	assert.Check(t, is.Contains(s.run("ps").Stdout(), "(paused)"))
	s.run("resume", "a").Assert(t, icmd.Success)
	was := tick()
	waitFor(t, func() bool { return tick() != was }, "the loop to run again")
	// The test (in the delegated cgroup above) is alive to tell.
	s.run("kill", "a").Assert(t, icmd.Success)
	waitFor(t, func() bool { _, err := os.Stat(cg); return os.IsNotExist(err) }, "the cgroup's removal, with what root inside made below it")
}

// TestLiveFreezeAPI: Limits.OwnCgroup through the API; Join puts the
// joined command in the cgroup, and a Lookup with Target.Cgroup freezes.
func TestLiveFreezeAPI(t *testing.T) {
	requireDelegatedCgroup(t)
	spec := defaultSpec(t, "sleep", "600")
	spec.Limits.OwnCgroup = true
	spec.Process.Stdout, spec.Process.Stderr = io.Discard, io.Discard
	sb, err := sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	defer func() { sb.Signal(os.Kill); sb.Wait() }()
	leaf := cgroupOf(sb.Pid())
	assert.Check(t, is.Equal(filepath.Base(leaf), "sandbox"), leaf)

	target := sandbox.TargetOf(spec, sb.Pid(), 0)
	target.Cgroup = filepath.Join(cgroupMount(t), filepath.Dir(leaf))
	st, err := os.ReadFile("/proc/" + itoa(uint32(sb.Pid())) + "/stat")
	assert.NilError(t, err)
	target.StartTime = statStart(string(st))
	joined, err := sandbox.Join(context.Background(), target, &sandbox.Process{
		Args: []string{"sleep", "600"}, UID: spec.Process.UID, GID: spec.Process.GID, NoNewPrivs: true,
	})
	assert.NilError(t, err)
	defer func() { joined.Signal(os.Kill); joined.Wait() }()
	assert.Check(t, is.Equal(cgroupOf(joined.Pid()), leaf))

	looked, err := sandbox.Lookup(target)
	assert.NilError(t, err)
	assert.NilError(t, looked.Pause())
	paused, err := sb.Paused()
	assert.NilError(t, err)
	assert.Check(t, paused)
	assert.Check(t, procState(joined.Pid()) != "T")
	assert.NilError(t, looked.Resume())
	paused, err = sb.Paused()
	assert.NilError(t, err)
	assert.Check(t, !paused)

	// A target naming a cgroup PID 1 is not in is refused, not frozen.
	bad := target
	bad.Cgroup = filepath.Dir(target.Cgroup)
	looked, err = sandbox.Lookup(bad)
	assert.NilError(t, err)
	err = looked.Pause()
	assert.Check(t, err != nil, "paused through a cgroup that is not the sandbox's")
}

// TestLiveFreezeLimitsHybrid: where the controllers are bound to cgroup
// v1 (a hybrid host), --memory, --pids and --cpus fail in one line that
// says so, exit 125, and leave no cgroup behind.
func TestLiveFreezeLimitsHybrid(t *testing.T) {
	parent := requireDelegatedCgroup(t)
	b, err := os.ReadFile(filepath.Join(cgroupMount(t), "cgroup.controllers"))
	assert.NilError(t, err)
	before, err := os.ReadDir(parent)
	assert.NilError(t, err)
	for _, f := range [][]string{{"--memory", "64M", "memory"}, {"--pids", "10", "pids"}, {"--cpus", "0.5", "cpu"}} {
		if strings.Contains(" "+string(b)+" ", " "+f[2]+" ") {
			continue // this hierarchy has it: no refusal to check
		}
		res := nsbox("run", f[0], f[1], "--", "true")
		res.Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: --memory, --pids, --cpus: the " + f[2] + " controller is bound to cgroup v1 on this host (hybrid layout)"})
		assert.Check(t, is.Contains(res.Stderr(), "; fix: boot with systemd.unified_cgroup_hierarchy=1"))
		assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	}
	after, err := os.ReadDir(parent)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(len(after), len(before)), "a cgroup was left in %s", parent)
}

// TestLiveFreezeNamespaceRoot: the sandbox's cgroup namespace is rooted
// at its leaf (the stage is moved in before it makes the namespace), also
// when the spec comes from a file and the CLI's flags did not tell the
// pre-forked stage to leave its namespaces for later: a root at the
// delegated cgroup would let root inside mount it and move out.
func TestLiveFreezeNamespaceRoot(t *testing.T) {
	requireDelegatedCgroup(t)
	dir := t.TempDir()
	nsbox("run", "--cgroup", "own", "--", "grep", "^0::", "/proc/self/cgroup").Assert(t, icmd.Expected{Out: "0::/\n"})
	res := nsbox("run", "--print-spec", "--cgroup", "own", "--", "grep", "^0::", "/proc/self/cgroup")
	res.Assert(t, icmd.Success)
	spec := filepath.Join(dir, "s.json")
	assert.NilError(t, os.WriteFile(spec, []byte(res.Stdout()), 0o644))
	nsbox("run", "--spec", spec).Assert(t, icmd.Expected{Out: "0::/\n"})
}
