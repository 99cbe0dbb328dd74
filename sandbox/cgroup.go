package sandbox

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

// A sandbox with --memory, --pids or --cpus gets a cgroup v2 of its own,
// nsbox-<launcher pid>-<n>, under the caller's delegated cgroup: the stage is
// moved into it before it creates anything, so PID 1 and every process of
// the sandbox are born inside it, and it is removed once PID 1 is reaped.
//
// cgroup v2 forbids a cgroup to hold processes and also hand controllers
// to its children ("no internal processes"). When the caller's cgroup
// holds the launcher (a systemd-run --user --scope), enabling the
// controllers fails with EBUSY; the launcher then moves itself into a leaf
// of its own, nsbox-launcher-<pid>, and tries again, as crun and podman do.

// cgroupSeq numbers the sandboxes this process limits.
var cgroupSeq atomic.Uint64

// limitCgroup is one sandbox's cgroup.
type limitCgroup struct {
	dir string
}

// controllersFor lists the cgroup v2 controllers the limits need.
func controllersFor(l *Limits) []string {
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

// limitFiles renders the limits as the cgroup files to write.
func limitFiles(l *Limits) [][2]string {
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
		f = append(f, [2]string{"cpu.max", fmt.Sprintf("%d %d", max(quota, 1000), period)})
	}
	return f
}

// cgroup creates the sandbox's cgroup when the limits ask for one.
func (l *Limits) cgroup() (*limitCgroup, error) {
	if len(controllersFor(l)) == 0 {
		return nil, nil
	}
	parent, err := DelegatedCgroup()
	if err != nil {
		return nil, fmt.Errorf("--memory, --pids, --cpus: %w", err)
	}
	return newLimitCgroup(l, parent)
}

// newLimitCgroup creates the sandbox's cgroup under parent with the
// limits set, or returns nil when there are none.
func newLimitCgroup(l *Limits, parent string) (*limitCgroup, error) {
	ctrl := controllersFor(l)
	if len(ctrl) == 0 {
		return nil, nil
	}
	if err := enableControllers(parent, ctrl); err != nil {
		return nil, err
	}
	// One cgroup per sandbox, not per launcher: a program that embeds
	// the package may run several at once, and each Wait removes its own.
	dir := filepath.Join(parent, fmt.Sprintf("nsbox-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the sandbox's cgroup %s: %w", dir, err)
	}
	cg := &limitCgroup{dir: dir}
	for _, kv := range limitFiles(l) {
		err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0)
		if err != nil && !(kv[0] == "memory.swap.max" && errors.Is(err, os.ErrNotExist)) {
			cg.remove()
			return nil, fmt.Errorf("set %s to %s in %s: %w", kv[0], kv[1], dir, err)
		}
	}
	return cg, nil
}

// enableControllers hands ctrl to parent's children, moving the launcher
// into a leaf first if parent holds it.
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

// add moves process pid into the cgroup.
func (cg *limitCgroup) add(pid int) error {
	if cg == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move the sandbox into its cgroup %s: %w", cg.dir, err)
	}
	return nil
}

// remove deletes the cgroup; it must be empty (PID 1 reaped).
func (cg *limitCgroup) remove() {
	if cg != nil {
		unix.Rmdir(cg.dir)
	}
}
