// Package bwrap is nsbox as bwrap: bubblewrap's command line (bubblewrap
// 0.11's options, parsed as bubblewrap parses them) turned into a
// sandbox.Spec and run. The entry is argv[0] "bwrap" (a symlink to nsbox)
// or `nsbox bwrap ARGS…`; cmd/nsbox calls [Main] and, for completion and
// help, [FlagSet] and [Usage]. docs/bwrap.md lists every option and how
// nsbox's differs.
//
// Parsing follows bubblewrap.c's parse_args_recurse: options are exact
// words (no --opt=value, no bundling), each takes a fixed number of
// following words, the first word that does not start with '-' (or the
// word after "--") starts the command, and --args FD reads more options,
// NUL-separated, from FD. --perms and --size modify the next op only;
// --setenv, --unsetenv and --clearenv change the environment in order.
package bwrap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagvalue"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/internal/seccomp"
	"github.com/nsbox/nsbox/sandbox"
	"golang.org/x/sys/unix"
)

// Version is the bubblewrap release whose options nsbox follows.
const Version = "0.11.1"

// maxArgs bounds the options, --args included, as bubblewrap does.
const maxArgs = 9000

// dieError is a failure reported as bubblewrap reports its own: one
// "bwrap: " line on stderr and exit status 1.
type dieError struct{ msg string }

func (e dieError) Error() string { return e.msg }

func die(format string, a ...any) error { return dieError{fmt.Sprintf(format, a...)} }

// exitError carries an exit status that needs no message (--help,
// --version, usage on stderr).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// opts is what the options ask for, before it becomes a Spec.
type opts struct {
	unshareUser, unshareUserTry         bool
	unshareIPC, unsharePID, unshareNet  bool
	unshareUTS, unshareCgroup, cgroupTr bool
	uid, gid                            int64 // -1: the caller's
	hostname                            string
	hostnameSet                         bool
	chdir                               string
	env                                 []string // the command's environment, edited in order
	mounts                              []sandbox.Mount
	lockFiles                           []string
	syncFD, blockFD, usernsBlockFD      int
	infoFD, statusFD, seccompFD         int
	seccomp                             [][]byte // --seccomp or --add-seccomp-fd programs, in order (empty ones too)
	usernsFD, userns2FD, pidnsFD        int
	disableUserns, assertUsernsDisabled bool
	newSession, dieWithParent, asPID1   bool
	levelPrefix                         bool
	argv0                               string
	argv0Set                            bool
	caps                                sandbox.CapSet
	capsUsed                            bool
	label                               string // --exec-label or --file-label, refused
	args                                []string
	progName                            string // argv[0], for usage
	nsboxVersion                        string
	stderr                              io.Writer
	given                               map[string]bool // lastWins options seen

	// Modifiers of the next op.
	perms       int   // -1: unset
	size        int64 // 0: unset
	overlaySrcs []string
	argsRead    bool // --args data is being parsed
	total       int
}

func newOpts() *opts {
	o := &opts{uid: -1, gid: -1, syncFD: -1, blockFD: -1, usernsBlockFD: -1, infoFD: -1,
		statusFD: -1, seccompFD: -1, usernsFD: -1, userns2FD: -1, pidnsFD: -1, perms: -1,
		env: os.Environ()}
	if os.Getuid() == 0 {
		// bubblewrap run by root keeps root's capabilities by default.
		o.caps = sandbox.AllCapabilities()
	}
	return o
}

// options are bubblewrap's options, sorted by name, with how many words
// follow each; options not listed are unknown. A sorted array, not a map:
// the compiler lays it out, where a map literal is built by the package's
// init at every start of nsbox.
var options = [...]struct {
	name  string
	words int
}{
	{"--add-seccomp-fd", 1}, {"--args", 1}, {"--argv0", 1}, {"--as-pid-1", 0},
	{"--assert-userns-disabled", 0}, {"--bind", 2}, {"--bind-data", 2}, {"--bind-fd", 2},
	{"--bind-try", 2}, {"--block-fd", 1}, {"--cap-add", 1}, {"--cap-drop", 1}, {"--chdir", 1},
	{"--chmod", 2}, {"--clearenv", 0}, {"--dev", 1}, {"--dev-bind", 2}, {"--dev-bind-try", 2},
	{"--die-with-parent", 0}, {"--dir", 1}, {"--disable-userns", 0}, {"--exec-label", 1},
	{"--file", 2}, {"--file-label", 1}, {"--gid", 1}, {"--help", 0}, {"--hostname", 1},
	{"--info-fd", 1}, {"--json-status-fd", 1}, {"--level-prefix", 0}, {"--lock-file", 1},
	{"--mqueue", 1}, {"--new-session", 0}, {"--overlay", 3}, {"--overlay-src", 1}, {"--perms", 1},
	{"--pidns", 1}, {"--proc", 1}, {"--remount-ro", 1}, {"--ro-bind", 2}, {"--ro-bind-data", 2},
	{"--ro-bind-fd", 2}, {"--ro-bind-try", 2}, {"--ro-overlay", 1}, {"--seccomp", 1}, {"--setenv", 2},
	{"--share-net", 0}, {"--size", 1}, {"--symlink", 2}, {"--sync-fd", 1}, {"--tmp-overlay", 1},
	{"--tmpfs", 1}, {"--uid", 1}, {"--unsetenv", 1}, {"--unshare-all", 0}, {"--unshare-cgroup", 0},
	{"--unshare-cgroup-try", 0}, {"--unshare-ipc", 0}, {"--unshare-net", 0}, {"--unshare-pid", 0},
	{"--unshare-user", 0}, {"--unshare-user-try", 0}, {"--unshare-uts", 0}, {"--userns", 1},
	{"--userns-block-fd", 1}, {"--userns2", 1}, {"--version", 0},
}

// arity returns how many words follow the option name, and whether
// bubblewrap has that option.
func arity(name string) (words int, known bool) {
	i, found := sort.Find(len(options), func(i int) int { return strings.Compare(name, options[i].name) })
	if !found {
		return 0, false
	}
	return options[i].words, true
}

// arityWords names the count in "takes N arguments" messages.
var arityWords = [...]string{1: "an argument", 2: "two arguments", 3: "three arguments"}

// parse reads argv (without argv[0]) and leaves the command in o.args.
func (o *opts) parse(argv []string) error {
	o.total = len(argv)
	rest, err := o.parseRecurse(argv, false)
	if err != nil {
		return err
	}
	if len(o.overlaySrcs) > 0 {
		return die("--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay")
	}
	o.args = rest
	return nil
}

// StartsAsBwrap says whether args begin with an option of bubblewrap's
// that is no word of nsbox's own command line (not --help or --version):
// nsbox run that way is bwrap, as bubblewrap is when it runs itself again
// through /proc/self/exe in a sandbox.
func StartsAsBwrap(args []string) bool {
	if len(args) == 0 || args[0] == "--help" || args[0] == "--version" {
		return false
	}
	_, known := arity(args[0])
	return known
}

func (o *opts) parseRecurse(argv []string, inFile bool) ([]string, error) {
	if o.total > maxArgs {
		return nil, die("Exceeded maximum number of arguments %d", maxArgs)
	}
	for len(argv) > 0 {
		arg := argv[0]
		if arg == "--" {
			return argv[1:], nil
		}
		n, known := arity(arg)
		if !known {
			if strings.HasPrefix(arg, "-") {
				return nil, die("Unknown option %s", arg)
			}
			return argv, nil
		}
		if len(argv) < n+1 {
			return nil, die("%s takes %s", arg, arityWords[n])
		}
		val := argv[1 : n+1]
		if arg == "--args" {
			if inFile {
				return nil, die("--args not supported in arguments file")
			}
			if err := o.parseArgsFD(val[0]); err != nil {
				return nil, err
			}
		} else if err := o.option(arg, val); err != nil {
			return nil, err
		}
		modifier := arg == "--perms" || arg == "--size" || arg == "--overlay-src"
		if !modifier && o.perms >= 0 {
			return nil, die("--perms must be followed by an option that creates a file")
		}
		if !modifier && o.size != 0 {
			return nil, die("--size must be followed by --tmpfs")
		}
		if arg != "--overlay-src" && len(o.overlaySrcs) > 0 {
			return nil, die("--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay")
		}
		argv = argv[n+1:]
	}
	return argv, nil
}

// parseArgsFD reads NUL-separated options from fd and parses them in
// place of "--args FD".
func (o *opts) parseArgsFD(s string) error {
	fd, err := parseFD(s)
	if err != nil {
		return err
	}
	data, err := readFD(fd)
	if err != nil {
		return die("Can't read --args data: %v", err)
	}
	unix.Close(fd)
	var words []string
	for len(data) > 0 {
		w, rest, _ := strings.Cut(string(data), "\x00")
		words = append(words, w)
		data = []byte(rest)
	}
	o.total += len(words)
	rest, err := o.parseRecurse(words, true)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		// bubblewrap drops what follows the options inside --args
		// data; taking it as the command would run something else.
		return die("--args data holds a command (%s); nsbox takes the command only from the command line", rest[0])
	}
	return nil
}

// lastWins reports whether bubblewrap warns about the option arg given
// twice: only the last one counts.
func lastWins(arg string) bool {
	switch arg {
	case "--chdir", "--exec-label", "--file-label", "--sync-fd", "--block-fd", "--userns-block-fd", "--info-fd",
		"--json-status-fd", "--seccomp", "--userns", "--userns2", "--pidns", "--uid", "--gid", "--hostname":
		return true
	}
	return false
}

// option applies one option and its values.
func (o *opts) option(arg string, v []string) error {
	if lastWins(arg) {
		if o.given[arg] && o.stderr != nil {
			prefix := "bwrap: "
			if o.levelPrefix {
				prefix = "<4>bwrap: " // LOG_WARNING
			}
			fmt.Fprintf(o.stderr, "%sOnly the last %s option will take effect\n", prefix, arg)
		}
		if o.given == nil {
			o.given = map[string]bool{}
		}
		o.given[arg] = true
	}
	switch arg {
	case "--help":
		fmt.Fprint(os.Stdout, Usage(o.progName, o.nsboxVersion))
		return exitError{0}
	case "--version":
		fmt.Printf("bubblewrap %s (nsbox %s)\n", Version, o.nsboxVersion)
		return exitError{0}
	case "--argv0":
		if o.argv0Set {
			return die("--argv0 used multiple times")
		}
		o.argv0, o.argv0Set = v[0], true
	case "--level-prefix":
		o.levelPrefix = true
	case "--unshare-all":
		o.unshareUserTry, o.unshareIPC, o.unsharePID, o.unshareUTS, o.cgroupTr, o.unshareNet = true, true, true, true, true, true
	case "--unshare-user":
		o.unshareUser = true
	case "--unshare-user-try":
		o.unshareUserTry = true
	case "--unshare-ipc":
		o.unshareIPC = true
	case "--unshare-pid":
		o.unsharePID = true
	case "--unshare-net":
		o.unshareNet = true
	case "--unshare-uts":
		o.unshareUTS = true
	case "--unshare-cgroup":
		o.unshareCgroup = true
	case "--unshare-cgroup-try":
		o.cgroupTr = true
	case "--share-net":
		o.unshareNet = false
	case "--chdir":
		o.chdir = v[0]
	case "--disable-userns":
		o.disableUserns = true
	case "--assert-userns-disabled":
		o.assertUsernsDisabled = true
	case "--clearenv":
		o.env = nil
	case "--setenv":
		o.unsetenv(v[0])
		o.env = append(o.env, v[0]+"="+v[1])
	case "--unsetenv":
		o.unsetenv(v[0])
	case "--uid", "--gid":
		id, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || id < 0 || id > 1<<32-2 {
			return die("Invalid %s: %s", arg[2:], v[0])
		}
		if arg == "--uid" {
			o.uid = id
		} else {
			o.gid = id
		}
	case "--hostname":
		o.hostname, o.hostnameSet = v[0], true
	case "--new-session":
		o.newSession = true
	case "--die-with-parent":
		o.dieWithParent = true
	case "--as-pid-1":
		o.asPID1 = true
	case "--cap-add", "--cap-drop":
		set, err := sandbox.ParseCapability(v[0])
		if err != nil {
			return die("unknown cap: %s", v[0])
		}
		o.capsUsed = true
		if arg == "--cap-add" {
			o.caps |= set
		} else {
			o.caps &^= set
		}
	case "--perms", "--chmod":
		p, err := strconv.ParseUint(v[0], 8, 32)
		if v[0] == "" || err != nil || p > 0o7777 {
			return die("%s takes an octal argument <= 07777", arg)
		}
		if arg == "--chmod" {
			o.mounts = append(o.mounts, sandbox.Mount{Type: sandbox.MountChmod, Destination: v[1], Mode: fileMode(p), Flag: "--chmod " + v[0] + " " + v[1]})
			break
		}
		if o.perms >= 0 {
			return die("--perms given twice for the same action")
		}
		o.perms = int(p)
	case "--size":
		s, err := strconv.ParseUint(v[0], 0, 64)
		if err != nil || v[0] == "" || v[0][0] < '0' || v[0][0] > '9' || s == 0 || s > 1<<62 {
			return die("--size takes a non-zero number of bytes")
		}
		if o.size != 0 {
			return die("--size given twice for the same action")
		}
		o.size = int64(s)
	case "--lock-file":
		o.lockFiles = append(o.lockFiles, v[0])
	case "--exec-label", "--file-label":
		// Without SELinux bubblewrap refuses both, as nsbox does always.
		if selinuxEnabled() {
			return die("%s is not supported by nsbox: it does not set SELinux labels", arg)
		}
		return die("labeling not supported on this system")
	case "--userns", "--userns2", "--pidns":
		fd, err := parseFD(v[0])
		if err != nil {
			return err
		}
		switch arg {
		case "--userns":
			o.usernsFD = fd
		case "--userns2":
			o.userns2FD = fd
		default:
			o.pidnsFD = fd
		}
	case "--sync-fd", "--block-fd", "--userns-block-fd", "--info-fd", "--json-status-fd":
		fd, err := parseFD(v[0])
		if err != nil {
			return err
		}
		*map[string]*int{"--sync-fd": &o.syncFD, "--block-fd": &o.blockFD, "--userns-block-fd": &o.usernsBlockFD,
			"--info-fd": &o.infoFD, "--json-status-fd": &o.statusFD}[arg] = fd
	case "--seccomp", "--add-seccomp-fd":
		return o.seccompOption(arg, v[0])
	default:
		return o.mountOption(arg, v)
	}
	return nil
}

func (o *opts) unsetenv(key string) {
	o.env = slices.DeleteFunc(o.env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == key
	})
}

func (o *opts) seccompOption(arg, s string) error {
	if arg == "--seccomp" && o.seccompFD < 0 && len(o.seccomp) > 0 {
		return die("--seccomp cannot be combined with --add-seccomp-fd")
	}
	if arg == "--add-seccomp-fd" && o.seccompFD >= 0 {
		return die("--add-seccomp-fd cannot be combined with --seccomp")
	}
	fd, err := parseFD(s)
	if err != nil {
		return err
	}
	prog, err := readFD(fd)
	if err != nil {
		return die("Can't read seccomp data: %v", err)
	}
	unix.Close(fd)
	if len(prog)%8 != 0 {
		return die("Invalid seccomp data, must be multiple of 8")
	}
	// An empty program is taken here, as bubblewrap takes it: it fails
	// only when the kernel refuses it, after every other check (spec).
	if len(prog) > 0 {
		if err := seccomp.Check(prog); err != nil {
			return die("%s %d: %v", arg, fd, err)
		}
	}
	if arg == "--seccomp" {
		o.seccompFD = fd
		o.seccomp = [][]byte{prog} // the last --seccomp wins
		return nil
	}
	o.seccomp = append(o.seccomp, prog)
	return nil
}

// mountOption appends the filesystem op arg asks for, in order.
func (o *opts) mountOption(arg string, v []string) error {
	m := sandbox.Mount{Flag: arg + " " + strings.Join(v, " ")}
	perms := func(def fs.FileMode) fs.FileMode {
		if o.perms < 0 {
			return def
		}
		p := fileMode(uint64(o.perms))
		o.perms = -1
		m.ModeSet = true
		return p
	}
	switch arg {
	case "--bind", "--bind-try", "--ro-bind", "--ro-bind-try", "--dev-bind", "--dev-bind-try":
		m.Type, m.Source, m.Destination = sandbox.MountBind, v[0], v[1]
		m.ReadOnly = strings.HasPrefix(arg, "--ro-")
		m.Devices = strings.HasPrefix(arg, "--dev-")
		m.Optional = strings.HasSuffix(arg, "-try")
	case "--bind-fd", "--ro-bind-fd":
		fd, err := parseFD(v[0])
		if err != nil {
			return err
		}
		src, err := ties.FDPath(fd)
		if err != nil {
			return die("Can't use fd %d for %s: %v", fd, arg, err)
		}
		m.Type, m.Source, m.Destination = sandbox.MountBind, src, v[1]
		m.ReadOnly = arg == "--ro-bind-fd"
	case "--remount-ro":
		// bubblewrap's remount is of the one mount (nsbox run's recurses).
		m.Type, m.Destination, m.NonRecursive = sandbox.MountRemountRO, v[0], true
	case "--proc":
		m.Type, m.Destination = sandbox.MountProc, v[0]
	case "--dev":
		m.Type, m.Destination = sandbox.MountDev, v[0]
	case "--mqueue":
		m.Type, m.Destination = sandbox.MountMqueue, v[0]
	case "--tmpfs":
		m.Type, m.Destination, m.Mode, m.Size = sandbox.MountTmpfs, v[0], perms(0o755), o.size
		o.size = 0
	case "--dir":
		m.Type, m.Destination, m.Mode = sandbox.MountDir, v[0], perms(0o755)
	case "--symlink":
		m.Type, m.Source, m.Destination = sandbox.MountSymlink, v[0], v[1]
	case "--file", "--bind-data", "--ro-bind-data":
		fd, err := parseFD(v[0])
		if err != nil {
			return err
		}
		data, err := readFD(fd)
		if err != nil {
			return die("Can't read %s fd %d: %v", arg, fd, err)
		}
		unix.Close(fd)
		def := fs.FileMode(0o600)
		if arg == "--file" {
			def = 0o666
		}
		m.Type, m.Destination, m.Data, m.Mode = sandbox.MountFile, v[1], data, perms(def)
		m.ReadOnly = arg == "--ro-bind-data"
	case "--overlay-src":
		o.overlaySrcs = append(o.overlaySrcs, v[0])
		return nil
	case "--overlay", "--tmp-overlay", "--ro-overlay":
		return o.overlay(arg, v, m)
	default:
		return die("Unknown option %s", arg)
	}
	o.mounts = append(o.mounts, m)
	return nil
}

// overlay turns --overlay, --tmp-overlay and --ro-overlay with the
// --overlay-src options before them into one op.
func (o *opts) overlay(arg string, v []string, m sandbox.Mount) error {
	srcs := o.overlaySrcs
	o.overlaySrcs = nil
	need, what := 1, "at least one --overlay-src"
	if arg == "--ro-overlay" {
		need, what = 2, "at least two --overlay-src"
	}
	if len(srcs) < need {
		return die("%s requires %s", arg, what)
	}
	// bubblewrap lists the sources lowest first; overlayfs's lowerdir
	// (and Mount.Lower) names the topmost first.
	lower := slices.Clone(srcs)
	slices.Reverse(lower)
	switch arg {
	case "--overlay":
		m.Type, m.Lower, m.Upper, m.Work, m.Destination = sandbox.MountOverlay, lower, v[0], v[1], v[2]
	case "--tmp-overlay":
		m.Type, m.Lower, m.Destination = sandbox.MountTmpOverlay, lower, v[0]
	default: // --ro-overlay: no upper
		m.Type, m.Lower, m.Destination = sandbox.MountOverlay, lower, v[0]
	}
	o.mounts = append(o.mounts, m)
	return nil
}

// fileMode turns bubblewrap's octal permissions into fs.FileMode bits.
func fileMode(p uint64) fs.FileMode {
	m, _ := flagvalue.Mode(strconv.FormatUint(p, 8)) // p <= 07777: checked
	return m
}

// parseFD reads a file descriptor number as bubblewrap does (strtol).
func parseFD(s string) (int, error) {
	fd, err := strconv.Atoi(s)
	if s == "" || err != nil || fd < 0 {
		return 0, die("Invalid fd: %s", s)
	}
	// A descriptor nsbox opened itself (the Go runtime's, a lock's) is
	// not the caller's to name; one that is not open fails where it is
	// used, as in bubblewrap.
	if errors.Is(ties.Inherited(fd), ties.ErrOwnFD) {
		return 0, die("Invalid fd: %s (not a descriptor bwrap was given)", s)
	}
	return fd, nil
}

// readFD reads all of fd (a file, pipe or memfd the caller passed), up to
// 16 MiB, without closing it.
func readFD(fd int) ([]byte, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	b, err := io.ReadAll(io.LimitReader(fdReader{fd}, 16<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 16<<20 {
		return nil, errors.New("more than 16 MiB")
	}
	return b, nil
}

// fdReader reads a raw descriptor without taking it over (an *os.File
// would close it when collected).
type fdReader struct{ fd int }

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// selinuxEnabled says whether SELinux is mounted, as libselinux's
// is_selinux_enabled checks.
func selinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && st.Type == 0xf97cff8c
}
