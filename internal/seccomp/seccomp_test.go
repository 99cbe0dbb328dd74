package seccomp

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// seccompInput lays out a struct seccomp_data for x/net/bpf's VM, which
// loads words in network byte order: each field is written big-endian so
// that the VM reads the value the kernel would read natively.
func seccompInput(arch, nr uint32, arg0, arg1 uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range []uint64{arg0, arg1} {
		off := offArg0L + 8*i
		binary.BigEndian.PutUint32(b[off:], uint32(a))
		binary.BigEndian.PutUint32(b[off+4:], uint32(a>>32))
	}
	return b
}

// TestSeccompDecisions runs the program's logic in x/net/bpf's VM for both
// architectures nsbox builds for (only one can run in this kernel): which
// arguments each rule looks at, and what it answers. The numbers
// themselves are x/sys's (TestSeccompTablesUpToDate) and the kernel's
// verdict on them is TestSeccompInKernel's.
func TestSeccompDecisions(t *testing.T) {
	const (
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		allow  = uint32(unix.SECCOMP_RET_ALLOW)
	)
	for _, goarch := range []string{"amd64", "arm64"} {
		tables, err := tablesFor(goarch)
		assert.NilError(t, err)
		for _, tc := range []struct {
			name  string
			rules Rules
		}{
			{"default", Rules{Defaults: true}},
			{"allow io_uring", Rules{Defaults: true, AllowIOUring: true}},
			{"disable userns", Rules{Defaults: true, DisableUserns: true}},
			{"only userns", Rules{DisableUserns: true}},
		} {
			t.Run(goarch+"/"+tc.name, func(t *testing.T) {
				insns, err := build(tables, tc.rules)
				assert.NilError(t, err)
				dis, ok := bpf.Disassemble(insns)
				assert.Assert(t, ok)
				vm, err := bpf.NewVM(dis)
				assert.NilError(t, err)
				for _, tb := range tables {
					run := func(name string, arg0, arg1 uint64) uint32 {
						nr, ok := tb.nr.lookup(name)
						assert.Assert(t, ok, "%s has no %s", goarch, name)
						out, err := vm.Run(seccompInput(tb.arch, nr, arg0, arg1))
						assert.NilError(t, err)
						return uint32(out)
					}
					when := func(on bool, yes, no uint32) uint32 {
						if on {
							return yes
						}
						return no
					}
					r := tc.rules
					for _, name := range denied {
						if _, ok := tb.nr.lookup(name); ok {
							assert.Check(t, is.Equal(run(name, 0, 0), when(r.Defaults, eperm, allow)), "arch %#x %s", tb.arch, name)
						}
					}
					for _, name := range ioURing {
						assert.Check(t, is.Equal(run(name, 0, 0), when(r.Defaults && !r.AllowIOUring, eperm, allow)), "arch %#x %s", tb.arch, name)
					}
					assert.Check(t, is.Equal(run("ioctl", 0, unix.TIOCSTI), when(r.Defaults, eperm, allow)))
					assert.Check(t, is.Equal(run("ioctl", 0, unix.TIOCLINUX), when(r.Defaults, eperm, allow)))
					// The upper half of the request is ignored by ioctl(2): so here.
					assert.Check(t, is.Equal(run("ioctl", 0, 1<<32|unix.TIOCSTI), when(r.Defaults, eperm, allow)))
					assert.Check(t, is.Equal(run("ioctl", unix.TIOCSTI, unix.TCGETS), allow))

					// User namespaces: the flag bit anywhere in the low word,
					// whatever the upper word holds; other namespaces pass.
					d := r.DisableUserns
					assert.Check(t, is.Equal(run("unshare", unix.CLONE_NEWUSER, 0), when(d, eperm, allow)))
					assert.Check(t, is.Equal(run("unshare", 1<<32|unix.CLONE_NEWUSER|unix.CLONE_NEWNS, 0), when(d, eperm, allow)))
					assert.Check(t, is.Equal(run("unshare", unix.CLONE_NEWNS|unix.CLONE_NEWNET, 0), allow))
					assert.Check(t, is.Equal(run("clone", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD), 0), when(d, eperm, allow)))
					assert.Check(t, is.Equal(run("clone", unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND, unix.CLONE_NEWUSER), allow), "flags are args[0]")
					assert.Check(t, is.Equal(run("clone3", 0, 0), when(d, enosys, allow)))
					assert.Check(t, is.Equal(run("setns", 3, unix.CLONE_NEWUSER), when(d, eperm, allow)))
					assert.Check(t, is.Equal(run("setns", 3, 0), when(d, eperm, allow)), "nstype 0 may name a user namespace")
					assert.Check(t, is.Equal(run("setns", 3, unix.CLONE_NEWNET), allow))
					assert.Check(t, is.Equal(run("setns", unix.CLONE_NEWUSER, unix.CLONE_NEWNET), allow), "nstype is args[1]")
				}
				read := func(arch, nr uint32) uint32 {
					out, err := vm.Run(seccompInput(arch, nr, 0, 0))
					assert.NilError(t, err)
					return uint32(out)
				}
				// read(2) is allowed natively and in compat.
				assert.Check(t, is.Equal(read(tables[0].arch, map[string]uint32{"amd64": 0, "arm64": 63}[goarch]), allow))
				assert.Check(t, is.Equal(read(tables[1].arch, 3), allow))
				// Another architecture is killed.
				assert.Check(t, is.Equal(read(unix.AUDIT_ARCH_PPC64LE, 0), uint32(unix.SECCOMP_RET_KILL_PROCESS)))
				if goarch == "amd64" {
					assert.Check(t, is.Equal(read(tables[0].arch, 0x40000000|39), eperm), "x32 getpid")
				}
			})
		}
	}
	_, err := tablesFor("riscv64")
	assert.Check(t, errors.Is(err, ErrNoTables))
	assert.ErrorContains(t, err, "riscv64")
	_, err = build([]syscallTable{{arch: unix.AUDIT_ARCH_X86_64, nr: sysnums{{"ioctl", 16}}}}, Rules{DisableUserns: true})
	assert.ErrorContains(t, err, "no number for clone3")
}

// TestSeccompTablesUpToDate regenerates tables.go from the x/sys
// that go.mod pins: the numbers are x/sys's, not typed by hand, and a
// bump of x/sys that changes one shows up here.
func TestSeccompTablesUpToDate(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "tables.go")
	cmd := exec.Command(goBin, "run", "gen_tables.go", "-o", out)
	b, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(b))
	want, err := os.ReadFile(out)
	assert.NilError(t, err)
	got, err := os.ReadFile("tables.go")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(got), string(want)), "run go generate ./internal/seccomp")
	// This build's own constants agree with its native table.
	native, err := tablesFor(runtime.GOARCH)
	assert.NilError(t, err)
	for name, nr := range nativeSyscalls {
		got, _ := native[0].nr.lookup(name)
		assert.Check(t, is.Equal(got, uint32(nr)), name)
	}
}

// nativeSyscalls are the filtered calls by this build's unix.SYS_*
// constants: what TestSeccompInKernel calls.
var nativeSyscalls = map[string]uintptr{
	"keyctl": unix.SYS_KEYCTL, "add_key": unix.SYS_ADD_KEY, "request_key": unix.SYS_REQUEST_KEY,
	"kexec_load": unix.SYS_KEXEC_LOAD, "kexec_file_load": unix.SYS_KEXEC_FILE_LOAD,
	"init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE, "delete_module": unix.SYS_DELETE_MODULE,
	"perf_event_open": unix.SYS_PERF_EVENT_OPEN, "userfaultfd": unix.SYS_USERFAULTFD,
	"io_uring_setup": unix.SYS_IO_URING_SETUP, "io_uring_enter": unix.SYS_IO_URING_ENTER, "io_uring_register": unix.SYS_IO_URING_REGISTER,
	"unshare": unix.SYS_UNSHARE, "clone": unix.SYS_CLONE, "clone3": unix.SYS_CLONE3, "setns": unix.SYS_SETNS, "ioctl": unix.SYS_IOCTL,
}

func TestCheck(t *testing.T) {
	prog, err := Build(Rules{Defaults: true})
	assert.NilError(t, err)
	insns, err := parse(prog)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(len(insns)*8, len(prog)))
	for _, tc := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"empty", nil, "not a struct sock_filter array"},
		{"odd size", make([]byte, 12), "not a struct sock_filter array"},
		{"too long", make([]byte, 8*4097), "more than the kernel's 4096"},
		{"no return", encode([]bpf.RawInstruction{{Op: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS}}), "not a return"},
		{"jump out", encode([]bpf.RawInstruction{{Op: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 5}, {Op: unix.BPF_RET}}), "jumps past the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.b)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

// FuzzCheck: no panic; an accepted program has whole
// instructions, ends in a return and never jumps out of itself.
func FuzzCheck(f *testing.F) {
	prog, _ := Build(Rules{Defaults: true})
	f.Add(prog)
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add(encode([]bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		insns, err := parse(b)
		if err != nil {
			return
		}
		if len(insns)*8 != len(b) || insns[len(insns)-1].Op&0x07 != unix.BPF_RET {
			t.Fatalf("accepted a bad program of %d bytes", len(b))
		}
		if !strings.EqualFold(string(encode(insns)), string(b)) {
			t.Fatalf("round trip changed the program")
		}
	})
}
