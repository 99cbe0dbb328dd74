package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

//go:generate go run gen_tables.go

// Offsets in struct seccomp_data (linux/seccomp.h): nr, arch,
// instruction_pointer, then six 64-bit args. The ioctl request, the flags of
// clone and unshare and setns's nstype are (unsigned) ints to the kernel,
// so only the low word is compared: the upper half is ignored by the
// syscall and must not let TIOCSTI or CLONE_NEWUSER through.
const (
	offNr    = 0
	offArch  = 4
	offArg0L = 16     // little-endian low word of args[0]
	offArg1L = 16 + 8 // little-endian low word of args[1]
)

// syscallTable is one architecture's numbers for the filter.
type syscallTable struct {
	arch uint32  // AUDIT_ARCH_*
	nr   sysnums // from tables.go
	x32  bool    // numbers with bit 30 set are the x32 ABI: EPERM
}

// sysnums are system call numbers by name. A slice, not a map: its
// literal is laid out by the compiler, where a package-level map is built
// by the package's init at every start of nsbox, which most commands pay
// for without building a filter.
type sysnums []struct {
	name string
	nr   uint32
}

// lookup returns the number of the system call name.
func (s sysnums) lookup(name string) (uint32, bool) {
	for _, c := range s {
		if c.name == name {
			return c.nr, true
		}
	}
	return 0, false
}

var (
	tableAMD64 = syscallTable{arch: unix.AUDIT_ARCH_X86_64, nr: sysnumAMD64, x32: true}
	table386   = syscallTable{arch: unix.AUDIT_ARCH_I386, nr: sysnum386}
	tableARM64 = syscallTable{arch: unix.AUDIT_ARCH_AARCH64, nr: sysnumARM64}
	tableARM   = syscallTable{arch: unix.AUDIT_ARCH_ARM, nr: sysnumARM}
)

// denied are refused outright by the default filter, where the
// architecture has them; ioURing too unless AllowIOUring.
var (
	denied = []string{"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "perf_event_open", "userfaultfd", "iopl", "ioperm"}
	ioURing = []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}
)

// ErrNoTables: nsbox has no system call tables for the architecture it
// was built for, so it cannot build a filter there; the caller names the
// way out (run without the default filter, or bring a program).
var ErrNoTables = errors.New("no seccomp filter for this architecture")

// tablesFor returns the tables of the architecture nsbox was built for:
// native first, then its compat ABI.
func tablesFor(goarch string) ([]syscallTable, error) {
	switch goarch {
	case "amd64":
		return []syscallTable{tableAMD64, table386}, nil
	case "arm64":
		return []syscallTable{tableARM64, tableARM}, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNoTables, goarch)
}

// Rules says what one generated program refuses. The zero value refuses
// nothing, and Build returns no program for it.
type Rules struct {
	// Defaults are the default filter's refusals (see the package doc).
	Defaults bool
	// AllowIOUring, with Defaults, leaves io_uring's calls alone.
	AllowIOUring bool
	// DisableUserns refuses new user namespaces, with or without Defaults.
	DisableUserns bool
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

// build builds the program for the given tables and rules.
func build(tables []syscallTable, r Rules) ([]bpf.RawInstruction, error) {
	p := &program{jumps: map[int][2]string{}, labels: map[string]int{}}
	p.add(bpf.LoadAbsolute{Off: offArch, Size: 4})
	for i, t := range tables {
		need := func(name string) (uint32, error) {
			nr, ok := t.nr.lookup(name)
			if !ok {
				return 0, fmt.Errorf("seccomp program: no number for %s on arch %#x", name, t.arch)
			}
			return nr, nil
		}
		next := fmt.Sprintf("arch%d", i+1)
		p.jump(bpf.JumpEqual, t.arch, "", next)
		p.add(bpf.LoadAbsolute{Off: offNr, Size: 4})
		if t.x32 {
			p.jump(bpf.JumpBitsSet, 0x40000000, "deny", "")
		}
		if r.Defaults {
			ioctl, err := need("ioctl")
			if err != nil {
				return nil, err
			}
			p.jump(bpf.JumpEqual, ioctl, "ioctl", "")
			deny := denied
			if !r.AllowIOUring {
				deny = append(append([]string(nil), deny...), ioURing...)
			}
			for _, name := range deny {
				if nr, ok := t.nr.lookup(name); ok { // iopl, ioperm: x86 only
					p.jump(bpf.JumpEqual, nr, "deny", "")
				}
			}
		}
		if r.DisableUserns {
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
	if r.Defaults {
		p.label("ioctl")
		p.add(bpf.LoadAbsolute{Off: offArg1L, Size: 4})
		p.jump(bpf.JumpEqual, unix.TIOCSTI, "deny", "")
		p.jump(bpf.JumpEqual, unix.TIOCLINUX, "deny", "")
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
	}
	if r.DisableUserns {
		p.label("flags0") // unshare(flags), clone(flags, …)
		p.add(bpf.LoadAbsolute{Off: offArg0L, Size: 4})
		p.jump(bpf.JumpBitsSet, unix.CLONE_NEWUSER, "deny", "")
		p.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		p.label("setns") // setns(fd, nstype)
		p.add(bpf.LoadAbsolute{Off: offArg1L, Size: 4})
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

// encode renders instructions as the kernel's struct sock_filter
// array, in the host's byte order.
func encode(insns []bpf.RawInstruction) []byte {
	b := make([]byte, 0, 8*len(insns))
	for _, in := range insns {
		b = binary.NativeEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b
}

// Build returns the program for r on the architecture nsbox was built
// for, as the kernel's struct sock_filter array in the host's byte order:
// what the stage hands to seccomp(SECCOMP_SET_MODE_FILTER). It returns nil
// when r refuses nothing (neither Defaults nor DisableUserns), and an error
// on an architecture without tables. Build(Rules{Defaults: true}) is built
// once and shared: callers must not modify it.
func Build(r Rules) ([]byte, error) {
	switch {
	case r == Rules{Defaults: true}:
		return defaultProgram()
	case !r.Defaults && !r.DisableUserns:
		return nil, nil
	}
	return buildNative(r)
}

// buildNative builds the program for r on runtime.GOARCH.
func buildNative(r Rules) ([]byte, error) {
	tables, err := tablesFor(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	insns, err := build(tables, r)
	if err != nil {
		return nil, err
	}
	return encode(insns), nil
}

var defaultProgram = sync.OnceValues(func() ([]byte, error) {
	return buildNative(Rules{Defaults: true})
})

// Denied lists the system calls the default filter refuses outright on
// this architecture, by name, io_uring's included; ioctl is refused only
// for TIOCSTI and TIOCLINUX, and the x32 ABI (amd64) as a whole, which the
// list does not show. It is nil on an architecture without tables.
func Denied() []string {
	tables, err := tablesFor(runtime.GOARCH)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range append(append([]string(nil), denied...), ioURing...) {
		if _, ok := tables[0].nr.lookup(name); ok {
			out = append(out, name)
		}
	}
	return out
}

// maxInsns is the kernel's BPF_MAXINSNS.
const maxInsns = 4096

// Check checks that prog is a raw struct sock_filter array, as
// bubblewrap's --seccomp reads it (8 bytes per instruction, host byte
// order, 1 to 4096 instructions, ending in a return, no jump past the
// end). The kernel checks the rest when the stage installs it.
func Check(prog []byte) error {
	_, err := parse(prog)
	return err
}

// parse is Check, returning the instructions.
func parse(b []byte) ([]bpf.RawInstruction, error) {
	if len(b) == 0 || len(b)%8 != 0 {
		return nil, fmt.Errorf("%d bytes is not a struct sock_filter array (8 bytes per instruction)", len(b))
	}
	n := len(b) / 8
	if n > maxInsns {
		return nil, fmt.Errorf("%d instructions, more than the kernel's %d", n, maxInsns)
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
