// Package state records the running sandboxes of one user, so that other
// nsbox commands (ps, inspect, exec, kill, stop, logs) can find them by name.
//
// Every running sandbox has an entry: a directory named after the sandbox
// under the user's state directory,
//
//	$XDG_RUNTIME_DIR/nsbox/NAME/     (or /tmp/nsbox-$UID/NAME/)
//	    state.json                   the Entry, written once PID 1 exists
//	    log                          the output of a detached sandbox
//
// The launcher that owns the sandbox holds an exclusive flock(2) on the
// entry's directory for as long as it lives. The kernel drops that lock
// when the launcher dies, however it dies, so "the lock can be taken" is
// exactly "the entry is stale": Clean (run by ps, and by MaybeClean at
// most once a minute) removes such entries, after checking the directory
// it locked is still the one at the path. No daemon, no pid files to trust.
//
// The directory is private (0700, files 0600) and nsbox run hides it from
// every sandbox's view, but the records are not trusted for that: Get and
// List check each one against the kernel and against a sealed copy the
// launcher keeps in memory (verify.go), so a changed state.json is refused,
// never acted on.
//
// Names are unique per user: Reserve creates the entry under a temporary
// name, locks it, and renames it into place with RENAME_NOREPLACE, so two
// launchers racing for one name cannot both win, and a half-made entry is
// never visible under the name.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/fdtree"
	"github.com/nsbox/nsbox/internal/handoff"
	"github.com/nsbox/nsbox/internal/replay"
	"github.com/nsbox/nsbox/sandbox"
	"golang.org/x/sys/unix"
)

// Entry is what state.json holds about one running sandbox; `nsbox inspect`
// prints it.
type Entry struct {
	// Name is the sandbox's name (--name).
	Name string `json:"name"`
	// Pid is the host pid of the sandbox's PID 1 (nsbox's init).
	Pid int `json:"pid"`
	// PidStartTime is field 22 of /proc/PID/stat (clock ticks since boot)
	// when the entry was written: a process with the same pid but another
	// start time is not this sandbox's PID 1 (the pid was reused).
	PidStartTime uint64 `json:"pidStartTime"`
	// LauncherPid is the host pid of the nsbox process supervising it.
	LauncherPid int `json:"launcherPid"`
	// Created is when the sandbox started.
	Created time.Time `json:"created"`
	// Namespaces maps "user", "mnt", "pid", … to the inode numbers of the
	// sandbox's namespaces (as in /proc/PID/ns/NAME -> "mnt:[INODE]").
	// Namespaces shared with the host are absent.
	Namespaces map[string]uint64 `json:"namespaces"`
	// UIDMap and GIDMap are /proc/PID/uid_map and gid_map as the kernel
	// shows them from the host.
	UIDMap string `json:"uidMap"`
	GIDMap string `json:"gidMap"`
	// Cwd is the command's working directory inside the sandbox; nsbox
	// exec starts there unless told otherwise.
	Cwd string `json:"cwd"`
	// Detached is set for nsbox run --detach: the output is in the log.
	Detached bool `json:"detached,omitempty"`
	// Network is filled by the network setup: addresses and forwarded
	// ports. nil when the sandbox has no network of its own beyond lo.
	Network *Network `json:"network,omitempty"`
	// Cgroup is the host path of the sandbox's own cgroup v2 directory
	// (--cgroup own, --memory, --pids, --cpus), read from PID 1's
	// /proc/PID/cgroup before the command ran; "" when it has none. nsbox
	// pause freezes it, nsbox kill kills all of it, nsbox exec joins it.
	Cgroup string `json:"cgroup,omitempty"`
	// StopSignal is what nsbox stop sends first (an image's StopSignal);
	// 0 means SIGTERM.
	StopSignal int `json:"stopSignal,omitempty"`
	// Spec is the sandbox's spec, as the flags built it.
	Spec *sandbox.Spec `json:"spec"`
	// RecordFD is the launcher's descriptor of the sealed copy of this
	// record (set by Handle.Write; see verify.go).
	RecordFD int `json:"recordFD"`
}

// Network is the network state of a sandbox that has one.
type Network struct {
	// Mode names the network (e.g. "user" for the user-mode stack).
	Mode string `json:"mode,omitempty"`
	// Addresses are the sandbox's addresses in CIDR form.
	Addresses []string `json:"addresses,omitempty"`
	// Gateway and DNS are what the sandbox is told to use.
	Gateway string `json:"gateway,omitempty"`
	DNS     string `json:"dns,omitempty"`
	// Ports are the forwarded ports, e.g. "127.0.0.1:8080->80/tcp".
	Ports []string `json:"ports,omitempty"`
}

// ErrNotFound: no running sandbox of that name.
var ErrNotFound = errors.New("no such sandbox")

// ErrNameInUse: Reserve found a live sandbox of that name.
var ErrNameInUse = errors.New("name in use")

// ValidName checks name is usable as a sandbox name: 1 to 64 letters,
// digits, '_', '.' or '-', starting with a letter or digit, as docker and
// podman allow. That makes it a safe single path component.
func ValidName(name string) error {
	ok := len(name) > 0 && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("sandbox name %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// RandomName returns a short random name (8 hex digits), the default for
// a sandbox started without --name.
func RandomName() string {
	var b [4]byte
	if _, err := unix.Getrandom(b[:], 0); err != nil {
		// getrandom cannot fail for 4 bytes once the pool is ready; fall
		// back on the clock and pid rather than failing the start.
		n := uint32(time.Now().UnixNano()) ^ uint32(os.Getpid())<<16
		b = [4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return fmt.Sprintf("%02x%02x%02x%02x", b[0], b[1], b[2], b[3])
}

// Handle is a reserved entry, held by the launcher of its sandbox: the
// lock lives as long as the handle (or the process).
type Handle struct {
	// Name is the sandbox's name; Path its entry directory.
	Name, Path string
	lock       *dirLock // the entry directory, flock'ed LOCK_EX
	record     int      // the sealed copy of state.json (a memfd), or -1
}

// Reserve claims name in dir for a new sandbox and returns the locked
// entry. A live sandbox of that name → ErrNameInUse; a stale one is
// removed first.
func Reserve(dir, name string) (*Handle, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	final := filepath.Join(dir, name)
	for attempt := 0; attempt < 5; attempt++ {
		tmp, err := os.MkdirTemp(dir, "."+name+".new-")
		if err != nil {
			return nil, fmt.Errorf("create a state entry in %s: %w", dir, err)
		}
		lock, err := lockDir(tmp, unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			// Clean removed our fresh directory in the instant before the
			// lock: try again.
			os.Remove(tmp)
			continue
		}
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if err == nil {
			return &Handle{Name: name, Path: final, lock: lock, record: -1}, nil
		}
		os.RemoveAll(tmp)
		lock.Close()
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return nil, fmt.Errorf("create the state entry %s: %w", final, err)
		}
		removed, err := removeIfStale(final)
		if err != nil {
			return nil, err
		}
		if !removed {
			return nil, fmt.Errorf("sandbox name %q: %w by a running sandbox; fix: pick another --name, or end it first (nsbox stop %s)", name, ErrNameInUse, name)
		}
	}
	return nil, fmt.Errorf("sandbox name %q: the state entry keeps changing under %s; fix: try again", name, dir)
}

// Write stores e as the entry's state.json, atomically (a reader sees the
// old file or the new one, never half of one), and keeps a sealed copy in
// the handle, which Get and List compare the file with; it sets
// e.RecordFD to the copy's descriptor. e.LauncherPid must be the caller's
// pid and e.Pid a child of the caller's, or Get will refuse the entry.
func (h *Handle) Write(e *Entry) error {
	// The copy's descriptor is part of the record: make the memfd first,
	// then write the record, with its number, into it.
	rec, err := newRecordFD()
	if err != nil {
		return fmt.Errorf("write the state of sandbox %s: %w", h.Name, err)
	}
	e.RecordFD = rec
	b, err := marshalIndent(e) // json.MarshalIndent, without its reflection cost (encode.go)
	if err == nil {
		b = append(b, '\n')
		err = sealRecord(rec, b)
	}
	if err != nil {
		unix.Close(rec)
		return fmt.Errorf("write the state of sandbox %s: %w", h.Name, err)
	}
	// Plain system calls: os.OpenFile would also try to register the
	// file with the poller, which costs more than the write on the launch
	// path.
	tmp := filepath.Join(h.Path, ".state.json.new")
	err = writeFile(tmp, b)
	if err == nil {
		err = replace(tmp, filepath.Join(h.Path, "state.json"))
	}
	if err != nil {
		unix.Close(rec)
		return fmt.Errorf("write the state of sandbox %s: %w", h.Name, err)
	}
	if h.record >= 0 {
		unix.Close(h.record)
	}
	h.record = rec
	return nil
}

// replace puts the file tmp at final, atomically: a reader of final
// opens the old file or the new one, whole. Where final exists the two
// are exchanged and the old one, now at tmp, is unlinked: ext4 (the
// default of /tmp and /var/tmp on many hosts) writes out a file renamed
// over another before the rename returns (its auto_da_alloc), 0.6-2 ms
// per rewrite on this VM against 0.1-0.3 ms for the exchange and the
// unlink, on every nsbox port add and rm. Without a final (the first
// record), or on a file system without RENAME_EXCHANGE, a plain rename.
func replace(tmp, final string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE)
	if err == nil {
		unix.Unlink(tmp)
		return nil
	}
	return unix.Rename(tmp, final)
}

// LogPath is where a detached sandbox's output goes.
func (h *Handle) LogPath() string { return filepath.Join(h.Path, "log") }

// endedLogs is the directory, inside the state directory, where the logs
// of detached sandboxes that ended are kept (one per name, the latest).
const endedLogs = ".logs"

// KeepLog moves the entry's log, if it has one, to where EndedLog finds
// it once the entry is gone: nsbox logs still shows the output of a
// detached sandbox after it ended. Call it before Release.
func (h *Handle) KeepLog() error {
	dir := filepath.Join(filepath.Dir(h.Path), endedLogs)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("keep the log of sandbox %s: %w", h.Name, err)
	}
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("keep the log of sandbox %s: %s is not a directory (a symlink?); fix: remove it", h.Name, dir)
	}
	err := unix.Rename(h.LogPath(), filepath.Join(dir, h.Name))
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("keep the log of sandbox %s: %w", h.Name, err)
	}
	return nil
}

// EndedLog returns the path of the kept log of the ended detached sandbox
// called name (KeepLog), or "" if there is none.
func EndedLog(dir, name string) string {
	if ValidName(name) != nil {
		return ""
	}
	p := filepath.Join(dir, endedLogs, name)
	if _, err := os.Lstat(p); err != nil {
		return ""
	}
	return p
}

// Release removes the entry and drops the lock: the sandbox is gone.
func (h *Handle) Release() error {
	// The entry holds at most these files; unlink them directly rather
	// than listing the directory.
	unix.Unlink(filepath.Join(h.Path, "state.json"))
	unix.Unlink(h.LogPath())
	err := unix.Rmdir(h.Path)
	if err != nil {
		err = fdtree.RemoveAll(h.Path)
	}
	if h.record >= 0 {
		unix.Close(h.record)
		h.record = -1
	}
	h.lock.Close()
	if err != nil {
		return fmt.Errorf("remove the state of sandbox %s: %w", h.Name, err)
	}
	return nil
}

// HandOff returns what Release (and KeepLog first, with keepLog) does, as
// steps for the supervisor that takes the sandbox over
// (handoff.Handle.HandOff), and the descriptors it must hold until then:
// the entry's lock and its sealed record, whose number the record names.
func (h *Handle) HandOff(keepLog bool) (after []handoff.Step, keep []int) {
	if keepLog {
		dir := filepath.Join(filepath.Dir(h.Path), endedLogs)
		after = append(after,
			handoff.Step{Op: handoff.Mkdir, Path: dir},
			handoff.Step{Op: handoff.Rename, Path: h.LogPath(), To: filepath.Join(dir, h.Name)})
	}
	after = append(after,
		handoff.Step{Op: handoff.Unlink, Path: filepath.Join(h.Path, "state.json")},
		handoff.Step{Op: handoff.Unlink, Path: h.LogPath()},
		handoff.Step{Op: handoff.Rmdir, Path: h.Path},
		// The removed entry's last descriptors, at once, as Release
		// closes them: the lock's close frees the directory.
		handoff.Step{Op: handoff.Close, FD: h.lock.fd})
	keep = []int{h.lock.fd}
	if h.record >= 0 {
		keep = append(keep, h.record)
		after = append(after, handoff.Step{Op: handoff.Close, FD: h.record})
	}
	return after, keep
}

// Live is an entry of a running sandbox, as List and Get return it:
// checked against the kernel and its launcher's sealed copy (verify.go).
// Close it when done.
type Live struct {
	Entry
	// Path is the entry directory.
	Path  string `json:"-"`
	pidfd int    // PID 1, pinned
	moved error  // verify's ErrCommandMoved, or nil
}

// Target is what the sandbox package needs to act on the sandbox (join
// it, look it up): its spec's target with the recorded PID 1 and cgroup.
// l.Spec must not be nil.
func (l *Live) Target() sandbox.Target {
	t := sandbox.TargetOf(l.Spec, l.Pid, l.PidStartTime)
	t.Cgroup = l.Cgroup
	return t
}

// Joinable says whether what joins the sandbox's command (nsbox exec,
// mount, umount, cp, connect) may: nil, or an error wrapping
// ErrCommandMoved when the command left the namespaces the record names.
func (l *Live) Joinable() error { return l.moved }

// PidFD is a pidfd of the sandbox's PID 1, owned by l: signal the sandbox
// through it, never through the pid.
func (l *Live) PidFD() int { return l.pidfd }

// Close drops the pidfd.
func (l *Live) Close() error {
	if l.pidfd < 0 {
		return nil
	}
	err := unix.Close(l.pidfd)
	l.pidfd = -1
	return err
}

// LogPath is where a detached sandbox's output goes.
func (l *Live) LogPath() string { return filepath.Join(l.Path, "log") }

// Get returns the running sandbox called name, or ErrNotFound.
func Get(dir, name string) (*Live, error) {
	if ValidName(name) != nil {
		return nil, fmt.Errorf("sandbox %q: %w", name, ErrNotFound)
	}
	path := filepath.Join(dir, name)
	live, err := locked(path)
	if err != nil {
		return nil, err
	}
	if !live {
		removeIfStale(path)
		return nil, fmt.Errorf("sandbox %q: %w", name, ErrNotFound)
	}
	// A record its launcher rewrote while it was checked (verify's
	// errRewritten) is read again and checked whole: a few times, then
	// the last one's answer without a look at the file, as for any other.
	for try := 0; ; try++ {
		e, raw, err := read(path)
		if errors.Is(err, os.ErrNotExist) {
			// Reserved, but PID 1 does not exist yet (or never will).
			return nil, fmt.Errorf("sandbox %q: %w (it is still starting)", name, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		if e.Name != name {
			return nil, fmt.Errorf("sandbox %s: %w: the entry %s holds the record of %q", name, ErrRecordChanged, path, e.Name)
		}
		statePath := filepath.Join(path, "state.json")
		if try == maxRereads {
			statePath = ""
		}
		pidfd, moved, err := verify(e, raw, statePath)
		if err == errRewritten {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Live{Entry: *e, Path: path, pidfd: pidfd, moved: moved}, nil
	}
}

// maxRereads bounds how many times Get reads a record again that its
// launcher rewrote while it was checked: one nsbox port add or rm each,
// which takes longer than a lookup, so a second read nearly always
// passes; the bound is for a writer that never stops.
const maxRereads = 16

// List removes stale entries and returns the running sandboxes, sorted by
// name, each checked as Get checks it. Sandboxes still starting (no
// state.json yet) are left out; so are entries that fail the check, whose
// errors (ErrRecordChanged) come back in refused.
func List(dir string) (live []*Live, refused []error, err error) {
	names, err := Clean(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		l, err := Get(dir, name)
		switch {
		case err == nil:
			live = append(live, l)
		case errors.Is(err, ErrRecordChanged):
			refused = append(refused, err)
		}
		// ErrNotFound: starting, or gone since Clean looked.
	}
	return live, refused, nil
}

// Clean removes every stale entry in dir (its launcher is gone) and
// returns the names of the live ones, sorted.
func Clean(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read the state directory %s: %w", dir, err)
	}
	var live []string
	for _, d := range ents {
		name := d.Name()
		path := filepath.Join(dir, name)
		if name == endedLogs || name == sweepStamp || name == replay.StoreDir || name == replay.KeyFile {
			continue
		}
		if name[0] == '.' {
			// A Reserve in progress locks its temporary directory at once;
			// give it time before judging an unlocked one abandoned.
			if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > 10*time.Second {
				removeIfStale(path)
			}
			continue
		}
		removed, err := removeIfStale(path)
		if err == nil && !removed {
			live = append(live, name)
		}
	}
	return live, nil
}

// locked reports whether the entry's launcher holds its lock.
func locked(path string) (bool, error) {
	f, err := lockDir(path, unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	f.Close()
	return false, nil
}

// removeIfStale removes the entry at path if no launcher holds it, holding
// the lock while it does so that a concurrent Reserve cannot be fooled.
//
// Lock, then verify: the directory locked must still be the one at path
// (same device and inode). Between our open and our flock, another
// cleaner may have removed the stale directory we opened and a launcher
// renamed its new, locked entry into its place: the lock we got is on a
// removed directory, and removing by path would delete the live entry.
// Once the check passes, the path stays ours until we remove it: its
// directory is locked by us (no other cleaner removes it) and it exists
// (no RENAME_NOREPLACE can take its place).
func removeIfStale(path string) (removed bool, err error) {
	for attempt := 0; attempt < 5; attempt++ {
		f, err := lockDir(path, unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if testHookLocked != nil {
			testHookLocked(path)
		}
		var locked, now unix.Stat_t
		same := unix.Fstat(f.fd, &locked) == nil && unix.Lstat(path, &now) == nil &&
			locked.Dev == now.Dev && locked.Ino == now.Ino
		if !same {
			f.Close()
			continue // replaced under us: look at the new one
		}
		err = removeLocked(path)
		f.Close()
		return err == nil, err
	}
	return false, nil
}

// testHookLocked, if set, runs in removeIfStale between flock and the
// check (verify_test.go plays the race there).
var testHookLocked func(path string)

// removeLocked removes the entry directory at path, whose lock the caller
// holds.
func removeLocked(path string) error {
	if err := fdtree.RemoveAll(path); err != nil {
		return fmt.Errorf("remove the stale state entry %s: %w", path, err)
	}
	return nil
}

// lockDir opens the directory path and flocks it with how.
func lockDir(path string, how int) (*dirLock, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Flock(fd, how); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return &dirLock{fd: fd}, nil
}

// dirLock is an open, flock'ed directory; Close drops the lock. (A bare
// descriptor, not an *os.File: that would cost poller set-up per lock.)
type dirLock struct{ fd int }

func (l *dirLock) Close() error {
	if l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	return err
}

// read reads path/state.json whole and decodes it.
func read(path string) (*Entry, []byte, error) {
	p := filepath.Join(path, "state.json")
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	b, err := readAll(fd, p)
	if err != nil {
		return nil, nil, err
	}
	e, err := Decode(b)
	return e, b, err
}

// Decode parses a state.json.
func Decode(b []byte) (*Entry, error) {
	e, err := unmarshal[Entry](b)
	if err != nil {
		return nil, fmt.Errorf("decode state.json: %w", err)
	}
	if e.Pid <= 0 || ValidName(e.Name) != nil {
		return nil, fmt.Errorf("decode state.json: no valid name and pid")
	}
	return &e, nil
}

// WaitGone waits up to timeout for the sandbox's launcher to let go of the
// entry (it does so right after PID 1 has exited), removes the entry if
// it is left, and reports whether it is gone.
func (l *Live) WaitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		removed, err := removeIfStale(l.Path)
		if err == nil && removed {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
