package network

import (
	"net/netip"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "10.0.0.0/8", want: "--deny 10.0.0.0/8"},
		{in: "10.1.2.3/8", want: "--deny 10.0.0.0/8"},
		{in: "192.0.2.1", want: "--deny 192.0.2.1/32"},
		{in: "192.0.2.1:80,443,8000-8100", want: "--deny 192.0.2.1/32:80,443,8000-8100"},
		{in: "[2001:db8::/32]:443", want: "--deny 2001:db8::/32:443"},
		{in: "2001:db8::/32", want: "--deny 2001:db8::/32"},
		{in: "::ffff:10.0.0.0/104", want: "--deny 10.0.0.0/8"},
		{in: "10.0.0.0/33", err: "not an address or CIDR prefix"},
		{in: "10.0.0.0/8:", err: "empty port list"},
		{in: "10.0.0.0/8:0", err: "bad port"},
		{in: "10.0.0.0/8:70000", err: "bad port"},
		{in: "10.0.0.0/8:90-80", err: "ends before it starts"},
		{in: "[::1", err: "missing ]"},
		{in: "example.com", err: "not an address"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRule(Deny, tc.in)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, r.String(), tc.want)
		})
	}
}

func TestPolicyOrderAndDefault(t *testing.T) {
	rule := func(v Verdict, s string) Rule {
		r, err := ParseRule(v, s)
		assert.NilError(t, err)
		return r
	}
	a := netip.MustParseAddr
	// No rules: all allowed.
	v, _ := (&Policy{}).Check(a("192.0.2.1"), 80)
	assert.Equal(t, v, Allow)
	// Deny only: the rest allowed.
	p := &Policy{Rules: DenyPrivate()}
	v, _ = p.Check(a("169.254.169.254"), 80)
	assert.Equal(t, v, Deny)
	v, _ = p.Check(a("192.0.2.1"), 80)
	assert.Equal(t, v, Allow)
	// An allow rule makes the default deny; the first match wins.
	p = &Policy{Rules: []Rule{rule(Allow, "10.1.0.0/16:443"), rule(Deny, "10.0.0.0/8")}}
	v, _ = p.Check(a("10.1.2.3"), 443)
	assert.Equal(t, v, Allow)
	v, _ = p.Check(a("10.1.2.3"), 80)
	assert.Equal(t, v, Deny)
	v, _ = p.Check(a("192.0.2.1"), 443)
	assert.Equal(t, v, Deny)
}

func TestHostAllowed(t *testing.T) {
	p := &Policy{Hosts: []string{"example.com", "*.corp.test"}}
	assert.Assert(t, p.HostAllowed("Example.COM."))
	assert.Assert(t, p.HostAllowed("a.b.corp.test"))
	assert.Assert(t, !p.HostAllowed("corp.test"))
	assert.Assert(t, !p.HostAllowed("evil-example.com"))
	assert.Assert(t, (*Policy)(nil).HostAllowed("anything"))
}

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "8080:80", want: "127.0.0.1:8080:80/tcp"},
		{in: "127.0.0.1:8080:80/tcp", want: "127.0.0.1:8080:80/tcp"},
		{in: "0.0.0.0:53:53/udp", want: "0.0.0.0:53:53/udp"},
		{in: "[::1]:8080:80/tcp", want: "[::1]:8080:80/tcp"},
		{in: "99999:80", err: "out of range"},
		{in: "8080:0", err: "out of range"},
		{in: "8080:80/sctp", err: "use tcp or udp"},
		{in: "localhost:8080:80", err: "Publish localhost:8080:80"},
		{in: "1.2.3.4:1:2.3.4.5:80/tcp", err: "sandbox address cannot be chosen"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePublish(tc.in)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, p.String(), tc.want)
		})
	}
}

func TestResolvFiles(t *testing.T) {
	assert.Equal(t, string(ResolvConf([]string{"corp.test"})),
		"# nsbox --net user: the DNS forwarder in the launcher\nnameserver 10.0.2.3\nnameserver fd00::3\nsearch corp.test\n")
	assert.Assert(t, strings.Contains(string(Hosts("box")), "10.0.2.100\tbox\n"))
	assert.DeepEqual(t, ResolvConfSearch("domain a\nsearch b c\n"), []string{"b", "c"})
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "192.0.2.1:80,443", "[2001:db8::/32]:1-65535", "::ffff:1.2.3.4/120", "[", "1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(Allow, s)
		if err != nil {
			return
		}
		if !r.Prefix.IsValid() {
			t.Fatalf("%q: invalid prefix accepted", s)
		}
		// What String renders parses back to the same rule.
		again, err := ParseRule(Allow, strings.TrimPrefix(bracket(r), "--allow "))
		if err != nil || again.String() != r.String() {
			t.Fatalf("%q → %q → %v %v", s, r, again, err)
		}
	})
}

// bracket renders r in ParseRule's input form.
func bracket(r Rule) string {
	s := r.String()
	if r.Prefix.Addr().Is6() && len(r.Ports) > 0 {
		p, ports, _ := strings.Cut(strings.TrimPrefix(s, "--allow "), "/")
		bits, rest, _ := strings.Cut(ports, ":")
		return "[" + p + "/" + bits + "]:" + rest
	}
	return s
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1:8080:80/tcp", "[::1]:53:53/udp", "99999:80", "a:b:c:d:e/f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublish(s)
		if err != nil {
			return
		}
		if p.Host.Port() == 0 || p.SandboxPort == 0 || (p.Proto != "tcp" && p.Proto != "udp") {
			t.Fatalf("%q: accepted %+v", s, p)
		}
	})
}

func FuzzParseHostName(f *testing.F) {
	for _, s := range []string{"example.com", "*.corp.test", "", "a..b", "x_y.test."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseHostName(s)
		if err != nil {
			return
		}
		if !(&Policy{Hosts: []string{n}}).HostAllowed(strings.Replace(n, "*.", "x.", 1)) {
			t.Fatalf("%q: parsed name %q does not match itself", s, n)
		}
	})
}
