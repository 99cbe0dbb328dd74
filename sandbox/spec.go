package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nsbox/nsbox/internal/bwrapext"
	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/internal/remedy"
	"github.com/nsbox/nsbox/internal/replay"

	"github.com/nsbox/nsbox/mapping"
	"golang.org/x/sys/unix"
)

// Spec describes one sandbox: the command, the namespaces it gets and the
// id maps of its user namespace. It is plain data; the JSON form is what
// `nsbox run --print-spec` shows. A Spec is checked by Validate before any
// process or namespace exists, so a bad Spec leaves nothing behind.
type Spec struct {
	Process Process `json:"process"`
	// Namespaces lists what is created besides the user namespace, which
	// is always created: it is what makes every other namespace possible
	// without privilege.
	Namespaces Namespaces `json:"namespaces"`
	// Hostname is set in the new UTS namespace; "" keeps the host's name.
	Hostname string `json:"hostname,omitempty"`
	// Mapping is the id map plan applied to the user namespace, from
	// mapping.ForCaller or mapping.NewPlan. Left empty, Start plans the
	// caller's own ids, and with zero Namespaces and nil Mounts the
	// default sandbox (see Start).
	Mapping mapping.Plan `json:"mapping"`
	// Mounts builds the sandbox's filesystem, in order, on an empty tmpfs
	// root that the sandbox then pivots into (see mount.go; HostView is
	// nsbox run's default). If Mounts is nil the sandbox keeps the
	// launcher's mount tree, made private, with a new /proc (unless Start
	// plans the default sandbox: see Mapping); an empty, non-nil Mounts
	// gives an empty root.
	Mounts []Mount `json:"mounts"`
	// Started, if not nil, is called once the sandbox's PID 1 exists and
	// before its command is executed (so also when the exec then fails),
	// with PID 1's host pid and the sandbox's namespaces: the names the
	// kernel uses under /proc/PID/ns ("user", "mnt", "pid", "net", "ipc",
	// "uts", "cgroup") mapped to their inode numbers, leaving out those the
	// sandbox shares with the launcher (the user namespace is always
	// there). nsbox uses it to record the sandbox (nsbox ps) and for
	// bubblewrap's info document. An error from it stops the start.
	Started func(pid int, ns map[string]uint64) error `json:"-"`
	// BeforeExec, if not nil, is called after Started (and after the
	// network is attached) while PID 1 finishes the sandbox's setup; PID
	// 1 executes the command only once it has returned. It may block, for
	// as long as the caller needs the sandbox built but idle (bubblewrap's
	// --block-fd); cancelling Start's context kills the sandbox but does
	// not interrupt it. An error from it stops the start.
	BeforeExec func() error `json:"-"`
	// Notify, if not nil, gets one-line notices about what Start did
	// differently from the spec: a newuidmap/newgidmap that failed when
	// it ran, so that Mapping fell back to the caller's own ids
	// (mapping.Plan.Fallback). nil drops them.
	Notify func(notice string) `json:"-"`
	// Security: capabilities, seccomp, Landlock (security.go).
	Security Security `json:"security"`
	// Limits: rlimits and cgroup limits (limits.go).
	Limits Limits `json:"limits"`
	// Network, when set, gives the sandbox a TAP device served from the
	// launcher (see net.go); nil leaves only lo.
	Network *Network `json:"network,omitempty"`
	// CommandIsPID1 runs the command as PID 1 of the sandbox's PID
	// namespace, without nsbox's init (bubblewrap's --as-pid-1): after
	// setup PID 1 executes the command itself instead of forking it.
	// The command then reaps the orphans of the sandbox, gets only the
	// signals it has handlers for (the kernel's rule for a namespace's
	// init; SIGKILL always), and its end ends the sandbox. It is locked
	// in as a forked command is: a short-lived child of PID 1 writes the
	// maps of its nested user namespace (nested.go) and exits before the
	// exec. Sandbox.ProcessState stays nil (no init reports the usage),
	// and Start returns once the exec happened or failed. Needs
	// Namespaces.PID; not with Process.Terminal (no init relays it).
	CommandIsPID1 bool `json:"commandIsPID1,omitempty"`
	// ext holds what only bubblewrap's command line asks for (entering
	// existing namespaces, maps the caller writes, the command's pid
	// before it runs): internal/bwrapext, reached through bwrapext.Of.
	ext bwrapext.Settings
	// replay holds the nsbox command's replay hook (internal/replay).
	replay replay.Settings
}

// Process is the command run inside, as PID 2 under nsbox's PID 1.
type Process struct {
	// Args is the command and its arguments. Args[0] is looked up in the
	// PATH of Env, inside the sandbox, as execvp(3) does.
	Args []string `json:"args"`
	// Argv0 is what the command gets as its argv[0] (its name in ps, what
	// a multi-call binary dispatches on); the program run is still
	// Args[0]. "" passes Args[0] (bubblewrap's --argv0).
	Argv0 string `json:"argv0,omitempty"`
	// Env is the command's whole environment. If Env is nil the command
	// gets the caller's (os.Environ() at Start or Join), as in os/exec;
	// an empty, non-nil Env gives it none.
	Env []string `json:"env"`
	// Cwd is the working directory inside; "" keeps the launcher's.
	Cwd string `json:"cwd,omitempty"`
	// UID and GID are the command's identity inside the sandbox. They must
	// be mapped by Mapping. The caller's supplementary groups are dropped
	// when the map allows setgroups(2), and kept (shown as the overflow
	// gid) otherwise.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// Groups are the command's supplementary groups (an image's User's),
	// at most 64 gids that Mapping maps, in place of the caller's. They
	// need a map that allows setgroups(2) (Mapping.SetgroupsAllowed: one
	// with subordinate ids, or a privileged caller's).
	Groups []uint32 `json:"groups,omitempty"`
	// NoNewPrivs sets PR_SET_NO_NEW_PRIVS for the command: setuid bits and
	// file capabilities then grant nothing on exec. Default sets it.
	NoNewPrivs bool `json:"noNewPrivs"`
	// Terminal gives the command a new pseudo-terminal from the sandbox's
	// own devpts (nsbox run --tty) as its controlling terminal, in place
	// of each of Stdin, Stdout and Stderr that is a terminal (an *os.File
	// on one: the caller's, which then never reaches the sandbox), or of
	// all three when none is. The others reach the command as they are.
	// Stdin, if replaced, is copied to the pty, and the pty's output to
	// Stdout (to Stderr when only that is replaced: a terminal has one
	// output). When Stdin and Stdout are terminals, Start puts Stdin's in
	// raw mode while the launcher holds its foreground, so Ctrl-C and
	// Ctrl-Z reach the sandbox's foreground job, and Wait restores it;
	// the window size is passed on at start and on SIGWINCH. The
	// launcher, not the command, reads Stdin and writes Stdout, until
	// Wait returns. Needs Namespaces.Mount. Set it whenever Stdin, Stdout
	// or Stderr is a terminal: a terminal passed in lets any process of
	// the sandbox read it through /proc/PID/fd, also after Wait returned
	// (docs/security.md, "The terminal rule").
	Terminal bool `json:"terminal,omitempty"`

	// Stdin, Stdout and Stderr are the command's standard streams. An
	// *os.File is handed over as it is; anything else is copied through a
	// pipe; nil is /dev/null. They are not part of the JSON form.
	Stdin  io.Reader `json:"-"`
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`

	// ExtraFiles are more open files the command inherits, as in
	// os/exec: entry i becomes file descriptor 3+i (a make jobserver's
	// pipe, a listening socket). Nil entries are not allowed. The files
	// reach nothing but the command: PID 1 passes them on and keeps no
	// copy. Not part of the JSON form.
	ExtraFiles []*os.File `json:"-"`

	// Cancel is called when the context given to Start or Join is done,
	// instead of the default, which kills the sandbox (SIGKILL to PID 1;
	// for Join, to the joined command). A Cancel that returns leaves the
	// ending to the command; Wait still waits for it, and WaitDelay
	// bounds that wait. Not part of the JSON form.
	Cancel func(*Sandbox) error `json:"-"`

	// WaitDelay bounds two waits, as in os/exec. After the context is
	// done and Cancel has run, the sandbox is killed if it has not ended
	// within WaitDelay. After the command ends, Wait waits at most
	// WaitDelay for the copying of a non-file Stdin, Stdout or Stderr
	// (which a process that outlives the command, such as a background
	// job with the PID namespace shared, may keep open), then closes the
	// pipes and returns ErrWaitDelay if nothing else went wrong. Zero
	// waits without bound.
	WaitDelay time.Duration `json:"-"`
}

// ErrWaitDelay is returned by Wait when the command ended but its output
// pipes stayed open past Process.WaitDelay.
var ErrWaitDelay = errors.New("sandbox: WaitDelay expired before the command's I/O was done")

// Namespaces says which namespaces a sandbox gets of its own. A false field
// shares the launcher's.
type Namespaces struct {
	Mount  bool `json:"mount"`
	PID    bool `json:"pid"`
	Net    bool `json:"net"`
	IPC    bool `json:"ipc"`
	UTS    bool `json:"uts"`
	Cgroup bool `json:"cgroup"`
}

// AllNamespaces unshares every namespace nsbox knows.
func AllNamespaces() Namespaces {
	return Namespaces{Mount: true, PID: true, Net: true, IPC: true, UTS: true, Cgroup: true}
}

// Set turns on (or off) the namespace called name, as /proc/PID/ns names
// it (cgroup, ipc, mnt, net, pid, uts), with "mount" accepted for "mnt".
func (n *Namespaces) Set(name string, on bool) error {
	switch name {
	case "mnt", "mount":
		n.Mount = on
	case "pid":
		n.PID = on
	case "net", "network":
		n.Net = on
	case "ipc":
		n.IPC = on
	case "uts":
		n.UTS = on
	case "cgroup":
		n.Cgroup = on
	case "user":
		if !on {
			return errors.New("the user namespace is always created: it is what lets nsbox create the others without privilege")
		}
	default:
		return fmt.Errorf("unknown namespace %q; use %s", name, strings.Join(procfs.NamespaceNames(), ", "))
	}
	return nil
}

// cloneFlags returns the CLONE_NEW* flags for everything but the user
// namespace.
func (n Namespaces) cloneFlags() int {
	f := 0
	for _, x := range []struct {
		on   bool
		flag int
	}{
		{n.Mount, unix.CLONE_NEWNS}, {n.PID, unix.CLONE_NEWPID}, {n.Net, unix.CLONE_NEWNET},
		{n.IPC, unix.CLONE_NEWIPC}, {n.UTS, unix.CLONE_NEWUTS}, {n.Cgroup, unix.CLONE_NEWCGROUP},
	} {
		if x.on {
			f |= x.flag
		}
	}
	return f
}

// Validate checks the spec before anything is started. Its errors name the
// field and the fix. Start fills in an empty Mapping and a nil Env first
// (see Start); called directly, Validate checks the spec as it is.
func (s *Spec) Validate() error {
	if len(s.Process.Args) == 0 || s.Process.Args[0] == "" {
		return &SpecError{Field: "Process.Args", Problem: "no command given", Fix: remedy.Hint{Kind: remedy.Command}}
	}
	if s.Hostname != "" && !s.Namespaces.UTS {
		return &SpecError{Field: "Hostname", Problem: "needs a UTS namespace of its own", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "uts"}}
	}
	if s.Process.Terminal && !s.Namespaces.Mount {
		return &SpecError{Field: "Process.Terminal", Problem: "needs a mount namespace of its own (for the sandbox's own /dev/pts)", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "mnt"}}
	}
	if s.CommandIsPID1 && !s.Namespaces.PID {
		return &SpecError{Field: "CommandIsPID1", Problem: "needs a PID namespace of its own", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "pid"}}
	}
	if s.CommandIsPID1 && s.Process.Terminal {
		return &SpecError{Field: "CommandIsPID1", Problem: "cannot be combined with Process.Terminal: nsbox's init relays the terminal, and the command replaces it", Fix: remedy.Hint{Kind: remedy.Text, Arg: "leave out Process.Terminal or CommandIsPID1"}}
	}
	if len(s.Hostname) > 64 {
		return &SpecError{Field: "Hostname", Value: strconv.Quote(s.Hostname), Problem: "longer than 64 bytes"}
	}
	if s.ext.Enter.CommandUser != nil && s.ext.Enter.User == nil {
		return &SpecError{Field: "Enter.CommandUser", Problem: "needs Enter.User: it must be a child of the user namespace the sandbox is made in", Fix: remedy.Hint{Kind: remedy.Text, Arg: "set Enter.User to its parent, or leave out Enter.CommandUser"}}
	}
	if s.ext.WriteMaps != nil && s.ext.Enter.User != nil {
		return &SpecError{Field: "WriteMaps", Problem: "cannot be combined with Enter.User, whose maps are written already", Fix: remedy.Hint{Kind: remedy.Text, Arg: "leave out WriteMaps or Enter.User"}}
	}
	if err := s.checkGroups(); err != nil {
		return err
	}
	if s.ext.Enter.User != nil || s.ext.WriteMaps != nil {
		return s.validateRest()
	}
	if len(s.Mapping.UIDs) == 0 || len(s.Mapping.GIDs) == 0 {
		return errors.New("no uid/gid map planned; fix: build Spec.Mapping with mapping.NewPlan")
	}
	if !s.Mapping.MapsInnerUID(s.Process.UID) {
		return &SpecError{Field: "Process.UID", Value: fmt.Sprint(s.Process.UID), Problem: "not mapped into the sandbox (uid map: " + oneLine(s.Mapping.UIDs) + ")", Fix: remedy.Hint{Kind: remedy.MapID, Arg: "uid"}}
	}
	if !s.Mapping.MapsInnerGID(s.Process.GID) {
		return &SpecError{Field: "Process.GID", Value: fmt.Sprint(s.Process.GID), Problem: "not mapped into the sandbox (gid map: " + oneLine(s.Mapping.GIDs) + ")", Fix: remedy.Hint{Kind: remedy.MapID, Arg: "gid"}}
	}
	return s.validateRest()
}

// validateRest is Validate after the id maps, which an entered user
// namespace (Enter.User) brings along instead.
func (s *Spec) validateRest() error {
	if err := s.validateMounts(); err != nil {
		return err
	}
	for _, v := range []struct{ field, s string }{{"Hostname", s.Hostname}, {"Process.Cwd", s.Process.Cwd}, {"Process.Argv0", s.Process.Argv0}} {
		if strings.IndexByte(v.s, 0) >= 0 {
			return &SpecError{Field: v.field, Value: strconv.Quote(v.s), Problem: "contains a NUL byte"}
		}
	}
	if err := s.Network.validate(s.Namespaces); err != nil {
		return err
	}
	for _, kv := range s.Process.Env {
		if strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("environment entry %q contains a NUL byte", kv)
		}
	}
	for _, a := range s.Process.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("argument %q contains a NUL byte", a)
		}
	}
	if err := s.Security.validate(); err != nil {
		return err
	}
	return s.Limits.validate()
}

// oneLine renders a map as "0 1000 1, 1 100000 65536".
func oneLine(ext []mapping.Extent) string {
	return strings.ReplaceAll(strings.TrimSpace(mapping.Format(ext)), "\n", ", ")
}

// checkGroups checks Process.Groups: few, mapped, and a map that lets
// the stage set them.
func (s *Spec) checkGroups() error {
	g := s.Process.Groups
	switch {
	case len(g) == 0:
		return nil
	case len(g) > 64:
		return &SpecError{Field: "Process.Groups", Value: fmt.Sprint(len(g)), Problem: "more than 64 groups"}
	case s.ext.Enter.User != nil || s.ext.WriteMaps != nil || !s.Mapping.SetgroupsAllowed():
		return &SpecError{Field: "Process.Groups", Problem: "needs a gid map that allows setgroups(2), which nsbox writes (subordinate ids, or a privileged caller)", Fix: remedy.Hint{Kind: remedy.Text, Arg: "leave out Process.Groups"}}
	}
	for _, id := range g {
		if !s.Mapping.MapsInnerGID(id) {
			return &SpecError{Field: "Process.Groups", Value: fmt.Sprint(id), Problem: "not mapped into the sandbox (gid map: " + oneLine(s.Mapping.GIDs) + ")", Fix: remedy.Hint{Kind: remedy.MapID, Arg: "gid"}}
		}
	}
	return nil
}

func init() {
	bwrapext.Register(func(spec any) *bwrapext.Settings { return &spec.(*Spec).ext })
	replay.Register(func(spec any) *replay.Settings { return &spec.(*Spec).replay })
}
