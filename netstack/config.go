package netstack

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

// Config is what Start serves.
type Config struct {
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
	// Log, when set, receives one line per policy decision and per
	// failure to reach a destination (--verbose).
	Log func(format string, args ...any)
}

// Validate checks c before anything is started.
func (c *Config) Validate() error {
	if c.MTU != 0 && (c.MTU < MinMTU || c.MTU > DefaultMTU) {
		return fmt.Errorf("--mtu %d: out of range; fix: pick %d to %d", c.MTU, MinMTU, DefaultMTU)
	}
	seen := map[string]bool{}
	for _, p := range c.Publish {
		k := p.Proto + " " + p.Host.String()
		if seen[k] {
			return fmt.Errorf("-p %s: host port published twice", p)
		}
		seen[k] = true
	}
	return nil
}

func (c *Config) mtu() uint32 {
	if c.MTU == 0 {
		return DefaultMTU
	}
	return c.MTU
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}
