package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/internal/containerenv"
	"github.com/nsbox/nsbox/internal/handoff"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/sandbox/fastpath"
	"github.com/spf13/pflag"
)

// runFlags are the flags of nsbox run, in the order --help lists them.
type runFlags struct {
	fs *pflag.FlagSet
	// argv is run's whole argument list, flags included: a detached
	// supervisor is started with it.
	argv []string

	root        bool
	uid, gid    uint32
	mapMode     string
	mapUsers    []string
	mapGroups   []string
	mapHostRoot bool
	unshare     []string
	share       []string
	hostname    string
	chdir       string
	setenv      []string
	unsetenv    []string
	clearenv    bool
	argv0       string
	ties        tieFlags // --die-with-parent, --lock-file (tie_flags.go)
	mounts      *mountFlags
	state       *stateFlags
	term        terminalFlags // --tty, --spec, --print-spec (terminal_flags.go)
	security    *securityFlags
	net         *netFlags
	image       imageFlags // --image (image_flags.go)
}

func newRunFlags() *runFlags {
	f := &runFlags{fs: pflag.NewFlagSet("run", pflag.ContinueOnError)}
	fs := f.fs
	fs.SetInterspersed(false) // flags after COMMAND belong to COMMAND
	fs.SortFlags = false
	fs.BoolVar(&f.root, "root", false, "run as root (uid 0, gid 0) inside; your own ids map to 0")
	fs.Uint32Var(&f.uid, "uid", 0, "run as this `UID` inside (default: your uid, or 0 with --root)")
	fs.Uint32Var(&f.gid, "gid", 0, "run as this `GID` inside (default: your gid, or 0 with --root)")
	fs.StringVar(&f.mapMode, "map", "auto", "`MODE` of the id maps: auto (your subordinate ids too, if you have some and newuidmap works), subids (the same, or fail) or single (only your own ids)")
	listVar(fs, &f.mapUsers, "map-users", "", "map uids `INNER:OUTER:COUNT` (repeatable, as unshare(1)); replaces the computed uid map")
	listVar(fs, &f.mapGroups, "map-groups", "", "map gids `INNER:OUTER:COUNT` (repeatable); replaces the computed gid map")
	fs.BoolVar(&f.mapHostRoot, "map-host-root", false, "when run as real root, map host root into the sandbox (default: an unprivileged range)")
	sliceVar(fs, &f.unshare, "unshare", "create only these `NS[,NS]` of cgroup, ipc, mnt, net, pid, uts (default: all)")
	sliceVar(fs, &f.share, "share", "share these `NS[,NS]` with the host instead of creating them")
	fs.StringVar(&f.hostname, "hostname", "", "set the `NAME` of the sandbox (needs its own uts namespace)")
	fs.StringVar(&f.chdir, "chdir", "", "run the command in `DIR` (default: the current directory)")
	listVar(fs, &f.setenv, "setenv", "", "set `KEY=VALUE` in the command's environment (repeatable)")
	listVar(fs, &f.unsetenv, "unsetenv", "", "remove `KEY` from the command's environment (repeatable)")
	fs.BoolVar(&f.clearenv, "clearenv", false, "start the command with an empty environment (then --setenv applies)")
	fs.StringVar(&f.argv0, "argv0", "", "run the command with `VALUE` as its argv[0] (COMMAND still names the program), e.g. --argv0 -bash for a login shell")
	f.ties.register(fs)
	f.mounts = addMountFlags(fs)
	f.image.register(fs)
	f.mounts.image = &f.image
	f.state = addStateFlags(fs)
	f.term.register(fs)
	f.security = addSecurityFlags(fs)
	f.net = addNetFlags(fs)
	fs.BoolP("help", "h", false, "show this help")
	fs.Usage = func() {}
	return f
}

func runUsage(f *runFlags) string {
	return `Usage: nsbox run [flags] [--] COMMAND [ARG...]

Runs COMMAND in a new sandbox: a user namespace (always), and new mount,
PID, network, IPC, UTS and cgroup namespaces unless --share says otherwise.
Inside, PID 1 is nsbox's init; the network has only lo, up. The filesystem
is the host's / read-only (every submount too), the current directory
read-write, an empty tmpfs on /tmp, a minimal /dev and a new /proc. /home,
/run and $XDG_RUNTIME_DIR are empty, and your home is a private, empty,
writable directory at its path ($HOME unchanged; --share-home shows the
real one read-only). From your home, a parent of it, / or a system
directory nothing is bound writable (nsbox says so; --bind . asks). The
mount flags below add to the view in command-line order (--empty or
--rootfs start from another root); a destination that does not exist is
made in the sandbox's view, never on the host. container=nsbox is set
(unless --clearenv).
The sandbox ends with the command, and dies with nsbox if nsbox is killed.

Flags:
` + f.fs.FlagUsages() + `
Examples:
  nsbox run -- id                               # same uid as you, new namespaces
  nsbox run --root -- cat /proc/self/uid_map    # root inside: 0 <you> 1, 1 <subuid> 65536
  nsbox run --map single --root -- id           # only your own id, mapped to 0
  nsbox run --map-users 0:1000:1 --map-users 1:100000:1000 --root -- id
  nsbox run --share net -- ip addr              # keep the host's network
  nsbox run --hostname box --setenv PS1='box$ ' -- bash
  nsbox run -- make test                        # writes only to . (and a private /tmp)
  nsbox run --tmp-overlay /usr -- sh -c 'touch /usr/x'   # writes vanish on exit
  nsbox run --ro-bind ~/data:/data --tmpfs /run:size=64m -- ls /data
  nsbox run --cache go -- go test ./...        # Go's caches kept between runs (nsbox cache ls)
  nsbox run --home dev -- bash                 # a persistent home of its own
  nsbox run --root --rootfs ./busybox-root -- sh
  nsbox run --image debian:12 -- cat /etc/debian_version   # an OCI image, pulled once (nsbox help image)
  nsbox run -t -- vim notes.txt                 # a terminal of the sandbox's own (see also nsbox shell)
  nsbox run --print-spec --root -- make > s.json   # the JSON spec these flags build
  nsbox run --spec s.json                       # ... run it (the Go API takes the same Spec)
  cd ~/src && nsbox run --landlock -- make      # Landlock: system dirs read-only, ~/src writable
  nsbox run --die-with-parent -- make           # killing nsbox's caller kills the sandbox
  nsbox run --lock-file $PWD/.lock -- make      # a shared lock on ./.lock while it runs
  nsbox run --ro-bind-fd 3:/data -- ls /data 3<~/data   # the directory fd 3 is open on
  nsbox run --argv0 -bash -- bash               # bash sees itself as a login shell
  nsbox run --root --cap-drop ALL --cap-add CAP_NET_BIND_SERVICE -- ./server

Environment:
  NSBOX_SUBUID_FILE, NSBOX_SUBGID_FILE   read these instead of /etc/subuid and /etc/subgid
  NSBOX_HELPER_DIR   look for newuidmap and newgidmap only in this directory
                     (default: /usr/bin, /usr/sbin, /bin, /sbin, then PATH)
  NSBOX_FASTPATH=off start without the speed tricks (pre-forked stage, early
                     namespaces, hand-off to a small supervisor, replay of a
                     run planned before): the same sandbox, a slower start
                     (for comparisons)

Exit status: the command's own (128+N if signal N killed it); 125 when nsbox
fails, 126 when the command cannot be executed, 127 when it is not found.
`
}

func runCommand(args []string, stdout, stderr io.Writer) error {
	replayed := replayPass()
	f := newRunFlags()
	if err := f.fs.Parse(args); err != nil {
		if strings.Contains(err.Error(), "; fix: ") {
			return usageError{fmt.Sprintf("run: %v", err)}
		}
		return usageError{fmt.Sprintf("run: %v; fix: see nsbox help run", err)}
	}
	if help, _ := f.fs.GetBool("help"); help {
		fmt.Fprint(stdout, runUsage(f))
		return nil
	}
	f.argv = args
	rec := newRecorder(f.fs, f.mounts.ops, f.readsSubIDs, replayed, stderr)
	unshareEarly(f.fs)
	return f.launch(f.fs.Args(), stdout, stderr, rec)
}

// launch runs the sandbox the flags describe with args as its command, or
// prints its spec (--print-spec). rec, if not nil, keeps the run's plan
// for the replay (replay.go).
func (f *runFlags) launch(args []string, stdout, stderr io.Writer, rec *recorder) error {
	caught := ties.CatchSignalsSoon()
	defer caught.Release()
	f.net.startHelper(!f.term.printSpec && !(f.state.detach && f.state.superFD < 0))
	spec, notice, err := f.buildSpec(args)
	f.net.closeHelper() // started but never configured: the flags were refused
	if err != nil {
		return err
	}
	defer f.net.waitHelper() // last, after sess.end: see waitHelper
	if f.term.printSpec {
		return printSpec(spec, stdout)
	}
	if notice != "" && !fastpath.ReplayNoticed() {
		fmt.Fprintln(stderr, notice)
	}
	if f.state.detach && f.term.tty {
		return usageError{"--detach cannot be combined with --tty: a detached sandbox has no terminal; fix: drop one"}
	}
	if f.state.detach {
		if err := f.ties.checkDetach(); err != nil {
			return err
		}
	}
	spec.Process.Stdin, spec.Process.Stdout, spec.Process.Stderr = os.Stdin, os.Stdout, os.Stderr
	spec.Notify = func(notice string) { fmt.Fprintln(stderr, "nsbox: "+notice) }
	sess, err := f.state.begin(spec, f.argv, stdout, stderr)
	if sess == nil {
		return err // failed, or detached
	}
	if err := f.ties.hold(spec); err != nil {
		return sess.end(err)
	}
	if rec != nil {
		rec.hook(spec, sess.entryBase, sess.dir, f.state.name, notice)
	}
	sb, err := sandbox.Start(context.Background(), spec)
	if err != nil {
		caught.Release()
		if errors.Is(err, errRecorded) {
			sess.end(nil)
			// The sweep this start would have made once its command
			// ran (session.started), now: the replay leaves a start to
			// Go while one is due.
			state.MaybeClean(sess.dir)
			return reexec()
		}
		return sess.end(err)
	}
	sigs := caught.Take()
	if err := sess.started(); err != nil {
		sb.Signal(syscall.SIGKILL)
		sb.Wait()
		return sess.end(err)
	}
	if sess.entry != nil {
		rec.save() // a plan that cannot be kept costs the next run a replay only
	}
	go ties.ForwardSignals(sigs, sb)
	stopPorts := f.net.servePorts(sess) // nsbox port (port_control.go)
	// Once the command has ended, the entry goes while PID 1 ends, as
	// the hand-off's supervisor removes it (sess.release); end does the
	// rest after Wait.
	var ended sync.Once
	release := func() { ended.Do(func() { stopPorts(); sess.release() }) }
	handoff.Of(sb).AtExit(release)
	sess.handOff(sb)
	err = sb.Wait()
	release()
	return sess.end(err)
}

// spec builds the sandbox.Spec that the flags describe.
func (f *runFlags) spec(args []string) (*sandbox.Spec, string, error) {
	if f.image.keep != "" && f.image.ref == "" {
		return nil, "", usageError{"--keep: only with --image (it keeps an image run's writable layer); fix: add --image REF, or --overlay for a directory of the host"}
	}
	if f.image.ref != "" {
		// The caller's own ids are the image's root, as in podman;
		// --uid and --gid pick the command's ids in that map.
		f.root = true
	} else if len(args) == 0 {
		return nil, "", usageError{"run: no command given; fix: nsbox run [flags] -- COMMAND [ARG...]"}
	}
	plan, err := f.plan()
	if err != nil {
		return nil, "", err
	}
	if f.image.ref != "" {
		if err := f.image.load(args, plan, os.Stderr); err != nil {
			return nil, "", err
		}
	}
	spec := &sandbox.Spec{
		Process: sandbox.Process{
			Args:       args,
			Argv0:      f.argv0,
			Env:        f.environ(),
			Cwd:        f.chdir,
			UID:        plan.UID,
			GID:        plan.GID,
			NoNewPrivs: true,
		},
		Namespaces: sandbox.AllNamespaces(),
		Hostname:   f.hostname,
		Mapping:    plan,
	}
	if f.image.ref != "" {
		f.image.apply(f, spec, args)
	}
	if f.fs.Changed("uid") {
		spec.Process.UID = f.uid
	}
	if f.fs.Changed("gid") {
		spec.Process.GID = f.gid
	}
	if f.fs.Changed("unshare") {
		spec.Namespaces = sandbox.Namespaces{}
		for _, ns := range f.unshare {
			if err := spec.Namespaces.Set(strings.TrimSpace(ns), true); err != nil {
				return nil, "", usageError{fmt.Sprintf("--unshare %s: %v", ns, err)}
			}
		}
	}
	for _, ns := range f.share {
		if err := spec.Namespaces.Set(strings.TrimSpace(ns), false); err != nil {
			return nil, "", usageError{fmt.Sprintf("--share %s: %v", ns, err)}
		}
	}
	if err := f.net.apply(f.fs, spec); err != nil {
		return nil, "", err
	}
	if f.fs.Changed("argv0") && f.argv0 == "" {
		return nil, "", usageError{"--argv0: empty VALUE; fix: give the name the command should see, e.g. --argv0 -bash"}
	}
	for _, kv := range f.setenv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, "", usageError{fmt.Sprintf("--setenv %q: not KEY=VALUE; fix: e.g. --setenv LANG=C.UTF-8", kv)}
		}
	}
	viewNotice, err := f.mounts.apply(spec)
	if err != nil {
		return nil, "", err
	}
	if err := f.image.keepLayer(spec); err != nil {
		return nil, "", err
	}
	f.net.placeFiles(spec)
	notice, err := f.security.apply(f.fs, spec)
	if err != nil {
		return nil, "", err
	}
	if err := spec.Validate(); err != nil {
		return nil, "", err
	}
	f.state.network = f.net.stateInfo()
	planNotice := plan.Notice
	if planNotice != "" {
		planNotice = "nsbox: " + planNotice
	}
	return spec, joinLines(planNotice, viewNotice, notice, f.net.notice), nil
}

// plan reads the caller's subordinate ids and plans the id maps.
func (f *runFlags) plan() (mapping.Plan, error) {
	req, err := f.mapRequest()
	if err != nil {
		return mapping.Plan{}, err
	}
	return mapping.ForCaller(req)
}

// mapRequest is what the flags ask of the id maps.
func (f *runFlags) mapRequest() (mapping.Request, error) {
	mode, err := mapping.ParseMode(f.mapMode)
	if err != nil {
		return mapping.Request{}, fmt.Errorf("--map %w", err)
	}
	req := mapping.Request{
		UID:      uint32(os.Getuid()),
		GID:      uint32(os.Getgid()),
		Mode:     mode,
		Root:     f.root,
		HostRoot: f.mapHostRoot,
		Names:    flagwords.MapNames,
	}
	for _, s := range f.mapUsers {
		e, err := mapping.ParseExtent(s)
		if err != nil {
			return mapping.Request{}, usageError{fmt.Sprintf("--map-users %s: %v", s, err)}
		}
		req.Users = append(req.Users, e)
	}
	for _, s := range f.mapGroups {
		e, err := mapping.ParseExtent(s)
		if err != nil {
			return mapping.Request{}, usageError{fmt.Sprintf("--map-groups %s: %v", s, err)}
		}
		req.Groups = append(req.Groups, e)
	}
	return req, nil
}

// readsSubIDs reports whether planning the maps reads the caller's
// subordinate ids and looks for the helpers (mapping.Request.ReadsSubIDs),
// for the replay's checks; true where that cannot be told.
func (f *runFlags) readsSubIDs() bool {
	req, err := f.mapRequest()
	if err != nil {
		return true
	}
	here, err := mapping.CurrentNamespace()
	return err != nil || req.ReadsSubIDs(here)
}

// environ is the command's environment: ours with container=nsbox (or
// none with --clearenv), less --unsetenv, plus --setenv.
func (f *runFlags) environ() []string {
	var env []string
	if !f.clearenv && f.image.ref != "" {
		env = f.image.env()
	} else if !f.clearenv {
		env = containerenv.Set(os.Environ())
	}
	drop := map[string]bool{}
	for _, k := range f.unsetenv {
		drop[k] = true
	}
	for _, kv := range f.setenv {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	// Never nil: a nil Process.Env is the caller's environment, and
	// --clearenv means none.
	out := make([]string, 0, len(env)+len(f.setenv))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, f.setenv...)
}

// joinLines joins the non-empty notices, one a line.
func joinLines(notices ...string) string {
	var out []string
	for _, n := range notices {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "\n")
}
