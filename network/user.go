package network

import (
	"net/netip"
	"os"

	"github.com/nsbox/nsbox/sandbox"
)

// UserTAP is the device PID 1 creates for the built-in user-mode network:
// tap0, with cfg's MTU and offloads, the layout's addresses and default
// routes through the gateway.
func UserTAP(cfg UserConfig) sandbox.TAP {
	return sandbox.TAP{
		Name:     "tap0",
		MTU:      int(cfg.LinkMTU()),
		VnetHdr:  cfg.VnetHdr,
		Address4: netip.PrefixFrom(SandboxIPv4, PrefixIPv4.Bits()),
		Gateway4: GatewayIPv4,
		Address6: netip.PrefixFrom(SandboxIPv6, PrefixIPv6.Bits()),
		Gateway6: GatewayIPv6,
	}
}

// A Server serves cfg on the TAP device PID 1 created, whose descriptor it
// owns from then on, and returns the function that stops it. Package
// usernet's serves in the calling process; nsbox's CLI hands the device to
// a helper process that runs the same stack.
type Server func(tap *os.File, cfg UserConfig) (stop func() error, err error)

// UserNetwork checks cfg and returns the sandbox's network: UserTAP's
// device, served by serve once PID 1 created it.
func UserNetwork(cfg UserConfig, serve Server) (*sandbox.Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &sandbox.Network{
		TAP:   UserTAP(cfg),
		Serve: func(tap *os.File) (func() error, error) { return serve(tap, cfg) },
	}, nil
}
