// Package cgroup gives a sandbox a cgroup v2 of its own that bounds its
// memory, process count and CPU time.
//
// A sandbox with limits gets a cgroup nsbox-<launcher pid>-<n> under the
// caller's delegated cgroup ([Delegated]). [New] creates it with the limits
// set; the launcher moves the sandbox's first process into it with
// [Group.Add] before that process creates anything, so PID 1 and every
// process of the sandbox are born inside it; [Group.Remove] deletes it once
// PID 1 is reaped. A nil *Group stands for "no limits": Add and Remove do
// nothing.
//
// The package relies on three rules of cgroup v2
// (Documentation/admin-guide/cgroup-v2.rst in the kernel tree):
//
//   - Delegation: an unprivileged user may create child cgroups only in a
//     cgroup whose directory and cgroup.subtree_control it may write, which
//     systemd grants to a user session's scopes and services with
//     Delegate=yes. [Delegated] checks this and names the fix when it fails.
//   - Controllers: a child's limit files (memory.max, pids.max, cpu.max)
//     exist only once the parent lists the controller ("+memory") in its
//     cgroup.subtree_control. [New] enables the missing ones in the parent.
//   - No internal processes: a cgroup other than the root may not both hold
//     processes and hand controllers to its children; the write to
//     cgroup.subtree_control then fails with EBUSY. That happens when the
//     caller's cgroup holds the launcher itself (systemd-run --user --scope):
//     the launcher then moves itself into a leaf of its own,
//     nsbox-launcher-<pid>, and tries again, as crun and podman do.
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

// Delegated returns the caller's cgroup v2 directory when the caller may
// create child cgroups in it, or an error naming why not and the fix.
func Delegated() (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return "", fmt.Errorf("/sys/fs/cgroup is not cgroup v2 (this host uses cgroup v1 or the hybrid layout); fix: boot with systemd.unified_cgroup_hierarchy=1 and run nsbox in a systemd user session")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	var path string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = filepath.Join("/sys/fs/cgroup", p)
		}
	}
	if path == "" || unix.Access(path, unix.W_OK) != nil || unix.Access(filepath.Join(path, "cgroup.subtree_control"), unix.W_OK) != nil {
		return "", fmt.Errorf("your cgroup %s is not delegated to you; fix: run nsbox in a delegated systemd scope, e.g. systemd-run --user --scope -p Delegate=yes nsbox run …", path)
	}
	return path, nil
}

// seq numbers the groups this process creates.
var seq atomic.Uint64

// Group is one sandbox's cgroup. A nil *Group is valid and stands for no
// limits.
type Group struct {
	dir string
}

// New creates a cgroup for one sandbox under parent, a delegated cgroup
// directory (see [Delegated]), with the limits written to it. It returns
// nil and no error when the limits are all zero. It enables the
// controllers the limits need in parent, moving the calling process into
// a leaf of parent first if parent holds it ("no internal processes").
func New(l Limits, parent string) (*Group, error) {
	ctrl := l.Controllers()
	if len(ctrl) == 0 {
		return nil, nil
	}
	if err := enableControllers(parent, ctrl); err != nil {
		return nil, err
	}
	// One cgroup per sandbox, not per launcher: a program that embeds
	// nsbox may run several at once, and each Wait removes its own.
	dir := filepath.Join(parent, fmt.Sprintf("nsbox-%d-%d", os.Getpid(), seq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the sandbox's cgroup %s: %w", dir, err)
	}
	g := &Group{dir: dir}
	for _, kv := range l.files() {
		err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0)
		if err != nil && !(kv[0] == "memory.swap.max" && errors.Is(err, os.ErrNotExist)) {
			g.Remove()
			return nil, fmt.Errorf("set %s to %s in %s: %w", kv[0], kv[1], dir, err)
		}
	}
	return g, nil
}

// enableControllers hands ctrl to parent's children, moving the calling
// process into a leaf first if parent holds it.
func enableControllers(parent string, ctrl []string) error {
	have, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	var missing []string
	for _, c := range ctrl {
		if !strings.Contains(" "+strings.TrimSpace(string(have))+" ", " "+c+" ") {
			missing = append(missing, "+"+c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	write := func() error {
		return os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte(strings.Join(missing, " ")), 0)
	}
	err := write()
	if errors.Is(err, unix.EBUSY) {
		leaf := filepath.Join(parent, "nsbox-launcher-"+strconv.Itoa(os.Getpid()))
		if err = os.Mkdir(leaf, 0o755); err == nil || errors.Is(err, os.ErrExist) {
			if err = os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte("0"), 0); err == nil {
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

// Add moves process pid into the group; on a nil group it does nothing.
func (g *Group) Add(pid int) error {
	if g == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move the sandbox into its cgroup %s: %w", g.dir, err)
	}
	return nil
}

// Remove deletes the group, which must be empty by then (PID 1 reaped:
// the kernel refuses to remove a cgroup that holds processes). It does
// nothing on a nil group.
func (g *Group) Remove() {
	if g != nil {
		unix.Rmdir(g.dir)
	}
}
