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

	"github.com/nsbox/nsbox/internal/landlock"
	"github.com/nsbox/nsbox/internal/remedy"
	"golang.org/x/sys/unix"

	"github.com/moby/sys/capability"
	"github.com/nsbox/nsbox/internal/seccomp"
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
	// NoDefaultSeccomp leaves out nsbox's default seccomp filter (the
	// package doc of internal/seccomp says what it refuses and why).
	NoDefaultSeccomp bool `json:"noDefaultSeccomp,omitempty"`
	// SeccompPrograms are raw struct sock_filter programs (bwrap's
	// --seccomp format, checked by Validate) installed after the
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
	// internal/seccomp says why. It is a seccomp filter, installed
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
	// Landlock on kernels that have it (landlock.ABI() > 0); elsewhere it is
	// skipped.
	Landlock *Landlock `json:"landlock,omitempty"`
}

// validate checks the security settings; Spec.Validate calls it.
func (s *Security) validate() error {
	for i, p := range s.SeccompPrograms {
		if err := seccomp.Check(p); err != nil {
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
		return nil, &SpecError{Field: "Security", Err: err, Fix: remedy.Hint{Kind: remedy.Seccomp}}
	}
	return prog, err
}

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
		r.Landlock = s.Landlock.records(landlock.ABI())
	}
	return r
}

// CapSet is a set of capabilities, bit N for capability number N of
// capabilities(7). Its JSON form is a list of names.
type CapSet uint64

// lastCap is the kernel's highest capability number
// (/proc/sys/kernel/cap_last_cap), or the last one moby/sys/capability
// knows by name.
var lastCap = sync.OnceValue(func() int {
	if c, err := capability.LastCap(); err == nil && c > 0 && c < 64 {
		return int(c)
	}
	known := capability.ListKnown()
	return int(known[len(known)-1])
})

// capName is capabilities(7)'s name of c ("CAP_NET_RAW"), or "cap_41"
// for a number past the names moby/sys/capability knows.
func capName(c capability.Cap) string {
	if s := c.String(); s != "unknown" {
		return "CAP_" + strings.ToUpper(s)
	}
	return fmt.Sprintf("cap_%d", int(c))
}

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
	for _, c := range capability.ListKnown() {
		if capName(c) == n {
			return CapSet(1) << c, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q; fix: use a name from capabilities(7), e.g. CAP_NET_RAW, or ALL", name)
}

// Names lists the set's capabilities by name ("cap_41" for numbers past
// the known names).
func (c CapSet) Names() []string {
	var out []string
	for v := uint64(c); v != 0; v &= v - 1 {
		out = append(out, capName(capability.Cap(bits.TrailingZeros64(v))))
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
					Fix: remedy.Hint{Kind: remedy.Text, Arg: "name it as the sandbox sees it, e.g. /work"}}
			}
		}
	}
	return nil
}

// Landlock access rights (linux/landlock.h), by the ABI that added them.
const (
	llExecute   = unix.LANDLOCK_ACCESS_FS_EXECUTE
	llWriteFile = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	llReadFile  = unix.LANDLOCK_ACCESS_FS_READ_FILE
	llReadDir   = unix.LANDLOCK_ACCESS_FS_READ_DIR
	llFSv1      = llExecute | llWriteFile | llReadFile | llReadDir |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	llRefer    = unix.LANDLOCK_ACCESS_FS_REFER                                         // ABI 2
	llTruncate = unix.LANDLOCK_ACCESS_FS_TRUNCATE                                      // ABI 3
	llIoctlDev = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV                                     // ABI 5
	llBindTCP  = unix.LANDLOCK_ACCESS_NET_BIND_TCP                                     // ABI 4
	llConnTCP  = unix.LANDLOCK_ACCESS_NET_CONNECT_TCP                                  // ABI 4
	llScopeAll = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL // ABI 6
)

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
