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
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// hierarchy is where the cgroup v2 hierarchy is mounted and which
// controllers are bound to cgroup v1 hierarchies, from mountinfo.
type hierarchy struct {
	mount string   // mount point of the v2 hierarchy; "" if none
	root  string   // the mount's root within it ("/" unless bind-mounted)
	v1    []string // controllers bound to v1 (super options of "cgroup" mounts)
}

// readHierarchy parses mountinfo (proc(5): ID PARENT MAJ:MIN ROOT POINT
// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS, octal escapes in
// paths). The first cgroup2 mount of the whole hierarchy wins.
func readHierarchy(mountinfo string) hierarchy {
	var h hierarchy
	for line := range strings.Lines(mountinfo) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		switch f[sep+1] {
		case "cgroup2":
			if h.mount == "" {
				h.mount, h.root = unescape(f[4]), unescape(f[3])
			}
		case "cgroup":
			for _, o := range strings.Split(f[sep+3], ",") {
				switch o {
				case "rw", "ro":
				default:
					if !strings.Contains(o, "=") {
						h.v1 = append(h.v1, o)
					}
				}
			}
		}
	}
	return h
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// v2Path maps a cgroup path as /proc/PID/cgroup shows it ("0::/a/b") to
// its directory under h's mount, or "" if the mount does not show it.
func (h hierarchy) v2Path(cg string) string {
	if h.mount == "" {
		return ""
	}
	rel, ok := strings.CutPrefix(cg, strings.TrimSuffix(h.root, "/"))
	if !ok || rel != "" && rel[0] != '/' {
		return ""
	}
	return filepath.Join(h.mount, rel)
}

// v2Of reads the v2 cgroup of process pid ("self" for the caller) from
// /proc/PID/cgroup, as a path in the caller's cgroup namespace.
func v2Of(pid string) (string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("read /proc/%s/cgroup: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("/proc/%s/cgroup has no cgroup v2 line", pid)
}

func loadHierarchy() (hierarchy, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return hierarchy{}, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	h := readHierarchy(string(b))
	if h.mount == "" {
		return h, errors.New("this host has no cgroup v2 hierarchy mounted (cgroup v1 only); fix: boot with systemd.unified_cgroup_hierarchy=1 and run nsbox in a systemd user session")
	}
	return h, nil
}

// Delegated returns the caller's cgroup v2 directory when the caller may
// create child cgroups in it and move processes into them, or an error
// naming why not and the fix. It works wherever the v2 hierarchy is
// mounted (pure v2 or hybrid).
func Delegated() (string, error) {
	h, err := loadHierarchy()
	if err != nil {
		return "", err
	}
	cg, err := v2Of("self")
	if err != nil {
		return "", err
	}
	path := h.v2Path(cg)
	if path == "" {
		return "", fmt.Errorf("your cgroup %s is outside the cgroup v2 mount at %s; fix: run nsbox where the cgroup v2 hierarchy is mounted whole", cg, h.mount)
	}
	if unix.Access(path, unix.W_OK) != nil || unix.Access(filepath.Join(path, "cgroup.procs"), unix.W_OK) != nil {
		return "", fmt.Errorf("your cgroup %s is not delegated to you; fix: run nsbox in a delegated systemd scope, e.g. systemd-run --user --scope -p Delegate=yes nsbox run …", path)
	}
	return path, nil
}

// Check returns the delegated cgroup (see [Delegated]) under which a
// sandbox may have a cgroup with the controllers ctrl, or an error naming
// what is missing and the fix: a controller bound to cgroup v1 (a hybrid
// host, where no v2 cgroup has it), one the kernel lacks, or one not
// delegated to the caller.
func Check(ctrl []string) (string, error) {
	h, err := loadHierarchy()
	if err != nil {
		return "", err
	}
	root := filepath.Join(h.mount, "cgroup.controllers")
	if h.root != "/" {
		root = "" // the hierarchy's root is not in view: skip to delegation
	}
	if root != "" {
		have, _ := os.ReadFile(root)
		for _, c := range ctrl {
			if hasWord(string(have), c) {
				continue
			}
			if slices.Contains(h.v1, c) {
				return "", fmt.Errorf("the %s controller is bound to cgroup v1 on this host (hybrid layout), so the cgroup v2 hierarchy at %s cannot limit it; fix: boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 only), or leave the limit out", c, h.mount)
			}
			return "", fmt.Errorf("the kernel offers no %s controller in cgroup v2 (%s lists %q); fix: use a kernel with it, or leave the limit out", c, root, strings.TrimSpace(string(have)))
		}
	}
	parent, err := Delegated()
	if err != nil {
		return "", err
	}
	have, _ := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
	for _, c := range ctrl {
		if !hasWord(string(have), c) {
			return "", fmt.Errorf("your cgroup %s was not given the %s controller; fix: run nsbox in a scope with it delegated, e.g. systemd-run --user --scope -p Delegate=yes nsbox run …", parent, c)
		}
	}
	return parent, nil
}

// hasWord reports whether the space-separated list s holds w.
func hasWord(s, w string) bool {
	return slices.Contains(strings.Fields(s), w)
}

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
		return fmt.Errorf("move the process into the sandbox's cgroup %s: %w", leaf, err)
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

// Freeze sets cgroup.freeze to 1 and waits, at most timeout, until
// cgroup.events says "frozen 1": every process below is frozen (it runs
// no code, user or kernel, until thawed; a fatal signal still kills it).
// It waits on poll(2), woken by each change of cgroup.events.
func (g *Group) Freeze(timeout time.Duration) error {
	events := filepath.Join(g.dir, "cgroup.events")
	fd, err := unix.Open(events, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", events, err)
	}
	defer unix.Close(fd)
	if err := writeFile(filepath.Join(g.dir, "cgroup.freeze"), "1"); err != nil {
		return fmt.Errorf("freeze the sandbox's cgroup: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		// The read re-arms poll: it wakes only for a change after it.
		frozen, err := readFrozen(fd)
		if err != nil {
			return fmt.Errorf("read %s: %w", events, err)
		}
		if frozen {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("the processes of the sandbox's cgroup %s did not all freeze within %v", g.dir, timeout)
		}
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		if _, err := unix.Poll(p, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return fmt.Errorf("wait on %s: %w", events, err)
		}
	}
}

// Thaw sets cgroup.freeze to 0: the processes run again (unless an
// ancestor cgroup is frozen too).
func (g *Group) Thaw() error {
	if err := writeFile(filepath.Join(g.dir, "cgroup.freeze"), "0"); err != nil {
		return fmt.Errorf("thaw the sandbox's cgroup: %w", err)
	}
	return nil
}

// Frozen reports whether cgroup.events says "frozen 1".
func (g *Group) Frozen() (bool, error) {
	fd, err := unix.Open(filepath.Join(g.dir, "cgroup.events"), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, fmt.Errorf("the sandbox's cgroup: %w", err)
	}
	defer unix.Close(fd)
	return readFrozen(fd)
}

// readFrozen reads cgroup.events from fd ("populated 1\nfrozen 0\n",
// written by the kernel) and returns the frozen key.
func readFrozen(fd int) (bool, error) {
	var buf [256]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(buf[:n])))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "frozen" {
			return v == "1", nil
		}
	}
	return false, errors.New("cgroup.events has no frozen key (kernel before 5.2)")
}

// Kill writes 1 to cgroup.kill: SIGKILL to every process below, at once,
// frozen or not, also to one that left the PID tree a walk from PID 1
// would follow. A kernel before 5.14 has no cgroup.kill (ENOENT).
func (g *Group) Kill() error {
	if err := writeFile(filepath.Join(g.dir, "cgroup.kill"), "1"); err != nil {
		return fmt.Errorf("kill the sandbox's cgroup: %w", err)
	}
	return nil
}

// Remove deletes the group, its leaf and whatever cgroups the sandbox
// made below it (at most maxDepth deep, maxDescendants in all: New set
// those bounds), walking by descriptor. The kernel refuses to remove a
// cgroup that holds processes: call it once PID 1 is reaped (every
// process of a PID namespace has exited by then). It does nothing on a
// nil group.
func (g *Group) Remove() {
	if g == nil {
		return
	}
	parent, err := unix.Open(filepath.Dir(g.dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(parent)
	removeTree(parent, filepath.Base(g.dir), maxDepth)
}

// removeTree removes the cgroup name under the directory fd dirfd, its
// children first, descending at most depth levels.
func removeTree(dirfd int, name string, depth int) {
	if unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) == nil || depth == 0 {
		return
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(fd), name)
	ents, _ := d.ReadDir(maxDescendants + 64) // cgroup files and child cgroups
	for _, e := range ents {
		if e.IsDir() {
			removeTree(fd, e.Name(), depth-1)
		}
	}
	d.Close()
	unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
