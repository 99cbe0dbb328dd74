package sandbox

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

//go:generate go run gen_seccomp_tables.go

// The default seccomp filter is a classic BPF program generated here, in Go,
// and installed by the stage (security.c) as the command's last step before
// exec; no libseccomp, so the binary stays static. It answers EPERM for:
//
//   - ioctl TIOCSTI and TIOCLINUX: both push bytes into the input of a
//     terminal the command may share with the host (CVE-2017-5226);
//   - keyctl, add_key, request_key: the kernel keyring is not namespaced;
//   - kexec_load, kexec_file_load, init_module, finit_module,
//     delete_module: the kernel itself (already refused without host
//     privilege; refused here before the kernel's own code is reached);
//   - perf_event_open, userfaultfd: frequent kernel exploit primitives;
//   - io_uring_setup, io_uring_enter, io_uring_register (unless
//     Security.AllowIOUring): the operations io_uring performs are not
//     system calls, so no seccomp filter sees them, and it has been a
//     steady source of kernel exploits (Docker's default profile refuses
//     it too);
//   - iopl, ioperm (x86): I/O ports;
//   - the x32 ABI on x86_64 (syscall numbers with bit 30 set): a second
//     syscall table with its own bugs, used by nothing nsbox runs.
//
// With Security.DisableUserns (bubblewrap's --disable-userns) it also makes
// nested user namespaces impossible:
//
//   - unshare and clone with CLONE_NEWUSER in their flags: EPERM;
//   - clone3: ENOSYS. Its flags are in a struct in memory, which seccomp
//     cannot read, so the filter cannot tell a plain thread from a new user
//     namespace; ENOSYS makes glibc and Go fall back to clone, which it can
//     check;
//   - setns with CLONE_NEWUSER in nstype, or nstype 0 ("any type": the
//     filter cannot see what the fd names): EPERM. Only a user namespace
//     the caller has CAP_SYS_ADMIN in can be joined at all, which means
//     one created inside the sandbox: with unshare, clone and clone3
//     refused there is none, so this closes a door that is already shut
//     unless such an fd is passed in from outside.
//
// The filter checks the architecture first: the host's native one and its
// 32-bit compat ABI (i386 on x86_64, arm on arm64) each have their own
// numbers; any other architecture kills the process, as libseccomp does.
// The numbers come from golang.org/x/sys/unix for every architecture,
// copied into seccomp_tables.go by gen_seccomp_tables.go (a build only
// compiles its own architecture's constants; the compat ABI needs the
// other's).

// seccompData offsets (struct seccomp_data, linux/seccomp.h): nr, arch,
// instruction_pointer, then six 64-bit args. The ioctl request, the flags of
// clone and unshare and setns's nstype are (unsigned) ints to the kernel,
// so only the low word is compared: the upper half is ignored by the
// syscall and must not let TIOCSTI or CLONE_NEWUSER through.
const (
	seccompOffNr    = 0
	seccompOffArch  = 4
	seccompOffArg0L = 16     // little-endian low word of args[0]
	seccompOffArg1L = 16 + 8 // little-endian low word of args[1]
)

// syscallTable is one architecture's numbers for the filter.
type syscallTable struct {
	arch uint32            // AUDIT_ARCH_*
	nr   map[string]uint32 // by name, from seccomp_tables.go
	x32  bool              // numbers with bit 30 set are the x32 ABI: EPERM
}

var (
	tableAMD64 = syscallTable{arch: unix.AUDIT_ARCH_X86_64, nr: sysnumAMD64, x32: true}
	table386   = syscallTable{arch: unix.AUDIT_ARCH_I386, nr: sysnum386}
	tableARM64 = syscallTable{arch: unix.AUDIT_ARCH_AARCH64, nr: sysnumARM64}
	tableARM   = syscallTable{arch: unix.AUDIT_ARCH_ARM, nr: sysnumARM}
)

// seccompDeny are refused outright by the default filter, where the
// architecture has them; seccompIOUring too unless AllowIOUring.
var (
	seccompDeny = []string{"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "perf_event_open", "userfaultfd", "iopl", "ioperm"}
	seccompIOUring = []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}
)

// seccompTables returns the tables of the architecture nsbox was built for:
// native first, then its compat ABI.
func seccompTables(goarch string) ([]syscallTable, error) {
	switch goarch {
	case "amd64":
		return []syscallTable{tableAMD64, table386}, nil
	case "arm64":
		return []syscallTable{tableARM64, tableARM}, nil
	}
	return nil, fmt.Errorf("no seccomp filter for %s; fix: pass --no-seccomp (and not --disable-userns), or --seccomp FILE with a program of your own", goarch)
}

// seccompRules says what one generated program refuses.
type seccompRules struct {
	defaults      bool // the default filter's refusals
	allowIOUring  bool // with defaults: leave io_uring alone
	disableUserns bool // refuse new user namespaces
}

// program is a tiny assembler with labels, over x/net/bpf's instructions:
// jumps name their targets and are resolved to the 8-bit offsets at the end.
type program struct {
	insns  []bpf.Instruction
	jumps  map[int][2]string // instruction index → labels if true, if false ("" = next)
	labels map[string]int
}

func (p *program) add(i bpf.Instruction) { p.insns = append(p.insns, i) }
func (p *program) label(name string)     { p.labels[name] = len(p.insns) }

// jump adds a conditional jump to the labels t (true) and f (false); ""
// falls through.
func (p *program) jump(cond bpf.JumpTest, val uint32, t, f string) {
	p.jumps[len(p.insns)] = [2]string{t, f}
	p.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (p *program) assemble() ([]bpf.RawInstruction, error) {
	for at, to := range p.jumps {
		j := p.insns[at].(bpf.JumpIf)
		for k, name := range to {
			if name == "" {
				continue
			}
			target, ok := p.labels[name]
			skip := target - at - 1
			if !ok || skip < 0 || skip > 255 {
				return nil, fmt.Errorf("seccomp program: bad jump to %q", name)
			}
			if k == 0 {
				j.SkipTrue = uint8(skip)
			} else {
				j.SkipFalse = uint8(skip)
			}
		}
		p.insns[at] = j
	}
	return bpf.Assemble(p.insns)
}

// buildSeccomp builds the program for the given tables and rules.
func buildSeccomp(tables []syscallTable, r seccompRules) ([]bpf.RawInstruction, error) {
	p := &program{jumps: map[int][2]string{}, labels: map[string]int{}}
	p.add(bpf.LoadAbsolute{Off: seccompOffArch, Size: 4})
	for i, t := range tables {
		need := func(name string) (uint32, error) {
			nr, ok := t.nr[name]
			if !ok {
				return 0, fmt.Errorf("seccomp program: no number for %s on arch %#x", name, t.arch)
			}
			return nr, nil
		}
		next := fmt.Sprintf("arch%d", i+1)
		p.jump(bpf.JumpEqual, t.arch, "", next)
		p.add(bpf.LoadAbsolute{Off: seccompOffNr, Size: 4})
		if t.x32 {
			p.jump(bpf.JumpBitsSet, 0x40000000, "deny", "")
		}
		if r.defaults {
			ioctl, err := need("ioctl")
			if err != nil {
				return nil, err
			}
			p.jump(bpf.JumpEqual, ioctl, "ioctl", "")
			deny := seccompDeny
			if !r.allowIOUring {
				deny = append(append([]string(nil), deny...), seccompIOUring...)
			}
			for _, name := range deny {
				if nr, ok := t.nr[name]; ok { // iopl, ioperm: x86 only
					p.jump(bpf.JumpEqual, nr, "deny", "")
				}
			}
		}
		if r.disableUserns {
			for _, j := range []struct{ name, to string }{
				{"clone3", "enosys"}, {"unshare", "flags0"}, {"clone", "flags0"}, {"setns", "setns"},
			} {
				nr, err := need(j.name)
				if err != nil {
					return nil, err
				}
				p.jump(bpf.JumpEqual, nr, j.to, "")
			}
		}
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		p.label(next)
	}
	p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS})
	if r.defaults {
		p.label("ioctl")
		p.add(bpf.LoadAbsolute{Off: seccompOffArg1L, Size: 4})
		p.jump(bpf.JumpEqual, unix.TIOCSTI, "deny", "")
		p.jump(bpf.JumpEqual, unix.TIOCLINUX, "deny", "")
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
	}
	if r.disableUserns {
		p.label("flags0") // unshare(flags), clone(flags, …)
		p.add(bpf.LoadAbsolute{Off: seccompOffArg0L, Size: 4})
		p.jump(bpf.JumpBitsSet, unix.CLONE_NEWUSER, "deny", "")
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		p.label("setns") // setns(fd, nstype)
		p.add(bpf.LoadAbsolute{Off: seccompOffArg1L, Size: 4})
		p.jump(bpf.JumpEqual, 0, "deny", "")
		p.jump(bpf.JumpBitsSet, unix.CLONE_NEWUSER, "deny", "")
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		p.label("enosys")
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})
	}
	p.label("deny")
	p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)})
	return p.assemble()
}

// encodeSeccomp renders instructions as the kernel's struct sock_filter
// array, in the host's byte order.
func encodeSeccomp(insns []bpf.RawInstruction) []byte {
	b := make([]byte, 0, 8*len(insns))
	for _, in := range insns {
		b = binary.NativeEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b
}

// seccompProgram builds the program for r on the architecture nsbox was
// built for, as the kernel's struct sock_filter array.
func seccompProgram(r seccompRules) ([]byte, error) {
	tables, err := seccompTables(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	insns, err := buildSeccomp(tables, r)
	if err != nil {
		return nil, err
	}
	return encodeSeccomp(insns), nil
}

var defaultSeccomp = sync.OnceValues(func() ([]byte, error) {
	return seccompProgram(seccompRules{defaults: true})
})

// DefaultSeccompProgram returns nsbox's default filter as a raw struct
// sock_filter array, the format --seccomp reads: what a zero Security
// installs.
func DefaultSeccompProgram() ([]byte, error) { return defaultSeccomp() }

// DefaultSeccompDenied lists the system calls the default filter refuses
// outright on this architecture, by name, io_uring's included; ioctl is
// refused only for TIOCSTI and TIOCLINUX, and the x32 ABI (amd64) as a
// whole, which the list does not show.
func DefaultSeccompDenied() []string {
	tables, err := seccompTables(runtime.GOARCH)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range append(append([]string(nil), seccompDeny...), seccompIOUring...) {
		if _, ok := tables[0].nr[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// maxSeccompInsns is the kernel's BPF_MAXINSNS.
const maxSeccompInsns = 4096

// CheckSeccompProgram checks that b is a raw struct sock_filter array, as
// bubblewrap's --seccomp reads it (8 bytes per instruction, host byte
// order, 1 to 4096 instructions, ending in a return, no jump past the
// end). The kernel checks the rest when the stage installs it.
func CheckSeccompProgram(b []byte) error {
	_, err := parseSeccompProgram(b)
	return err
}

// parseSeccompProgram is CheckSeccompProgram, returning the instructions.
func parseSeccompProgram(b []byte) ([]bpf.RawInstruction, error) {
	if len(b) == 0 || len(b)%8 != 0 {
		return nil, fmt.Errorf("%d bytes is not a struct sock_filter array (8 bytes per instruction)", len(b))
	}
	n := len(b) / 8
	if n > maxSeccompInsns {
		return nil, fmt.Errorf("%d instructions, more than the kernel's %d", n, maxSeccompInsns)
	}
	insns := make([]bpf.RawInstruction, n)
	for i := range insns {
		c := b[8*i:]
		insns[i] = bpf.RawInstruction{Op: binary.NativeEndian.Uint16(c), Jt: c[2], Jf: c[3], K: binary.NativeEndian.Uint32(c[4:])}
		// A jump must land inside the program (the kernel refuses it too,
		// with a less helpful EINVAL).
		if insns[i].Op&0x07 == unix.BPF_JMP && insns[i].Op&0xf0 != unix.BPF_JA {
			if i+1+int(max(insns[i].Jt, insns[i].Jf)) >= n {
				return nil, fmt.Errorf("instruction %d jumps past the end of the program", i)
			}
		}
	}
	if last := insns[n-1].Op; last&0x07 != unix.BPF_RET {
		return nil, fmt.Errorf("the last instruction (op 0x%x) is not a return", last)
	}
	return insns, nil
}
