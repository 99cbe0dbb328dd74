package mapping

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/internal/procfs"
	"golang.org/x/sys/unix"
)

// Apply writes the uid map and then the gid map of the user namespace of
// process pid, from the parent namespace. For each map:
//
//   - Privileged plans, and maps that are just the caller's own host id
//     (HostUID / HostGID, count 1), are written directly with one
//     write(2). For an unprivileged gid map, "deny" goes to
//     /proc/PID/setgroups first (unless it already says so), as the kernel
//     requires.
//   - Anything else runs the helper: "newuidmap PID inner outer count …"
//     (newgidmap for gids), with the extents in order.
//   - If a direct write fails with EPERM and the helper for that kind is
//     known and usable, the helper is tried, as runc does.
//
// The two maps are independent files: with helpers, newuidmap and
// newgidmap (each a setuid exec of about a millisecond) are both started,
// then both waited for. When both maps fail, the uid map's error is
// returned.
//
// Errors name the file or the full command line, and a helper's stderr.
func (p Plan) Apply(pid int) error {
	var null devNull
	defer null.close()
	u := p.begin(pid, false, &null)
	g := p.begin(pid, true, &null)
	uerr, gerr := u.finish(), g.finish()
	if uerr != nil {
		return uerr
	}
	return gerr
}

// mapStep is one map of Apply under way: done, or a helper running.
type mapStep struct {
	err    error      // the outcome, if done
	helper *helperRun // else the helper writing the map
	direct error      // the direct write's EPERM the helper is retrying, if any
}

// finish waits for the step's helper, if any, and returns its outcome.
func (s mapStep) finish() error {
	if s.helper == nil {
		return s.err
	}
	herr := s.helper.wait()
	if herr != nil && s.direct != nil {
		return fmt.Errorf("%w; then %w", s.direct, herr)
	}
	return herr
}

// begin writes the map of that kind directly, or starts its helper.
func (p Plan) begin(pid int, gid bool, null *devNull) mapStep {
	ext, file, helperName := p.UIDs, "uid_map", "newuidmap"
	if gid {
		ext, file, helperName = p.GIDs, "gid_map", "newgidmap"
	}
	helper, helperOK := p.Helpers.path(gid)
	if !p.Privileged && !p.ownOnly(gid) {
		if !helperOK {
			return mapStep{err: &planError{
				msg: fmt.Sprintf("write /proc/%d/%s: %s needs %s, but %s", pid, file, colons(ext), helperName, p.Helpers.problem()),
				err: ErrHelperUnusable,
			}}
		}
		run, err := startHelper(helper, pid, ext, gid, null)
		return mapStep{err: err, helper: run}
	}
	if gid && !p.Privileged {
		if err := denySetgroups(pid); err != nil {
			return mapStep{err: err}
		}
	}
	path := fmt.Sprintf("/proc/%d/%s", pid, file)
	err := procfs.WriteFile(path, []byte(Format(ext)))
	if err == nil {
		return mapStep{}
	}
	err = fmt.Errorf("write %s: %w", path, unwrapPath(err))
	if errors.Is(err, unix.EPERM) && helperOK {
		run, herr := startHelper(helper, pid, ext, gid, null)
		if herr != nil {
			return mapStep{err: fmt.Errorf("%w; then %w", err, herr)}
		}
		return mapStep{helper: run, direct: err}
	}
	return mapStep{err: err}
}

// unwrapPath drops *fs.PathError's "op path:" prefix, which the caller's
// own context repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// denySetgroups writes "deny" to /proc/PID/setgroups unless it already
// says so (writing it again after the gid map fails).
func denySetgroups(pid int) error {
	path := fmt.Sprintf("/proc/%d/setgroups", pid)
	if b, err := procfs.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == "deny" {
		return nil
	}
	if err := procfs.WriteFile(path, []byte("deny")); err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	return nil
}

// setgroupsDeniedHere reports whether the caller's own user namespace
// denies setgroups(2): then so does every namespace it creates.
func setgroupsDeniedHere() bool {
	b, err := procfs.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// devNull is /dev/null, opened once for the helpers of one Apply (their
// stdin and stdout), on first use.
type devNull struct{ fd int } // fd+1: the zero value is not open

func (n *devNull) get() (int, error) {
	if n.fd == 0 {
		fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: "/dev/null", Err: err}
		}
		n.fd = fd + 1
	}
	return n.fd - 1, nil
}

func (n *devNull) close() {
	if n.fd != 0 {
		unix.Close(n.fd - 1)
		n.fd = 0
	}
}

// maxHelperStderr bounds how much of a helper's stderr is kept; the rest
// is read and dropped, so that a chatty helper cannot block on a full
// pipe.
const maxHelperStderr = 4096

// helperRun is a newuidmap or newgidmap started by startHelper: our child,
// with its stderr on a pipe whose read end we hold.
type helperRun struct {
	pid     int
	stderr  int // the pipe's read end
	cmdline string
	gid     bool
}

// startHelper starts "helper PID inner outer count …" with the caller's
// environment, /dev/null as stdin and stdout, and a pipe as stderr.
//
// It forks with syscall.ForkExec (a vfork and exec), not os/exec: that
// would start goroutines to copy stderr, open /dev/null through the
// poller twice and, on the process's first start, fork a throwaway child
// to probe pidfd support; and waiting here with wait4 needs no pidfd.
func startHelper(helper string, pid int, ext []Extent, gid bool, null *devNull) (*helperRun, error) {
	argv := make([]string, 0, 2+3*len(ext))
	argv = append(argv, helper, strconv.Itoa(pid))
	for _, e := range ext {
		argv = append(argv,
			strconv.FormatUint(uint64(e.Inner), 10),
			strconv.FormatUint(uint64(e.Outer), 10),
			strconv.FormatUint(uint64(e.Count), 10))
	}
	fail := func(err error) (*helperRun, error) {
		return nil, &HelperError{Cmdline: strings.Join(argv, " "), GID: gid, Err: err}
	}
	in, err := null.get()
	if err != nil {
		return fail(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fail(os.NewSyscallError("pipe2", err))
	}
	child, err := syscall.ForkExec(helper, argv, &syscall.ProcAttr{
		Env:   syscall.Environ(),
		Files: []uintptr{uintptr(in), uintptr(in), uintptr(p[1])},
	})
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		return fail(&fs.PathError{Op: "fork/exec", Path: helper, Err: err})
	}
	return &helperRun{pid: child, stderr: p[0], cmdline: strings.Join(argv, " "), gid: gid}, nil
}

// wait reads the helper's stderr to its end, reaps the helper, and returns
// nil if it exited with status 0, else a *HelperError.
func (r *helperRun) wait() error {
	var msg []byte
	buf := make([]byte, 512)
	for {
		n, err := unix.Read(r.stderr, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		if keep := min(n, maxHelperStderr-len(msg)); keep > 0 {
			msg = append(msg, buf[:keep]...)
		}
	}
	unix.Close(r.stderr)
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(r.pid, &ws, 0, nil)
		if err == nil {
			break
		}
		if err != syscall.EINTR {
			return &HelperError{Cmdline: r.cmdline, GID: r.gid, Stderr: oneLine(string(msg)), Err: os.NewSyscallError("wait4", err)}
		}
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	return &HelperError{Cmdline: r.cmdline, GID: r.gid, Status: ws, Stderr: oneLine(string(msg))}
}

// ErrHelperFailed is wrapped by the error of a newuidmap or newgidmap run
// that failed (a *HelperError).
var ErrHelperFailed = errors.New("newuidmap/newgidmap failed")

// HelperError reports a newuidmap or newgidmap run that failed: the
// helper was found and looked usable, but refused when it ran (ranges it
// does not grant, SELinux, an NSS subid module that errors, …).
type HelperError struct {
	// Cmdline is the whole command line.
	Cmdline string
	// GID is set for newgidmap.
	GID bool
	// Status is how the helper ended, as wait(2) reports it:
	// Status.ExitStatus() is its exit code; Status.Signaled() and
	// Status.Signal() tell a signal that killed it. Zero when it did not
	// run to its end (Err says why).
	Status syscall.WaitStatus
	// Stderr is the helper's own message, on one line ("" if it said
	// nothing): the first 4 KiB it wrote, its lines joined with "; ".
	Stderr string
	// Err is why the helper did not run to its end: its fork or exec
	// failed (an *fs.PathError wrapping the errno, as os/exec's would), or
	// waiting for it did. Nil when it ran and failed (Status).
	Err error
}

// Error names the command line, its exit, its message and a fix.
func (e *HelperError) Error() string {
	how := e.how()
	fix := "fix: check that /etc/subuid grants you those outer ids (newuidmap allows only them and your own uid)"
	if e.GID {
		fix = "fix: check that /etc/subgid grants you those outer ids (newgidmap allows only them and your own gid)"
	}
	if e.Stderr != "" {
		return fmt.Sprintf("%s: %s: %s; %s", e.Cmdline, how, e.Stderr, fix)
	}
	return fmt.Sprintf("%s: %s; %s", e.Cmdline, how, fix)
}

// how says how the helper failed, in os.ProcessState's words: "exit
// status 1", "signal: killed", or Err.
func (e *HelperError) how() string {
	switch ws := e.Status; {
	case e.Err != nil:
		return e.Err.Error()
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled() && ws.CoreDump():
		return "signal: " + ws.Signal().String() + " (core dumped)"
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	}
	return "wait status " + strconv.Itoa(int(e.Status))
}

// Unwrap returns Err.
func (e *HelperError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrHelperFailed) hold.
func (e *HelperError) Is(target error) bool { return target == ErrHelperFailed }

// message is the helper's own words, or how it failed.
func (e *HelperError) message() string {
	if e.Stderr != "" {
		return e.Stderr
	}
	name, _, _ := strings.Cut(e.Cmdline, " ")
	return name + ": " + e.how()
}

// Single returns the plan that maps only the caller's own ids, at the
// inner ids p gives them (so the command's identity does not change),
// written directly. ok is false when p does not map the caller's own
// ids.
func (p Plan) Single() (q Plan, ok bool) {
	inU, okU := innerOf(p.UIDs, p.HostUID)
	inG, okG := innerOf(p.GIDs, p.HostGID)
	if !okU || !okG || (p.Privileged && p.HostUID == 0) {
		return Plan{}, false
	}
	return Plan{
		UIDs:       []Extent{{Inner: inU, Outer: p.HostUID, Count: 1}},
		GIDs:       []Extent{{Inner: inG, Outer: p.HostGID, Count: 1}},
		UID:        p.UID,
		GID:        p.GID,
		HostUID:    p.HostUID,
		HostGID:    p.HostGID,
		Privileged: p.Privileged,
	}, true
}

// FallbackNotice is the one line to print when a plan with Fallback set
// is replaced by Single because Apply failed with err: it names the
// helper's own message.
func (p Plan) FallbackNotice(err error) string {
	msg := err.Error()
	var he *HelperError
	if errors.As(err, &he) {
		msg = he.message()
	}
	return fmt.Sprintf("cannot map subordinate ids: %s; mapping only uid %d and gid %d (%s silences this, %s makes it an error)",
		msg, p.HostUID, p.HostGID, p.Names.mode(Single), p.Names.mode(Subids))
}

// oneLine trims s and joins its non-empty lines with "; ".
func oneLine(s string) string {
	var parts []string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

// Step is how Apply writes one map, spelled out for a launcher that
// replays a plan without this package (the nsbox command's replay,
// internal/replay): the helper run as "Helper PID Args…", or Text
// written to /proc/PID/uid_map or gid_map with one write(2), after
// "deny" to /proc/PID/setgroups when DenySetgroups (unless it already
// says so). Apply's retry through the helper when a direct write fails
// with EPERM is not part of it: a replay that fails starts over the
// usual way.
type Step struct {
	Helper        string
	Args          []string
	Text          string
	DenySetgroups bool
}

// Steps returns what Apply does for the uid map and the gid map, or
// false when Apply would fail before it writes anything (a helper
// needed but unusable).
func (p Plan) Steps() (uid, gid Step, ok bool) {
	step := func(gid bool) (Step, bool) {
		ext := p.UIDs
		if gid {
			ext = p.GIDs
		}
		helper, helperOK := p.Helpers.path(gid)
		if !p.Privileged && !p.ownOnly(gid) {
			if !helperOK {
				return Step{}, false
			}
			args := make([]string, 0, 3*len(ext))
			for _, e := range ext {
				args = append(args,
					strconv.FormatUint(uint64(e.Inner), 10),
					strconv.FormatUint(uint64(e.Outer), 10),
					strconv.FormatUint(uint64(e.Count), 10))
			}
			return Step{Helper: helper, Args: args}, true
		}
		return Step{Text: Format(ext), DenySetgroups: gid && !p.Privileged}, true
	}
	uid, uok := step(false)
	gid, gok := step(true)
	return uid, gid, uok && gok
}
