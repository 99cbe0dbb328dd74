package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nsbox/nsbox/internal/landlock"
	"github.com/nsbox/nsbox/internal/seccomp"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// securityFlags are nsbox run's hardening and limit flags
// (docs/security.md).
type securityFlags struct {
	caps       capOps
	seccomp    []string
	noSeccomp  bool
	ioUring    bool
	noUserns   bool
	assertNoNS bool
	newSession bool
	landlock   bool
	llRO, llRW []string
	llBind     []uint
	llConnect  []uint
	rlimits    []string
	memory     string
	pids       int64
	cpus       float64
	cgroup     string
}

// capOps keeps --cap-add and --cap-drop in command-line order, so that
// "--cap-drop ALL --cap-add CAP_NET_RAW" means what it says.
type capOps struct {
	ops []capOp
}

type capOp struct {
	add  bool
	name string
}

// capFlag is one of the two flags feeding capOps.
type capFlag struct {
	ops *capOps
	add bool
}

func (c capFlag) String() string { return "" }
func (c capFlag) Type() string   { return "CAP" }
func (c capFlag) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		if _, err := sandbox.ParseCapability(name); err != nil {
			return fmt.Errorf("unknown capability %q (use a capabilities(7) name such as CAP_NET_RAW, or ALL)", name)
		}
		c.ops.ops = append(c.ops.ops, capOp{c.add, name})
	}
	return nil
}

func addSecurityFlags(fs *pflag.FlagSet) *securityFlags {
	s := &securityFlags{}
	fs.Var(capFlag{&s.caps, true}, "cap-add", "give the command capability `CAP` (capabilities(7) name, or ALL; repeatable; ambient for a non-root uid)")
	fs.Var(capFlag{&s.caps, false}, "cap-drop", "take capability `CAP` from the command (or ALL; repeatable; applied in order with --cap-add)")
	listVar(fs, &s.seccomp, "seccomp", "", "also install the raw seccomp program (struct sock_filter array, as bwrap --seccomp) in `FILE`")
	fs.BoolVar(&s.noSeccomp, "no-seccomp", false, "leave out nsbox's default seccomp filter")
	fs.BoolVar(&s.ioUring, "allow-io-uring", false, "let the command use io_uring, which the default seccomp filter refuses (EPERM)")
	fs.BoolVar(&s.noUserns, "disable-userns", false, "make nested user namespaces impossible inside (as bwrap --disable-userns; nsbox cannot run inside then)")
	fs.BoolVar(&s.assertNoNS, "assert-userns-disabled", false, "refuse to run the command unless it cannot create user namespaces (as bwrap; implied by --disable-userns)")
	fs.BoolVar(&s.newSession, "new-session", false, "run the command in a new session without a controlling terminal (default: when stdin is not a terminal)")
	fs.BoolVar(&s.landlock, "landlock", false, "restrict file access with Landlock to the system dirs (read-only), /dev, /proc, the working directory and the mounts the flags add (not the whole host view), plus --landlock-ro/-rw; and TCP to --landlock-bind/-connect")
	listVar(fs, &s.llRO, "landlock-ro", "", "with Landlock, also allow reading and executing under `PATH` (repeatable; implies --landlock)")
	listVar(fs, &s.llRW, "landlock-rw", "", "with Landlock, also allow writing under `PATH` (repeatable; implies --landlock)")
	fs.UintSliceVar(&s.llBind, "landlock-bind", nil, "with Landlock (ABI 4), the TCP `PORT`s the command may bind (implies --landlock)")
	fs.UintSliceVar(&s.llConnect, "landlock-connect", nil, "with Landlock (ABI 4), the TCP `PORT`s the command may connect to (implies --landlock)")
	listVar(fs, &s.rlimits, "rlimit", "", "set resource limit `NAME=SOFT[:HARD]` (prlimit(1) names: nofile, nproc, as, core, …; repeatable)")
	fs.StringVar(&s.memory, "memory", "", "limit the sandbox's memory to `SIZE` (e.g. 512M; needs a delegated cgroup v2)")
	fs.Int64Var(&s.pids, "pids", 0, "limit the sandbox to `N` processes (needs a delegated cgroup v2)")
	fs.Float64Var(&s.cpus, "cpus", 0, "limit the sandbox to `N` CPUs, fractions allowed (needs a delegated cgroup v2)")
	fs.StringVar(&s.cgroup, "cgroup", "caller", "`MODE` own: a cgroup v2 of the sandbox's own, which nsbox pause freezes and nsbox kill kills whole (needs a delegated cgroup v2, no controller; implied by --memory, --pids, --cpus); caller: stay in nsbox's cgroup")
	return s
}

// apply puts the flags into spec; fs tells which flags were given. It
// returns a notice for the user, if any.
func (s *securityFlags) apply(fs *pflag.FlagSet, spec *sandbox.Spec) (string, error) {
	sec := &spec.Security
	if len(s.caps.ops) > 0 {
		set := sandbox.CapSet(0)
		if spec.Process.UID == 0 {
			set = sandbox.AllCapabilities()
		}
		for _, op := range s.caps.ops {
			c, _ := sandbox.ParseCapability(op.name) // checked by Set
			if op.add {
				set |= c
			} else {
				set &^= c
			}
		}
		sec.Capabilities = &set
	}
	sec.NoDefaultSeccomp = s.noSeccomp
	sec.AllowIOUring = s.ioUring
	sec.DisableUserns = s.noUserns
	sec.AssertUsernsDisabled = s.assertNoNS
	for _, file := range s.seccomp {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError{fmt.Sprintf("--seccomp %s: %v; fix: name a file holding a compiled seccomp program", file, err)}
		}
		if err := seccomp.Check(b); err != nil {
			return "", usageError{fmt.Sprintf("--seccomp %s: %v; fix: give a raw struct sock_filter array (e.g. from libseccomp's seccomp_export_bpf)", file, err)}
		}
		sec.SeccompPrograms = append(sec.SeccompPrograms, b)
	}
	if fs.Changed("new-session") {
		sec.NewSession = s.newSession
	} else {
		_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
		sec.NewSession = err != nil
	}
	notice := ""
	if s.landlock || len(s.llRO)+len(s.llRW)+len(s.llBind)+len(s.llConnect) > 0 {
		cwd := spec.Process.Cwd
		if cwd == "" {
			cwd, _ = os.Getwd()
		}
		ll := &sandbox.Landlock{
			ReadOnly:          s.llRO,
			ReadWrite:         s.llRW,
			OptionalReadOnly:  landlockReadOnly,
			OptionalReadWrite: append(append([]string{}, landlockReadWrite...), cwd),
		}
		for _, p := range []struct {
			flag  string
			ports []uint
			to    *[]uint16
		}{{"--landlock-bind", s.llBind, &ll.TCPBind}, {"--landlock-connect", s.llConnect, &ll.TCPConnect}} {
			for _, port := range p.ports {
				if port == 0 || port > 65535 {
					return "", usageError{fmt.Sprintf("%s %d: not a TCP port; fix: a number from 1 to 65535", p.flag, port)}
				}
				*p.to = append(*p.to, uint16(port))
			}
		}
		ll.AllowMounts(spec.Mounts)
		sec.Landlock = ll
		if landlock.ABI() == 0 {
			notice = "nsbox: notice: Landlock is not available on this kernel (it needs Linux 5.13 or later with landlock in the lsm= list); --landlock has no effect"
		}
	}
	lim := &spec.Limits
	for _, r := range s.rlimits {
		rl, err := sandbox.ParseRlimit(r)
		if err != nil {
			return "", usageError{fmt.Sprintf("--rlimit %s: %v", r, err)}
		}
		lim.Rlimits = append(lim.Rlimits, rl)
	}
	if s.memory != "" {
		m, err := parseSize(s.memory)
		if err != nil {
			return "", usageError{fmt.Sprintf("--memory %s: %v; fix: e.g. --memory 512M", s.memory, err)}
		}
		lim.Memory = m
	}
	lim.PIDs, lim.CPUs = s.pids, s.cpus
	switch s.cgroup {
	case "own":
		lim.OwnCgroup = true
	case "caller":
		if fs.Changed("cgroup") && (lim.Memory > 0 || lim.PIDs > 0 || lim.CPUs > 0) {
			return "", usageError{"--cgroup caller: --memory, --pids and --cpus need a cgroup of the sandbox's own; fix: leave out --cgroup caller"}
		}
	default:
		return "", usageError{fmt.Sprintf("--cgroup %q: not a mode; fix: --cgroup own or --cgroup caller", s.cgroup)}
	}
	return notice, nil
}

// landlockReadOnly and landlockReadWrite are what --landlock allows before
// --landlock-ro and --landlock-rw add to it (the command line also allows
// the working directory read-write): the system's programs and libraries,
// /etc, /dev and /proc. Not the host's /tmp: it is shared with everything
// else on the host.
var (
	landlockReadOnly  = []string{"/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}
	landlockReadWrite = []string{"/dev", "/proc"}
)
