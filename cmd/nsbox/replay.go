package main

// The CLI's side of the replay (internal/replay explains it;
// sandbox/internal/stage/replay.c runs it): which `nsbox run` invocations
// get a plan, what inputs a plan is checked against, and when it is
// saved. The rule is that a plan holds only what the C side can do
// exactly as this launcher does, and every input this launcher's
// planning read; a miss costs a replay, never a different sandbox.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/internal/hostdirs"
	"github.com/nsbox/nsbox/internal/replay"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/sandbox/fastpath"
	"github.com/nsbox/nsbox/subid"
)

// replayFlags are the flags of `nsbox run` a replayed run may have been
// given: the launcher's part of each is the stage's CONFIG, the maps and
// the state entry, and what the launcher reads of the host for it is an
// input the plan checks (replayChecks). The mount ops among them are
// applied by PID 1 from the CONFIG; of the host they name only the bind
// sources, whose every path component the plan checks. --name names the
// state entry (replay.c reserves it; a name in use falls through to Go,
// which says so). Any other flag makes no plan.
var replayFlags = []string{"map", "root", "uid", "gid", "setenv", "unsetenv", "clearenv", "hostname", "argv0", "chdir", "name",
	"bind", "ro-bind", "dev-bind", "bind-try", "ro-bind-try", "dev-bind-try", "tmpfs", "dir", "symlink", "chmod", "remount-ro"}

// replayedEnv marks the process the launcher re-executed, in the forced
// mode, for the constructor to replay (replay.c's REPLAYED_ENV): if Go
// runs in it, the replay did not happen.
const replayedEnv = "_NSBOX_REPLAYED"

// errRecorded stops a start in the forced mode once its plan is saved:
// the launcher re-executes itself so that the constructor replays it.
var errRecorded = errors.New("replay plan recorded")

// recorder keeps what one eligible run's plan needs until it is saved.
type recorder struct {
	plan     replay.Plan
	forced   bool // NSBOX_FASTPATH=replay, in its first pass
	notified bool // the start printed a notice the plan does not hold
	ready    bool // Sent gave a plan the C side can run
}

// replayPass reads and removes the forced mode's marker: true in the
// process re-executed to replay. Call it before anything reads the
// environment.
func replayPass() bool {
	if _, ok := os.LookupEnv(replayedEnv); !ok {
		return false
	}
	os.Unsetenv(replayedEnv)
	return true
}

// newRecorder returns a recorder for this run, or nil when it gets no
// plan: the speed tricks off, a terminal on a standard stream, a flag
// outside replayFlags, or the re-executed pass of the forced mode (which
// says on stderr why the constructor did not replay it). ops are the
// mount flags' ops, in command-line order; subids tells whether the
// planning of the maps reads the subordinate ids and looks for the
// helpers (called only for a run that gets a plan).
func newRecorder(fs *pflag.FlagSet, ops []sandbox.Mount, subids func() bool, replayed bool, stderr io.Writer) *recorder {
	if !fastpath.Enabled() {
		return nil
	}
	forced := os.Getenv(fastpath.Env) == fastpath.Replay
	if replayed {
		if why := fastpath.ReplayWhy(); forced && why != "" {
			fmt.Fprintf(stderr, "nsbox: replay: not replayed: %s\n", why)
		}
		return nil
	}
	eligible := true
	fs.Visit(func(fl *pflag.Flag) {
		if !slices.Contains(replayFlags, fl.Name) {
			eligible = false
		}
	})
	for fd := 0; fd <= 2 && eligible; fd++ {
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			eligible = false
		}
	}
	if !eligible {
		return nil
	}
	r := &recorder{forced: forced}
	argv, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		return nil
	}
	r.plan.Argv = argv
	for _, kv := range os.Environ() {
		r.plan.Env = append(append(r.plan.Env, kv...), 0)
	}
	if r.plan.Creds, err = replay.Creds(); err != nil {
		return nil
	}
	if r.plan.Cwd, err = os.Getwd(); err != nil {
		return nil
	}
	// The state directory as the run will have it (begin makes it on
	// the first run): whether it exists decides what the view hides.
	state.Dir()
	r.plan.Checks = replayChecks(r.plan.Cwd, ops, subids())
	return r
}

// replayChecks are the inputs of `nsbox run`'s planning with
// replayFlags, read from the spec builder (docs/startup.md, "The replay:
// the design to build", lists them): every file and directory it looks
// at, each path's components for the ones it resolves, and the kernel's
// boot id for the features it probes. Looked at before the planning, so
// that a change while it plans shows as a change.
//
// ops are the mount flags' ops. A bind's source is what the launcher
// looks at (sandbox.Spec.Validate's stat, hideStateDirs's resolving it
// against the state directories) and what PID 1 opens by its path: it
// is checked as a resolved path, each component and each symlink on the
// way. A source replaced, removed or turned into a symlink (to the state
// directory, say, which the Go launcher would then hide) no longer
// matches, and the Go launcher plans the run afresh. Between the check
// and PID 1's open the window is the Go launcher's own, between its
// planning and PID 1's open.
//
// subids is false where the maps' planning reads neither the subordinate
// ids nor looks for the helpers (mapping.Request.ReadsSubIDs: --map
// single, not as real root): /etc/subuid, /etc/subgid and the helpers are
// then no input of the plan and are not checked. Where it is true, the
// helpers are checked where mapping.FindHelpers looks, up to the one it
// takes (mapping.HelperLookups), and getsubids in every directory it may
// be found in, when /etc/nsswitch.conf sends subid.Lookup to it
// (subid.RoutedToNSS; the file's own check covers a change of that).
func replayChecks(cwd string, ops []sandbox.Mount, subids bool) []replay.Check {
	var cs []replay.Check
	seen := map[string]bool{}
	add := func(kind byte, p string) {
		if p == "" || seen[string(kind)+p] {
			return
		}
		seen[string(kind)+p] = true
		cs = append(cs, replay.Check{Kind: kind, Path: p, Want: replay.Look(kind, p)})
	}
	// A path resolved (EvalSymlinks, RealPath) depends on each of its
	// components, and a symlink's on its target's.
	var resolved func(p string, depth int)
	resolved = func(p string, depth int) {
		if !filepath.IsAbs(p) || depth > 8 {
			return
		}
		for d := filepath.Clean(p); ; d = filepath.Dir(d) {
			add(replay.Lstat, d)
			if t := replay.Look(replay.Link, d); strings.HasPrefix(t, "=") {
				add(replay.Link, d)
				target := t[1:]
				if !filepath.IsAbs(target) {
					target = filepath.Join(filepath.Dir(d), target)
				}
				resolved(target, depth+1)
			}
			if d == "/" {
				break
			}
		}
		// stat(2) differs from lstat(2), looked at above, only where
		// the last component is a symlink.
		if isSymlink(p) {
			add(replay.Stat, p)
		}
	}
	// The binary (the stage runs it; whether a sandbox could write it
	// decides between it and a sealed copy) and the kernel.
	add(replay.Stat, "/proc/self/exe")
	add(replay.Contents, "/proc/sys/kernel/random/boot_id")
	// The ids: this user namespace (mapping.CurrentNamespace, state.Dir),
	// the subordinate ids and their owner's name, the helpers.
	for _, p := range []string{"/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/setgroups",
		"/proc/sys/kernel/overflowuid", "/proc/sys/kernel/overflowgid"} {
		add(replay.Contents, p)
	}
	add(replay.Link, "/proc/self/ns/user")
	add(replay.Stat, "/proc")
	files := []string{"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime"}
	if subids {
		files = append(files, "/etc/subuid", "/etc/subgid", os.Getenv(subid.EnvUIDFile), os.Getenv(subid.EnvGIDFile))
	}
	for _, p := range files {
		resolved(p, 0)
	}
	var helpers []string
	if subids {
		helpers = mapping.HelperLookups()
	}
	if subids && subid.RoutedToNSS() {
		dirs := append([]string{"/usr/bin", "/usr/sbin", "/bin", "/sbin"}, filepath.SplitList(os.Getenv("PATH"))...)
		for _, d := range dirs {
			if filepath.IsAbs(d) {
				helpers = append(helpers, filepath.Join(d, "getsubids"))
			}
		}
	}
	for _, p := range helpers {
		resolved(p, 0)
		if !strings.HasPrefix(replay.Look(replay.Lstat, p), "E") {
			add(replay.FSFlags, p) // where it is: its mount's nosuid
		}
	}
	// The view: the system directories, the working directory and the
	// home (CwdWritable), what hides the sockets and the homes, the
	// runtime directory, and the state directories (hideStateDirs).
	for _, d := range hostdirs.System {
		resolved(d, 0)
	}
	resolved(cwd, 0)
	resolved(hostdirs.UserHome(), 0)
	for _, p := range []string{"/run", "/var/run", "/run/shm", "/etc/resolv.conf", "/home", os.Getenv("XDG_RUNTIME_DIR"), os.TempDir()} {
		resolved(p, 0)
	}
	for _, d := range state.Candidates() {
		resolved(d, 0)
	}
	// The anchors of nsbox mount, which hideStateDirs hides too.
	resolved(sandbox.MountOptions{}.AnchorsDir(), 0)
	for _, op := range ops {
		if op.Type == sandbox.MountBind {
			resolved(op.Source, 0)
		}
	}
	return cs
}

// hook makes spec report what its start sends, for the plan; base is
// the entry the run's state record is made from (session.entryBase),
// name the sandbox's name if the command line gave one (--name).
func (r *recorder) hook(spec *sandbox.Spec, base func() *state.Entry, stateDir, name, notice string) {
	notify := spec.Notify
	spec.Notify = func(n string) {
		r.notified = true
		if notify != nil {
			notify(n)
		}
	}
	replay.Of(spec).Sent = func(s replay.Sent) error {
		r.ready = false
		if !s.EarlyPrefork || !s.MapsOK || spec.Process.Terminal || stateDir == "" {
			return nil
		}
		e := base()
		e.Namespaces = map[string]uint64{"user": 0, "mnt": 0, "pid": 0, "net": 0, "ipc": 0, "uts": 0, "cgroup": 0}
		if !spec.Namespaces.Mount || !spec.Namespaces.PID || !spec.Namespaces.Net || !spec.Namespaces.IPC || !spec.Namespaces.UTS || !spec.Namespaces.Cgroup {
			return nil
		}
		tmpl, err := state.Template(e)
		if err != nil {
			return nil
		}
		r.plan.Config, r.plan.UIDMap, r.plan.GIDMap = s.Config, s.UIDMap, s.GIDMap
		r.plan.Record, r.plan.StateDir, r.plan.Name = tmpl, stateDir, name
		r.plan.SweepStamp, r.plan.SweepEvery = state.SweepStamp(stateDir), state.SweepEvery
		// The forced mode's first pass printed the notice already; its
		// plan, whose environment holds the forced mode, serves no other.
		if notice != "" && !r.forced {
			r.plan.Notice = notice + "\n"
		}
		r.ready = true
		if r.forced && !r.notified {
			if err := r.save(); err != nil {
				return nil // the usual start, then
			}
			return errRecorded
		}
		return nil
	}
}

// save stores the plan, if the run made one the C side can run.
func (r *recorder) save() error {
	if r == nil || !r.ready || r.notified {
		return nil
	}
	st, err := replay.OpenStore(r.plan.StateDir)
	if err != nil {
		return err
	}
	return st.Save(&r.plan)
}

// reexec replaces the process by the same invocation, marked, for the
// constructor to replay (the forced mode). It returns only on failure.
//
// It executes the binary by the path it was started from, as the caller
// did, so that the process keeps its name (comm, which the kernel takes
// from the file name: "exe" through /proc/self/exe), and with it PID 1
// and the stage, which nsbox exec's `ps` shows as the Go launcher's do.
// /proc/self/exe serves when that path no longer holds it; a different
// binary there would not match the plan (its /proc/self/exe check) and
// start as Go.
func reexec() error {
	env := append(os.Environ(), replayedEnv+"=1")
	if exe, err := os.Executable(); err == nil {
		syscall.Exec(exe, os.Args, env)
	}
	return fmt.Errorf("replay: re-execute nsbox: %w", syscall.Exec("/proc/self/exe", os.Args, env))
}

// isSymlink reports whether p's last component is a symlink.
func isSymlink(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}
