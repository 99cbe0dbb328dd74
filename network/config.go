package network

import (
	"fmt"
	"net/netip"
)

// The addresses of slirp4netns's layout.
var (
	SandboxIPv4 = netip.MustParseAddr("10.0.2.100")
	GatewayIPv4 = netip.MustParseAddr("10.0.2.2")
	DNSIPv4     = netip.MustParseAddr("10.0.2.3")
	PrefixIPv4  = netip.MustParsePrefix("10.0.2.0/24")
	SandboxIPv6 = netip.MustParseAddr("fd00::100")
	GatewayIPv6 = netip.MustParseAddr("fd00::2")
	DNSIPv6     = netip.MustParseAddr("fd00::3")
	PrefixIPv6  = netip.MustParsePrefix("fd00::/64")
)

// DefaultMTU is the TAP device's MTU unless Config.MTU says otherwise:
// large frames are where user-mode networking gets its speed.
const DefaultMTU = 65520

// MinMTU is the smallest MTU IPv6 allows.
const MinMTU = 1280

// UserConfig is the built-in user-mode network's configuration: what
// package usernet serves (in process) and nsbox's network helper serves (in
// a process of its own). It is plain data apart from Log, so it crosses to
// the helper as JSON.
type UserConfig struct {
	// MTU of the link; 0 means DefaultMTU. It must match the TAP device's.
	MTU uint32
	// VnetHdr says the TAP device was opened with IFF_VNET_HDR and the
	// checksum and TCP segmentation offloads (sandbox.TAP.VnetHdr): its
	// frames then carry a virtio_net_hdr, and TCP crosses the device in
	// segments of up to 64 KiB whatever the MTU.
	VnetHdr bool
	// AllowHostLoopback maps the gateway addresses to the host's loopback.
	AllowHostLoopback bool
	// DNSServers are the upstream resolvers. Empty means the nameservers of
	// the host's /etc/resolv.conf (loopback ones included).
	DNSServers []netip.AddrPort
	// Policy filters outbound traffic; nil allows everything.
	Policy *Policy
	// Publish lists the host ports forwarded into the sandbox.
	Publish []Publish
	// MaxInFlight bounds TCP connections being set up at once (SYN seen,
	// host dial not done); 0 means 256.
	MaxInFlight int
	// MaxTCP bounds the sandbox's TCP connections through the launcher at
	// once, being dialled or relayed; past it a SYN gets a reset. 0 means
	// DefaultMaxTCP. (caps.go has every cap and what it costs.)
	MaxTCP int
	// MaxUDPFlows bounds the sandbox's UDP flows (host sockets) at once;
	// past it a new flow's datagram gets ICMP port unreachable. 0 means
	// DefaultMaxUDPFlows.
	MaxUDPFlows int
	// MaxDNSQueries bounds the DNS forwarder's queries waiting for an
	// upstream answer; past it a query is answered SERVFAIL at once. 0
	// means DefaultMaxDNSQueries.
	MaxDNSQueries int
	// HostSendBuffer bounds the bytes each host TCP connection holds
	// unsent (TCP_NOTSENT_LOWAT): while its peer does not drain, the relay
	// stops reading from the sandbox and the sandbox's window closes. 0
	// means DefaultHostSendBuffer.
	HostSendBuffer int
	// Log, when set, receives one line per policy decision and per
	// failure to reach a destination (--verbose).
	Log func(format string, args ...any) `json:"-"`
}

// Validate checks c before anything is started.
func (c *UserConfig) Validate() error {
	if c.MTU != 0 && (c.MTU < MinMTU || c.MTU > DefaultMTU) {
		return &Error{Field: "MTU", Value: fmt.Sprint(c.MTU), Problem: "out of range", Fix: fmt.Sprintf("pick %d to %d", MinMTU, DefaultMTU)}
	}
	for _, c := range []struct {
		v    int
		name string
	}{{c.MaxInFlight, "MaxInFlight"}, {c.MaxTCP, "MaxTCP"}, {c.MaxUDPFlows, "MaxUDPFlows"}, {c.MaxDNSQueries, "MaxDNSQueries"}, {c.HostSendBuffer, "HostSendBuffer"}} {
		if c.v < 0 {
			return &Error{Field: c.name, Value: fmt.Sprint(c.v), Problem: "negative", Fix: "0 for the default or a positive number"}
		}
	}
	if c.HostSendBuffer != 0 && c.HostSendBuffer < 4096 {
		return &Error{Field: "HostSendBuffer", Value: fmt.Sprint(c.HostSendBuffer), Problem: "below one page", Fix: "4096 bytes or more"}
	}
	seen := map[string]bool{}
	for _, p := range c.Publish {
		k := p.Proto + " " + p.Host.String()
		if seen[k] {
			return &Error{Field: "Publish", Value: p.String(), Problem: "host port published twice"}
		}
		seen[k] = true
	}
	return nil
}

// WithDefaults returns c with every zero cap set to its default.
func (c UserConfig) WithDefaults() UserConfig {
	for _, d := range []struct {
		v   *int
		def int
	}{{&c.MaxInFlight, 256}, {&c.MaxTCP, DefaultMaxTCP}, {&c.MaxUDPFlows, DefaultMaxUDPFlows},
		{&c.MaxDNSQueries, DefaultMaxDNSQueries}, {&c.HostSendBuffer, DefaultHostSendBuffer}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return c
}

// LinkMTU is the link's MTU: MTU, or DefaultMTU when it is 0.
func (c *UserConfig) LinkMTU() uint32 {
	if c.MTU == 0 {
		return DefaultMTU
	}
	return c.MTU
}

// Logf writes one line to Log, when it is set.
func (c *UserConfig) Logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// The caps' defaults. A sandbox that needs more asks (--net-max-tcp …).
const (
	DefaultMaxTCP         = 256
	DefaultMaxUDPFlows    = 512
	DefaultMaxDNSQueries  = 128
	DefaultHostSendBuffer = 256 << 10
)

// ParseDNSServer parses one of UserConfig.DNSServers as a user writes it: an address, with an optional port
// (192.0.2.1, 192.0.2.1:5353, [2001:db8::1]:53).
func ParseDNSServer(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, &Error{Field: "DNSServers", Value: s, Problem: "port 0"}
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, &Error{Field: "DNSServers", Value: s, Problem: "not an IP address with an optional port", Fix: "e.g. 1.1.1.1 or 127.0.0.1:5353"}
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}
