// The core files every non-root cgroup v2 has: cgroup.freeze,
// cgroup.events, cgroup.kill.

package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

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

// waitEmpty waits, at most timeout, until cgroup.events says
// "populated 0".
func (g *Group) waitEmpty(timeout time.Duration) {
	fd, err := unix.Open(filepath.Join(g.dir, "cgroup.events"), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		var buf [256]byte
		n, err := unix.Pread(fd, buf[:], 0)
		if err != nil || strings.Contains(string(buf[:n]), "populated 0") {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		unix.Poll(p, int(left/time.Millisecond)+1)
	}
}
