package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// detached starts `nsbox run --detach --name NAME ARGS…` and kills it at
// the end of the test.
func (s *stateEnv) detached(name string, args ...string) {
	s.t.Helper()
	res := s.run(append([]string{"run", "--detach", "--name", name}, args...)...)
	res.Assert(s.t, icmd.Success)
	s.t.Cleanup(func() { s.run("kill", name) })
}

// hostMounts is the caller's own mount table.
func hostMounts(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	assert.NilError(t, err)
	return string(b)
}

func TestLiveMount(t *testing.T) {
	s := newStateEnv(t)
	src := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(src, "f"), []byte("from the host\n"), 0o644))
	assert.NilError(t, os.Chmod(src, 0o755))
	s.detached("m", "--root", "--", "sh", "-c", "mkdir /tmp/d /run/h; touch /tmp/d/own /run/h/hidden; ln -s / /tmp/up; ln -s "+src+" /tmp/evil; ln -s ../../../../.. /tmp/dots; exec sleep 600")
	waitFor(t, func() bool { return s.run("exec", "m", "--", "test", "-L", "/tmp/dots").ExitCode == 0 }, "the setup inside")
	before := hostMounts(t)

	// A read-only directory, a read-write file, a DEST created.
	s.run("mount", "m", src, "/tmp/d", "--ro").Assert(t, icmd.Success)
	s.run("mount", "m", filepath.Join(src, "f"), "/tmp/file", "--mkdir").Assert(t, icmd.Success)
	s.run("exec", "m", "--", "cat", "/tmp/d/f", "/tmp/file").Assert(t, icmd.Expected{Out: "from the host\nfrom the host\n"})
	res := s.run("exec", "m", "--", "grep", " /tmp/d ", "/proc/self/mountinfo")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), " ro,nosuid,nodev"))
	// Nothing of it on the host's side.
	assert.Equal(t, hostMounts(t), before)

	// Root inside cannot write it, nor remount it writable.
	res = s.run("exec", "m", "--root", "--", "sh", "-c",
		"echo x > /tmp/d/g && echo WROTE; mount -o remount,bind,rw /tmp/d && echo REMOUNTED; echo x > /tmp/d/g && echo WROTE; true")
	assert.Check(t, !strings.Contains(res.Stdout(), "WROTE"), res.Combined())
	assert.Check(t, !strings.Contains(res.Stdout(), "REMOUNTED"), res.Combined())
	_, err := os.Stat(filepath.Join(src, "g"))
	assert.Check(t, os.IsNotExist(err))

	// Root inside cannot unmount an added mount to see what it covers:
	// umount, lazy or not, meets a locked mount; unmounting a recursive
	// bind of the shared /run reaches by propagation only the unlocked
	// mount under the locked one, which the kernel slides into its place
	// (docs/live.md); nsbox umount then refuses it in one line. Nor can it
	// unmount the sandbox's own mounts to see the host's.
	s.run("mount", "m", src, "/run/h").Assert(t, icmd.Success)
	res = s.run("exec", "m", "--root", "--", "sh", "-c",
		"umount /run/h && echo UNMOUNTED; umount -l /run/h && echo UNMOUNTED; "+
			"mount --make-shared /run && mkdir /tmp/b && mount --rbind /run /tmp/b && umount -l /tmp/b && echo PROPAGATED; ls -A /run/h")
	assert.Check(t, !strings.Contains(res.Stdout(), "UNMOUNTED"), res.Combined())
	assert.Check(t, is.Contains(res.Stdout(), "PROPAGATED\nf\n"), res.Combined())
	assert.Check(t, !strings.Contains(res.Stdout(), "hidden"), res.Combined())
	res = s.run("umount", "m", "/run/h")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "root inside moved what nsbox mount added, which the kernel keeps locked"})
	assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	res = s.run("exec", "m", "--root", "--", "sh", "-c", "umount -l /tmp || umount -l /home || echo LOCKED")
	assert.Check(t, is.Contains(res.Stdout(), "LOCKED"), res.Combined())

	// inspect lists it; mounting over it again is refused in one line.
	res = s.run("inspect", "m")
	assert.Check(t, is.Contains(res.Stdout(), `"destination": "/tmp/d"`))
	s.run("mount", "m", src, "/tmp/d").Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: sandbox m: /tmp/d already has a mount nsbox mount added"})

	// A symlink planted inside stays inside: /tmp/up -> / is the
	// sandbox's root, /tmp/evil as the last component is refused.
	s.run("mount", "m", src, "/tmp/up/tmp/via", "--mkdir").Assert(t, icmd.Success)
	s.run("exec", "m", "--", "cat", "/tmp/via/f").Assert(t, icmd.Expected{Out: "from the host\n"})
	res = s.run("mount", "m", src, "/tmp/evil")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "it is a symlink inside the sandbox"})
	assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	s.run("mount", "m", src, "/tmp/dots/tmp/dd", "--mkdir").Assert(t, icmd.Success)
	s.run("exec", "m", "--", "cat", "/tmp/dd/f").Assert(t, icmd.Expected{Out: "from the host\n"})
	_, err = os.Stat("/tmp/dd")
	assert.Check(t, os.IsNotExist(err), "/tmp/dd made on the host")
	s.run("mount", "m", src, "/tmp/../etc").Assert(t, icmd.Expected{ExitCode: 125, Err: "the destination must be a clean absolute path"})
	s.run("mount", "m", src, "/no/such/dir").Assert(t, icmd.Expected{ExitCode: 125, Err: "create it inside first"})
	s.run("mount", "m", filepath.Join(src, "f"), "/tmp/up").Assert(t, icmd.Expected{ExitCode: 125, Err: "symlink"})
	s.run("mount", "m", filepath.Join(src, "f"), "/tmp/dd").Assert(t, icmd.Expected{ExitCode: 125, Err: "mount a directory on a directory and a file on a file"})
	assert.Equal(t, hostMounts(t), before)

	// umount removes it, and what held it: nothing of it stays in the
	// sandbox's mount table nor on the host; the sandbox's own mounts
	// cannot be removed.
	anchors, err := filepath.Glob(filepath.Join(s.xdg, "nsbox-live", "*"))
	assert.NilError(t, err)
	s.run("umount", "m", "/tmp/d").Assert(t, icmd.Success)
	s.run("exec", "m", "--", "ls", "/tmp/d").Assert(t, icmd.Expected{Out: "own\n"})
	s.run("exec", "m", "--", "grep", "-c", " /tmp/d ", "/proc/self/mountinfo").Assert(t, icmd.Expected{ExitCode: 1, Out: "0\n"})
	left, err := filepath.Glob(filepath.Join(s.xdg, "nsbox-live", "*"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(len(left), len(anchors)-1), "anchors %v, then %v", anchors, left)
	s.run("umount", "m", "/tmp").Assert(t, icmd.Expected{ExitCode: 125, Err: "only what nsbox mount added can be removed"})
	s.run("exec", "m", "--", "test", "-e", "/tmp/file").Assert(t, icmd.Success)
	assert.Check(t, !strings.Contains(s.run("inspect", "m").Stdout(), `"destination": "/tmp/d"`))
}

func TestLiveMountEndedAndForeign(t *testing.T) {
	s := newStateEnv(t)
	src := t.TempDir()
	s.detached("a", "--", "sleep", "600")
	// From inside another sandbox of the same user, sandbox a is not
	// reachable: the state directory is hidden there.
	res := s.run("run", "--", nsboxBin, "mount", "a", src, "/tmp/x", "--mkdir")
	assert.Check(t, res.ExitCode != 0, res.Combined())
	for _, op := range [][]string{{"pause", "a"}, {"cp", src, "a:/tmp"}, {"cp", "a:/etc/hostname", "/tmp"}, {"connect", "a", "80"}, {"umount", "a", "/tmp"}} {
		res = s.run(append([]string{"run", "--", nsboxBin}, op...)...)
		assert.Check(t, res.ExitCode != 0, res.Combined())
		assert.Check(t, is.Contains(res.Stderr(), `sandbox "a": no such sandbox`), res.Combined())
	}
	s.run("exec", "a", "--", "test", "-e", "/tmp/x").Assert(t, icmd.Expected{ExitCode: 1})
	// A sandbox sharing the host's mount namespace has no view to mount into.
	s.detached("sh", "--share", "mnt", "--", "sleep", "600")
	res = s.run("mount", "sh", src, "/tmp/x")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: sandbox sh: mount " + src + " on /tmp/x: the sandbox shares the caller's mount namespace"})
	assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	// A sandbox that ended: one line naming it, exit 125.
	s.run("kill", "a").Assert(t, icmd.Success)
	for _, args := range [][]string{{"mount", "a", src, "/tmp/x"}, {"umount", "a", "/tmp/x"}, {"pause", "a"}, {"resume", "a"}} {
		res := s.run(args...)
		res.Assert(t, icmd.Expected{ExitCode: 125, Err: `sandbox "a": no such sandbox`})
		assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	}
}

// sandboxProcs lists the host pids of PID 1's descendants.
func sandboxProcs(t *testing.T, pid1 int) map[int]string {
	ents, err := os.ReadDir("/proc")
	assert.NilError(t, err)
	ppid := map[int]int{}
	state := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		ppid[pid], _ = strconv.Atoi(f[1])
		state[pid] = f[0]
	}
	out := map[int]string{}
	for pid := range ppid {
		for q := ppid[pid]; q > 1; q = ppid[q] {
			if q == pid1 {
				out[pid] = state[pid]
				break
			}
		}
	}
	return out
}

func TestLivePause(t *testing.T) {
	s := newStateEnv(t)
	out := t.TempDir()
	assert.NilError(t, os.Chmod(out, 0o777))
	// A ticker and twenty sleepers.
	s.detached("p", "--bind", out+":/out", "--", "sh", "-c",
		"for i in $(seq 20); do sleep 600 & done; while :; do date +%s%N > /out/tick; sleep 0.01; done")
	pid1 := s.inspect("p").Pid
	tick := func() string { b, _ := os.ReadFile(filepath.Join(out, "tick")); return string(b) }
	waitFor(t, func() bool { return tick() != "" }, "the ticker")
	waitFor(t, func() bool { return len(sandboxProcs(t, pid1)) >= 22 }, "the sleepers")

	s.run("pause", "p").Assert(t, icmd.Success)
	for pid, st := range sandboxProcs(t, pid1) {
		// Z: a child its stopped parent has not reaped; D: in a slow
		// write (this VM's disk, under load), which stops before it
		// returns to its own code, as SIGSTOP is pending.
		assert.Check(t, st == "T" || st == "Z" || st == "D" && stopPending(pid), "pid %d is %s", pid, st)
	}
	was := tick()
	time.Sleep(300 * time.Millisecond)
	assert.Check(t, is.Equal(tick(), was), "the ticker ran on while paused")
	assert.Check(t, is.Contains(s.run("ps").Stdout(), "(paused)"))
	assert.Check(t, is.Contains(s.run("inspect", "p").Stdout(), `"paused": true`))
	res := s.run("exec", "p", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: sandbox p is paused: the command would stop at once; fix: nsbox resume p\n"})

	s.run("resume", "p").Assert(t, icmd.Success)
	waitFor(t, func() bool { return tick() != was }, "the ticker to run again")
	assert.Check(t, !strings.Contains(s.run("ps").Stdout(), "(paused)"))

	// Paused, then killed: nothing left.
	s.pausedThenKilled("p", pid1)
	assert.Check(t, is.Len(s.entries(), 0))

	// Paused, then stopped (TERM first): it ends within the grace.
	s.detached("q", "--", "sleep", "600")
	s.run("pause", "q").Assert(t, icmd.Success)
	start := time.Now()
	s.run("stop", "--timeout", "20", "q").Assert(t, icmd.Success)
	assert.Check(t, time.Since(start) < 10*time.Second)

	// Sharing the host's PID namespace: refused in one line.
	s.detached("h", "--share", "pid", "--", "sleep", "600")
	res = s.run("pause", "h")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: sandbox h: pause: the sandbox shares the caller's PID namespace"})
	assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
}

// TestLivePauseExec: a process nsbox exec started is one of the
// sandbox's (in its PID namespace), though its parent is the exec
// launcher outside, not PID 1: pause stops it too, resume continues it.
func TestLivePauseExec(t *testing.T) {
	s := newStateEnv(t)
	out := t.TempDir()
	assert.NilError(t, os.Chmod(out, 0o777))
	s.detached("e", "--bind", out+":/out", "--", "sleep", "600")
	exec := icmd.StartCmd(icmd.Cmd{Command: []string{nsboxBin, "exec", "e", "--", "sh", "-c",
		"while :; do date +%s%N > /out/tick; sleep 0.01; done"}, Env: s.env()})
	defer func() { exec.Cmd.Process.Kill(); exec.Cmd.Wait() }()
	tick := func() string { return counter(t, filepath.Join(out, "tick")) }
	waitFor(t, func() bool { return tick() != "" }, "the exec'd ticker")

	s.run("pause", "e").Assert(t, icmd.Success)
	stillFor(t, tick, 300*time.Millisecond, "the exec'd ticker")
	s.run("resume", "e").Assert(t, icmd.Success)
	was := tick()
	waitFor(t, func() bool { return tick() != was }, "the exec'd ticker to run again")
}

// TestLivePauseAttacks: a sandbox without a cgroup of its own whose
// processes fork without end and continue every process of the sandbox
// (kill -CONT -1) in a loop is still paused whole: the signal sent from
// inside (kill -1) reaches a child being forked too, and the walk that
// follows stops what a SIGCONT let go. Pause returns, nothing of it runs
// while paused, and resume and kill work. So for one that stops every
// process in a loop (kill -STOP -1), the stage's own too.
func TestLivePauseAttacks(t *testing.T) {
	s := newStateEnv(t)
	out := t.TempDir()
	assert.NilError(t, os.Chmod(out, 0o777))
	s.detached("a", "--root", "--bind", out+":/out", "--", "sh", "-c", `
while :; do sh -c 'date +%s%N > /out/fork'; done &
while :; do kill -CONT -1 2>/dev/null; date +%s%N > /out/cont; done &
wait`)
	pid1 := s.inspect("a").Pid
	fork := func() string { return counter(t, filepath.Join(out, "fork")) }
	cont := func() string { return counter(t, filepath.Join(out, "cont")) }
	waitFor(t, func() bool { return fork() != "" && cont() != "" }, "the loops")

	for range 3 {
		start := time.Now()
		res := s.run("pause", "a")
		res.Assert(t, icmd.Success)
		assert.Check(t, time.Since(start) < 5*time.Second, "pause took %v", time.Since(start))
		for pid, st := range sandboxProcs(t, pid1) {
			assert.Check(t, st == "T" || st == "Z" || st == "D" && stopPending(pid), "pid %d is %s", pid, st)
		}
		wasFork, wasCont := fork(), cont()
		time.Sleep(300 * time.Millisecond)
		assert.Check(t, is.Equal(fork(), wasFork), "the fork loop ran on while paused")
		assert.Check(t, is.Equal(cont(), wasCont), "the SIGCONT loop ran on while paused")
		s.run("resume", "a").Assert(t, icmd.Success)
		waitFor(t, func() bool { return fork() != wasFork && cont() != wasCont }, "the loops to run again")
	}
	s.pausedThenKilled("a", pid1)

	// Root inside stops every process of the sandbox in a loop (kill
	// -STOP -1), the stage's process in it too when it comes in time:
	// the stage gives up on it after 1 s, and the walk stops each
	// process itself. Pause succeeds either way.
	s.detached("b", "--root", "--", "sh", "-c", `
while :; do kill -STOP -1 2>/dev/null; done &
while :; do kill -STOP -1 2>/dev/null; done &
sleep 600`)
	pid1 = s.inspect("b").Pid
	// (The first loop may stop the shell before it starts the others.)
	waitFor(t, func() bool { return len(sandboxProcs(t, pid1)) >= 2 }, "a loop")
	for range 5 {
		start := time.Now()
		s.run("pause", "b").Assert(t, icmd.Success)
		assert.Check(t, time.Since(start) < 5*time.Second, "pause took %v", time.Since(start))
		for pid, st := range sandboxProcs(t, pid1) {
			assert.Check(t, st == "T" || st == "Z" || st == "D" && stopPending(pid), "pid %d is %s", pid, st)
		}
		s.run("resume", "b").Assert(t, icmd.Success)
	}
	s.pausedThenKilled("b", pid1)
}

// pausedThenKilled pauses the sandbox name (PID 1 pid1) and kills it,
// and checks none of its processes is left.
func (s *stateEnv) pausedThenKilled(name string, pid1 int) {
	s.t.Helper()
	s.run("pause", name).Assert(s.t, icmd.Success)
	procs := sandboxProcs(s.t, pid1)
	s.run("kill", name).Assert(s.t, icmd.Success)
	for pid := range procs {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		assert.Check(s.t, os.IsNotExist(err), "pid %d is left", pid)
	}
}

// TestLiveMountAnchorsHidden: the anchors of added mounts (docs/live.md)
// are hidden, as the state directory is, from a sandbox that binds a
// directory above them: one that could remove an anchor from a mount
// namespace of its own would detach the locked mount on it.
func TestLiveMountAnchorsHidden(t *testing.T) {
	requireUnprivileged(t)
	// A runtime directory outside /tmp, under a directory the attacker
	// binds (the default view covers $XDG_RUNTIME_DIR itself).
	base, err := os.MkdirTemp("/var/tmp", "nsbox-xdg-")
	assert.NilError(t, err)
	defer os.RemoveAll(base)
	xdg := filepath.Join(base, "run")
	assert.NilError(t, os.Mkdir(xdg, 0o700))
	env := append(envWithout("XDG_RUNTIME_DIR"), "XDG_RUNTIME_DIR="+xdg)
	run := func(args ...string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.WithEnv(env...), icmd.Dir("/"))
	}
	run("run", "--detach", "--name", "v", "--root", "--", "sleep", "600").Assert(t, icmd.Success)
	defer run("kill", "v")
	src := t.TempDir()
	assert.NilError(t, os.Chmod(src, 0o755))
	run("mount", "v", src, "/tmp/x", "--mkdir").Assert(t, icmd.Success)
	anchors := filepath.Join(xdg, "nsbox-live")
	before, err := filepath.Glob(filepath.Join(anchors, "*"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(before, 1))

	res := run("run", "--root", "--bind", base, "--", "sh", "-c", "ls -A "+anchors+"; rm -rf "+anchors+"/* 2>/dev/null; true")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(res.Stdout(), ""), "the sandbox saw the anchors")
	after, err := filepath.Glob(filepath.Join(anchors, "*"))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(after, before))
	run("umount", "v", "/tmp/x").Assert(t, icmd.Success)
}

// TestLiveOrphanIsNotTheCommand: a process of the sandbox that left its
// parent is reparented to PID 1 and listed among its children after the
// command; here it has a mount namespace of its own, with a file only it
// sees. exec, mount and cp still act on the command's view: the command
// is PID 1's oldest child (the first listed in its children file that is
// still its child), never a later one.
func TestLiveOrphanIsNotTheCommand(t *testing.T) {
	s := newStateEnv(t)
	src := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(src, "f"), []byte("from the host\n"), 0o644))
	assert.NilError(t, os.Chmod(src, 0o755))
	s.detached("o", "--root", "--", "sh", "-c",
		`sh -c 'unshare -m sh -c "mount -t tmpfs x /tmp && touch /tmp/orphan && exec sleep 600" &'; exec sleep 600`)
	pid1 := s.inspect("o").Pid
	children := func() []string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid1, pid1))
		return strings.Fields(string(b))
	}
	waitFor(t, func() bool {
		kids := children()
		for _, k := range kids {
			if comm, _ := os.ReadFile("/proc/" + k + "/comm"); string(comm) != "sleep\n" {
				return false
			}
		}
		return len(kids) == 2
	}, "the command and the orphan, both sleeping")
	assert.Check(t, is.Equal(children()[0], strconv.Itoa(commandOf(t, pid1))))

	s.run("exec", "o", "--", "test", "-e", "/tmp/orphan").Assert(t, icmd.Expected{ExitCode: 1})
	res := s.run("cp", "o:/tmp/orphan", t.TempDir())
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "/tmp/orphan"})
	s.run("mount", "o", src, "/tmp/m", "--mkdir").Assert(t, icmd.Success)
	s.run("exec", "o", "--", "cat", "/tmp/m/f").Assert(t, icmd.Expected{Out: "from the host\n"})
	s.run("cp", "o:/tmp/m/f", filepath.Join(src, "back")).Assert(t, icmd.Success)
	b, err := os.ReadFile(filepath.Join(src, "back"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "from the host\n"))
}

// stopPending reports whether SIGSTOP is pending for pid (/proc/PID/status).
func stopPending(pid int) bool {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		if k != "SigPnd" && k != "ShdPnd" {
			continue
		}
		if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && m&(1<<(syscall.SIGSTOP-1)) != 0 {
			return true
		}
	}
	return false
}
