package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestLimitFiles(t *testing.T) {
	l := Limits{Memory: 64 << 20, PIDs: 10, CPUs: 1.5}
	assert.Check(t, is.DeepEqual(l.Controllers(), []string{"memory", "pids", "cpu"}))
	assert.Check(t, is.DeepEqual(l.files(), [][2]string{
		{"memory.max", "67108864"}, {"memory.swap.max", "0"}, {"pids.max", "10"}, {"cpu.max", "150000 100000"},
	}))
	assert.Check(t, is.DeepEqual(Limits{CPUs: 0.001}.files(), [][2]string{{"cpu.max", "1000 100000"}}))
	assert.Check(t, is.Len(Limits{}.Controllers(), 0))
}

// TestReadHierarchy: the v2 mount is found wherever it is, and the
// controllers bound to v1 are named.
func TestReadHierarchy(t *testing.T) {
	hybrid := `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	h := readHierarchy(hybrid)
	assert.Check(t, is.Equal(h.mount, "/sys/fs/cgroup/unified"))
	assert.Check(t, is.DeepEqual(h.v1, []string{"cpu", "memory", "pids", "xattr"}))
	assert.Check(t, is.Equal(h.v2Path("/a/b"), "/sys/fs/cgroup/unified/a/b"))

	pure := readHierarchy("25 1 0:23 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n")
	assert.Check(t, is.Equal(pure.mount, "/sys/fs/cgroup"))
	assert.Check(t, is.Len(pure.v1, 0))
	assert.Check(t, is.Equal(pure.v2Path("/"), "/sys/fs/cgroup"))

	// A bind of part of the hierarchy shows only what is below its root.
	part := readHierarchy("25 1 0:23 /user.slice /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n")
	assert.Check(t, is.Equal(part.mount, "/mnt/my cg"))
	assert.Check(t, is.Equal(part.v2Path("/user.slice/x"), "/mnt/my cg/x"))
	assert.Check(t, is.Equal(part.v2Path("/user.slicer"), ""))
	assert.Check(t, is.Equal(part.v2Path("/system.slice"), ""))

	none := readHierarchy(strings.Split(hybrid, "\n40 ")[0] + "\n")
	assert.Check(t, is.Equal(none.mount, ""))
	assert.Check(t, is.Equal(none.v2Path("/"), ""))
	// Short or malformed lines are skipped.
	assert.Check(t, is.Equal(readHierarchy("1 2 3\n- cgroup2\n").mount, ""))
}

// FuzzReadHierarchy: any mountinfo text parses without a panic.
func FuzzReadHierarchy(f *testing.F) {
	f.Add("40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
	f.Add("31 30 0:28 / /a\\0 rw - cgroup cgroup rw,cpu\n")
	f.Fuzz(func(t *testing.T, s string) {
		h := readHierarchy(s)
		h.v2Path("/x")
	})
}

// writableHierarchy returns the cgroup v2 directory of this process if
// it may create cgroups there (root, or a delegated cgroup), skipping
// the test otherwise: these tests use the kernel's cgroupfs, not a stand-in.
func writableHierarchy(t *testing.T) string {
	dir, err := Delegated()
	if err != nil {
		t.Skipf("no delegated cgroup v2 here: %v", err)
	}
	return dir
}

// TestGroupFreezeKill: a group with no limits (no controller) is made,
// takes a process into its leaf, freezes, thaws, kills, and is removed
// with what was made below its leaf.
func TestGroupFreezeKill(t *testing.T) {
	parent := writableHierarchy(t)
	g, err := New(Limits{}, parent)
	assert.NilError(t, err)
	defer g.Remove()
	assert.Check(t, strings.HasPrefix(g.Dir(), filepath.Join(parent, "nsbox-"+strconv.Itoa(os.Getpid())+"-")), g.Dir())
	b, _ := os.ReadFile(filepath.Join(g.Dir(), "cgroup.max.depth"))
	assert.Check(t, is.Equal(strings.TrimSpace(string(b)), strconv.Itoa(maxDepth)))

	cmd := exec.Command("sleep", "60")
	assert.NilError(t, cmd.Start())
	defer cmd.Process.Kill()
	assert.NilError(t, g.Add(cmd.Process.Pid))
	in, err := g.Holds(cmd.Process.Pid)
	assert.NilError(t, err)
	assert.Check(t, in)
	own, err := OwnOf(cmd.Process.Pid)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(own, g.Dir()))
	in, err = g.Holds(os.Getpid())
	assert.NilError(t, err)
	assert.Check(t, !in)

	assert.NilError(t, g.Freeze(5*time.Second))
	frozen, err := g.Frozen()
	assert.NilError(t, err)
	assert.Check(t, frozen)
	assert.NilError(t, g.Thaw())
	frozen, err = g.Frozen()
	assert.NilError(t, err)
	assert.Check(t, !frozen)

	// Kill reaches a frozen process.
	assert.NilError(t, g.Freeze(5*time.Second))
	assert.NilError(t, g.Kill())
	err = cmd.Wait()
	assert.Check(t, err != nil && strings.Contains(err.Error(), "killed"), "%v", err)

	// Remove takes a cgroup made below the leaf (as root inside could),
	// and kills what is still in the group (a sandbox sharing the
	// caller's PID namespace leaves processes behind its PID 1).
	assert.NilError(t, os.Mkdir(filepath.Join(g.Dir(), LeafName, "inner"), 0o755))
	left := exec.Command("sleep", "60")
	assert.NilError(t, left.Start())
	defer left.Process.Kill()
	assert.NilError(t, g.Add(left.Process.Pid))
	go left.Wait() // reaped as it is killed
	g.Remove()
	_, err = os.Stat(g.Dir())
	assert.Check(t, os.IsNotExist(err), "group %s left behind", g.Dir())
}

// TestSweep: New removes the empty cgroups of launchers that are gone.
func TestSweep(t *testing.T) {
	parent := writableHierarchy(t)
	stale := filepath.Join(parent, "nsbox-999999999-1") // above pid_max
	assert.NilError(t, os.Mkdir(stale, 0o755))
	assert.NilError(t, os.Mkdir(filepath.Join(stale, LeafName), 0o755))
	mine := filepath.Join(parent, "nsbox-"+strconv.Itoa(os.Getpid())+"-999999")
	assert.NilError(t, os.Mkdir(mine, 0o755))
	defer os.Remove(mine)
	g, err := New(Limits{}, parent)
	assert.NilError(t, err)
	defer g.Remove()
	_, err = os.Stat(stale)
	assert.Check(t, os.IsNotExist(err), "%s not swept", stale)
	_, err = os.Stat(mine)
	assert.Check(t, err == nil, "a live launcher's cgroup was swept")
}

// TestOpenRefusesNonCgroup: Open takes only a cgroup v2 directory with a
// leaf, never a directory a record merely names.
func TestOpenRefusesNonCgroup(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Mkdir(filepath.Join(dir, LeafName), 0o755))
	_, err := Open(dir)
	assert.ErrorContains(t, err, "not on a cgroup v2 filesystem")
	_, err = Open(filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "no such file")
}
