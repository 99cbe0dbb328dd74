package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/sandbox/internal/seccomp"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// Security is what stands between the command and the kernel besides the
// namespaces; docs/security.md says what each layer stops. Its zero value
// is nsbox's default: capabilities by identity, the default seccomp filter,
// no Landlock. Process.NoNewPrivs is the other half.
type Security struct {
	// Capabilities is the command's capability set, in its own user
	// namespace. Nil means the default: every capability for uid 0 inside,
	// none (effective, permitted, inheritable, ambient and bounding) for
	// any other uid. A non-root command that keeps capabilities gets them
	// as ambient capabilities, so they survive exec (as bwrap --cap-add).
	Capabilities *CapSet `json:"capabilities,omitempty"`
	// NoDefaultSeccomp leaves out nsbox's default seccomp filter (see
	// DefaultSeccompProgram).
	NoDefaultSeccomp bool `json:"noDefaultSeccomp,omitempty"`
	// SeccompPrograms are raw struct sock_filter programs (bwrap's
	// --seccomp format, checked by ParseSeccompProgram) installed after the
	// default one; the kernel runs every filter and the strictest answer
	// wins.
	SeccompPrograms [][]byte `json:"seccompPrograms,omitempty"`
	// AllowIOUring lets the command use io_uring (io_uring_setup,
	// io_uring_enter, io_uring_register). The zero value leaves them
	// refused with EPERM by the default filter, as Docker's default profile
	// does: what io_uring does for a program is not a system call, so no
	// seccomp filter sees it. Without the default filter (NoDefaultSeccomp)
	// it changes nothing.
	AllowIOUring bool `json:"allowIOUring,omitempty"`
	// DisableUserns makes nested user namespaces impossible for the command
	// and everything it starts, as bubblewrap's --disable-userns: unshare
	// and clone with CLONE_NEWUSER and setns into a user namespace fail
	// with EPERM, clone3 with ENOSYS (libc falls back to clone); package
	// sandbox/internal/seccomp says why. It is a seccomp filter, installed
	// even with NoDefaultSeccomp, and it implies AssertUsernsDisabled's
	// check. The zero value lets the command create user namespaces, so
	// that nsbox runs inside nsbox.
	DisableUserns bool `json:"disableUserns,omitempty"`
	// AssertUsernsDisabled refuses to run the command unless creating a
	// user namespace already fails in its context, as bubblewrap's
	// --assert-userns-disabled: right before exec, after every filter is
	// installed, the stage tries unshare(CLONE_NEWUSER) and stops with an
	// error if it works. It checks and disables nothing itself: it holds
	// with DisableUserns, or where something else refuses (a program of
	// SeccompPrograms, a user.max_user_namespaces limit, the kernel's
	// nesting depth of 32).
	AssertUsernsDisabled bool `json:"assertUsernsDisabled,omitempty"`
	// NewSession runs the command in a session of its own (setsid), with no
	// controlling terminal: it can then neither read nor inject into the
	// launcher's terminal. The command line sets it when stdin is not a
	// terminal.
	NewSession bool `json:"newSession,omitempty"`
	// Landlock, if not nil, restricts file access and TCP ports with
	// Landlock on kernels that have it (LandlockABI > 0); elsewhere it is
	// skipped.
	Landlock *Landlock `json:"landlock,omitempty"`
}

// validate checks the security settings; Spec.Validate calls it.
func (s *Security) validate() error {
	for i, p := range s.SeccompPrograms {
		if err := CheckSeccompProgram(p); err != nil {
			return fmt.Errorf("seccomp program %d: %w", i+1, err)
		}
	}
	if _, err := s.seccompFilter(); err != nil {
		return err
	}
	if s.Landlock != nil {
		return s.Landlock.validate()
	}
	return nil
}

// seccompFilter returns the program nsbox itself installs for s: the
// default filter (unless NoDefaultSeccomp) as AllowIOUring adjusts it, with
// the user namespace rules of DisableUserns; nil when there is none.
func (s *Security) seccompFilter() ([]byte, error) {
	prog, err := seccomp.Build(seccomp.Rules{Defaults: !s.NoDefaultSeccomp, AllowIOUring: s.AllowIOUring, DisableUserns: s.DisableUserns})
	if errors.Is(err, seccomp.ErrNoTables) {
		return nil, &SpecError{Field: "Security", Err: err, Fix: FixHint{Kind: FixSeccomp}}
	}
	return prog, err
}

// DefaultSeccompProgram returns nsbox's default filter as a raw struct
// sock_filter array, the format --seccomp reads: what a zero Security
// installs. The package doc of sandbox/internal/seccomp says what it
// refuses and why.
func DefaultSeccompProgram() ([]byte, error) {
	return seccomp.Build(seccomp.Rules{Defaults: true})
}

// DefaultSeccompDenied lists the system calls the default filter refuses
// outright on this architecture, by name, io_uring's included; ioctl is
// refused only for TIOCSTI and TIOCLINUX, and the x32 ABI (amd64) as a
// whole, which the list does not show.
func DefaultSeccompDenied() []string { return seccomp.Denied() }

// CheckSeccompProgram checks that b is a raw struct sock_filter array, as
// bubblewrap's --seccomp reads it (8 bytes per instruction, host byte
// order, 1 to 4096 instructions, ending in a return, no jump past the
// end). The kernel checks the rest when the stage installs it.
func CheckSeccompProgram(b []byte) error { return seccomp.Check(b) }

// records is what security.c applies for these settings. uid is the
// command's uid inside.
func (s *Security) records(uid uint32) stage.Security {
	caps := CapSet(0)
	if s.Capabilities != nil {
		caps = *s.Capabilities
	} else if uid == 0 {
		caps = AllCapabilities()
	}
	r := stage.Security{Caps: uint64(caps & AllCapabilities())}
	if prog, _ := s.seccompFilter(); prog != nil { // validate checked the error
		r.Seccomp = append(r.Seccomp, prog)
	}
	r.Seccomp = append(r.Seccomp, s.SeccompPrograms...)
	r.AssertUsernsDisabled = s.DisableUserns || s.AssertUsernsDisabled
	r.NewSession = s.NewSession
	if s.Landlock != nil {
		r.Landlock = s.Landlock.records(LandlockABI())
	}
	return r
}

// CapSet is a set of capabilities, bit N for capability number N of
// capabilities(7). Its JSON form is a list of names.
type CapSet uint64

// capNames are capabilities(7)'s names, by number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// lastCap is the kernel's highest capability number
// (/proc/sys/kernel/cap_last_cap), or the last one nsbox knows by name.
var lastCap = sync.OnceValue(func() int {
	if n, err := strconv.Atoi(sysctl("kernel/cap_last_cap")); err == nil && n > 0 && n < 64 {
		return n
	}
	return len(capNames) - 1
})

// AllCapabilities is every capability this kernel has.
func AllCapabilities() CapSet {
	return CapSet(1)<<(lastCap()+1) - 1
}

// ParseCapability returns the set named by name: a capabilities(7) name,
// with or without "CAP_", in any case ("net_raw", "CAP_NET_RAW"), or "ALL".
func ParseCapability(name string) (CapSet, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "ALL" {
		return AllCapabilities(), nil
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capNames {
		if c == n {
			return CapSet(1) << i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q; fix: use a name from capabilities(7), e.g. CAP_NET_RAW, or ALL", name)
}

// Names lists the set's capabilities by name ("cap_41" for numbers past
// the known names).
func (c CapSet) Names() []string {
	var out []string
	for v := uint64(c); v != 0; v &= v - 1 {
		i := bits.TrailingZeros64(v)
		if i < len(capNames) {
			out = append(out, capNames[i])
		} else {
			out = append(out, fmt.Sprintf("cap_%d", i))
		}
	}
	return out
}

// MarshalJSON renders the set as a list of names.
func (c CapSet) MarshalJSON() ([]byte, error) {
	names := c.Names()
	if names == nil {
		names = []string{}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a list of names, as ParseCapability takes them.
func (c *CapSet) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	*c = 0
	for _, n := range names {
		s, err := ParseCapability(n)
		if err != nil {
			return err
		}
		*c |= s
	}
	return nil
}

// Landlock restricts what the command may reach, on top of what its mount
// namespace shows it: only the listed paths (and what is beneath them) and,
// on Landlock ABI 4 and later, only the listed TCP ports. On ABI 6 and
// later the command also cannot connect to abstract unix sockets or signal
// processes outside its Landlock domain.
type Landlock struct {
	// ReadOnly paths may be read and executed; ReadWrite paths may also be
	// written, created and removed. Paths are inside the sandbox, absolute.
	ReadOnly  []string `json:"readOnly,omitempty"`
	ReadWrite []string `json:"readWrite,omitempty"`
	// Optional paths are allowed when they exist inside the sandbox and
	// skipped when they do not (the defaults: /lib64, /opt, …); the others
	// must exist.
	OptionalReadOnly  []string `json:"optionalReadOnly,omitempty"`
	OptionalReadWrite []string `json:"optionalReadWrite,omitempty"`
	// TCPBind and TCPConnect are the only TCP ports the command may bind
	// and connect to (ABI 4); none given means none allowed.
	TCPBind    []uint16 `json:"tcpBind,omitempty"`
	TCPConnect []uint16 `json:"tcpConnect,omitempty"`
}

// DefaultLandlockReadOnly and DefaultLandlockReadWrite are what --landlock
// allows before --landlock-ro and --landlock-rw add to it (the command line
// also allows the working directory read-write): the system's programs and
// libraries, /etc, /dev and /proc. Not the host's /tmp: it is shared with
// everything else on the host.
var (
	DefaultLandlockReadOnly  = []string{"/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}
	DefaultLandlockReadWrite = []string{"/dev", "/proc"}
)

// AllowMounts adds the destinations of the sandbox's mount operations to
// the allowed paths: binds as they are mounted (read-only or read-write),
// and what nsbox creates (tmpfs, /dev, /proc, overlays, files) read-write.
// The read-only bind of the whole host root that nsbox run's default view
// starts with is left out: allowing it would allow every file, and the
// point of Landlock is to narrow that view.
func (l *Landlock) AllowMounts(mounts []Mount) {
	for _, m := range mounts {
		switch m.Type {
		case MountBind:
			if m.Source == "/" && m.Destination == "/" && m.ReadOnly {
				continue
			}
			if m.ReadOnly {
				l.OptionalReadOnly = append(l.OptionalReadOnly, m.Destination)
			} else {
				l.OptionalReadWrite = append(l.OptionalReadWrite, m.Destination)
			}
		case MountTmpfs, MountProc, MountDev, MountMqueue, MountFile, MountOverlay, MountTmpOverlay, MountCopyUp:
			l.OptionalReadWrite = append(l.OptionalReadWrite, m.Destination)
		}
	}
}

func (l *Landlock) validate() error {
	for _, list := range []struct {
		field string
		paths []string
	}{
		{"Security.Landlock.ReadOnly[%d]", l.ReadOnly}, {"Security.Landlock.ReadWrite[%d]", l.ReadWrite},
		{"Security.Landlock.OptionalReadOnly[%d]", l.OptionalReadOnly}, {"Security.Landlock.OptionalReadWrite[%d]", l.OptionalReadWrite},
	} {
		for i, p := range list.paths {
			if !filepath.IsAbs(p) || strings.IndexByte(p, 0) >= 0 {
				return &SpecError{Field: fmt.Sprintf(list.field, i), Value: strconv.Quote(p), Problem: "not an absolute path",
					Fix: FixHint{FixText, "name it as the sandbox sees it, e.g. /work"}}
			}
		}
	}
	return nil
}

// Landlock access rights (linux/landlock.h), by the ABI that added them.
const (
	llExecute   = 1 << 0
	llWriteFile = 1 << 1
	llReadFile  = 1 << 2
	llReadDir   = 1 << 3
	llFSv1      = 1<<13 - 1   // execute … make_sym
	llRefer     = 1 << 13     // ABI 2
	llTruncate  = 1 << 14     // ABI 3
	llIoctlDev  = 1 << 15     // ABI 5
	llBindTCP   = 1 << 0      // ABI 4
	llConnTCP   = 1 << 1      // ABI 4
	llScopeAll  = 1<<0 | 1<<1 // ABI 6: abstract unix sockets, signals
)

// LandlockABI returns the kernel's Landlock ABI version, 0 when Landlock is
// missing or disabled.
func LandlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// landlockHandled returns the rights a ruleset handles at ABI abi: all the
// kernel knows, so anything not granted by a rule is denied.
func landlockHandled(abi int) (fs, net, scoped uint64) {
	fs = llFSv1
	if abi >= 2 {
		fs |= llRefer
	}
	if abi >= 3 {
		fs |= llTruncate
	}
	if abi >= 4 {
		net = llBindTCP | llConnTCP
	}
	if abi >= 5 {
		fs |= llIoctlDev
	}
	if abi >= 6 {
		scoped = llScopeAll
	}
	return fs, net, scoped
}

func (l *Landlock) records(abi int) *stage.Landlock {
	if abi <= 0 {
		return nil
	}
	fs, net, scoped := landlockHandled(abi)
	r := &stage.Landlock{FS: fs, Net: net, Scoped: scoped}
	ro := uint64(llExecute | llReadFile | llReadDir)
	path := func(access uint64, optional bool, paths []string) {
		for _, p := range paths {
			r.Paths = append(r.Paths, stage.LandlockPath{Access: access & fs, Optional: optional, Path: p})
		}
	}
	path(ro, false, l.ReadOnly)
	path(fs, false, l.ReadWrite)
	path(ro, true, l.OptionalReadOnly)
	path(fs, true, l.OptionalReadWrite)
	if net != 0 {
		for _, p := range l.TCPBind {
			r.Ports = append(r.Ports, stage.LandlockPort{Access: llBindTCP, Port: p})
		}
		for _, p := range l.TCPConnect {
			r.Ports = append(r.Ports, stage.LandlockPort{Access: llConnTCP, Port: p})
		}
	}
	return r
}
