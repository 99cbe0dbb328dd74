package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// The live commands act on a running sandbox (sandbox/live.go): mount,
// umount, cp, pause, resume, connect.

// liveUsage is the help of the live commands.
func liveUsage(cmd string) string {
	switch cmd {
	case "mount":
		return `Usage: nsbox mount NAME SRC DEST [--ro] [--mkdir]

Makes the host file or directory SRC appear at DEST inside the running
sandbox NAME, nosuid and nodev. DEST is resolved inside the sandbox: a
symlink there cannot redirect it. The mount is locked like the sandbox's
own: root inside can neither make a --ro mount writable nor unmount it.
nsbox umount removes it; nsbox inspect lists what was added.

Flags:
` + newLiveMountFlags().FlagUsages() + `
Example:
  nsbox mount b ~/data /mnt/data --ro --mkdir
`
	case "umount":
		return `Usage: nsbox umount NAME DEST

Removes the mount nsbox mount added at DEST in the running sandbox NAME.
`
	case "pause":
		return `Usage: nsbox pause NAME

Stops every process of the running sandbox NAME. A sandbox with a cgroup
of its own (nsbox run --cgroup own, or --memory, --pids, --cpus) is frozen
whole with the cgroup v2 freezer; any other gets SIGSTOP in each process
but nsbox's init. nsbox ps shows it as paused, and nsbox exec refuses it
until nsbox resume NAME. nsbox kill ends it at once; nsbox stop sends its
signal, then resumes it to act on it.
`
	case "resume":
		return `Usage: nsbox resume NAME

Continues the processes of the sandbox NAME that nsbox pause stopped.
`
	}
	return usage
}

func newLiveMountFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("mount", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.Bool("ro", false, "mount read-only (locked: root inside cannot make it writable)")
	fs.Bool("mkdir", false, "create DEST inside if it is missing (its parent must exist)")
	return fs
}

// liveCommand runs mount, umount, pause and resume.
func liveCommand(cmd string, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	if cmd == "mount" {
		fs = newLiveMountFlags()
	}
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v; fix: see nsbox help %s", cmd, err, cmd)}
	}
	if help, _ := fs.GetBool("help"); help {
		fmt.Fprint(stdout, liveUsage(cmd))
		return nil
	}
	want := map[string]int{"mount": 3, "umount": 2, "pause": 1, "resume": 1}[cmd]
	if fs.NArg() != want {
		return usageError{fmt.Sprintf("%s: wrong arguments; fix: %s", cmd, strings.SplitN(liveUsage(cmd), "\n", 2)[0])}
	}
	args = fs.Args()
	live, sb, err := lookupLive(args[0], cmd == "mount" || cmd == "umount")
	if err != nil {
		return err
	}
	defer live.Close()
	name := live.Name
	switch cmd {
	case "mount":
		for _, m := range addedMounts(live) {
			if m.Destination == args[2] {
				return fmt.Errorf("sandbox %s: %s already has a mount nsbox mount added (%s); fix: nsbox umount %s %s first", name, args[2], m.Source, name, args[2])
			}
		}
		ro, _ := fs.GetBool("ro")
		mkdir, _ := fs.GetBool("mkdir")
		if err := sb.Mount(args[1], args[2], sandbox.MountOptions{ReadOnly: ro, Mkdir: mkdir}); err != nil {
			return liveError(name, err)
		}
		src, _ := filepath.Abs(args[1])
		return recordMount(live, addedMount{Source: src, Destination: args[2], ReadOnly: ro})
	case "umount":
		if err := sb.Unmount(args[1]); err != nil {
			return liveError(name, err)
		}
		return forgetMount(live, args[1])
	case "pause":
		if err := sb.Pause(); err != nil {
			return liveError(name, err)
		}
		return markPaused(live, true)
	case "resume":
		if err := sb.Resume(); err != nil {
			return liveError(name, err)
		}
		return markPaused(live, false)
	}
	return nil
}

// lookupLive finds the running sandbox name, checked against the kernel
// (state.Get), and a handle for its live operations; joins says the
// operation enters the command's namespaces (state.Live.Joinable).
func lookupLive(name string, joins bool) (*state.Live, *sandbox.Sandbox, error) {
	dir, err := state.Dir()
	if err != nil {
		return nil, nil, err
	}
	live, err := lookup(dir, name)
	if err != nil {
		return nil, nil, err
	}
	if live.Spec == nil {
		live.Close()
		return nil, nil, fmt.Errorf("sandbox %s: its record has no spec; fix: restart it with this version of nsbox", name)
	}
	if err := live.Joinable(); joins && err != nil {
		live.Close()
		return nil, nil, err
	}
	sb, err := sandbox.Lookup(live.Target())
	if err != nil {
		live.Close()
		return nil, nil, liveError(name, err)
	}
	return live, sb, nil
}

// liveError names the sandbox in err and adds the fix nsbox knows.
func liveError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sandbox.ErrEnded):
		return fmt.Errorf("sandbox %s: %w; fix: nsbox ps lists the running sandboxes", name, err)
	case strings.Contains(err.Error(), "; fix: "):
		return fmt.Errorf("sandbox %s: %w", name, err)
	case strings.Contains(err.Error(), "shares the caller's"):
		return fmt.Errorf("sandbox %s: %w; fix: start it with namespaces of its own (without --share)", name, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("sandbox %s: %w; fix: pick a writable place inside (/tmp, or a --bind)", name, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("sandbox %s: %w; fix: your uid must be allowed there (nsbox exec %s --root -- chmod or chown it)", name, err, name)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("sandbox %s: %w; fix: check the path (nsbox exec %s -- ls -la DIR)", name, err, name)
	}
	return fmt.Errorf("sandbox %s: %w", name, err)
}

// addedMount is a mount nsbox mount added, as nsbox inspect shows it.
type addedMount struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// mountsFile is the list of added mounts in the sandbox's state entry:
// for display only (the kernel decides what can be unmounted).
const mountsFile = "live-mounts.json"

// addedMounts reads the list; a missing or unreadable one is empty. The
// file is opened without following a symlink, read under a shared lock
// (changeMounts rewrites it in place), and bounded.
func addedMounts(l *state.Live) []addedMount {
	fd, err := unix.Open(filepath.Join(l.Path, mountsFile), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), mountsFile)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if unix.Flock(fd, unix.LOCK_SH) != nil {
		return nil
	}
	return readMounts(f)
}

// readMounts decodes the list from f's start, bounded.
func readMounts(f *os.File) []addedMount {
	var list []addedMount
	json.NewDecoder(io.LimitReader(io.NewSectionReader(f, 0, 1<<20), 1<<20)).Decode(&list)
	return list
}

// changeMounts replaces the list by what change returns, when it says
// it changed, in place under an exclusive lock: a rename over it would
// cost a file's creation and another's removal, a third of a millisecond
// on a journalled file system, for every nsbox mount and umount. create
// makes the file if it is missing.
func changeMounts(l *state.Live, create bool, change func([]addedMount) ([]addedMount, bool)) error {
	p := filepath.Join(l.Path, mountsFile)
	flags := unix.O_RDWR | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if create {
		flags |= unix.O_CREAT
	}
	fd, err := unix.Open(p, flags, 0o600)
	if err == unix.ENOENT && !create {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: record the added mounts: %w", l.Name, &os.PathError{Op: "open", Path: p, Err: err})
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", p)
	}
	if err == nil {
		err = unix.Flock(fd, unix.LOCK_EX)
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: record the added mounts: %w", l.Name, err)
	}
	list, changed := change(readMounts(f))
	if !changed {
		return nil
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if st, err = f.Stat(); err == nil {
		if _, err = f.WriteAt(b, 0); err == nil && int64(len(b)) < st.Size() {
			err = f.Truncate(int64(len(b)))
		}
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: record the added mounts: %w", l.Name, err)
	}
	return nil
}

func recordMount(l *state.Live, m addedMount) error {
	return changeMounts(l, true, func(list []addedMount) ([]addedMount, bool) { return append(list, m), true })
}

func forgetMount(l *state.Live, dest string) error {
	return changeMounts(l, false, func(list []addedMount) ([]addedMount, bool) {
		for i := len(list) - 1; i >= 0; i-- {
			if list[i].Destination == dest {
				return append(list[:i], list[i+1:]...), true
			}
		}
		return list, false
	})
}

// pausedMark is the file nsbox pause leaves in the state entry and
// nsbox resume removes: it spares exec, kill and ps a scan of /proc for
// every sandbox that was never paused. The kernel has the last word.
const pausedMark = "paused"

func markPaused(l *state.Live, on bool) error {
	p := filepath.Join(l.Path, pausedMark)
	if !on {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sandbox %s: %w", l.Name, err)
		}
		return nil
	}
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("sandbox %s: record the pause: %w", l.Name, err)
	}
	return unix.Close(fd)
}

// paused reports whether the sandbox is paused (nsbox pause): marked so,
// and its cgroup frozen (cgroup.events) or, without a cgroup of its own,
// every one of its processes but nsbox's init stopped. Unknown counts as
// not.
func paused(l *state.Live) bool {
	if l.Spec == nil || !l.Spec.Namespaces.PID && l.Cgroup == "" {
		return false
	}
	if _, err := os.Lstat(filepath.Join(l.Path, pausedMark)); err != nil {
		return false
	}
	sb, err := sandbox.Lookup(l.Target())
	if err != nil {
		return false
	}
	p, _ := sb.Paused()
	return p
}

// liveView is what nsbox inspect and ps --json print of a sandbox: its
// record, what nsbox mount added, and whether it is paused.
type liveView struct {
	state.Entry
	LiveMounts []addedMount `json:"liveMounts,omitempty"`
	Paused     bool         `json:"paused,omitempty"`
}

func viewOf(l *state.Live) liveView {
	return liveView{Entry: l.Entry, LiveMounts: addedMounts(l), Paused: paused(l)}
}
