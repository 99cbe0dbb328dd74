package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/bwrap"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/sandbox/fastpath"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// stateFlags are the flags of nsbox run about naming and reporting the
// sandbox: --name, --detach, --info-fd, --json-status-fd.
type stateFlags struct {
	name      string
	detach    bool
	infoFD    int
	statusFD  int
	superFD   int // hidden: the detached supervisor's report pipe
	fs        *pflag.FlagSet
	startedAt time.Time
	// network is what the state entry records of the sandbox's network
	// (set from the network flags).
	network *state.Network
	// stopSignal is what the entry records for nsbox stop (an image's
	// StopSignal); 0: SIGTERM.
	stopSignal unix.Signal
}

func addStateFlags(fs *pflag.FlagSet) *stateFlags {
	f := &stateFlags{fs: fs}
	fs.StringVar(&f.name, "name", "", "name the sandbox `NAME` for nsbox ps, exec, kill (default: a random id)")
	fs.BoolVarP(&f.detach, "detach", "d", false, "run in the background: print the name and return; output goes to the log (nsbox logs NAME)")
	fs.IntVar(&f.infoFD, "info-fd", -1, "write {\"child-pid\": N, \"<ns>-namespace\": INODE, …} to `FD` once the sandbox exists (as bwrap)")
	fs.IntVar(&f.statusFD, "json-status-fd", -1, "write the info as one JSON line to `FD`, then {\"exit-code\": N} if the command ran (as bwrap)")
	fs.IntVar(&f.superFD, "supervise-fd", -1, "")
	fs.MarkHidden("supervise-fd")
	return f
}

// session is one named sandbox's life in the launcher: its state entry,
// its status file descriptors, and for a detached sandbox the report to
// the nsbox that started us.
type session struct {
	entry    *state.Handle // nil when an unnamed run has no state entry
	dir      string        // the state directory, "" if none
	required bool          // named or detached: the entry is not optional
	stderr   io.Writer
	info     *os.File
	status   *os.File
	report   *os.File // detached: tells the starting nsbox how the start went
	log      *os.File
	record   *state.Entry // written once the command runs
	// entryBase returns the record's fields that the flags decide.
	entryBase func() *state.Entry
	executed  bool
	// mu guards entry once the command runs: release may run in the
	// goroutine that reads PID 1's EXITED while handOff plans.
	mu sync.Mutex
}

// begin reserves the sandbox's name and prepares spec to record the
// sandbox once PID 1 exists. For nsbox run --detach it instead starts the
// supervisor in the background, prints the name and returns nil, nil.
//
// The state directory is a service for nsbox ps, exec, kill and friends:
// a run that nobody named (--name) or detached does not depend on it.
// When it cannot be used (read-only or full /tmp, a directory of another
// uid), such a run goes on without an entry after one notice on stderr;
// a named or detached one fails, since nobody could find it.
func (f *stateFlags) begin(spec *sandbox.Spec, args []string, stdout, stderr io.Writer) (*session, error) {
	name := f.name
	if name == "" {
		name = state.RandomName()
	}
	if err := state.ValidName(name); err != nil {
		return nil, usageError{fmt.Sprintf("--name: %v", err)}
	}
	if f.detach && (f.infoFD >= 0 || f.statusFD >= 0) {
		return nil, usageError{"--detach cannot be combined with --info-fd or --json-status-fd: nobody would be there to read them; fix: drop one"}
	}
	s := &session{stderr: stderr, required: f.name != "" || f.detach || f.superFD >= 0}
	var err error
	if s.info, err = statusFile("--info-fd", f.infoFD); err != nil {
		return nil, err
	}
	if s.status, err = statusFile("--json-status-fd", f.statusFD); err != nil {
		return nil, err
	}
	if f.detach && f.superFD < 0 {
		return nil, startDetached(name, args, stdout)
	}
	if f.superFD >= 0 {
		s.report = os.NewFile(uintptr(f.superFD), "nsbox-detach-report")
		unix.CloseOnExec(f.superFD)
	}
	// The state directory first, then what hides it: on the first run it
	// does not exist yet, and hiding only what exists would show the new
	// one to the sandbox where a bind holds it.
	dir, err := state.Dir()
	hideStateDirs(spec)
	if err == nil {
		s.entry, err = state.Reserve(dir, name)
	}
	if err != nil {
		if s.required {
			return nil, s.fail(err)
		}
		s.notice(err)
	} else {
		s.dir = dir
	}
	if f.detach && s.entry != nil {
		s.log, err = os.OpenFile(s.entry.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, s.fail(fmt.Errorf("open the log of sandbox %s: %w", name, err))
		}
		spec.Process.Stdin, spec.Process.Stdout, spec.Process.Stderr = nil, s.log, s.log
	}
	cwd := spec.Process.Cwd
	if cwd == "" {
		cwd, _ = os.Getwd()
	}
	created := time.Now()
	// What the record holds besides what the start itself learns (the
	// replay's template is made from it too: replay.go).
	s.entryBase = func() *state.Entry {
		return &state.Entry{Cwd: cwd, Detached: f.detach, Network: f.network, Spec: spec, StopSignal: int(f.stopSignal)}
	}
	spec.Started = func(pid int, ns map[string]uint64) error {
		e := s.entryBase()
		e.Name, e.Pid, e.LauncherPid, e.Created, e.Namespaces = name, pid, os.Getpid(), created, ns
		var err error
		if e.PidStartTime, err = state.StartTime(pid); err != nil {
			return fmt.Errorf("record sandbox %s: %w", name, err)
		}
		uids, err1 := procfs.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
		gids, err2 := procfs.ReadFile(fmt.Sprintf("/proc/%d/gid_map", pid))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("record sandbox %s: %w", name, err)
		}
		e.UIDMap, e.GIDMap = string(uids), string(gids)
		if ownCgroup(spec) {
			// Read now, before the command runs: root inside may move
			// PID 1 below its leaf later.
			if e.Cgroup, err = cgroup.OwnOf(pid); err != nil {
				return fmt.Errorf("record sandbox %s: %w", name, err)
			}
			if e.Cgroup == "" {
				return fmt.Errorf("record sandbox %s: its PID 1 (pid %d) is not in a cgroup of the sandbox's own", name, pid)
			}
		}
		s.writeInfo(pid, ns)
		s.record = e
		return nil
	}
	return s, nil
}

// started: the command runs. Only now does the sandbox appear in nsbox
// ps: one that is listed can be joined, and killing it kills a running
// command, not a launch half-way.
func (s *session) started() error {
	s.executed = true
	if s.entry != nil && s.record != nil {
		if err := s.entry.Write(s.record); err != nil {
			if s.required {
				return s.fail(err)
			}
			s.notice(err)
			s.entry.Release()
			s.entry = nil
		}
	}
	if s.dir != "" {
		// Entries of launchers that died: swept now and then, off the
		// start path.
		go state.MaybeClean(s.dir)
	}
	if s.report != nil {
		fmt.Fprintln(s.report, "ok")
		s.report.Close()
		s.report = nil
	}
	return nil
}

// end records how the sandbox ended, removes its entry (release, if
// that has not run yet) and returns err.
func (s *session) end(err error) error {
	bwrap.WriteExitCode(s.status, s.executed, err)
	if s.status != nil {
		s.status.Close()
	}
	if s.log != nil {
		s.log.Close()
	}
	s.release()
	return s.fail(err)
}

// release removes the entry, keeping a detached sandbox's log: the
// sandbox has ended, or is ending (handoff.Handle.AtExit). On a disk
// file system the entry directory's removal waits for the device, which
// AtExit overlaps with PID 1's end. Once only: it forgets the entry.
func (s *session) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entry == nil {
		return
	}
	if s.log != nil && s.executed {
		s.entry.KeepLog()
	}
	s.entry.Release()
	s.entry = nil
}

// notice says, once, that this unnamed run goes on without a state entry.
func (s *session) notice(err error) {
	fmt.Fprintf(s.stderr, "nsbox: notice: %v; running without a state entry (nsbox ps will not list this sandbox)\n", err)
}

// fail passes a failure before the command ran on to the nsbox that
// started a detached supervisor (whose own stderr goes nowhere).
func (s *session) fail(err error) error {
	if s.report != nil && err != nil {
		fmt.Fprintf(s.report, "%d\t%s\n", sandbox.ExitCode(err), strings.ReplaceAll(err.Error(), "\n", "; "))
		s.report.Close()
		s.report = nil
	}
	return err
}

// writeInfo writes bubblewrap's --info-fd document and the first line of
// --json-status-fd: PID 1's host pid and the inode of each namespace the
// sandbox has of its own, in the order bwrap lists them (it leaves out the
// user namespace; nsbox inspect shows it).
func (s *session) writeInfo(pid int, ns map[string]uint64) {
	if s.info == nil && s.status == nil {
		return
	}
	bwrap.WriteInfo(s.info, s.status, pid, ns)
	if s.info != nil {
		s.info.Close()
		s.info = nil
	}
}

// statusFile checks fd is open and takes it over (close-on-exec: it must
// not reach the sandbox).
func statusFile(flag string, fd int) (*os.File, error) {
	if fd < 0 {
		return nil, nil
	}
	if fd <= 2 {
		return nil, usageError{fmt.Sprintf("%s %d: that is standard input, output or error; fix: pass a descriptor above 2, e.g. %s 3 3>file", flag, fd, flag)}
	}
	if err := ties.Inherited(fd); errors.Is(err, ties.ErrOwnFD) {
		return nil, usageError{fmt.Sprintf("%s %d: %v; fix: pass a descriptor you opened for nsbox, e.g. %s %d %d>file", flag, fd, err, flag, fd, fd)}
	} else if err != nil {
		return nil, usageError{fmt.Sprintf("%s %d: not an open file descriptor; fix: open it in the shell, e.g. %s %d %d>file", flag, fd, flag, fd, fd)}
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), filepath.Base(flag)), nil
}

// startDetached starts `nsbox run --supervise-fd 3 --name NAME ARGS…` in
// a session of its own, with no terminal and stdio on /dev/null, waits for
// it to say the command runs (or why not), and prints the name.
func startDetached(name string, args []string, stdout io.Writer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return fmt.Errorf("detach: %w", err)
	}
	defer null.Close()
	argv := append([]string{"nsbox", "run", "--supervise-fd", "3", "--name", name}, args...)
	// Executed through /proc/self/exe, the supervisor would be named
	// "exe" (ps, pgrep): its ELF constructor takes our name back.
	env := os.Environ()
	if n := fastpath.NameVar(); n != "" {
		env = append(env, n)
	}
	p, err := os.StartProcess("/proc/self/exe", argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{null, null, null, w},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	if err != nil {
		return fmt.Errorf("detach: start the supervisor: %w", err)
	}
	p.Release()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	if line == "ok" {
		fmt.Fprintln(stdout, name)
		return nil
	}
	code, msg, ok := strings.Cut(line, "\t")
	n, err := strconv.Atoi(code)
	if !ok || err != nil {
		return fmt.Errorf("detach: the supervisor of sandbox %s exited before the command started", name)
	}
	return detachError{code: n, msg: msg}
}

// detachError is the supervisor's failure, with its exit code.
type detachError struct {
	code int
	msg  string
}

func (e detachError) Error() string { return e.msg }

// ExitCode is the exit code the supervisor reported.
func (e detachError) ExitCode() int { return e.code }

// hideStateDirs puts an empty, read-only tmpfs over every place where the
// sandbox's view would show one of the caller's state directories (any of
// state.Candidates that exists): the records, logs and specs of the other
// sandboxes are none of its business, and a sandbox that could write them
// could try to steer nsbox exec (which checks them anyway: verify.go in
// cmd/nsbox/internal/state). The directory shows wherever a bind, or an overlay's
// layer, has its source at or above it and no later op covers that place
// (the default view's tmpfs on /tmp does, unless the current directory
// bound over it is /tmp itself).
//
// It only adds ops at the end of spec.Mounts; a sandbox without mount
// operations of its own (--share mnt) sees the host's tree as it is, and
// with it the state directory (docs/security.md, State records).
func hideStateDirs(spec *sandbox.Spec) {
	if spec.Mounts == nil || !spec.Namespaces.Mount {
		return
	}
	var hide []string
	// The anchors of nsbox mount too (sandbox.MountOptions.AnchorsDir).
	for _, dir := range append(state.Candidates(), sandbox.MountOptions{}.AnchorsDir()) {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue // not there: nothing to hide
		}
		hide = append(hide, shownAt(spec.Mounts, real)...)
	}
	for _, p := range hide {
		spec.Mounts = append(spec.Mounts,
			sandbox.Mount{Type: sandbox.MountTmpfs, Destination: p, Mode: 0o500, Size: 4096, Flag: "hiding the state directory " + p},
			sandbox.Mount{Type: sandbox.MountRemountRO, Destination: p, Flag: "hiding the state directory " + p})
	}
}

// shownAt returns the paths inside the sandbox where the host directory
// dir (a real path) is visible once ms are applied.
func shownAt(ms []sandbox.Mount, dir string) []string {
	var out []string
	for i, m := range ms {
		var sources []string
		switch m.Type {
		case sandbox.MountBind:
			sources = []string{m.Source}
		case sandbox.MountOverlay:
			sources = append(append(sources, m.Lower...), m.Upper)
		default:
			continue
		}
		for _, src := range sources {
			real, err := filepath.EvalSymlinks(src)
			if err != nil {
				continue
			}
			rel, ok := within(real, dir)
			if !ok {
				continue
			}
			p := filepath.Join(m.Destination, rel)
			if !coveredLater(ms[i+1:], p) && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// within returns dir relative to base if dir is base or below it.
func within(base, dir string) (string, bool) {
	rel, err := filepath.Rel(base, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// coveredLater reports whether one of the later ops replaces what the
// sandbox sees at p: a mount of something else at p or above it. Ops that
// keep the content below visible (dir, chmod, remount-ro, tmp-overlay
// without Lower, copy-up) do not count.
func coveredLater(later []sandbox.Mount, p string) bool {
	for _, m := range later {
		switch m.Type {
		case sandbox.MountDir, sandbox.MountChmod, sandbox.MountRemountRO, sandbox.MountCopyUp:
			continue
		case sandbox.MountTmpOverlay:
			if len(m.Lower) == 0 {
				continue
			}
		}
		if _, ok := within(m.Destination, p); ok {
			return true
		}
	}
	return false
}

// ownCgroup tells whether spec gives the sandbox a cgroup of its own.
func ownCgroup(spec *sandbox.Spec) bool {
	l := &spec.Limits
	return l.OwnCgroup || l.Memory > 0 || l.PIDs > 0 || l.CPUs > 0
}
