package netstack

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/nsbox/nsbox/network"
)

// Publish forwards one more host port to the sandbox while the network
// runs, with the same semantics as Config.Publish: a loopback client
// shows inside as the gateway. A host port already published (same
// protocol and host address) is an error, as is one the host has in use.
func (n *Network) Publish(p Publish) error {
	if _, err := network.ParsePublish(p.String()); err != nil {
		return err
	}
	return n.publish(p)
}

// Unpublish stops forwarding p's host port: new connections to it are
// refused by the host from then on; connections already forwarded go on
// until they end. p must be as published (Ports lists them).
func (n *Network) Unpublish(p Publish) error {
	n.mu.Lock()
	l, ok := n.published[publishKey(p)]
	if ok && l.p == p {
		delete(n.published, publishKey(p))
		n.listeners = slices.DeleteFunc(n.listeners, func(x interface{ Close() error }) bool { return x == l.l })
	}
	n.mu.Unlock()
	if !ok || l.p != p {
		return &network.Error{Mode: "user", Field: "Publish", Value: p.String(), Problem: "not published", Fix: "name a published port (Ports lists them)"}
	}
	return l.l.Close()
}

// Ports returns the published ports, in the order they were published.
func (n *Network) Ports() []Publish {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Publish, 0, len(n.published))
	for _, l := range n.published {
		out = append(out, l.p)
	}
	slices.SortFunc(out, func(a, b Publish) int {
		return cmp.Compare(n.published[publishKey(a)].seq, n.published[publishKey(b)].seq)
	})
	return out
}

// publishedPort is a host listener of a published port.
type publishedPort struct {
	p   Publish
	l   interface{ Close() error }
	seq int // publication order
}

// publishKey is what two published ports must not share: the host
// socket's protocol and address.
func publishKey(p Publish) string { return p.Proto + " " + p.Host.String() }

// publish opens the host listener for p and forwards what arrives to the
// sandbox.
func (n *Network) publish(p Publish) error {
	n.mu.Lock()
	_, dup := n.published[publishKey(p)]
	n.mu.Unlock()
	if dup {
		return &network.Error{Mode: "user", Field: "Publish", Value: p.String(), Problem: "host port published already", Fix: "pick another host port, or unpublish it first"}
	}
	var l interface{ Close() error }
	switch p.Proto {
	case "tcp":
		tl, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(p.Host))
		if err != nil {
			return &network.Error{Mode: "user", Field: "Publish", Value: p.String(), Problem: "listen on the host", Err: err, Fix: "pick a free host port"}
		}
		l = tl
		defer func() { n.goroutine(func() { n.forwardTCP(tl, p) }) }()
	case "udp":
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(p.Host))
		if err != nil {
			return &network.Error{Mode: "user", Field: "Publish", Value: p.String(), Problem: "listen on the host", Err: err, Fix: "pick a free host port"}
		}
		l = c
		defer func() { n.goroutine(func() { n.forwardUDP(c, p) }) }()
	default:
		return &network.Error{Mode: "user", Field: "Publish", Value: p.String(), Problem: "unknown protocol"}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		l.Close() // the forwarder returns at once
		return nil
	}
	n.listeners = append(n.listeners, l)
	n.seq++
	n.published[publishKey(p)] = publishedPort{p: p, l: l, seq: n.seq}
	return nil
}

// sandboxAddr is where a forwarded flow from the host goes: the sandbox's
// IPv4 address unless the client came over IPv6.
func sandboxAddr(client netip.Addr, port uint16) netip.AddrPort {
	if client.Is6() && !client.Is4In6() {
		return netip.AddrPortFrom(SandboxIPv6, port)
	}
	return netip.AddrPortFrom(SandboxIPv4, port)
}

// sourceAddr is the address a forwarded flow comes from inside: the
// gateway. The stack can only originate from its own addresses, and a
// loopback client must never appear as the sandbox's own 127.0.0.1.
func sourceAddr(dst netip.AddrPort) netip.Addr {
	if dst.Addr().Is6() {
		return GatewayIPv6
	}
	return GatewayIPv4
}

func (n *Network) forwardTCP(l *net.TCPListener, p Publish) {
	for {
		host, err := l.AcceptTCP()
		if err != nil {
			return
		}
		if !n.trackConn(host) {
			host.Close()
			return
		}
		n.goroutine(func() {
			defer n.untrackConn(host)
			client := host.RemoteAddr().(*net.TCPAddr).AddrPort()
			dst := sandboxAddr(client.Addr().Unmap(), p.SandboxPort)
			laddr, proto := fullAddr(netip.AddrPortFrom(sourceAddr(dst), 0))
			raddr, _ := fullAddr(dst)
			ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
			sandbox, err := dialSandbox(ctx, n.stack, laddr, raddr, proto)
			cancel()
			if err != nil {
				n.cfg.Logf("-p %s: connect to %v: %v", p, dst, err)
				host.SetLinger(0) // a RST, as a closed port would give
				host.Close()
				return
			}
			n.cfg.Logf("-p %s: %v → %v", p, client, dst)
			relay(sandbox, hostStream{host})
		})
	}
}

// forwardUDP keeps one in-stack socket per host client, so replies find
// their way back; each ends after udpIdleTimeout without traffic. A flow
// has no goroutine and holds no buffer: replies go out to the client from
// the in-stack socket's waiter callback, in the goroutine that delivered
// them (the host socket is written without waiting: a full buffer drops
// the datagram), and a timer ends the idle flow.
func (n *Network) forwardUDP(c *net.UDPConn, p Publish) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var v6 bool
	raw.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		_, v6 = sa.(*unix.SockaddrInet6)
		v6 = v6 && err == nil
	})
	var mu sync.Mutex // guards flows
	flows := map[netip.AddrPort]*publishedFlow{}
	bp := datagramBufs.Get().(*[]byte)
	defer datagramBufs.Put(bp)
	buf := *bp
	for {
		nr, client, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			mu.Lock()
			for client, f := range flows {
				delete(flows, client) // a timer that fires now leaves it be
				f.close()
			}
			mu.Unlock()
			return
		}
		mu.Lock()
		flow := flows[client]
		if flow == nil {
			dst := sandboxAddr(client.Addr().Unmap(), p.SandboxPort)
			if flow, err = n.dialPublishedFlow(dst, client, raw, v6); err != nil {
				mu.Unlock()
				n.cfg.Logf("-p %s: %v → %v: %v", p, client, dst, err)
				continue
			}
			flows[client] = flow
			// (Set under mu, read under mu: the callback cannot see
			// flow.timer unset.)
			flow.timer = time.AfterFunc(udpIdleTimeout, func() {
				mu.Lock()
				defer mu.Unlock()
				if next := time.Unix(0, flow.last.Load()).Add(udpIdleTimeout); time.Now().Before(next) {
					flow.timer.Reset(time.Until(next))
					return
				}
				if flows[client] == flow { // else closed already
					delete(flows, client)
					flow.close()
				}
			})
		}
		mu.Unlock()
		flow.last.Store(time.Now().UnixNano())
		flow.ep.Write(bytes.NewReader(buf[:nr]), tcpip.WriteOptions{})
	}
}

// publishedFlow is the in-stack socket of one host client of a published
// UDP port.
type publishedFlow struct {
	ep    tcpip.Endpoint
	wq    waiter.Queue
	entry waiter.Entry
	timer *time.Timer
	last  atomic.Int64 // unix nanoseconds of the last datagram either way
}

// dialPublishedFlow makes the in-stack socket for client, from the gateway
// to dst, and sends what it receives to client through the host socket
// raw (of family AF_INET6 when v6).
func (n *Network) dialPublishedFlow(dst, client netip.AddrPort, raw syscall.RawConn, v6 bool) (*publishedFlow, error) {
	laddr, proto := fullAddr(netip.AddrPortFrom(sourceAddr(dst), 0))
	raddr, _ := fullAddr(dst)
	f := &publishedFlow{}
	ep, terr := n.stack.NewEndpoint(udp.ProtocolNumber, proto, &f.wq)
	if terr != nil {
		return nil, errors.New(terr.String())
	}
	if terr := ep.Bind(laddr); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("bind: %s", terr)
	}
	if terr := ep.Connect(raddr); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("connect: %s", terr)
	}
	f.ep = ep
	// The client's address as the host socket's family spells it (an
	// IPv4 client of an IPv6 socket is ::ffff:a.b.c.d).
	to := unix.Sockaddr(&unix.SockaddrInet6{Port: int(client.Port()), Addr: client.Addr().As16()})
	if !v6 {
		to = &unix.SockaddrInet4{Port: int(client.Port()), Addr: client.Addr().Unmap().As4()}
	}
	f.entry = waiter.NewFunctionEntry(waiter.ReadableEvents, func(waiter.EventMask) {
		drainDatagrams(f.ep, &f.last, func(b []byte) {
			raw.Write(func(fd uintptr) bool {
				unix.Sendto(int(fd), b, unix.MSG_DONTWAIT, to)
				return true
			})
		})
	})
	f.wq.EventRegister(&f.entry)
	return f, nil
}

func (f *publishedFlow) close() {
	if f.timer != nil {
		f.timer.Stop()
	}
	f.wq.EventUnregister(&f.entry)
	f.ep.Close()
}
