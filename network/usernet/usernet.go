// Package usernet is the built-in user-mode network (nsbox run --net user)
// for a program that embeds nsbox: gVisor's TCP/IP stack (package
// netstack) serving the sandbox's TAP device from the calling process,
// with slirp4netns's addresses (10.0.2.100/24, gateway 10.0.2.2, DNS
// 10.0.2.3, and fd00::100/64 for IPv6).
//
//	n, err := usernet.New(usernet.Config{Publish: ports})
//	if err != nil { … }
//	spec.Network = n
//
// The stack runs in the process that calls sandbox.Start, for the
// sandbox's life, and stops when Wait returns. It costs that process the
// init of gVisor's packages at start (1.4-6 ms on a 2-core VM) whether or
// not a sandbox uses it; nsbox's own CLI avoids that by running the same
// stack in a helper program (cmd/nsbox-helper) through tapnet.New.
package usernet

import (
	"os"

	"github.com/nsbox/nsbox/netstack"
	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/network/tapnet"
	"github.com/nsbox/nsbox/sandbox"
)

// Config is the network's configuration (network.UserConfig): MTU, the
// egress Policy, published ports, DNS servers, the caps.
type Config = network.UserConfig

// New checks cfg and returns the network to put in sandbox.Spec.Network.
// Its errors are *network.Error, naming Config's fields.
func New(cfg Config) (*sandbox.Network, error) {
	return tapnet.New(cfg, Serve)
}

// Serve serves cfg on tap in this process until the returned function is
// called: a network.Server.
func Serve(tap *os.File, cfg Config) (func() error, error) {
	n, err := netstack.Start(tap, cfg)
	if err != nil {
		return nil, err
	}
	return n.Close, nil
}
