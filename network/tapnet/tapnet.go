// Package tapnet is the shape of the built-in user-mode network as a
// sandbox sees it: a TAP device, tap0, that PID 1 creates with
// slirp4netns's addresses, and a Server that serves it from the host side.
// Package usernet's Server runs gVisor's stack in the calling process;
// nsbox's CLI passes one that hands the device to its helper program
// (cmd/nsbox-helper), so that the CLI itself links no stack. It is apart
// from package network so that the helper, which imports network, does
// not link package sandbox.
package tapnet

import (
	"net/netip"
	"os"

	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/sandbox"
)

// Device is the device PID 1 creates for the built-in user-mode network:
// tap0, with cfg's MTU and offloads, the layout's addresses and default
// routes through the gateway.
func Device(cfg network.UserConfig) sandbox.TAP {
	return sandbox.TAP{
		Name:     "tap0",
		MTU:      int(cfg.LinkMTU()),
		VnetHdr:  cfg.VnetHdr,
		Address4: netip.PrefixFrom(network.SandboxIPv4, network.PrefixIPv4.Bits()),
		Gateway4: network.GatewayIPv4,
		Address6: netip.PrefixFrom(network.SandboxIPv6, network.PrefixIPv6.Bits()),
		Gateway6: network.GatewayIPv6,
	}
}

// A Server serves cfg on the TAP device PID 1 created, whose descriptor it
// owns from then on, and returns the function that stops it. Package
// usernet's serves in the calling process; nsbox's CLI hands the device to
// a helper process that runs the same stack.
type Server func(tap *os.File, cfg network.UserConfig) (stop func() error, err error)

// New checks cfg and returns the sandbox's network: Device's
// device, served by serve once PID 1 created it.
func New(cfg network.UserConfig, serve Server) (*sandbox.Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &sandbox.Network{
		TAP:   Device(cfg),
		Serve: func(tap *os.File) (func() error, error) { return serve(tap, cfg) },
	}, nil
}
