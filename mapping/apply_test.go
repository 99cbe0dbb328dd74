package mapping

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nsbox/nsbox/subid"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// startUserns starts "sleep" in a new user namespace with no maps yet.
func startUserns(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
			errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS) {
			t.Skipf("cannot create a user namespace here: %v", err)
		}
		t.Fatalf("start a process in a new user namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// normalize collapses the column padding of map files.
func normalize(s string) string {
	var lines []string
	for line := range strings.Lines(s) {
		if f := strings.Fields(line); len(f) > 0 {
			lines = append(lines, strings.Join(f, " "))
		}
	}
	return strings.Join(lines, "\n")
}

func readProc(t *testing.T, pid int, file string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	assert.NilError(t, err)
	return string(b)
}

// assertApplied compares the child's maps and setgroups with the plan.
func assertApplied(t *testing.T, pid int, p Plan) {
	t.Helper()
	assert.Equal(t, normalize(readProc(t, pid, "uid_map")), normalize(Format(p.UIDs)))
	assert.Equal(t, normalize(readProc(t, pid, "gid_map")), normalize(Format(p.GIDs)))
	want := "allow"
	if !p.SetgroupsAllowed() {
		want = "deny"
	}
	assert.Equal(t, strings.TrimSpace(readProc(t, pid, "setgroups")), want)
}

func TestApplyDirect(t *testing.T) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	type testCase struct {
		name      string
		req       Request
		setgroups bool
	}
	cases := []testCase{
		{name: "single", req: Request{UID: uid, GID: gid, Mode: Single}, setgroups: uid == 0},
		{name: "single root", req: Request{UID: uid, GID: gid, Mode: Single, Root: true}, setgroups: uid == 0},
		{name: "auto without subids", req: Request{UID: uid, GID: gid}, setgroups: uid == 0},
	}
	if uid == 0 {
		sub := []subid.Range{{Start: 200000, Count: 65536}}
		cases = append(cases,
			testCase{name: "host root", req: Request{HostRoot: true}, setgroups: true},
			// Two lines, written directly: proves the single write(2).
			testCase{name: "host root with subids", req: Request{HostRoot: true, SubUIDs: sub, SubGIDs: sub}, setgroups: true},
			testCase{name: "explicit, several extents", setgroups: true, req: Request{
				Users:  []Extent{{0, 100000, 10}, {10, 300000, 5}, {1000, 400000, 1}},
				Groups: []Extent{{0, 100000, 10}, {20, 300000, 5}},
			}},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(tc.req)
			assert.NilError(t, err)
			assert.Equal(t, p.SetgroupsAllowed(), tc.setgroups)
			assert.Equal(t, p.Privileged, uid == 0)
			pid := startUserns(t)
			assert.NilError(t, p.Apply(pid))
			assertApplied(t, pid, p)
			if uid != 0 {
				// An unprivileged caller maps just itself.
				inner := uid
				if tc.req.Root {
					inner = 0
				}
				assert.Equal(t, normalize(readProc(t, pid, "uid_map")), fmt.Sprintf("%d %d 1", inner, uid))
			}
		})
	}
}

// fakeHelpers writes newuidmap and newgidmap scripts that record their
// arguments, one a line, to NAME.args next to themselves and then run
// tail (shell code).
func fakeHelpers(t *testing.T, tail string) Helpers {
	t.Helper()
	dir := t.TempDir()
	body := `printf '%s\n' "$@" > "$0.args"` + "\n" + tail
	return Helpers{
		NewUIDMap: writeExe(t, dir, "newuidmap", body),
		NewGIDMap: writeExe(t, dir, "newgidmap", body),
	}
}

// recorded returns the arguments a fake helper got, space-separated, or
// "" if it did not run.
func recorded(t *testing.T, helper string) string {
	t.Helper()
	b, err := os.ReadFile(helper + ".args")
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	assert.NilError(t, err)
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestApplyFakeHelpers(t *testing.T) {
	ext := func(e ...Extent) []Extent { return e }
	for _, tc := range []struct {
		name             string
		uids, gids       []Extent
		wantUID, wantGID string // recorded arguments; "" = helper must not run
	}{
		{
			name:    "both multi",
			uids:    ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}),
			gids:    ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}, Extent{65537, 300000, 5}),
			wantUID: "4242 0 1000 1 1 100000 65536",
			wantGID: "4242 0 1000 1 1 100000 65536 65537 300000 5",
		},
		{
			name:    "single subordinate id still needs the helper",
			uids:    ext(Extent{0, 100000, 1}),
			gids:    ext(Extent{1000, 1000, 2}),
			wantUID: "4242 0 100000 1",
			wantGID: "4242 1000 1000 2",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHelpers(t, "exit 0\n")
			p := Plan{UIDs: tc.uids, GIDs: tc.gids, HostUID: 1000, HostGID: 1000, Helpers: h}
			assert.NilError(t, p.Apply(4242))
			assert.Equal(t, recorded(t, h.NewUIDMap), tc.wantUID)
			assert.Equal(t, recorded(t, h.NewGIDMap), tc.wantGID)
			assert.Assert(t, p.SetgroupsAllowed())
		})
	}

	t.Run("failing helper", func(t *testing.T) {
		h := fakeHelpers(t, "echo 'newuidmap: uid range [1-65537) -> [100000-165536) not allowed' >&2\necho '  second line  ' >&2\nexit 1\n")
		p := Plan{
			UIDs:    ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}),
			GIDs:    ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}),
			HostUID: 1000, HostGID: 1000, Helpers: h,
		}
		err := p.Apply(4242)
		assert.Error(t, err, h.NewUIDMap+" 4242 0 1000 1 1 100000 65536: exit status 1: "+
			"newuidmap: uid range [1-65537) -> [100000-165536) not allowed; second line; "+
			"fix: check that /etc/subuid grants you those outer ids (newuidmap allows only them and your own uid)")
		// Both helpers run concurrently; the uid map's failure is the one reported.
		assert.Equal(t, recorded(t, h.NewGIDMap), "4242 0 1000 1 1 100000 65536")
	})

	t.Run("failing helper, no stderr", func(t *testing.T) {
		h := fakeHelpers(t, "exit 3\n")
		p := Plan{UIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), GIDs: ext(Extent{5, 5, 1}), HostUID: 1000, HostGID: 5, Helpers: h}
		err := p.Apply(4242)
		assert.ErrorContains(t, err, h.NewUIDMap+" 4242 0 1000 1 1 100000 65536: exit status 3; fix: ")
		var he *HelperError
		assert.Assert(t, errors.As(err, &he))
		assert.Assert(t, he.Status.Exited())
		assert.Equal(t, he.Status.ExitStatus(), 3)
		assert.Equal(t, he.Stderr, "")
		assert.NilError(t, he.Err)
		assert.Assert(t, !he.GID)
	})

	t.Run("helper killed by a signal", func(t *testing.T) {
		h := fakeHelpers(t, "echo dying >&2; kill -9 $$\n")
		p := Plan{UIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), GIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), HostUID: 1000, HostGID: 1000, Helpers: h}
		err := p.Apply(4242)
		assert.Error(t, err, h.NewUIDMap+" 4242 0 1000 1 1 100000 65536: signal: killed: dying; "+
			"fix: check that /etc/subuid grants you those outer ids (newuidmap allows only them and your own uid)")
		var he *HelperError
		assert.Assert(t, errors.As(err, &he))
		assert.Assert(t, !he.GID && he.Status.Signaled() && he.Status.Signal() == syscall.SIGKILL)
	})

	t.Run("helper that cannot be executed", func(t *testing.T) {
		h := fakeHelpers(t, "exit 0\n")
		assert.NilError(t, os.Chmod(h.NewUIDMap, 0o644))
		p := Plan{UIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), GIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), HostUID: 1000, HostGID: 1000, Helpers: h}
		err := p.Apply(4242)
		assert.ErrorContains(t, err, h.NewUIDMap+" 4242 0 1000 1 1 100000 65536: fork/exec "+h.NewUIDMap+": permission denied; fix: ")
		assert.Assert(t, errors.Is(err, ErrHelperFailed))
		assert.Assert(t, errors.Is(err, syscall.EACCES))
		var he *HelperError
		assert.Assert(t, errors.As(err, &he))
		assert.Equal(t, he.Status, syscall.WaitStatus(0))
		// The other helper ran all the same.
		assert.Equal(t, recorded(t, h.NewGIDMap), "4242 0 1000 1 1 100000 65536")
	})

	t.Run("helper that floods its stderr", func(t *testing.T) {
		// Far more than a pipe holds: the helper must not block on it,
		// and only the first maxHelperStderr bytes are kept (then joined
		// into one line with "; ").
		h := fakeHelpers(t, "i=0; while [ $i -lt 3000 ]; do echo 'newuidmap: a line of forty bytes of complaint' >&2; i=$((i+1)); done; exit 1\n")
		p := Plan{UIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), GIDs: ext(Extent{5, 5, 1}), HostUID: 1000, HostGID: 5, Helpers: h}
		err := p.Apply(4242)
		var he *HelperError
		assert.Assert(t, errors.As(err, &he))
		assert.Equal(t, he.Status.ExitStatus(), 1)
		assert.Assert(t, len(he.Stderr) <= maxHelperStderr*5/4 && len(he.Stderr) > maxHelperStderr/2, "%d bytes", len(he.Stderr))
		assert.Assert(t, strings.HasPrefix(he.Stderr, "newuidmap: a line of forty bytes of complaint; newuidmap: "))
	})

	t.Run("helpers unusable", func(t *testing.T) {
		p := Plan{UIDs: ext(Extent{0, 1000, 1}, Extent{1, 100000, 65536}), GIDs: ext(Extent{5, 5, 1}), HostUID: 1000, HostGID: 5, Helpers: missing}
		err := p.Apply(4242)
		assert.Assert(t, errors.Is(err, ErrHelperUnusable))
		assert.Error(t, err, "write /proc/4242/uid_map: 0:1000:1,1:100000:65536 needs newuidmap, but "+missing.Problem)
	})
}

// TestApplyRetryAfterEPERM writes a child's maps, then applies again: the
// kernel refuses a second write with EPERM, and Apply must then fall back
// to the helpers when it has them.
func TestApplyRetryAfterEPERM(t *testing.T) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	p, err := NewPlan(Request{UID: uid, GID: gid, Mode: Single})
	assert.NilError(t, err)
	pid := startUserns(t)
	assert.NilError(t, p.Apply(pid))

	err = p.Apply(pid)
	assert.Assert(t, errors.Is(err, syscall.EPERM), "got %v", err)
	assert.Error(t, err, fmt.Sprintf("write /proc/%d/uid_map: operation not permitted", pid))

	p.Helpers = fakeHelpers(t, "exit 0\n")
	assert.NilError(t, p.Apply(pid))
	assert.Equal(t, recorded(t, p.Helpers.NewUIDMap), fmt.Sprintf("%d %s", pid, strings.TrimSpace(Format(p.UIDs))))
	assert.Equal(t, recorded(t, p.Helpers.NewGIDMap), fmt.Sprintf("%d %s", pid, strings.TrimSpace(Format(p.GIDs))))
	assertApplied(t, pid, p)

	// A helper that fails too: both causes are reported.
	p.Helpers = fakeHelpers(t, "echo nope >&2; exit 1\n")
	err = p.Apply(pid)
	assert.Assert(t, errors.Is(err, syscall.EPERM))
	assert.Assert(t, is.Contains(err.Error(), fmt.Sprintf("write /proc/%d/uid_map: operation not permitted; then %s %d ", pid, p.Helpers.NewUIDMap, pid)))
	assert.Assert(t, is.Contains(err.Error(), ": exit status 1: nope; fix: "))
}

func TestApplyNoSuchProcess(t *testing.T) {
	p, err := NewPlan(Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: Single})
	assert.NilError(t, err)
	err = p.Apply(999999999)
	assert.Assert(t, errors.Is(err, fs.ErrNotExist), "got %v", err)
	assert.Error(t, err, "write /proc/999999999/uid_map: no such file or directory")
}

func TestOneLine(t *testing.T) {
	assert.Equal(t, oneLine(""), "")
	assert.Equal(t, oneLine("  a\n\n b \r\nc\n"), "a; b; c")
}

func TestSingleAndFallbackNotice(t *testing.T) {
	p, err := NewPlan(Request{UID: 1000, GID: 50, SubUIDs: sub100k, SubGIDs: sub100k, Helpers: usable, Root: true})
	assert.NilError(t, err)
	assert.Assert(t, p.Fallback)
	q, ok := p.Single()
	assert.Assert(t, ok)
	assert.DeepEqual(t, q.UIDs, []Extent{{0, 1000, 1}})
	assert.DeepEqual(t, q.GIDs, []Extent{{0, 50, 1}})
	assert.Equal(t, q.UID, uint32(0))
	assert.Assert(t, !q.Fallback && q.Helpers == Helpers{})

	h := fakeHelpers(t, "echo 'newuidmap: open of uid_map failed: Permission denied' >&2\nexit 1\n")
	p.Helpers = h
	err = p.Apply(4242)
	assert.Assert(t, errors.Is(err, ErrHelperFailed))
	assert.Equal(t, p.FallbackNotice(err), "cannot map subordinate ids: newuidmap: open of uid_map failed: Permission denied; mapping only uid 1000 and gid 50 (Request.Mode Single silences this, Request.Mode Subids makes it an error)")
	p.Names = Names{Mode: "--map"}
	assert.Equal(t, p.FallbackNotice(err), "cannot map subordinate ids: newuidmap: open of uid_map failed: Permission denied; mapping only uid 1000 and gid 50 (--map single silences this, --map subids makes it an error)")

	// Real root has no single map of its own ids to fall back to.
	r, err := NewPlan(Request{UID: 0, GID: 0})
	assert.NilError(t, err)
	_, ok = r.Single()
	assert.Assert(t, !ok)
}

// Steps spells out what Apply does, for the replay: the caller's own id
// written directly (gid map after "deny"), more through the helpers.
func TestPlanSteps(t *testing.T) {
	own := Plan{UIDs: []Extent{{0, 1000, 1}}, GIDs: []Extent{{0, 1000, 1}}, HostUID: 1000, HostGID: 1000}
	u, g, ok := own.Steps()
	assert.Assert(t, ok)
	assert.DeepEqual(t, u, Step{Text: "0 1000 1\n"})
	assert.DeepEqual(t, g, Step{Text: "0 1000 1\n", DenySetgroups: true})
	subs := Plan{UIDs: []Extent{{0, 1000, 1}, {1, 100000, 65536}}, GIDs: []Extent{{0, 1000, 1}, {1, 100000, 65536}},
		HostUID: 1000, HostGID: 1000, Helpers: Helpers{NewUIDMap: "/usr/bin/newuidmap", NewGIDMap: "/usr/bin/newgidmap"}}
	u, g, ok = subs.Steps()
	assert.Assert(t, ok)
	assert.DeepEqual(t, u, Step{Helper: "/usr/bin/newuidmap", Args: []string{"0", "1000", "1", "1", "100000", "65536"}})
	assert.DeepEqual(t, g, Step{Helper: "/usr/bin/newgidmap", Args: []string{"0", "1000", "1", "1", "100000", "65536"}})
	subs.Helpers = Helpers{Problem: "newuidmap not found"}
	_, _, ok = subs.Steps()
	assert.Check(t, !ok)
}
