package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/subid"
)

// The CONFIG protocol's two halves together: config.go encodes real
// specs, config.c (through configcheck.go) decodes them as the stage does
// and writes the decoded struct back out. A key the decoder lacks, a value
// it stores differently (a number cut to an int, a flag dropped), or a key
// only one side knows fails here.

// testPlan is the plan of a caller with uid/gid 1000 and one subordinate
// range, as mapping.Auto makes it.
func testPlan(t testing.TB, root bool, mode mapping.Mode) mapping.Plan {
	t.Helper()
	r := []subid.Range{{Start: 100000, Count: 65536}}
	p, err := mapping.NewPlan(mapping.Request{UID: 1000, GID: 1000, SubUIDs: r, SubGIDs: r, Mode: mode, Root: root,
		Helpers: mapping.Helpers{NewUIDMap: "/usr/bin/newuidmap", NewGIDMap: "/usr/bin/newgidmap"}})
	assert.NilError(t, err)
	return p
}

// everyMount is one op of each MountType, with every field its type uses.
func everyMount() []Mount {
	var ms []Mount
	for _, typ := range mountTypes {
		m := Mount{Type: typ, Destination: "/m/" + string(typ)}
		switch typ {
		case MountBind:
			m.Source, m.ReadOnly, m.Devices, m.Optional = "/srv/a b", true, true, true
		case MountTmpfs:
			m.Size, m.Mode = 5<<30, 0o1777|fs.ModeSticky // past 32 bits
		case MountDir, MountChmod:
			m.Mode = 0o750
		case MountSymlink:
			m.Source = "../target"
		case MountFile:
			m.Data, m.Mode, m.ReadOnly = []byte("line\x00\xff\n"), 0o600, true
		case MountOverlay:
			m.Lower, m.Upper, m.Work = []string{"/l1", "/l:2"}, "/up", "/work"
		}
		ms = append(ms, m)
	}
	return append(ms, Mount{Type: MountFile, Destination: "/empty"},
		Mount{Type: MountRemountRO, Destination: "/m/shallow", NonRecursive: true})
}

// configCases are stage configs as Start and Join build them.
func configCases(t testing.TB) map[string]stageConfig {
	t.Helper()
	spec := func(edit func(s *Spec)) *Spec {
		s := &Spec{
			Mounts:     HostView("/home/u/src"),
			Process:    Process{Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=\u00e9"}, UID: 1000, GID: 1000, NoNewPrivs: true},
			Namespaces: AllNamespaces(),
			Mapping:    testPlan(t, false, mapping.Auto),
		}
		edit(s)
		return s
	}
	cases := map[string]stageConfig{}
	if d, err := Default("true"); err == nil {
		cases["Default"] = newStageConfig(d, -1)
	} else {
		t.Logf("Default: %v (its case is left out)", err)
	}
	cases["default view"] = newStageConfig(spec(func(*Spec) {}), 0)
	cases["--root"] = newStageConfig(spec(func(s *Spec) {
		s.Mapping = testPlan(t, true, mapping.Auto)
		s.Process.UID, s.Process.GID = 0, 0
		s.Hostname = "box"
		s.Process.Argv0 = "-login shell"
	}), -1)
	cases["--map single (nested)"] = newStageConfig(spec(func(s *Spec) { s.Mapping = testPlan(t, false, mapping.Single) }), -1)
	cases["--rootfs, every mount type, --chdir"] = newStageConfig(spec(func(s *Spec) {
		s.Mounts = append([]Mount{{Type: MountBind, Source: "/rootfs", Destination: "/"}}, everyMount()...)
		s.Process.Cwd = "/m/dir"
	}), -1)
	cases["overlays"] = newStageConfig(spec(func(s *Spec) {
		s.Mounts = append(s.Mounts,
			Mount{Type: MountOverlay, Lower: []string{"/usr"}, Upper: "/var/tmp/u", Work: "/var/tmp/w", Destination: "/usr"},
			Mount{Type: MountTmpOverlay, Destination: "/etc"},
			Mount{Type: MountTmpOverlay, Lower: []string{"/srv/b", "/srv/a"}, Destination: "/srv"},
			Mount{Type: MountOverlay, Lower: []string{"/srv/b", "/srv/a"}, Destination: "/srv/ro"},
			Mount{Type: MountCopyUp, Destination: "/opt"})
	}), -1)
	cases["--share all (no new root)"] = newStageConfig(spec(func(s *Spec) {
		s.Namespaces = Namespaces{}
		s.Mounts = nil
	}), -1)
	cases["seccomp, caps, rlimits, new session"] = newStageConfig(spec(func(s *Spec) {
		caps := CapSet(1<<12 | 1<<13)
		s.Security = Security{Capabilities: &caps, NewSession: true,
			SeccompPrograms: [][]byte{make([]byte, 8), make([]byte, 16)}}
		s.Limits.Rlimits = []Rlimit{{Name: "nofile", Soft: 1024, Hard: 4096}, {Name: "core", Soft: 0, Hard: RlimInfinity}}
	}), -1)
	cases["BeforeExec (exec-wait)"] = newStageConfig(spec(func(s *Spec) { s.BeforeExec = func() error { return nil } }), -1)
	cases["--no-seccomp"] = newStageConfig(spec(func(s *Spec) { s.Security.NoDefaultSeccomp = true }), -1)
	cases["--disable-userns"] = newStageConfig(spec(func(s *Spec) { s.Security.DisableUserns = true }), -1)
	cases["ExtraFiles"] = newStageConfig(spec(func(s *Spec) { s.Process.ExtraFiles = []*os.File{os.Stdin, os.Stdout} }), -1)
	ll := &Landlock{ReadOnly: []string{"/usr"}, ReadWrite: []string{"/tmp"}, OptionalReadOnly: []string{"/lib64"},
		OptionalReadWrite: []string{"/a:b"}, TCPBind: []uint16{8080}, TCPConnect: []uint16{443, 65535}}
	lc := newStageConfig(spec(func(s *Spec) { s.Security.Landlock = ll }), -1)
	// Landlock's records depend on the kernel's ABI (none without it):
	// send ABI 6's, whatever this host has.
	lc.security = slices.DeleteFunc(slices.Clone(lc.security), func(kv [2]string) bool {
		return strings.HasPrefix(kv[0], "landlock")
	})
	lc.security = append(lc.security, ll.records(6)...)
	cases["landlock"] = lc
	tap := TAP{Name: "tap0", MTU: 65520, VnetHdr: true, Address4: netip.MustParsePrefix("10.0.2.100/24"), Gateway4: netip.MustParseAddr("10.0.2.2"),
		Address6: netip.MustParsePrefix("fd00::100/64"), Gateway6: netip.MustParseAddr("fd00::2")}
	cases["--net user (tap)"] = newStageConfig(spec(func(s *Spec) {
		s.Network = &Network{TAP: tap, Serve: func(*os.File) (func() error, error) { return nil, nil }}
	}), -1)
	cases["--net slirp4netns (net-wait)"] = newStageConfig(spec(func(s *Spec) {
		s.Network = &Network{Attach: func(int) (TAP, func() error, error) { return TAP{}, nil, nil }}
	}), -1)
	cases["--tty"] = newStageConfig(spec(func(*Spec) {}), -1).withTerminal(50, 132)
	cases["exec (join)"] = stageConfig{unshareFlags: AllNamespaces().cloneFlags(), setgroups: true, noNewPrivs: true, ttyFD: -1,
		uid: 1000, gid: 1000, cwd: "/w", args: []string{"sh"}, env: []string{"A=1"}, joinPid: 4242, joinStart: 1 << 40,
		security:   append((&Security{}).records(1000), (&Limits{}).records()...),
		joinNested: true}
	return cases
}

// canonical sorts records by key, keeping the order of a repeated key
// and each mount op ("mount" and the "mount-*" records after it) whole:
// the C side writes its keys in table order.
func canonical(b []byte) (top []string, ops [][]string) {
	byKey := func(r []string) {
		slices.SortStableFunc(r, func(a, b string) int {
			ka, _, _ := strings.Cut(a, "=")
			kb, _, _ := strings.Cut(b, "=")
			return strings.Compare(ka, kb)
		})
	}
	if len(b) == 0 {
		return nil, nil
	}
	for _, r := range strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00") {
		switch k, _, _ := strings.Cut(r, "="); {
		case k == "mount":
			ops = append(ops, []string{r})
		case strings.HasPrefix(k, "mount-") && len(ops) > 0:
			ops[len(ops)-1] = append(ops[len(ops)-1], r)
		default:
			top = append(top, r)
		}
	}
	byKey(top)
	for _, op := range ops {
		byKey(op)
	}
	return top, ops
}

// assertRoundTrip decodes b with the stage's decoder and checks the
// decoded struct holds exactly b's records.
func assertRoundTrip(t *testing.T, b []byte, areas uint, versioned bool) {
	t.Helper()
	out, err := decodeConfigC(b, areas, versioned)
	assert.NilError(t, err, "the stage refuses what the launcher sends")
	wantTop, wantOps := canonical(b)
	gotTop, gotOps := canonical(out)
	assert.DeepEqual(t, gotTop, wantTop)
	assert.DeepEqual(t, gotOps, wantOps)
}

func TestConfigRoundTrip(t *testing.T) {
	used := map[string]bool{}
	for name, c := range configCases(t) {
		t.Run(name, func(t *testing.T) {
			b := c.encode()
			for _, r := range strings.Split(string(b), "\x00") {
				k, _, _ := strings.Cut(r, "=")
				used[k] = true
			}
			assert.Assert(t, bytes.HasPrefix(b, []byte(fmt.Sprintf("v=%d\x00", configVersion))), "the version comes first")
			assertRoundTrip(t, b, configAreaAll, true)
		})
	}
	// NET_READY carries the device's records only, without a version.
	t.Run("NET_READY", func(t *testing.T) {
		var b []byte
		TAP{Name: "eth0", MTU: 1500, Address4: netip.MustParsePrefix("10.0.2.100/24"),
			Gateway6: netip.MustParseAddr("fe80::1")}.records(func(k, v string) {
			b = append(append(append(append(b, k...), '='), v...), 0)
		})
		assertRoundTrip(t, b, configAreaTAP, false)
		_, err := decodeConfigC(append(b, "uid=1\x00"...), configAreaTAP, false)
		assert.ErrorContains(t, err, `config record "uid": unknown key`)
	})

	// Every key of the decoder's tables is sent by some case above, and
	// each is known once: no table line the launcher never uses.
	var keys []string
	seen := map[string]string{}
	for _, ak := range configKeysC() {
		area, k, _ := strings.Cut(ak, " ")
		assert.Check(t, seen[k] == "", "key %q is in both %s and %s", k, seen[k], area)
		seen[k] = area
		keys = append(keys, k)
		assert.Check(t, used[k], "the decoder's key %q (%s) is sent by no spec here: add a case, or drop the key", k, area)
	}
	assert.Check(t, len(keys) > 40, "%v", keys)
}

// A base message the decoder accepts, for the refusal cases.
func baseConfig() []byte {
	return stageConfig{ttyFD: -1, args: []string{"true"}, security: (&Security{NoDefaultSeccomp: true}).records(1)}.encode()
}

func rec(rs ...string) []byte {
	return []byte(strings.Join(rs, "\x00") + "\x00")
}

func TestConfigRefused(t *testing.T) {
	base := baseConfig()
	without := func(key string) []byte {
		var out []byte
		for _, r := range bytes.SplitAfter(base, []byte{0}) {
			if !bytes.HasPrefix(r, []byte(key+"=")) {
				out = append(out, r...)
			}
		}
		return out
	}
	withRoot := append(slices.Clone(base), rec("new-root=1", "owner-uid=1000", "owner-gid=1000")...)
	for _, tc := range []struct {
		name string
		msg  []byte
		err  string
	}{
		{"unknown key", append(slices.Clone(base), rec("foo=1")...), `config record "foo": unknown key`},
		{"a renamed security key", append(slices.Clone(base), rec("secomp=00")...), `config record "secomp": unknown key`},
		{"no '='", append(slices.Clone(base), rec("lo")...), `config record "lo": no '='`},
		{"empty record", append(slices.Clone(base), 0), `config record "": no '='`},
		{"no version", without("v"), `config record "v": missing: the protocol version must be the first record`},
		{"empty message", nil, `config record "v": missing`},
		{"other version", append(rec("v=1"), without("v")...), `config record "v": protocol version 1, this stage speaks 2; fix:`},
		{"version twice", append(slices.Clone(base), rec("v=2")...), `config record "v": the protocol version must be the first record, once`},
		{"letters", append(without("uid"), rec("uid=abc")...), `config record "uid": "abc" is not a decimal number in 0..4294967294`},
		{"uid -1", append(without("uid"), rec("uid=-1")...), `config record "uid": "-1" is not a decimal number`},
		{"uid 2^32-1 (setresuid's 'unchanged')", append(without("uid"), rec("uid=4294967295")...), `config record "uid"`},
		{"uid 2^32", append(without("uid"), rec("uid=4294967296")...), `config record "uid"`},
		{"leading space", append(without("uid"), rec("uid= 1")...), `config record "uid"`},
		{"plus sign", append(without("uid"), rec("uid=+1")...), `config record "uid"`},
		{"leading zero", append(without("uid"), rec("uid=01")...), `config record "uid"`},
		{"minus zero", append(without("tty"), rec("tty=-0")...), `config record "tty"`},
		{"trailing junk", append(without("unshare"), rec("unshare=12x")...), `config record "unshare"`},
		{"overflow", append(without("unshare"), rec("unshare=99999999999999999999")...), `config record "unshare"`},
		{"empty number", append(without("gid"), rec("gid=")...), `config record "gid"`},
		{"bool 2", append(slices.Clone(base), rec("lo=2")...), `config record "lo": "2" is not 0 or 1`},
		{"twice", append(slices.Clone(base), rec("uid=0")...), `config record "uid": given twice`},
		{"flag twice", append(slices.Clone(base), rec("proc=1", "proc=1")...), `config record "proc": given twice`},
		{"missing caps", without("caps"), `config record "caps": missing`},
		{"missing tty", without("tty"), `config record "tty": missing`},
		{"no command", without("arg"), `config record "arg": missing`},
		{"join-pid alone", append(slices.Clone(base), rec("join-pid=5")...), `config record "join-start": missing; "join-pid" needs it`},
		{"pty-rows alone", append(slices.Clone(base), rec("pty-rows=5")...), `config record "pty-rows": given without "pty"`},
		{"owner-uid without a new root", append(slices.Clone(base), rec("owner-uid=5")...), `config record "owner-uid": given without "new-root"`},
		{"new root without owner", append(slices.Clone(base), rec("new-root=1")...), `config record "owner-uid": missing; "new-root" needs it`},
		{"hostname too long", append(slices.Clone(base), rec("hostname="+strings.Repeat("h", 65))...), `config record "hostname": longer than 64 bytes`},
		{"mount op before any mount", append(slices.Clone(withRoot), rec("mount-dst=/x")...), `config record "mount-dst": before any "mount" record`},
		{"mount without a new root", append(slices.Clone(base), rec("mount=dir", "mount-dst=/x", "mount-flags=0", "mount-mode=0", "mount-what=x")...), `config record "mount": given without "new-root"`},
		{"unknown mount type", append(slices.Clone(withRoot), rec("mount=nfs")...), `config record "mount": "nfs": unknown mount type`},
		{"mount op without dst", append(slices.Clone(withRoot), rec("mount=dir", "mount-flags=0", "mount-mode=0", "mount-what=x", "mount=proc")...), `config record "mount-dst": missing in mount op 1 (x)`},
		{"last mount op without what", append(slices.Clone(withRoot), rec("mount=dir", "mount-dst=/x", "mount-flags=0", "mount-mode=0")...), `config record "mount-what": missing in mount op 1`},
		{"mount-dst twice", append(slices.Clone(withRoot), rec("mount=dir", "mount-dst=/x", "mount-dst=/y")...), `config record "mount-dst": given twice in mount op 1`},
		{"unknown mount key", append(slices.Clone(withRoot), rec("mount=dir", "mount-dest=/x")...), `config record "mount-dest": unknown key`},
		{"mount flag bits", append(slices.Clone(withRoot), rec("mount=dir", "mount-flags=64")...), `config record "mount-flags"`},
		{"mount mode", append(slices.Clone(withRoot), rec("mount=dir", "mount-mode=4096")...), `config record "mount-mode"`},
		{"mount size 0", append(slices.Clone(withRoot), rec("mount=tmpfs", "mount-size=0")...), `config record "mount-size"`},
		{"mount data odd", append(slices.Clone(withRoot), rec("mount=file", "mount-data=abc")...), `config record "mount-data": "abc": not lowercase hex`},
		{"mount data upper case", append(slices.Clone(withRoot), rec("mount=file", "mount-data=AB")...), `config record "mount-data"`},
		{"seccomp bad hex", append(slices.Clone(base), rec("seccomp=zz")...), `config record "seccomp": "zz": not lowercase hex`},
		{"seccomp partial instruction", append(slices.Clone(base), rec("seccomp=00000000000000")...), `config record "seccomp": "00000000000000": not 1 to 4096`},
		{"seccomp empty", append(slices.Clone(base), rec("seccomp=")...), `config record "seccomp"`},
		{"rlimit resource", append(slices.Clone(base), rec("rlimit=16:1:1")...), `config record "rlimit": "16:1:1": want RESOURCE:SOFT:HARD`},
		{"rlimit soft above hard", append(slices.Clone(base), rec("rlimit=7:2:1")...), `config record "rlimit": "7:2:1": soft limit above the hard one`},
		{"rlimit short", append(slices.Clone(base), rec("rlimit=7:2")...), `config record "rlimit"`},
		{"landlock short", append(slices.Clone(base), rec("landlock=1:2")...), `config record "landlock": "1:2": want FS:NET:SCOPED`},
		{"landlock twice", append(slices.Clone(base), rec("landlock=1:2:3", "landlock=1:2:3")...), `config record "landlock": given twice`},
		{"landlock-path without landlock", append(slices.Clone(base), rec("landlock-path=1:0:/x")...), `config record "landlock-path": given without "landlock"`},
		{"landlock-path optional 2", append(slices.Clone(base), rec("landlock=1:2:3", "landlock-path=1:2:/x")...), `config record "landlock-path"`},
		{"landlock-path without a path", append(slices.Clone(base), rec("landlock=1:2:3", "landlock-path=1:0:")...), `config record "landlock-path"`},
		{"landlock port 65536", append(slices.Clone(base), rec("landlock=1:2:3", "landlock-port=1:65536")...), `config record "landlock-port"`},
		{"tap name too long", append(slices.Clone(base), rec("tap=abcdefghijklmnop")...), `config record "tap": longer than 15 bytes`},
		{"tap address", append(slices.Clone(base), rec("tap=t", "tap-addr4=10.0.2.300/24")...), `config record "tap-addr4": "10.0.2.300/24": not an IPv4 or IPv6 address`},
		{"tap prefix bits", append(slices.Clone(base), rec("tap=t", "tap-addr6=fd00::1/129")...), `config record "tap-addr6"`},
		{"tap-mtu without tap", append(slices.Clone(base), rec("tap-mtu=1500")...), `config record "tap-mtu": given without "tap"`},
		{"nest-uid alone", append(slices.Clone(base), rec("nest-uid=1000")...), `config record "nest-gid": missing; "nest-uid" needs it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeConfigC(tc.msg, configAreaAll, true)
			assert.ErrorContains(t, err, tc.err)
			assert.Check(t, is.Equal(strings.Count(err.Error(), "\n"), 0))
		})
	}
	_, err := decodeConfigC(base, configAreaAll, true)
	assert.NilError(t, err)
}

// The stage itself (this test binary re-executed with the stage's
// variable) refuses a bad CONFIG before it creates anything: one ERROR
// naming the record, exit 125.
func TestStageRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		err  string
	}{
		{"unknown key", append(baseConfig(), rec("seccomp-off=1")...), `config record "seccomp-off": unknown key`},
		{"other version", append(rec("v=1"), baseConfig()[len("v=2\x00"):]...), `config record "v": protocol version 1, this stage speaks 2`},
		{"bad number", append(baseConfig(), rec("pty=1", "pty-rows=1e3", "pty-cols=80")...), `config record "pty-rows": "1e3" is not a decimal number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, child, err := socketPair()
			assert.NilError(t, err)
			defer parent.Close()
			p, err := os.StartProcess("/proc/self/exe", []string{"nsbox-stage"}, &os.ProcAttr{
				Env:   []string{stageEnv + "=1"},
				Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, child},
			})
			child.Close()
			assert.NilError(t, err)
			assert.NilError(t, writeMessage(parent, msgConfig, 0, tc.msg))
			_, err = expect(parent, msgUsernsReady)
			var setup *SetupError
			assert.Assert(t, errors.As(err, &setup), "%v", err)
			assert.Check(t, strings.HasPrefix(setup.Error(), tc.err), "%v", setup)
			assert.Check(t, errors.Is(setup, syscall.EINVAL))
			st, err := p.Wait()
			assert.NilError(t, err)
			assert.Equal(t, st.ExitCode(), CodeLauncher)
		})
	}
}
