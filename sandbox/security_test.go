package sandbox

import (
	"encoding/json"
	"testing"

	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

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
	r := (&Security{}).records(1000)
	assert.Check(t, is.Equal(r.Caps, uint64(0)))
	assert.Check(t, is.Len(r.Seccomp, 1))
	r = (&Security{NoDefaultSeccomp: true, SeccompPrograms: [][]byte{{1, 2}}}).records(0)
	assert.Check(t, is.DeepEqual(r.Seccomp, [][]byte{{1, 2}}))
	assert.Check(t, r.Caps != 0)
	drop := CapSet(0)
	r = (&Security{Capabilities: &drop, NewSession: true}).records(0)
	assert.Check(t, is.Equal(r.Caps, uint64(0)))
	assert.Check(t, r.NewSession)
}

func TestLandlockRecords(t *testing.T) {
	l := &Landlock{ReadOnly: []string{"/ro"}, ReadWrite: []string{"/rw"}, OptionalReadOnly: []string{"/opt"}, TCPConnect: []uint16{443}}
	assert.Check(t, is.Nil(l.records(0)))
	v1 := l.records(1)
	assert.Check(t, is.DeepEqual([]uint64{v1.FS, v1.Net, v1.Scoped}, []uint64{8191, 0, 0}))
	assert.Check(t, is.DeepEqual(v1.Paths, []stage.LandlockPath{{Access: 13, Path: "/ro"}, {Access: 8191, Path: "/rw"}, {Access: 13, Optional: true, Path: "/opt"}}))
	assert.Check(t, is.Len(v1.Ports, 0), "no ports before ABI 4")
	v6 := l.records(6)
	assert.Check(t, is.DeepEqual([]uint64{v6.FS, v6.Net, v6.Scoped}, []uint64{65535, 3, 3}))
	assert.Check(t, is.DeepEqual(v6.Ports, []stage.LandlockPort{{Access: 2, Port: 443}}))
	assert.ErrorContains(t, (&Landlock{ReadOnly: []string{"rel"}}).validate(), "not an absolute path")
}

func TestParseRlimit(t *testing.T) {
	for in, want := range map[string]Rlimit{
		"nofile=1024":              {"nofile", 1024, 1024},
		"NOFILE=10:20":             {"nofile", 10, 20},
		"rlimit_core=0:unlimited":  {"core", 0, rlimInfinity},
		"as=unlimited":             {"as", rlimInfinity, rlimInfinity},
		" stack = 8192 : infinity": {"stack", 8192, rlimInfinity},
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
	if cur.Max != rlimInfinity {
		l = Limits{Rlimits: []Rlimit{{"nofile", 1, cur.Max + 1}}}
		assert.ErrorContains(t, l.validate(), "cannot raise")
	}
	if _, err := cgroup.Delegated(); err != nil {
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
		if _, ok := rlimitNames()[r.Name]; !ok {
			t.Fatalf("%q: unknown name %q", s, r.Name)
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
