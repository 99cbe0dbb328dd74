package netstack

import "github.com/nsbox/nsbox/network"

// The configuration and its vocabulary live in package network, which
// needs no stack; these names keep the engine's API whole for the code
// that drives it directly.
type (
	// Config is what Start serves.
	Config = network.UserConfig
	// Publish is one forwarded port.
	Publish = network.Publish
	// Policy filters the sandbox's outbound traffic.
	Policy = network.Policy
	// Rule is one egress rule.
	Rule = network.Rule
	// Verdict is a Policy's answer.
	Verdict = network.Verdict
)

// The addresses of slirp4netns's layout (package network).
var (
	SandboxIPv4 = network.SandboxIPv4
	GatewayIPv4 = network.GatewayIPv4
	DNSIPv4     = network.DNSIPv4
	PrefixIPv4  = network.PrefixIPv4
	SandboxIPv6 = network.SandboxIPv6
	GatewayIPv6 = network.GatewayIPv6
	DNSIPv6     = network.DNSIPv6
	PrefixIPv6  = network.PrefixIPv6
)

// Verdicts and caps (package network).
const (
	Allow                 = network.Allow
	Deny                  = network.Deny
	DefaultMTU            = network.DefaultMTU
	DefaultMaxTCP         = network.DefaultMaxTCP
	DefaultMaxUDPFlows    = network.DefaultMaxUDPFlows
	DefaultMaxDNSQueries  = network.DefaultMaxDNSQueries
	DefaultHostSendBuffer = network.DefaultHostSendBuffer
)
