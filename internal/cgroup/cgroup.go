// Package cgroup gives a sandbox a cgroup v2 of its own: one that bounds
// its memory, process count and CPU time, that freezes all of it at once
// (nsbox pause) and that kills all of it at once.
//
// A sandbox with limits, or one that asks for a cgroup of its own, gets a
// cgroup nsbox-<launcher pid>-<n> under the caller's delegated cgroup
// ([Delegated]) and, inside it, the leaf "sandbox" that holds its
// processes:
//
//	<delegated>/nsbox-1234-1/           limits, cgroup.freeze, cgroup.kill
//	<delegated>/nsbox-1234-1/sandbox/   the sandbox's processes; root of its
//	                                    cgroup namespace
//
// [New] creates both with the limits set; the launcher moves the sandbox's
// first process into the leaf with [Group.Add] before that process creates
// anything (its cgroup namespace included), so PID 1 and every process of
// the sandbox are born inside it; [Group.Remove] deletes both once PID 1
// is reaped. A nil *Group stands for "no cgroup of its own": Add and
// Remove do nothing.
//
// Why two levels: nsbox creates these directories as the caller, so every
// file in them belongs to the caller's uid, which is root inside the
// sandbox. Root inside may make a cgroup namespace of its own and mount
// cgroup2 (both allowed in a user namespace); the mount's root is then its
// own cgroup, whose files it owns. Were the limits and the freezer in
// that cgroup, it could raise memory.max or write cgroup.freeze. They are
// one level up, out of its view: it can only reach the leaf, and a leaf's
// own memory.max or cgroup.freeze does not lift its parent's (the kernel
// applies the strictest limit, and a cgroup is frozen while any ancestor
// is). Nor can it move a process out to the delegated cgroup: that needs
// a writable path to that cgroup's cgroup.procs, and the only cgroup2 it
// can see writable is the one it mounted, rooted at its leaf (host views
// of /sys/fs/cgroup are read-only mounts).
//
// The package relies on these rules of cgroup v2
// (Documentation/admin-guide/cgroup-v2.rst in the kernel tree):
//
//   - Where: the v2 hierarchy is mounted at /sys/fs/cgroup on a pure v2
//     host, at /sys/fs/cgroup/unified on a hybrid one (v1 controllers
//     beside it), or elsewhere; [Delegated] finds it in
//     /proc/self/mountinfo.
//   - Delegation: an unprivileged user may create child cgroups only in a
//     cgroup whose directory and cgroup.procs it may write, which systemd
//     grants to a user session's scopes and services with Delegate=yes
//     (it chowns the directory, cgroup.procs, cgroup.subtree_control and
//     cgroup.threads). [Delegated] checks this and names the fix.
//   - Controllers: a child's limit files (memory.max, pids.max, cpu.max)
//     exist only once the parent lists the controller ("+memory") in its
//     cgroup.subtree_control, and a controller bound to a cgroup v1
//     hierarchy (a hybrid host) is in no v2 cgroup at all. [Check] tells
//     these apart; [New] enables the missing ones in the parent.
//   - No internal processes: a cgroup other than the root may not both hold
//     processes and hand controllers to its children; the write to
//     cgroup.subtree_control then fails with EBUSY. That happens when the
//     caller's cgroup holds the launcher itself (systemd-run --user --scope):
//     the launcher then moves itself into a leaf of its own,
//     nsbox-launcher-<pid>, and tries again, as crun and podman do.
//   - Core files: cgroup.freeze, cgroup.events ("frozen 1" once every
//     process below is frozen; a change wakes poll(2) with POLLPRI) and
//     cgroup.kill (Linux 5.14) are in every non-root cgroup and need no
//     controller, so the freezer works on a hybrid host too.
//
// memory.swap.max is set to 0 with a memory limit so the limit is not
// escaped by swapping; a kernel without swap accounting has no such file,
// and that is not an error.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Limits are the bounds a cgroup enforces. Zero means no limit.
type Limits struct {
	Memory int64   // bytes, memory.max (and memory.swap.max 0)
	PIDs   int64   // processes and threads, pids.max
	CPUs   float64 // cores, fractional, cpu.max; the caller checks the range
}

// Controllers lists the cgroup v2 controllers the limits need, none when
// there are no limits.
func (l Limits) Controllers() []string {
	var c []string
	if l.Memory > 0 {
		c = append(c, "memory")
	}
	if l.PIDs > 0 {
		c = append(c, "pids")
	}
	if l.CPUs > 0 {
		c = append(c, "cpu")
	}
	return c
}

// files renders the limits as the cgroup files to write, in order.
func (l Limits) files() [][2]string {
	var f [][2]string
	if l.Memory > 0 {
		f = append(f, [2]string{"memory.max", strconv.FormatInt(l.Memory, 10)}, [2]string{"memory.swap.max", "0"})
	}
	if l.PIDs > 0 {
		f = append(f, [2]string{"pids.max", strconv.FormatInt(l.PIDs, 10)})
	}
	if l.CPUs > 0 {
		const period = 100000
		quota := int64(l.CPUs*period + 0.5)
		// The kernel refuses a quota below 1 ms per period.
		f = append(f, [2]string{"cpu.max", fmt.Sprintf("%d %d", max(quota, 1000), period)})
	}
	return f
}

// LeafName is the name of the leaf cgroup that holds a sandbox's
// processes, below the cgroup that holds its limits and freezer.
const LeafName = "sandbox"

// Bounds on what a sandbox may create below its leaf, so that Remove's
// walk stays short: depth counts from the sandbox's cgroup (the leaf is
// 1), descendants include the leaf.
const (
	maxDepth       = 8
	maxDescendants = 256
)

// seq numbers the groups this process creates.
var seq atomic.Uint64

// Group is one sandbox's cgroup. A nil *Group is valid and stands for no
// cgroup of its own.
type Group struct {
	dir string // the sandbox's cgroup; its processes are in dir/LeafName
}

// New creates a cgroup for one sandbox under parent, a delegated cgroup
// directory (see [Check]), with the limits written to it, and its leaf.
// It enables the controllers the limits need in parent, moving the
// calling process into a leaf of parent first if parent holds it ("no
// internal processes"). On failure it leaves nothing behind.
func New(l Limits, parent string) (*Group, error) {
	if ctrl := l.Controllers(); len(ctrl) > 0 {
		if err := enableControllers(parent, ctrl); err != nil {
			return nil, err
		}
	}
	sweep(parent)
	// One cgroup per sandbox, not per launcher: a program that embeds
	// nsbox may run several at once, and each Wait removes its own.
	dir := filepath.Join(parent, fmt.Sprintf("nsbox-%d-%d", os.Getpid(), seq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the sandbox's cgroup %s: %w", dir, err)
	}
	g := &Group{dir: dir}
	files := append(l.files(), [2]string{"cgroup.max.depth", strconv.Itoa(maxDepth)},
		[2]string{"cgroup.max.descendants", strconv.Itoa(maxDescendants)})
	for _, kv := range files {
		err := writeFile(filepath.Join(dir, kv[0]), kv[1])
		if err != nil && !(kv[0] == "memory.swap.max" && errors.Is(err, os.ErrNotExist)) {
			g.Remove()
			return nil, fmt.Errorf("set %s to %s in %s: %w", kv[0], kv[1], dir, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, LeafName), 0o755); err != nil {
		g.Remove()
		return nil, fmt.Errorf("create the sandbox's cgroup %s: %w", filepath.Join(dir, LeafName), err)
	}
	return g, nil
}

// enableControllers hands ctrl to parent's children, moving the calling
// process into a leaf first if parent holds it.
func enableControllers(parent string, ctrl []string) error {
	have, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	var missing []string
	for _, c := range ctrl {
		if !hasWord(string(have), c) {
			missing = append(missing, "+"+c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	write := func() error {
		return writeFile(filepath.Join(parent, "cgroup.subtree_control"), strings.Join(missing, " "))
	}
	err := write()
	if errors.Is(err, unix.EBUSY) {
		leaf := filepath.Join(parent, "nsbox-launcher-"+strconv.Itoa(os.Getpid()))
		if err = os.Mkdir(leaf, 0o755); err == nil || errors.Is(err, os.ErrExist) {
			if err = writeFile(filepath.Join(leaf, "cgroup.procs"), "0"); err == nil {
				err = write()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("enable the %s controllers in %s: %w; fix: run nsbox in a cgroup of its own with them delegated, e.g. systemd-run --user --scope -p Delegate=yes nsbox run …",
			strings.Join(ctrl, ", "), parent, err)
	}
	return nil
}

// writeFile writes s to the existing cgroup file path in one write(2),
// as the kernel wants (no O_CREAT, no buffering; cgroupfs has no
// symlinks, O_NOFOLLOW says so).
func writeFile(path, s string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(s)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// Open returns the Group of the sandbox cgroup dir, as [Group.Dir]
// named it (a state record, sandbox.Target.Cgroup), after checking that
// it is a cgroup v2 directory with its leaf.
func Open(dir string) (*Group, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(dir, LeafName), &st); err != nil {
		return nil, fmt.Errorf("the sandbox's cgroup %s: %w", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("the sandbox's cgroup %s is not on a cgroup v2 filesystem", dir)
	}
	return &Group{dir: filepath.Clean(dir)}, nil
}

// OwnOf returns the sandbox cgroup (see [Group.Dir]) whose leaf holds
// process pid, or "" if pid's cgroup is no leaf named [LeafName]. Ask it
// only while nothing of the sandbox's own runs (before its command is
// executed): root inside may later move its processes to cgroups below
// the leaf.
func OwnOf(pid int) (string, error) {
	h, err := loadHierarchy()
	if err != nil {
		return "", err
	}
	cg, err := v2Of(strconv.Itoa(pid))
	if err != nil {
		return "", err
	}
	path := h.v2Path(cg)
	if path == "" || filepath.Base(path) != LeafName {
		return "", nil
	}
	return filepath.Dir(path), nil
}

// Dir is the sandbox's cgroup directory (the leaf's parent), "" for nil.
func (g *Group) Dir() string {
	if g == nil {
		return ""
	}
	return g.dir
}

// Add moves process pid into the group's leaf; on a nil group it does
// nothing.
func (g *Group) Add(pid int) error {
	if g == nil {
		return nil
	}
	leaf := filepath.Join(g.dir, LeafName)
	if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("move pid %d into the sandbox's cgroup: %w", pid, err)
	}
	return nil
}

// Holds reports whether process pid is in the group: in its leaf or in
// a cgroup below it.
func (g *Group) Holds(pid int) (bool, error) {
	h, err := loadHierarchy()
	if err != nil {
		return false, err
	}
	cg, err := v2Of(strconv.Itoa(pid))
	if err != nil {
		return false, err
	}
	path := h.v2Path(cg)
	leaf := filepath.Join(g.dir, LeafName)
	return path == leaf || strings.HasPrefix(path, leaf+"/"), nil
}

// Remove deletes the group, its leaf and whatever cgroups the sandbox
// made below it (at most maxDepth deep, maxDescendants in all: New set
// those bounds), walking by descriptor. Call it once PID 1 is reaped:
// every process of a PID namespace has exited by then, but a sandbox that
// shares the caller's PID namespace may leave processes, which the
// kernel's rule (no removing a cgroup that holds processes) would make
// outlive it; Remove kills them (cgroup.kill) and waits, at most a
// second, for them to leave. It does nothing on a nil group.
func (g *Group) Remove() {
	if g == nil {
		return
	}
	parent, err := unix.Open(filepath.Dir(g.dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(parent)
	if removeTree(parent, filepath.Base(g.dir), maxDepth) {
		return
	}
	if g.Kill() == nil {
		g.waitEmpty(time.Second)
		removeTree(parent, filepath.Base(g.dir), maxDepth)
	}
}

// sweep removes the empty cgroups that launchers which died without
// removing theirs (SIGKILL) left in parent: nsbox-PID-N and
// nsbox-launcher-PID whose PID is gone. One whose PID now names another
// process is left for later.
func sweep(parent string) {
	fd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(fd), parent)
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, "nsbox-")
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "launcher-")
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		removeTree(fd, name, maxDepth)
	}
}

// removeTree removes the cgroup name under the directory fd dirfd, its
// children first, descending at most depth levels, and reports whether
// it is gone.
func removeTree(dirfd int, name string, depth int) bool {
	if unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) == nil {
		return true
	}
	if depth == 0 {
		return false
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	d := os.NewFile(uintptr(fd), name)
	ents, _ := d.ReadDir(maxDescendants + 64) // cgroup files and child cgroups
	for _, e := range ents {
		if e.IsDir() {
			removeTree(fd, e.Name(), depth-1)
		}
	}
	d.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) == nil
}
