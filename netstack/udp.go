package netstack

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// UDP flows end after this long without a datagram either way (Linux's
// conntrack uses 30 s for unreplied and 120 s for replied flows; one value
// keeps it simple). DNS-sized flows to port 53 go sooner.
const (
	udpIdleTimeout = 60 * time.Second
	dnsIdleTimeout = 10 * time.Second
	maxDatagram    = 65535
)

// handleUDP is called, on the stack's receive path, for the first datagram
// of each flow to an address the stack does not serve. Returning false
// makes the stack answer ICMP port unreachable.
func (n *Network) handleUDP(r *udp.ForwarderRequest) bool {
	id := r.ID()
	src := netip.AddrPortFrom(toAddr(id.RemoteAddress), id.RemotePort)
	dst := netip.AddrPortFrom(toAddr(id.LocalAddress), id.LocalPort)
	target, ok := n.admit("udp", src, dst)
	if !ok {
		return false
	}
	host, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		n.cfg.logf("udp %v → %v: %v", src, dst, err)
		return false
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		host.Close()
		return false
	}
	sandbox := gonet.NewUDPConn(&wq, ep)
	if !n.trackConn(host) {
		host.Close()
		sandbox.Close()
		return true
	}
	idle := udpIdleTimeout
	if dst.Port() == 53 {
		idle = dnsIdleTimeout
	}
	n.goroutine(func() {
		defer n.untrackConn(host)
		relayDatagrams(sandbox, host, idle)
	})
	return true
}

// relayDatagrams copies datagrams both ways between two connected sockets
// until neither side sent anything for idle, then closes both.
func relayDatagrams(a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	copyDatagrams := func(dst, src net.Conn) {
		buf := make([]byte, maxDatagram)
		for {
			src.SetReadDeadline(time.Now().Add(idle))
			nr, err := src.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() &&
					time.Since(time.Unix(0, last.Load())) < idle {
					continue // the other direction is still busy
				}
				return
			}
			last.Store(time.Now().UnixNano())
			dst.Write(buf[:nr])
		}
	}
	go func() {
		copyDatagrams(b, a)
		a.Close()
		b.Close()
		close(done)
	}()
	copyDatagrams(a, b)
	a.Close()
	b.Close()
	<-done
}
