package bwrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/internal/bwrapext"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
	"golang.org/x/sys/unix"
)

// Main runs nsbox as bubblewrap: argv is bwrap's arguments (without
// argv[0]) and the result is the exit status. Errors of its own are one
// "bwrap: " line and status 1, as bubblewrap's; the command's own status
// passes through.
func Main(argv0 string, argv []string, stderr io.Writer, nsboxVersion string) int {
	o := newOpts()
	o.progName, o.stderr, o.nsboxVersion = argv0, stderr, nsboxVersion
	err := run(o, argv0, argv, stderr)
	var exit exitError
	var bw dieError
	var cmdExit *sandbox.ExitError
	var execErr *sandbox.ExecError
	prefix := "bwrap: "
	if o.levelPrefix {
		prefix = "<3>bwrap: " // LOG_ERR, as bubblewrap's --level-prefix
	}
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.As(err, &cmdExit):
		return cmdExit.Code
	case errors.As(err, &bw):
		fmt.Fprintf(stderr, "%s%s\n", prefix, bw.msg)
	case errors.As(err, &execErr):
		fmt.Fprintf(stderr, "%sexecvp %s: %s\n", prefix, execErr.Command, errnoText(execErr.Err))
	default:
		fmt.Fprintf(stderr, "%s%s\n", prefix, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return 1
}

// errnoText is strerror(3)'s text ("No such file or directory").
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

func run(o *opts, argv0 string, argv []string, stderr io.Writer) error {
	if len(argv) == 1 && argv[0] == "--version" {
		return o.option("--version", nil)
	}
	if len(argv) == 0 {
		fmt.Fprint(stderr, Usage(argv0, o.nsboxVersion))
		return exitError{1}
	}
	// As nsbox run: caught beside parsing and starting (ties.CaughtSignals).
	caught := ties.CatchSignalsSoon()
	defer caught.Release()
	if err := o.parse(argv); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	if len(o.args) == 0 {
		fmt.Fprint(stderr, Usage(argv0, o.nsboxVersion))
		return exitError{1}
	}
	spec, err := o.spec()
	if err != nil {
		return err
	}
	if o.dieWithParent {
		if err := ties.DieWithCaller(); errors.Is(err, ties.ErrCallerGone) {
			return exitError{1}
		} else if err != nil {
			return err
		}
	}
	return o.launch(spec, caught)
}

// check refuses the combinations bubblewrap refuses, with its words, and
// what nsbox cannot do, saying so.
func (o *opts) check() error {
	switch {
	case o.usernsBlockFD >= 0 && !o.unshareUser:
		return die("--userns-block-fd requires --unshare-user")
	case o.usernsBlockFD >= 0 && o.infoFD < 0:
		return die("--userns-block-fd requires --info-fd")
	case o.usernsFD >= 0 && o.unshareUser:
		return die("--userns not compatible --unshare-user")
	case o.usernsFD >= 0 && o.unshareUserTry:
		return die("--userns not compatible --unshare-user-try")
	case o.disableUserns && !o.unshareUser:
		return die("--disable-userns requires --unshare-user")
	case o.disableUserns && o.usernsBlockFD >= 0:
		return die("--disable-userns is not compatible with  --userns-block-fd")
	case o.hostnameSet && !o.unshareUTS:
		return die("Specifying --hostname requires --unshare-uts")
	case o.asPID1 && !o.unsharePID:
		return die("Specifying --as-pid-1 requires --unshare-pid")
	case o.asPID1 && len(o.lockFiles) > 0:
		return die("Specifying --as-pid-1 and --lock-file is not permitted")
	}
	// What nsbox cannot do: refused, so that nobody gets less isolation
	// than asked for.
	switch {
	case o.userns2FD >= 0 && o.usernsFD < 0:
		return die("--userns2 requires --userns in nsbox: a user namespace it creates has no child to switch to; fix: pass the parent of the --userns2 namespace with --userns")
	}
	return nil
}

// spec builds the Spec the options describe.
func (o *opts) spec() (*sandbox.Spec, error) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	inUID, inGID := uid, gid
	if o.uid >= 0 {
		inUID = uint32(o.uid)
	}
	if o.gid >= 0 {
		inGID = uint32(o.gid)
	}
	// bubblewrap's map: the caller's own ids only, at --uid/--gid.
	plan, err := mapping.NewPlan(mapping.Request{UID: uid, GID: gid, Mode: mapping.Single, HostRoot: uid == 0,
		Users:  []mapping.Extent{{Inner: inUID, Outer: uid, Count: 1}},
		Groups: []mapping.Extent{{Inner: inGID, Outer: gid, Count: 1}}})
	if err != nil {
		return nil, die("plan the uid/gid maps: %v", err)
	}
	enter, err := o.enter()
	if err != nil {
		return nil, err
	}
	mounts := o.mounts
	if mounts == nil {
		mounts = []sandbox.Mount{} // bubblewrap's root starts empty
	}
	for i := range mounts {
		// bubblewrap resolves the sources first (realpath), and says so.
		srcs := append([]string{mounts[i].Upper, mounts[i].Work}, mounts[i].Lower...)
		if mounts[i].Type == sandbox.MountBind && !mounts[i].Optional {
			srcs = append(srcs, mounts[i].Source)
		}
		for _, src := range srcs {
			if _, err := os.Stat(src); src != "" && err != nil {
				return nil, die("Can't find source path %s: %s", src, errnoText(err))
			}
		}
		if mounts[i].Type == sandbox.MountBind && !filepath.IsAbs(mounts[i].Source) {
			if abs, err := filepath.Abs(mounts[i].Source); err == nil {
				mounts[i].Source = abs
			}
		}
		for j, l := range mounts[i].Lower {
			if abs, err := filepath.Abs(l); err == nil && !filepath.IsAbs(l) {
				mounts[i].Lower[j] = abs
			}
		}
		for _, p := range []*string{&mounts[i].Upper, &mounts[i].Work} {
			if abs, err := filepath.Abs(*p); err == nil && *p != "" && !filepath.IsAbs(*p) {
				*p = abs
			}
		}
		if !filepath.IsAbs(mounts[i].Destination) {
			// bubblewrap resolves a relative destination from the new root.
			mounts[i].Destination = "/" + mounts[i].Destination
		}
	}
	env := append([]string{}, o.env...) // never nil: nil is nsbox's own environment
	cwd, pwd := o.workingDir(mounts)
	env = append(dropEnv(env, "PWD"), "PWD="+pwd)
	args := append([]string(nil), o.args...)
	caps := o.caps
	var programs [][]byte // the empty ones are refused below
	for _, p := range o.seccomp {
		if len(p) > 0 {
			programs = append(programs, p)
		}
	}
	spec := &sandbox.Spec{
		Process: sandbox.Process{
			Args:       args,
			Argv0:      o.argv0,
			Env:        env,
			Cwd:        cwd,
			UID:        inUID,
			GID:        inGID,
			NoNewPrivs: true,
			Stdin:      os.Stdin,
			Stdout:     os.Stdout,
			Stderr:     os.Stderr,
		},
		Namespaces: sandbox.Namespaces{Mount: true, PID: o.unsharePID, Net: o.unshareNet, IPC: o.unshareIPC,
			UTS: o.unshareUTS, Cgroup: o.unshareCgroup || (o.cgroupTr && cgroupNSExists())},
		Hostname:      o.hostname,
		Mapping:       plan,
		CommandIsPID1: o.asPID1,
		Mounts:        mounts,
		Security: sandbox.Security{
			Capabilities:         &caps,
			SeccompPrograms:      programs,
			DisableUserns:        o.disableUserns,
			AssertUsernsDisabled: o.assertUsernsDisabled,
			NewSession:           o.newSession,
		},
	}
	bwrapext.Of(spec).Enter = enter
	if err := spec.Validate(); err != nil {
		return nil, die("%v", err)
	}
	if len(programs) < len(o.seccomp) {
		// bubblewrap's line, word for word (callers match it), from its
		// prctl's refusal of the empty program in the sandbox, after
		// every other check.
		return nil, die("Unable to set up system call filtering as requested: prctl(PR_SET_SECCOMP) reported EINVAL. (Hint: this requires a kernel configured with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER.)")
	}
	return spec, nil
}

// enter opens the namespaces of --userns, --userns2 and --pidns.
func (o *opts) enter() (bwrapext.Namespaces, error) {
	var e bwrapext.Namespaces
	for _, n := range []struct {
		fd   int
		name string
		to   **os.File
	}{{o.usernsFD, "userns", &e.User}, {o.userns2FD, "userns2", &e.CommandUser}, {o.pidnsFD, "pidns", &e.PID}} {
		if n.fd < 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(n.fd), unix.F_GETFD, 0); err != nil {
			return e, die("Invalid fd: %d", n.fd)
		}
		unix.CloseOnExec(n.fd)
		*n.to = os.NewFile(uintptr(n.fd), n.name)
	}
	return e, nil
}

func cgroupNSExists() bool {
	_, err := os.Stat("/proc/self/ns/cgroup")
	return err == nil
}

func dropEnv(env []string, key string) []string {
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

// workingDir picks where the command starts and the PWD it gets, as
// bubblewrap does: --chdir DIR; else the caller's working directory if
// the sandbox has it; else $HOME if the sandbox has it; else /. Whether
// the sandbox has a directory is decided from the ops (sandboxDir), so
// cwd is "" (nsbox's own try-then-/) when the guess could be wrong.
func (o *opts) workingDir(mounts []sandbox.Mount) (cwd, pwd string) {
	if o.chdir != "" {
		return o.chdir, o.chdir
	}
	if wd, err := os.Getwd(); err == nil {
		if sandboxDir(mounts, wd) {
			return wd, wd
		}
	}
	for _, kv := range o.env {
		if home, ok := strings.CutPrefix(kv, "HOME="); ok && filepath.IsAbs(home) && sandboxDir(mounts, home) {
			return home, home
		}
	}
	return "/", "/"
}

// sandboxDir says whether p is a directory inside the sandbox the ops
// build: the last op whose destination holds p decides: a bind, by the
// host directory at the same place under its source; a tmpfs, /proc,
// /dev or a created directory only at the op's destination itself.
// Symlinks inside the sandbox are not followed; nothing is guessed.
func sandboxDir(mounts []sandbox.Mount, p string) bool {
	p = path.Clean(p)
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		dst := path.Clean(m.Destination)
		rel, ok := ties.Under(dst, p)
		if !ok {
			continue
		}
		switch m.Type {
		case sandbox.MountBind:
			st, err := os.Stat(filepath.Join(m.Source, rel))
			return err == nil && st.IsDir()
		case sandbox.MountTmpfs, sandbox.MountDir, sandbox.MountProc, sandbox.MountDev, sandbox.MountMqueue:
			if rel == "" {
				return true
			}
			if m.Type == sandbox.MountDir {
				continue // created in what was there before
			}
			// Something created inside it later would be found first.
			return false
		case sandbox.MountChmod, sandbox.MountRemountRO:
			continue
		default:
			return false
		}
	}
	return false
}

// launch starts the sandbox and waits for its command.
func (o *opts) launch(spec *sandbox.Spec, caught *ties.CaughtSignals) error {
	var info, status *os.File
	for _, fd := range []struct {
		n  int
		to **os.File
	}{{o.infoFD, &info}, {o.statusFD, &status}} {
		if fd.n < 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd.n), unix.F_GETFD, 0); err != nil {
			return die("Invalid fd: %d", fd.n)
		}
		unix.CloseOnExec(fd.n)
		*fd.to = os.NewFile(uintptr(fd.n), "bwrap-status")
	}
	if o.syncFD >= 0 {
		// Held open by the launcher, which lives as long as the
		// sandbox; it never reaches the command.
		unix.CloseOnExec(o.syncFD)
	}
	// Locks held by the launcher for the sandbox's life, on the host file
	// the sandbox path is bound from: the same file, so a lock taken from
	// outside conflicts as it does with bubblewrap's.
	for _, l := range o.lockFiles {
		host := ties.HostPathOf(spec.Mounts, l)
		if host == "" {
			return die("--lock-file %s is not supported by nsbox there: it locks files the sandbox binds from the host, and %s is not on a bind; fix: lock a file under a --bind or --ro-bind destination", l, l)
		}
		var lerr *ties.LockError
		// The launcher waits to the end (no hand-off here), so the
		// descriptor needs no keeping.
		if _, err := ties.LockFile(host); errors.As(err, &lerr) && lerr.Op == "open" {
			return die("Can't open lock file %s: %v", l, errnoText(lerr.Err))
		} else if errors.As(err, &lerr) {
			return die("Can't lock file %s: %v", l, errnoText(lerr.Err))
		}
	}
	if o.usernsBlockFD >= 0 {
		// As bubblewrap: the info names PID 1, whose maps the caller
		// writes before it writes to FD (or closes it).
		if _, err := unix.FcntlInt(uintptr(o.usernsBlockFD), unix.F_GETFD, 0); err != nil {
			return die("Invalid fd: %d", o.usernsBlockFD)
		}
		unix.CloseOnExec(o.usernsBlockFD)
		bwrapext.Of(spec).WriteMaps = func(int) error {
			blockOn(o.usernsBlockFD)
			return nil
		}
	}
	if o.blockFD >= 0 {
		// As bubblewrap: the sandbox is built (and the info written),
		// and the command runs once FD has data or is closed.
		unix.CloseOnExec(o.blockFD)
		spec.BeforeExec = func() error {
			blockOn(o.blockFD)
			return nil
		}
	}
	executed := false
	wrote := func(pid int, ns map[string]uint64) error {
		WriteInfo(info, status, pid, ns)
		if info != nil {
			info.Close()
			info = nil
		}
		return nil
	}
	if (info != nil || status != nil) && o.usernsBlockFD < 0 && !o.asPID1 {
		// As bubblewrap's child-pid: a process of the command's
		// namespaces (nsbox's PID 1 is not dumpable and sits outside
		// the nested ones), created before --block-fd lets it run.
		bwrapext.Of(spec).CommandCreated = func(pid int, ns map[string]uint64) error { return wrote(pid, ns) }
		if spec.BeforeExec == nil {
			spec.BeforeExec = func() error { return nil }
		}
	} else {
		// --userns-block-fd: the caller writes the maps of child-pid's
		// user namespace, PID 1's; --as-pid-1: PID 1 is the command.
		spec.Started = wrote
	}
	sb, err := sandbox.Start(context.Background(), spec)
	if err != nil {
		return closeStatus(status, executed, err)
	}
	executed = true
	go ties.ForwardSignals(caught.Take(), sb)
	return closeStatus(status, executed, sb.Wait())
}

// blockOn waits until fd has data (one byte is read) or is closed, then
// closes it.
func blockOn(fd int) {
	var b [1]byte
	for {
		if _, err := unix.Read(fd, b[:]); err != unix.EINTR {
			break
		}
	}
	unix.Close(fd)
}

// closeStatus writes {"exit-code": N} when the command ran and returns err.
func closeStatus(status *os.File, executed bool, err error) error {
	if status == nil {
		return err
	}
	WriteExitCode(status, executed, err)
	status.Close()
	return err
}

// Usage is bubblewrap's --help text, with how nsbox differs.
func Usage(argv0, nsboxVersion string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s [OPTIONS...] [--] COMMAND [ARGS...]\n\n", argv0)
	b.WriteString(optionHelp)
	b.WriteString("\nThis is nsbox " + nsboxVersion + " running as bubblewrap " + Version + "; see docs/bwrap.md for how it differs.\n")
	return b.String()
}

const optionHelp = `    --help                       Print this help
    --version                    Print version
    --args FD                    Parse NUL-separated args from FD
    --argv0 VALUE                Set argv[0] to the value VALUE before running the program
    --level-prefix               Prepend e.g. <3> to diagnostic messages
    --unshare-all                Unshare every namespace we support by default
    --share-net                  Retain the network namespace (can only combine with --unshare-all)
    --unshare-user               Create new user namespace (always done by nsbox)
    --unshare-user-try           Create new user namespace if possible else continue by skipping it
    --unshare-ipc                Create new ipc namespace
    --unshare-pid                Create new pid namespace
    --unshare-net                Create new network namespace
    --unshare-uts                Create new uts namespace
    --unshare-cgroup             Create new cgroup namespace
    --unshare-cgroup-try         Create new cgroup namespace if possible else continue by skipping it
    --userns FD                  Use this user namespace (cannot combine with --unshare-user)
    --userns2 FD                 After setup switch to this user namespace, only useful with --userns
    --disable-userns             Disable further use of user namespaces inside sandbox
    --assert-userns-disabled     Fail unless further use of user namespace inside sandbox is disabled
    --pidns FD                   Use this pid namespace (as parent namespace if using --unshare-pid)
    --uid UID                    Custom uid in the sandbox
    --gid GID                    Custom gid in the sandbox
    --hostname NAME              Custom hostname in the sandbox (requires --unshare-uts)
    --chdir DIR                  Change directory to DIR
    --clearenv                   Unset all environment variables
    --setenv VAR VALUE           Set an environment variable
    --unsetenv VAR               Unset an environment variable
    --lock-file DEST             Take a lock on DEST while sandbox is running (DEST on a bind)
    --sync-fd FD                 Keep this fd open while sandbox is running
    --bind SRC DEST              Bind mount the host path SRC on DEST
    --bind-try SRC DEST          Equal to --bind but ignores non-existent SRC
    --dev-bind SRC DEST          Bind mount the host path SRC on DEST, allowing device access
    --dev-bind-try SRC DEST      Equal to --dev-bind but ignores non-existent SRC
    --ro-bind SRC DEST           Bind mount the host path SRC readonly on DEST
    --ro-bind-try SRC DEST       Equal to --ro-bind but ignores non-existent SRC
    --bind-fd FD DEST            Bind open directory or path fd on DEST
    --ro-bind-fd FD DEST         Bind open directory or path fd read-only on DEST
    --remount-ro DEST            Remount DEST as readonly
    --overlay-src SRC            Read files from SRC in the following overlay
    --overlay RWSRC WORKDIR DEST Mount overlayfs on DEST, with RWSRC as the host path for writes and
                                 WORKDIR an empty directory on the same filesystem as RWSRC
    --tmp-overlay DEST           Mount overlayfs on DEST, with writes going to an invisible tmpfs
    --ro-overlay DEST            Mount overlayfs read-only on DEST
    --exec-label LABEL           Exec label for the sandbox (not supported)
    --file-label LABEL           File label for temporary sandbox content (not supported)
    --proc DEST                  Mount new procfs on DEST
    --dev DEST                   Mount new dev on DEST
    --tmpfs DEST                 Mount new tmpfs on DEST
    --mqueue DEST                Mount new mqueue on DEST
    --dir DEST                   Create dir at DEST
    --file FD DEST               Copy from FD to destination DEST
    --bind-data FD DEST          Copy from FD to file which is bind-mounted on DEST
    --ro-bind-data FD DEST       Copy from FD to file which is readonly bind-mounted on DEST
    --symlink SRC DEST           Create symlink at DEST with target SRC
    --seccomp FD                 Load and use seccomp rules from FD (not repeatable)
    --add-seccomp-fd FD          Load and use seccomp rules from FD (repeatable)
    --block-fd FD                Block on FD until some data to read is available
    --userns-block-fd FD         Block on FD until the user namespace is ready
    --info-fd FD                 Write information about the running container to FD
    --json-status-fd FD          Write container status to FD as multiple JSON documents
    --new-session                Create a new terminal session
    --die-with-parent            Kills with SIGKILL child process (COMMAND) when bwrap or bwrap's parent dies.
    --as-pid-1                   Do not install a reaper process with PID=1
    --cap-add CAP                Add cap CAP when running as privileged user
    --cap-drop CAP               Drop cap CAP when running as privileged user
    --perms OCTAL                Set permissions of next argument (--bind-data, --file, etc.)
    --size BYTES                 Set size of next argument (only for --tmpfs)
    --chmod OCTAL PATH           Change permissions of PATH (must already exist)
`
