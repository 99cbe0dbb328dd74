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
	"sync"

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

// NewWithPorts is New with a handle on the network's published ports, for
// changing them while the sandbox runs (from Start to the end of Wait).
func NewWithPorts(cfg Config) (*sandbox.Network, *Ports, error) {
	ports := &Ports{}
	n, err := tapnet.New(cfg, func(tap *os.File, cfg Config) (func() error, error) {
		stack, err := netstack.Start(tap, cfg)
		if err != nil {
			return nil, err
		}
		ports.set(stack)
		return func() error {
			ports.set(nil)
			return stack.Close()
		}, nil
	})
	return n, ports, err
}

// Ports is a network.Ports for a usernet network: its methods work while
// the sandbox runs and say so otherwise.
type Ports struct {
	mu    sync.Mutex
	stack *netstack.Network
}

func (p *Ports) set(n *netstack.Network) {
	p.mu.Lock()
	p.stack = n
	p.mu.Unlock()
}

func (p *Ports) running(pub network.Publish) (*netstack.Network, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stack == nil {
		return nil, &network.Error{Mode: "user", Field: "Publish", Value: pub.String(), Problem: "the network is not running"}
	}
	return p.stack, nil
}

// Publish forwards one more host port (netstack.Network.Publish).
func (p *Ports) Publish(pub network.Publish) error {
	n, err := p.running(pub)
	if err != nil {
		return err
	}
	return n.Publish(pub)
}

// Unpublish stops forwarding one (netstack.Network.Unpublish).
func (p *Ports) Unpublish(pub network.Publish) error {
	n, err := p.running(pub)
	if err != nil {
		return err
	}
	return n.Unpublish(pub)
}

// Ports lists the published ports.
func (p *Ports) Ports() ([]network.Publish, error) {
	n, err := p.running(network.Publish{})
	if err != nil {
		return nil, err
	}
	return n.Ports(), nil
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
