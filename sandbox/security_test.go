package sandbox

import (
	"encoding/binary"
	"encoding/json"
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
		off := seccompOffArg0L + 8*i
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
		tables, err := seccompTables(goarch)
		assert.NilError(t, err)
		for _, tc := range []struct {
			name  string
			rules seccompRules
		}{
			{"default", seccompRules{defaults: true}},
			{"allow io_uring", seccompRules{defaults: true, allowIOUring: true}},
			{"disable userns", seccompRules{defaults: true, disableUserns: true}},
			{"only userns", seccompRules{disableUserns: true}},
		} {
			t.Run(goarch+"/"+tc.name, func(t *testing.T) {
				insns, err := buildSeccomp(tables, tc.rules)
				assert.NilError(t, err)
				dis, ok := bpf.Disassemble(insns)
				assert.Assert(t, ok)
				vm, err := bpf.NewVM(dis)
				assert.NilError(t, err)
				for _, tb := range tables {
					run := func(name string, arg0, arg1 uint64) uint32 {
						nr, ok := tb.nr[name]
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
					for _, name := range seccompDeny {
						if _, ok := tb.nr[name]; ok {
							assert.Check(t, is.Equal(run(name, 0, 0), when(r.defaults, eperm, allow)), "arch %#x %s", tb.arch, name)
						}
					}
					for _, name := range seccompIOUring {
						assert.Check(t, is.Equal(run(name, 0, 0), when(r.defaults && !r.allowIOUring, eperm, allow)), "arch %#x %s", tb.arch, name)
					}
					assert.Check(t, is.Equal(run("ioctl", 0, unix.TIOCSTI), when(r.defaults, eperm, allow)))
					assert.Check(t, is.Equal(run("ioctl", 0, unix.TIOCLINUX), when(r.defaults, eperm, allow)))
					// The upper half of the request is ignored by ioctl(2): so here.
					assert.Check(t, is.Equal(run("ioctl", 0, 1<<32|unix.TIOCSTI), when(r.defaults, eperm, allow)))
					assert.Check(t, is.Equal(run("ioctl", unix.TIOCSTI, unix.TCGETS), allow))

					// User namespaces: the flag bit anywhere in the low word,
					// whatever the upper word holds; other namespaces pass.
					d := r.disableUserns
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
	_, err := seccompTables("riscv64")
	assert.ErrorContains(t, err, "--no-seccomp")
	_, err = buildSeccomp([]syscallTable{{arch: unix.AUDIT_ARCH_X86_64, nr: map[string]uint32{"ioctl": 16}}}, seccompRules{disableUserns: true})
	assert.ErrorContains(t, err, "no number for clone3")
}

// TestSeccompTablesUpToDate regenerates seccomp_tables.go from the x/sys
// that go.mod pins: the numbers are x/sys's, not typed by hand, and a
// bump of x/sys that changes one shows up here.
func TestSeccompTablesUpToDate(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "tables.go")
	cmd := exec.Command(goBin, "run", "gen_seccomp_tables.go", "-o", out)
	b, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(b))
	want, err := os.ReadFile(out)
	assert.NilError(t, err)
	got, err := os.ReadFile("seccomp_tables.go")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(got), string(want)), "run go generate ./sandbox")
	// This build's own constants agree with its native table.
	native, err := seccompTables(runtime.GOARCH)
	assert.NilError(t, err)
	for name, nr := range nativeSyscalls {
		assert.Check(t, is.Equal(native[0].nr[name], uint32(nr)), name)
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

func TestParseSeccompProgram(t *testing.T) {
	prog, err := DefaultSeccompProgram()
	assert.NilError(t, err)
	insns, err := parseSeccompProgram(prog)
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
		{"no return", encodeSeccomp([]bpf.RawInstruction{{Op: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS}}), "not a return"},
		{"jump out", encodeSeccomp([]bpf.RawInstruction{{Op: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 5}, {Op: unix.BPF_RET}}), "jumps past the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSeccompProgram(tc.b)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

func TestParseCapability(t *testing.T) {
	for in, want := range map[string]CapSet{
		"CAP_CHOWN": 1, "net_raw": 1 << 13, "Cap_Sys_Admin": 1 << 21, "checkpoint_restore": 1 << 40,
	} {
		got, err := ParseCapability(in)
		assert.NilError(t, err, in)
		assert.Check(t, is.Equal(got, want), in)
	}
	all, err := ParseCapability("all")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(all, AllCapabilities()))
	assert.Check(t, all&(1<<40) != 0)
	for _, bad := range []string{"", "CAP_", "CAP_FOO", "13"} {
		_, err := ParseCapability(bad)
		assert.ErrorContains(t, err, "unknown capability", bad)
	}
}

func TestCapSetJSON(t *testing.T) {
	s := CapSet(1<<13 | 1<<21)
	b, err := json.Marshal(s)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), `["CAP_NET_RAW","CAP_SYS_ADMIN"]`))
	var back CapSet
	assert.NilError(t, json.Unmarshal(b, &back))
	assert.Check(t, is.Equal(back, s))
	assert.ErrorContains(t, json.Unmarshal([]byte(`["CAP_NOPE"]`), &back), "unknown capability")
	b, _ = json.Marshal(CapSet(0))
	assert.Check(t, is.Equal(string(b), `[]`))
}

func TestSecurityRecords(t *testing.T) {
	rec := func(s Security, uid uint32) map[string][]string {
		m := map[string][]string{}
		for _, kv := range s.records(uid) {
			m[kv[0]] = append(m[kv[0]], kv[1])
		}
		return m
	}
	m := rec(Security{}, 1000)
	assert.Check(t, is.DeepEqual(m["caps"], []string{"0"}))
	assert.Check(t, is.Len(m["seccomp"], 1))
	m = rec(Security{NoDefaultSeccomp: true, SeccompPrograms: [][]byte{{1, 2}}}, 0)
	assert.Check(t, is.DeepEqual(m["seccomp"], []string{"0102"}))
	assert.Check(t, m["caps"][0] != "0")
	drop := CapSet(0)
	m = rec(Security{Capabilities: &drop, NewSession: true}, 0)
	assert.Check(t, is.DeepEqual(m["caps"], []string{"0"}))
	assert.Check(t, is.DeepEqual(m["new-session"], []string{"1"}))
}

func TestLandlockRecords(t *testing.T) {
	l := &Landlock{ReadOnly: []string{"/ro"}, ReadWrite: []string{"/rw"}, OptionalReadOnly: []string{"/opt"}, TCPConnect: []uint16{443}}
	assert.Check(t, is.Len(l.records(0), 0))
	v1 := l.records(1)
	assert.Check(t, is.Equal(v1[0][1], "8191:0:0"))
	assert.Check(t, is.Equal(v1[1][1], "13:0:/ro"))
	assert.Check(t, is.Equal(v1[2][1], "8191:0:/rw"))
	assert.Check(t, is.Equal(v1[3][1], "13:1:/opt"))
	assert.Check(t, is.Len(v1, 4), "no ports before ABI 4")
	v6 := l.records(6)
	assert.Check(t, is.Equal(v6[0][1], "65535:3:3"))
	assert.Check(t, is.Equal(v6[len(v6)-1][1], "2:443"))
	assert.ErrorContains(t, (&Landlock{ReadOnly: []string{"rel"}}).validate(), "not an absolute path")
}

func TestParseRlimit(t *testing.T) {
	for in, want := range map[string]Rlimit{
		"nofile=1024":              {"nofile", 1024, 1024},
		"NOFILE=10:20":             {"nofile", 10, 20},
		"rlimit_core=0:unlimited":  {"core", 0, RlimInfinity},
		"as=unlimited":             {"as", RlimInfinity, RlimInfinity},
		" stack = 8192 : infinity": {"stack", 8192, RlimInfinity},
	} {
		got, err := ParseRlimit(in)
		assert.NilError(t, err, in)
		assert.Check(t, is.DeepEqual(got, want), in)
	}
	for in, msg := range map[string]string{
		"nofile":                     "not NAME=SOFT[:HARD]",
		"files=1":                    "unknown resource",
		"nofile=x":                   "not a number",
		"nofile=1:y":                 "hard limit",
		"nofile=10:5":                "above hard limit",
		"nofile=-1":                  "not a number",
		"nofile=1:2:3":               "hard limit",
		"nofile=":                    "not a number",
		"nproc=99999999999999999999": "not a number",
	} {
		_, err := ParseRlimit(in)
		assert.ErrorContains(t, err, msg, in)
	}
}

func TestLimitsValidate(t *testing.T) {
	var cur unix.Rlimit
	assert.NilError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &cur))
	l := Limits{Rlimits: []Rlimit{{"nofile", 1, cur.Max}}}
	assert.NilError(t, l.validate())
	if cur.Max != RlimInfinity {
		l = Limits{Rlimits: []Rlimit{{"nofile", 1, cur.Max + 1}}}
		assert.ErrorContains(t, l.validate(), "cannot raise")
	}
	if _, err := DelegatedCgroup(); err != nil {
		l = Limits{PIDs: 10}
		assert.ErrorContains(t, l.validate(), "fix:")
	}
}

// FuzzParseCapability: no panic, and what parses names a known set.
func FuzzParseCapability(f *testing.F) {
	for _, s := range []string{"CAP_NET_RAW", "all", "sys_admin", "", "CAP_", "cap_cap_chown", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCapability(s)
		if err == nil && (c == 0 || c&^AllCapabilities() != 0) {
			t.Fatalf("%q parsed to %#x", s, uint64(c))
		}
	})
}

// FuzzParseRlimit: no panic; a parsed limit has soft ≤ hard and a known name.
func FuzzParseRlimit(f *testing.F) {
	for _, s := range []string{"nofile=1024", "core=0:unlimited", "as=1:2", "x", "=", "nofile=:", "nofile=1:", "stack=inf:inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRlimit(s)
		if err != nil {
			return
		}
		if r.Soft > r.Hard {
			t.Fatalf("%q: soft %d > hard %d", s, r.Soft, r.Hard)
		}
		if _, ok := rlimitNames[r.Name]; !ok {
			t.Fatalf("%q: unknown name %q", s, r.Name)
		}
	})
}

// FuzzParseSeccompProgram: no panic; an accepted program has whole
// instructions, ends in a return and never jumps out of itself.
func FuzzParseSeccompProgram(f *testing.F) {
	prog, _ := DefaultSeccompProgram()
	f.Add(prog)
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add(encodeSeccomp([]bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		insns, err := parseSeccompProgram(b)
		if err != nil {
			return
		}
		if len(insns)*8 != len(b) || insns[len(insns)-1].Op&0x07 != unix.BPF_RET {
			t.Fatalf("accepted a bad program of %d bytes", len(b))
		}
		if !strings.EqualFold(string(encodeSeccomp(insns)), string(b)) {
			t.Fatalf("round trip changed the program")
		}
	})
}

// FuzzSpecJSON: the JSON form of a Spec decodes without panics, and what
// decodes and validates encodes and decodes to the same thing.
func FuzzSpecJSON(f *testing.F) {
	f.Add([]byte(`{"process":{"args":["true"],"uid":1000,"gid":1000,"noNewPrivs":true},"namespaces":{"mount":true,"pid":true},"mapping":{"uids":[{"inner":1000,"outer":1000,"count":1}],"gids":[{"inner":1000,"outer":1000,"count":1}]},"security":{"capabilities":["CAP_NET_RAW"],"newSession":true,"landlock":{"readOnly":["/usr"],"tcpBind":[80]}},"limits":{"rlimits":[{"name":"nofile","soft":1,"hard":2}]}}`))
	f.Add([]byte(`{"security":{"seccompPrograms":["BgAAAAAA/38="]}}`))
	f.Add([]byte(`{"security":{"capabilities":"ALL"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Spec
		if err := json.Unmarshal(b, &s); err != nil {
			return
		}
		if s.Validate() != nil {
			return
		}
		out, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("marshal a valid spec: %v", err)
		}
		var again Spec
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("decode our own encoding %s: %v", out, err)
		}
		out2, _ := json.Marshal(&again)
		if string(out) != string(out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

func TestLandlockAllowMounts(t *testing.T) {
	l := &Landlock{}
	l.AllowMounts(append(append(BaseView(), Mount{Type: MountBind, Source: "/work", Destination: "/work"}),
		Mount{Type: MountBind, Source: "/data", Destination: "/data", ReadOnly: true},
		Mount{Type: MountSymlink, Source: "x", Destination: "/y"}))
	assert.Check(t, is.DeepEqual(l.OptionalReadOnly, []string{"/data"}))
	assert.Check(t, is.DeepEqual(l.OptionalReadWrite, []string{"/dev", "/proc", "/tmp", "/work"}))
	l = &Landlock{}
	l.AllowMounts([]Mount{{Type: MountBind, Source: "/srv/root", Destination: "/"}})
	assert.Check(t, is.DeepEqual(l.OptionalReadWrite, []string{"/"}), "a --rootfs is what the sandbox has")
}
