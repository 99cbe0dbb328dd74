package network

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// Verdict is what the egress policy says about one destination.
type Verdict bool

const (
	Deny  Verdict = false
	Allow Verdict = true
)

func (v Verdict) String() string {
	if v {
		return "allow"
	}
	return "deny"
}

// Rule is one egress rule: a verdict for destinations in Prefix, on Ports
// (all ports when Ports is empty), for TCP and UDP alike.
type Rule struct {
	Verdict Verdict
	Prefix  netip.Prefix
	Ports   []PortRange
	// Host makes the rule match the host itself instead of Prefix: every
	// address of the host's interfaces and every local route, v4 and v6,
	// read from the kernel when the rule is checked (hostaddrs.go), so an
	// address added after the start is matched too.
	Host bool
}

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last uint16 }

// String renders a rule as the flag that makes it: "--allow 10.0.0.0/8:80,443".
func (r Rule) String() string {
	if r.Host {
		return "--deny-private: an address of the host itself"
	}
	s := "--" + r.Verdict.String() + " " + r.Prefix.String()
	if len(r.Ports) > 0 {
		var ps []string
		for _, p := range r.Ports {
			if p.First == p.Last {
				ps = append(ps, strconv.Itoa(int(p.First)))
			} else {
				ps = append(ps, fmt.Sprintf("%d-%d", p.First, p.Last))
			}
		}
		s += ":" + strings.Join(ps, ",")
	}
	return s
}

func (r Rule) matches(a netip.Addr, port uint16) bool {
	if r.Host {
		if !hostAddrs.contains(a) {
			return false
		}
	} else if !r.Prefix.Contains(a.Unmap()) {
		return false
	}
	if len(r.Ports) == 0 {
		return true
	}
	for _, p := range r.Ports {
		if port >= p.First && port <= p.Last {
			return true
		}
	}
	return false
}

// ParseRule parses the argument of --allow or --deny: CIDR[:PORTS], where
// CIDR is an IPv4 or IPv6 prefix or a single address (IPv6 in brackets when
// ports follow: [fd00::/8]:443) and PORTS a comma-separated list of ports
// and ranges (80,443,8000-8100).
func ParseRule(v Verdict, s string) (Rule, error) {
	r := Rule{Verdict: v}
	addr, ports := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return r, fmt.Errorf("%q: missing ] after an IPv6 prefix", s)
		}
		addr, ports = s[1:end], s[end+1:]
		if ports != "" {
			if ports[0] != ':' || len(ports) == 1 {
				return r, fmt.Errorf("%q: expected :PORTS after ]", s)
			}
			ports = ports[1:]
		}
	} else if strings.Count(s, ":") == 1 {
		addr, ports, _ = strings.Cut(s, ":")
		if ports == "" {
			return r, fmt.Errorf("%q: empty port list after :", s)
		}
	}
	var err error
	if strings.Contains(addr, "/") {
		r.Prefix, err = netip.ParsePrefix(addr)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(addr); err == nil {
			r.Prefix = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return r, fmt.Errorf("%q: not an address or CIDR prefix (e.g. 10.0.0.0/8, 192.0.2.1, [2001:db8::/32]:443): %w", s, err)
	}
	if r.Prefix.Addr().Zone() != "" {
		return r, fmt.Errorf("%q: zoned addresses are not supported", s)
	}
	if a := r.Prefix.Addr(); a.Is4In6() && r.Prefix.Bits() >= 96 {
		r.Prefix = netip.PrefixFrom(a.Unmap(), r.Prefix.Bits()-96)
	}
	r.Prefix = r.Prefix.Masked()
	if ports == "" {
		return r, nil
	}
	for _, p := range strings.Split(ports, ",") {
		lo, hi, isRange := strings.Cut(p, "-")
		first, err1 := parsePort(lo)
		last := first
		var err2 error
		if isRange {
			last, err2 = parsePort(hi)
		}
		if err1 != nil || err2 != nil {
			return r, fmt.Errorf("%q: bad port %q: ports are 1-65535, lists are comma-separated, ranges are FIRST-LAST", s, p)
		}
		if last < first {
			return r, fmt.Errorf("%q: port range %q ends before it starts", s, p)
		}
		r.Ports = append(r.Ports, PortRange{first, last})
	}
	return r, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// PrivateRanges returns what --deny-private denies: RFC 1918, link-local
// (which holds the cloud metadata address 169.254.169.254), CGNAT
// (RFC 6598), IPv6 unique-local and link-local; a new slice each call.
func PrivateRanges() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("fe80::/10"),
	}
}

// DenyPrivate returns the rules --deny-private stands for: one denying
// the host itself (every address of its interfaces, read when checked:
// a service bound to 0.0.0.0 or :: is reachable through the host's global
// addresses), then one per PrivateRanges prefix.
func DenyPrivate() []Rule {
	private := PrivateRanges()
	rules := make([]Rule, 0, len(private)+1)
	rules = append(rules, Rule{Verdict: Deny, Host: true})
	for _, p := range private {
		rules = append(rules, Rule{Verdict: Deny, Prefix: p})
	}
	return rules
}

// ParseHostName checks the argument of --allow-host: a DNS name, matched
// exactly (case-insensitive); "*.example.com" matches every name below
// example.com but not example.com itself.
func ParseHostName(s string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(s), ".")
	rest := strings.TrimPrefix(n, "*.")
	if rest == "" || len(n) > 253 {
		return "", fmt.Errorf("%q: not a DNS name", s)
	}
	for _, label := range strings.Split(rest, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q: not a DNS name (empty or over-long label)", s)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q: not a DNS name (character %q)", s, c)
			}
		}
	}
	return n, nil
}

// Policy decides which destinations the sandbox may reach. Rules are
// checked in order and the first match decides. When none matches, the
// destination is allowed unless an allow rule or an allowed host name was
// given: then everything not allowed is denied. Addresses that DNS answers
// for allowed host names are allowed for the policy's lifetime.
//
// The zero Policy allows everything. A Policy is safe for concurrent use.
type Policy struct {
	Rules []Rule
	// Hosts are names from ParseHostName. When non-empty, the DNS
	// forwarder answers only these names.
	Hosts []string

	mu      sync.Mutex
	learned map[netip.Addr]bool // guarded by mu: addresses DNS gave for Hosts
}

// restrictive reports whether the policy denies by default.
func (p *Policy) restrictive() bool {
	if len(p.Hosts) > 0 {
		return true
	}
	for _, r := range p.Rules {
		if r.Verdict == Allow {
			return true
		}
	}
	return false
}

// Check returns the verdict for a destination and the reason, for logs.
func (p *Policy) Check(a netip.Addr, port uint16) (Verdict, string) {
	if p == nil {
		return Allow, "no rules"
	}
	a = a.Unmap()
	for _, r := range p.Rules {
		if r.matches(a, port) {
			return r.Verdict, r.String()
		}
	}
	p.mu.Lock()
	learned := p.learned[a]
	p.mu.Unlock()
	if learned {
		return Allow, "answer for an --allow-host name"
	}
	if p.restrictive() {
		return Deny, "not allowed by any rule"
	}
	return Allow, "no rule matches"
}

// HostAllowed reports whether DNS may answer name.
func (p *Policy) HostAllowed(name string) bool {
	if p == nil || len(p.Hosts) == 0 {
		return true
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, h := range p.Hosts {
		if h == name || strings.HasPrefix(h, "*.") && strings.HasSuffix(name, h[1:]) {
			return true
		}
	}
	return false
}

// Learn allows a's traffic from now on: the DNS forwarder calls it with
// each address it answered for an allowed host name.
func (p *Policy) Learn(a netip.Addr) {
	if p == nil || len(p.Hosts) == 0 {
		return
	}
	p.mu.Lock()
	if p.learned == nil {
		p.learned = map[netip.Addr]bool{}
	}
	p.learned[a.Unmap()] = true
	p.mu.Unlock()
}
