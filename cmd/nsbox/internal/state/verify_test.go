package state

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakePID1 starts `sleep 60` in user, network and UTS namespaces of its
// own, as the stage starts a sandbox's PID 1: a child of ours, in another
// user namespace, sharing our other namespaces. It returns the entry a
// launcher records.
func fakePID1(t *testing.T, name string) *Entry {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS}
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	start, err := StartTime(pid)
	assert.NilError(t, err)
	ns := map[string]uint64{}
	for _, n := range []string{"user", "net", "uts"} {
		ns[n], err = nsInode(fmt.Sprint(pid), n)
		assert.NilError(t, err)
	}
	return &Entry{Name: name, Pid: pid, PidStartTime: start, LauncherPid: os.Getpid(),
		Created: time.Now(), Namespaces: ns,
		Spec: &sandbox.Spec{Process: sandbox.Process{Args: []string{"true"}}, Namespaces: sandbox.Namespaces{Net: true, UTS: true}}}
}

// recorded reserves name in a new state directory and writes the record
// of a fakePID1 there, as a launcher does; the entry is released at the
// test's end.
func recorded(t *testing.T, name string) (dir string, h *Handle, e *Entry) {
	t.Helper()
	dir = t.TempDir()
	h, err := Reserve(dir, name)
	assert.NilError(t, err)
	t.Cleanup(func() { h.Release() })
	e = fakePID1(t, name)
	assert.NilError(t, h.Write(e))
	return dir, h, e
}

// edit rewrites the entry's state.json with change applied, as a process
// that can write the state directory could.
func edit(t *testing.T, path string, change func(string) string) {
	t.Helper()
	p := filepath.Join(path, "state.json")
	b, err := os.ReadFile(p)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(p, []byte(change(string(b))), 0o600))
}

func TestGetRefusesChangedRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *Entry, raw string) string
		want   string
	}{
		{"user namespace inode", func(e *Entry, raw string) string {
			return strings.Replace(raw, fmt.Sprintf(`"user": %d`, e.Namespaces["user"]), `"user": 4026531837`, 1)
		}, "the record says user namespace 4026531837, PID 1"},
		{"another namespace's inode", func(e *Entry, raw string) string {
			return strings.Replace(raw, fmt.Sprintf(`"uts": %d`, e.Namespaces["uts"]), `"uts": 4026532999`, 1)
		}, "the record says uts namespace 4026532999, PID 1"},
		{"the host's network", func(e *Entry, raw string) string {
			raw = strings.Replace(raw, fmt.Sprintf(`"net": %d,`, e.Namespaces["net"]), ``, 1)
			return strings.Replace(raw, `"net": true`, `"net": false`, 1)
		}, "the record says the sandbox shares this command's net namespace"},
		{"a namespace list that disagrees with the spec", func(e *Entry, raw string) string {
			return strings.Replace(raw, fmt.Sprintf(`"net": %d,`, e.Namespaces["net"]), ``, 1)
		}, "its spec and its namespace list disagree about the net namespace"},
		{"PID 1 of another launcher", func(e *Entry, raw string) string {
			return strings.Replace(raw, fmt.Sprintf(`"launcherPid": %d`, e.LauncherPid), `"launcherPid": 1`, 1)
		}, "is a child of pid"},
		{"a setting", func(e *Entry, raw string) string {
			return strings.Replace(raw, `"security": {}`, `"security": {"noDefaultSeccomp": true}`, 1)
		}, "state.json differs from the copy its launcher"},
		{"the descriptor of the copy", func(e *Entry, raw string) string {
			return strings.Replace(raw, fmt.Sprintf(`"recordFD": %d`, e.RecordFD), `"recordFD": 2`, 1)
		}, "not nsbox's record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h, err := Reserve(dir, "v")
			assert.NilError(t, err)
			defer h.Release()
			e := fakePID1(t, "v")
			assert.NilError(t, h.Write(e))
			l, err := Get(dir, "v")
			assert.NilError(t, err)
			l.Close()

			b, _ := os.ReadFile(filepath.Join(h.Path, "state.json"))
			changed := tc.change(e, string(b))
			assert.Assert(t, changed != string(b), "the test's edit changed nothing")
			edit(t, h.Path, func(string) string { return changed })
			_, err = Get(dir, "v")
			assert.Check(t, errors.Is(err, ErrRecordChanged), err)
			assert.ErrorContains(t, err, tc.want)
			_, refused, err := List(dir)
			assert.NilError(t, err)
			assert.Check(t, is.Len(refused, 1))
		})
	}
}

func TestGetRefusesHostProcess(t *testing.T) {
	// A record that names a process of the caller's own user namespace
	// (here: the test itself) would make exec join the host.
	dir := t.TempDir()
	h, err := Reserve(dir, "host")
	assert.NilError(t, err)
	defer h.Release()
	self, _ := nsInode("self", "user")
	start, _ := StartTime(os.Getpid())
	assert.NilError(t, h.Write(&Entry{Name: "host", Pid: os.Getpid(), PidStartTime: start,
		LauncherPid: os.Getppid(), Namespaces: map[string]uint64{"user": self}}))
	_, err = Get(dir, "host")
	assert.Check(t, errors.Is(err, ErrRecordChanged), err)
	assert.ErrorContains(t, err, "is in this command's own user namespace")
}

func TestGetRefusesRecordUnderAnotherName(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "real")
	assert.NilError(t, err)
	defer h.Release()
	assert.NilError(t, h.Write(fakePID1(t, "real")))
	h2, err := Reserve(dir, "alias")
	assert.NilError(t, err)
	defer h2.Release()
	b, err := os.ReadFile(filepath.Join(h.Path, "state.json"))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(h2.Path, "state.json"), b, 0o600))
	_, err = Get(dir, "alias")
	assert.Check(t, errors.Is(err, ErrRecordChanged), err)
	assert.ErrorContains(t, err, `holds the record of "real"`)
}

func TestGetReadsLargeRecordsWhole(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "big")
	assert.NilError(t, err)
	defer h.Release()
	e := fakePID1(t, "big")
	var env []string
	for i := 0; i < 50; i++ {
		env = append(env, fmt.Sprintf("V%d=%s", i, strings.Repeat("x", 4096)))
	}
	e.Spec.Process.Env = env
	assert.NilError(t, h.Write(e))
	st, err := os.Stat(filepath.Join(h.Path, "state.json"))
	assert.NilError(t, err)
	assert.Check(t, st.Size() > 200<<10, st.Size())
	l, err := Get(dir, "big")
	assert.NilError(t, err)
	defer l.Close()
	assert.DeepEqual(t, l.Spec.Process.Env, env)
}

func TestGetAfterPID1Exits(t *testing.T) {
	dir, _, e := recorded(t, "gone")
	p, _ := os.FindProcess(e.Pid)
	p.Kill()
	p.Wait()
	_, err := Get(dir, "gone")
	assert.Check(t, errors.Is(err, ErrNotFound), err)
}

func TestRemoveIfStaleLocksThenVerifies(t *testing.T) {
	// The race: a cleaner opens a stale entry; before its flock, another
	// cleaner removes that entry and a launcher puts its new, live one at
	// the same path. The first cleaner's lock is on the removed directory;
	// it must not remove the new one by path.
	dir := t.TempDir()
	h, err := Reserve(dir, "x")
	assert.NilError(t, err)
	h.lock.Close() // stale
	var live *Handle
	testHookLocked = func(path string) {
		testHookLocked = nil
		assert.NilError(t, os.RemoveAll(path))
		live, err = Reserve(dir, "x")
		assert.NilError(t, err)
	}
	defer func() { testHookLocked = nil }()
	removed, err := removeIfStale(filepath.Join(dir, "x"))
	assert.NilError(t, err)
	assert.Check(t, !removed)
	assert.Assert(t, live != nil)
	defer live.Release()
	_, err = os.Stat(live.Path)
	assert.NilError(t, err, "the live entry was removed")
}

func TestMaybeClean(t *testing.T) {
	dir := t.TempDir()
	stale := func(name string) {
		h, err := Reserve(dir, name)
		assert.NilError(t, err)
		h.lock.Close()
	}
	stale("a")
	MaybeClean(dir) // first time: sweeps
	_, err := os.Stat(filepath.Join(dir, "a"))
	assert.Check(t, os.IsNotExist(err))

	stale("b")
	MaybeClean(dir) // swept less than SweepEvery ago: leaves it
	_, err = os.Stat(filepath.Join(dir, "b"))
	assert.NilError(t, err)

	old := time.Now().Add(-2 * SweepEvery)
	assert.NilError(t, os.Chtimes(filepath.Join(dir, sweepStamp), old, old))
	MaybeClean(dir)
	_, err = os.Stat(filepath.Join(dir, "b"))
	assert.Check(t, os.IsNotExist(err))
}

// A sandbox that ends under the checks (here: PID 1 killed and not yet
// reaped, its namespaces gone) is reported gone, not tampered with: the
// loser of two `nsbox kill NAME` at once meets exactly this.
func TestGetOfEndingSandboxIsNotFound(t *testing.T) {
	dir := t.TempDir()
	h, err := Reserve(dir, "dying")
	assert.NilError(t, err)
	defer h.Release()
	e := fakePID1(t, "dying")
	assert.NilError(t, h.Write(e))
	l, err := Get(dir, "dying")
	assert.NilError(t, err)
	l.Close()
	// Killed, not reaped: a zombie whose start time still matches but
	// whose /proc/PID/ns links are gone, so the namespace check fails.
	assert.NilError(t, syscall.Kill(e.Pid, syscall.SIGKILL))
	for i := 0; i < 500; i++ {
		if st, _ := procfs.ReadFile(fmt.Sprintf("/proc/%d/stat", e.Pid)); strings.Contains(string(st), ") Z ") {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_, err = Get(dir, "dying")
	assert.Check(t, errors.Is(err, ErrNotFound), err)
	assert.Check(t, !errors.Is(err, ErrRecordChanged), err)
}

func TestGetOfCommandThatLeftItsNamespaces(t *testing.T) {
	// The launcher's own record (sealed copy and all) naming a UTS
	// namespace the command is no longer in: what a command that ran
	// unshare(CLONE_NEWUTS) leaves. It is the sandbox's, so it is listed and can
	// be signalled, but nothing may join the command's namespaces by it.
	dir := t.TempDir()
	h, err := Reserve(dir, "moved")
	assert.NilError(t, err)
	defer h.Release()
	e := fakePID1(t, "moved")
	e.Namespaces["uts"] = 4026532999
	assert.NilError(t, h.Write(e))
	l, err := Get(dir, "moved")
	assert.NilError(t, err)
	defer l.Close()
	assert.Check(t, l.PidFD() >= 0)
	err = l.Joinable()
	assert.Check(t, errors.Is(err, ErrCommandMoved), err)
	assert.ErrorContains(t, err, "the record says uts namespace 4026532999")
	assert.ErrorContains(t, err, "fix: nsbox stop moved or nsbox kill moved")
	live, refused, err := List(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(refused, 0))
	assert.Check(t, is.Len(live, 1))
	for _, l := range live {
		l.Close()
	}

	// Edited by anyone but the launcher, the same mismatch is tampering.
	edit(t, h.Path, func(raw string) string { return strings.Replace(raw, `"moved"`, `"moved" `, 1) })
	_, err = Get(dir, "moved")
	assert.Check(t, errors.Is(err, ErrRecordChanged), err)
	assert.ErrorContains(t, err, "the record says uts namespace 4026532999")
}

// A launcher rewrites its record while the sandbox runs (nsbox port add
// and rm): a new state.json, then a new sealed copy, the old one closed.
// A lookup that read the record just before is looking at the
// launcher's own record all along: Get checks the new one and never
// reports a changed record.
func TestGetWhileLauncherRewrites(t *testing.T) {
	dir, h, e := recorded(t, "busy")
	stop, done := make(chan struct{}), make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			e.Cwd = fmt.Sprintf("/rewrite-%d", i)
			if err := h.Write(e); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond) // nsbox port add takes longer
		}
	}()
	var failed error
	for i := 0; i < 1000 && failed == nil; i++ {
		l, err := Get(dir, "busy")
		if err != nil {
			failed = fmt.Errorf("lookup %d: %w", i, err)
			break
		}
		l.Close()
	}
	close(stop)
	assert.NilError(t, <-done)
	assert.NilError(t, failed)
}
