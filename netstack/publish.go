package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// publish opens the host listener for p and forwards what arrives to the
// sandbox.
func (n *Network) publish(p Publish) error {
	switch p.Proto {
	case "tcp":
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(p.Host))
		if err != nil {
			return fmt.Errorf("-p %s: listen on the host: %w; fix: pick a free host port", p, err)
		}
		if !n.track(l) {
			l.Close()
			return nil
		}
		n.goroutine(func() { n.forwardTCP(l, p) })
	case "udp":
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(p.Host))
		if err != nil {
			return fmt.Errorf("-p %s: listen on the host: %w; fix: pick a free host port", p, err)
		}
		if !n.track(c) {
			c.Close()
			return nil
		}
		n.goroutine(func() { n.forwardUDP(c, p) })
	default:
		return fmt.Errorf("-p %s: unknown protocol", p)
	}
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
				n.cfg.logf("-p %s: connect to %v: %v", p, dst, err)
				host.SetLinger(0) // a RST, as a closed port would give
				host.Close()
				return
			}
			n.cfg.logf("-p %s: %v → %v", p, client, dst)
			relay(sandbox, hostStream{host})
		})
	}
}

// forwardUDP keeps one in-stack socket per host client, so replies find
// their way back; each ends after udpIdleTimeout without traffic.
func (n *Network) forwardUDP(c *net.UDPConn, p Publish) {
	var mu sync.Mutex // guards flows
	flows := map[netip.AddrPort]*gonet.UDPConn{}
	buf := make([]byte, maxDatagram)
	for {
		nr, client, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			mu.Lock()
			for _, f := range flows {
				f.Close()
			}
			mu.Unlock()
			return
		}
		mu.Lock()
		flow := flows[client]
		if flow == nil {
			dst := sandboxAddr(client.Addr().Unmap(), p.SandboxPort)
			laddr, proto := fullAddr(netip.AddrPortFrom(sourceAddr(dst), 0))
			raddr, _ := fullAddr(dst)
			flow, err = gonet.DialUDP(n.stack, &laddr, &raddr, proto)
			if err != nil {
				mu.Unlock()
				n.cfg.logf("-p %s: %v → %v: %v", p, client, dst, err)
				continue
			}
			flows[client] = flow
			n.goroutine(func() {
				reply := make([]byte, maxDatagram)
				for {
					flow.SetReadDeadline(time.Now().Add(udpIdleTimeout))
					nr, err := flow.Read(reply)
					if err != nil {
						break
					}
					c.WriteToUDPAddrPort(reply[:nr], client)
				}
				mu.Lock()
				delete(flows, client)
				mu.Unlock()
				flow.Close()
			})
		}
		mu.Unlock()
		flow.Write(buf[:nr])
	}
}
