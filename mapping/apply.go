package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"

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
// The two maps are independent files, so they are written concurrently:
// with helpers, newuidmap and newgidmap (each a setuid exec of a few
// milliseconds) run side by side. When both fail, the uid map's error is
// returned.
//
// Errors name the file or the full command line, and a helper's stderr.
func (p Plan) Apply(pid int) error {
	gidErr := make(chan error, 1)
	go func() { gidErr <- p.apply(pid, true) }()
	uerr := p.apply(pid, false)
	gerr := <-gidErr
	if uerr != nil {
		return uerr
	}
	return gerr
}

func (p Plan) apply(pid int, gid bool) error {
	ext, file, helperName := p.UIDs, "uid_map", "newuidmap"
	if gid {
		ext, file, helperName = p.GIDs, "gid_map", "newgidmap"
	}
	helper, helperOK := p.Helpers.path(gid)
	if !p.Privileged && !p.ownOnly(gid) {
		if !helperOK {
			return &planError{
				msg: fmt.Sprintf("write /proc/%d/%s: %s needs %s, but %s", pid, file, colons(ext), helperName, p.Helpers.problem()),
				err: ErrHelperUnusable,
			}
		}
		return runHelper(helper, pid, ext, gid)
	}
	if gid && !p.Privileged {
		if err := denySetgroups(pid); err != nil {
			return err
		}
	}
	err := writeOnce(fmt.Sprintf("/proc/%d/%s", pid, file), []byte(Format(ext)))
	if err == nil {
		return nil
	}
	err = fmt.Errorf("write /proc/%d/%s: %w", pid, file, err)
	if errors.Is(err, unix.EPERM) && helperOK {
		if herr := runHelper(helper, pid, ext, gid); herr != nil {
			return fmt.Errorf("%w; then %w", err, herr)
		}
		return nil
	}
	return err
}

// writeOnce opens path for writing and writes all of b with one write(2),
// as map files require. The error is the bare cause (the caller names the
// file).
func writeOnce(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return unwrapPath(err)
	}
	n, err := f.Write(b)
	cerr := f.Close()
	switch {
	case err != nil:
		return unwrapPath(err)
	case n != len(b):
		return fmt.Errorf("short write: %d of %d bytes", n, len(b))
	case cerr != nil:
		return unwrapPath(cerr)
	}
	return nil
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
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == "deny" {
		return nil
	}
	if err := writeOnce(path, []byte("deny")); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// setgroupsDeniedHere reports whether the caller's own user namespace
// denies setgroups(2): then so does every namespace it creates.
func setgroupsDeniedHere() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// runHelper runs "helper PID inner outer count …".
func runHelper(helper string, pid int, ext []Extent, gid bool) error {
	args := make([]string, 0, 1+3*len(ext))
	args = append(args, strconv.Itoa(pid))
	for _, e := range ext {
		args = append(args,
			strconv.FormatUint(uint64(e.Inner), 10),
			strconv.FormatUint(uint64(e.Outer), 10),
			strconv.FormatUint(uint64(e.Count), 10))
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helper, args...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	return &HelperError{
		Cmdline: helper + " " + strings.Join(args, " "),
		GID:     gid,
		Stderr:  oneLine(stderr.String()),
		Err:     err,
	}
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
	// Stderr is the helper's own message, on one line ("" if it said
	// nothing).
	Stderr string
	// Err is how it failed (an *exec.ExitError, usually).
	Err error
}

// Error names the command line, its exit, its message and a fix.
func (e *HelperError) Error() string {
	fix := "fix: check that /etc/subuid grants you those outer ids (newuidmap allows only them and your own uid)"
	if e.GID {
		fix = "fix: check that /etc/subgid grants you those outer ids (newgidmap allows only them and your own gid)"
	}
	if e.Stderr != "" {
		return fmt.Sprintf("%s: %v: %s; %s", e.Cmdline, e.Err, e.Stderr, fix)
	}
	return fmt.Sprintf("%s: %v; %s", e.Cmdline, e.Err, fix)
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
	return fmt.Sprintf("%s: %v", name, e.Err)
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
