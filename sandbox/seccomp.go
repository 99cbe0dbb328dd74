package sandbox

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

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
//   - iopl, ioperm (x86): I/O ports;
//   - the x32 ABI on x86_64 (syscall numbers with bit 30 set): a second
//     syscall table with its own bugs, used by nothing nsbox runs.
//
// The filter checks the architecture first: the host's native one and its
// 32-bit compat ABI (i386 on x86_64, arm on arm64) each have their own
// numbers; any other architecture kills the process, as libseccomp does.

// seccompData offsets (struct seccomp_data, linux/seccomp.h): nr, arch,
// instruction_pointer, then six 64-bit args. The ioctl request is an
// unsigned int in the kernel, so only the low word of args[1] is compared:
// the upper half is ignored by ioctl(2) and must not let TIOCSTI through.
const (
	seccompOffNr    = 0
	seccompOffArch  = 4
	seccompOffArg1L = 16 + 8 // little-endian low word of args[1]
)

// syscallTable is one architecture's numbers for the filter.
type syscallTable struct {
	arch  uint32   // AUDIT_ARCH_*
	ioctl uint32   // filtered on its request argument
	deny  []uint32 // EPERM outright
	x32   bool     // numbers with bit 30 set are the x32 ABI: EPERM
}

var (
	tableAMD64 = syscallTable{arch: unix.AUDIT_ARCH_X86_64, ioctl: 16, x32: true,
		// keyctl add_key request_key kexec_load kexec_file_load init_module
		// finit_module delete_module perf_event_open userfaultfd iopl ioperm
		deny: []uint32{250, 248, 249, 246, 320, 175, 313, 176, 298, 323, 172, 173}}
	table386 = syscallTable{arch: unix.AUDIT_ARCH_I386, ioctl: 54,
		deny: []uint32{288, 286, 287, 283, 128, 350, 129, 336, 374, 110, 101}}
	tableARM64 = syscallTable{arch: unix.AUDIT_ARCH_AARCH64, ioctl: 29,
		deny: []uint32{219, 217, 218, 104, 294, 105, 273, 106, 241, 282}}
	tableARM = syscallTable{arch: unix.AUDIT_ARCH_ARM, ioctl: 54,
		deny: []uint32{311, 309, 310, 347, 401, 128, 379, 129, 364, 388}}
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
	return nil, fmt.Errorf("no default seccomp filter for %s; fix: pass --no-seccomp, or --seccomp FILE with a program of your own", goarch)
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

// buildDefaultSeccomp builds the default filter for the given tables.
func buildDefaultSeccomp(tables []syscallTable) ([]bpf.RawInstruction, error) {
	p := &program{jumps: map[int][2]string{}, labels: map[string]int{}}
	p.add(bpf.LoadAbsolute{Off: seccompOffArch, Size: 4})
	for i, t := range tables {
		next := fmt.Sprintf("arch%d", i+1)
		p.jump(bpf.JumpEqual, t.arch, "", next)
		p.add(bpf.LoadAbsolute{Off: seccompOffNr, Size: 4})
		if t.x32 {
			p.jump(bpf.JumpBitsSet, 0x40000000, "deny", "")
		}
		p.jump(bpf.JumpEqual, t.ioctl, "ioctl", "")
		for _, nr := range t.deny {
			p.jump(bpf.JumpEqual, nr, "deny", "")
		}
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		p.label(next)
	}
	p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS})
	p.label("ioctl")
	p.add(bpf.LoadAbsolute{Off: seccompOffArg1L, Size: 4})
	p.jump(bpf.JumpEqual, unix.TIOCSTI, "deny", "")
	p.jump(bpf.JumpEqual, unix.TIOCLINUX, "deny", "")
	p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
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

var defaultSeccomp = sync.OnceValues(func() ([]byte, error) {
	tables, err := seccompTables(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	insns, err := buildDefaultSeccomp(tables)
	if err != nil {
		return nil, err
	}
	return encodeSeccomp(insns), nil
})

// DefaultSeccompProgram returns nsbox's default filter as a raw struct
// sock_filter array, the format --seccomp reads.
func DefaultSeccompProgram() ([]byte, error) { return defaultSeccomp() }

// maxSeccompInsns is the kernel's BPF_MAXINSNS.
const maxSeccompInsns = 4096

// ParseSeccompProgram checks that b is a raw struct sock_filter array, as
// bubblewrap's --seccomp reads it (8 bytes per instruction, host byte
// order, 1 to 4096 instructions, ending in a return), and returns its
// instructions. The kernel checks the rest when the stage installs it.
func ParseSeccompProgram(b []byte) ([]bpf.RawInstruction, error) {
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
