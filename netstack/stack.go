package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const nicID tcpip.NICID = 1

// gatewayMAC is the link address of the gateway (and DNS) side, the one
// slirp4netns uses.
const gatewayMAC = tcpip.LinkAddress("\x52\x55\x0a\x00\x02\x02")

// TCP buffer limits: large buffers with auto-tuning keep a 64 KiB-MTU link
// full; measured, a 1 MiB cap cost about a fifth of the throughput.
const (
	tcpBufMin     = 4 << 10
	tcpBufDefault = 1 << 20
	tcpBufMax     = 4 << 20
)

// timeWait is how long a connection the stack closed first stays in
// TIME_WAIT (gVisor's default: 60 s). TIME_WAIT keeps a late duplicate
// of an old connection's segment out of a new one with the same ports,
// and answers a retransmitted FIN; on a TAP link, nothing is late or
// duplicated, and a retransmitted FIN comes within the sandbox's RTO
// (200 ms minimum). Forwarded connections usually end with the host's
// server closing first, so each short connection left an endpoint here
// for a minute: 2000 connections in a row grew the launcher's live heap
// from 4 to 10 MB, and every garbage collection marked it.
const timeWait = time.Second

// Network is a running user-mode network. Close ends it.
type Network struct {
	cfg    Config
	stack  *stack.Stack
	link   *tapLink
	dns    *dnsForwarder
	echo   echoer // ICMP echo flows (icmp.go)
	limits limits // the caps on what the sandbox makes the launcher hold (caps.go)
	ctx    context.Context
	cancel context.CancelFunc

	wg sync.WaitGroup // every goroutine the network started

	mu        sync.Mutex                   // guards listeners, published, seq and conns
	listeners []interface{ Close() error } // host listeners and in-stack servers
	published map[string]publishedPort     // by publishKey: Publish, Unpublish, Ports
	seq       int                          // publications so far
	conns     map[net.Conn]struct{}        // open host-side connections, closed by Close
	closed    bool
}

// Start serves tap, the TAP device's file descriptor (ethernet frames, no
// packet information header), with cfg. Start takes ownership of tap: Close
// closes it. On error nothing is left running and tap is closed.
func Start(tap *os.File, cfg Config) (*Network, error) {
	n, err := Prepare(cfg)
	if err != nil {
		tap.Close()
		return nil, err
	}
	if err := n.Attach(tap); err != nil {
		return nil, err
	}
	return n, nil
}

// Prepare is the part of Start that needs no TAP device: the stack with
// its protocols and handlers, and the DNS forwarder's upstream servers. A
// caller that has cfg before the sandbox exists (nsbox's helper program)
// prepares the network meanwhile, and only Attach is left once the device
// comes. Close ends a prepared network that will not be attached.
func Prepare(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Network{cfg: cfg, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}, published: map[string]publishedPort{}}
	n.limits.init(&n.cfg)
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	n.stack = s
	tcpFwd := tcp.NewForwarder(s, 0, n.cfg.MaxInFlight, n.handleTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(s, n.handleUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)
	var err error
	if n.dns, err = newDNSForwarder(&n.cfg); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Attach serves tap, the TAP device's file descriptor, with the network
// Prepare returned: the NIC and its addresses, the DNS server, the
// published ports, then the reader. Attach takes ownership of tap. On
// error nothing is left running: the network is closed, tap with it.
func (n *Network) Attach(tap *os.File) error {
	if n.link != nil {
		tap.Close()
		return errors.New("user-mode network: a TAP device is attached already")
	}
	tl, link, err := newTAPLink(tap, n.cfg.LinkMTU(), gatewayMAC, n.cfg.VnetHdr)
	if err != nil {
		n.Close()
		return err
	}
	n.link = tl
	if err := n.attach(link); err != nil {
		n.Close()
		return err
	}
	return nil
}

func (n *Network) attach(link stack.LinkEndpoint) error {
	if err := configureStack(n.stack, link); err != nil {
		return err
	}
	if err := n.serveDNS(); err != nil {
		return err
	}
	for _, p := range n.cfg.Publish {
		if err := n.publish(p); err != nil {
			return err
		}
	}
	n.link.divert = n.divertEcho
	n.link.start()
	return nil
}

// configureStack gives the stack the gateway and DNS addresses and routes
// everything else out of the NIC. Promiscuous mode and spoofing let the
// stack accept packets for any destination and answer as that
// destination: that is what terminates the sandbox's flows here.
func configureStack(s *stack.Stack, link stack.LinkEndpoint) error {
	if err := s.CreateNIC(nicID, link); err != nil {
		return fmt.Errorf("user-mode network: create the NIC: %v", err)
	}
	s.SetPromiscuousMode(nicID, true)
	s.SetSpoofing(nicID, true)
	for _, a := range []struct {
		addr netip.Addr
		bits int
	}{{GatewayIPv4, 24}, {DNSIPv4, 24}, {GatewayIPv6, 64}, {DNSIPv6, 64}} {
		proto := ipv4.ProtocolNumber
		if a.addr.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFromSlice(a.addr.AsSlice()), PrefixLen: a.bits}}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("user-mode network: add %v: %v", a.addr, err)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)
	mod := tcpip.TCPModerateReceiveBufferOption(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &mod)
	tw := tcpip.TCPTimeWaitTimeoutOption(timeWait)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw)
	return nil
}

// Close ends the network: host listeners and connections, the stack and
// its goroutines, and the TAP file descriptor. It waits for all of them.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	ls := n.listeners
	n.listeners = nil
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.cancel()
	n.echo.close()
	var errs []error
	for _, l := range ls {
		l.Close()
	}
	// The TAP first: it ends the reader, which the stack's Wait waits for.
	if n.link != nil {
		if err := n.link.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.stack != nil {
		n.stack.Close()
	}
	n.wg.Wait()
	if n.stack != nil {
		n.stack.Wait()
	}
	if n.link != nil {
		n.link.waitReader()
	}
	return errors.Join(errs...)
}

// track registers something Close must close; false if the network is
// already closing (the caller closes it then).
func (n *Network) track(l interface{ Close() error }) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.listeners = append(n.listeners, l)
	return true
}

// trackConn registers a host connection for Close, which also waits for
// it to be untracked: call untrackConn when done with it. Counting it in
// wg under mu orders the count before Close's wait.
func (n *Network) trackConn(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.conns[c] = struct{}{}
	n.wg.Add(1)
	return true
}

func (n *Network) untrackConn(c net.Conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
	n.wg.Done()
}

// goroutine runs f as one of the network's goroutines.
func (n *Network) goroutine(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func toAddr(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	proto := ipv4.ProtocolNumber
	if ap.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}, proto
}

// hostTarget maps a destination the sandbox asked for to the host address
// to dial, or says why it may not be reached.
func (n *Network) hostTarget(dst netip.AddrPort) (netip.AddrPort, error) {
	a := dst.Addr()
	switch {
	case a == GatewayIPv4 || a == GatewayIPv6:
		if !n.cfg.AllowHostLoopback {
			return dst, errors.New("host loopback is not reachable (fix: --allow-host-loopback)")
		}
		if a.Is4() {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), dst.Port()), nil
		}
		return netip.AddrPortFrom(netip.IPv6Loopback(), dst.Port()), nil
	case a.IsLoopback() || a.IsUnspecified():
		return dst, errors.New("host loopback is not reachable")
	case PrefixIPv4.Contains(a) || PrefixIPv6.Contains(a):
		return dst, errors.New("no such host on the sandbox's network")
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return dst, errors.New("multicast and broadcast are not forwarded")
	}
	return dst, nil
}

// admit applies the egress policy to a destination and logs the decision.
func (n *Network) admit(proto string, src, dst netip.AddrPort) (netip.AddrPort, bool) {
	target, err := n.hostTarget(dst)
	if err != nil {
		n.cfg.Logf("%s %v → %v: deny: %v", proto, src, dst, err)
		return target, false
	}
	v, why := n.cfg.Policy.Check(dst.Addr(), dst.Port())
	if n.cfg.Log != nil {
		n.cfg.Logf("%s %v → %v: %v (%s)", proto, src, dst, v, why)
	}
	return target, v == Allow
}
