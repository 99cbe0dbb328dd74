package netstack

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
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

// datagramBufs holds buffers of maxDatagram bytes, taken only while a
// datagram is in hand: an idle flow holds none.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

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
	if !n.limits.udp.acquire() {
		n.limits.udpLog.refuse(n, n.limits.udp.max, "flows at once; fix: --net-max-udp", "udp %v → %v: port unreachable", src, dst)
		return false
	}
	host, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		n.limits.udp.release()
		n.cfg.Logf("udp %v → %v: %v", src, dst, err)
		return false
	}
	raw, err := host.SyscallConn()
	if err != nil {
		n.limits.udp.release()
		host.Close()
		return false
	}
	f := &udpFlow{host: host, raw: raw, idle: udpIdleTimeout, slot: &n.limits.udp}
	if dst.Port() == 53 {
		f.idle = dnsIdleTimeout
	}
	f.touch()
	ep, terr := r.CreateEndpoint(&f.wq)
	if terr != nil {
		n.limits.udp.release()
		host.Close()
		return false
	}
	f.ep = ep
	if !n.trackConn(host) {
		n.limits.udp.release()
		host.Close()
		ep.Close()
		return true
	}
	f.entry = waiter.NewFunctionEntry(waiter.ReadableEvents, func(waiter.EventMask) { f.fromSandbox() })
	f.wq.EventRegister(&f.entry)
	f.fromSandbox() // the first datagram is queued already
	n.goroutine(func() {
		defer n.untrackConn(host)
		f.fromHost()
	})
	return true
}

// udpFlow relays one sandbox socket's datagrams to its host socket and
// back. Each direction runs where its datagram arrives: sandbox → host in
// the stack's goroutine that delivered it (the endpoint's waiter
// callback), host → sandbox in one goroutine parked in Go's poller. A
// request and its reply each cross with no hand-off between goroutines,
// and no buffer is held while the flow is idle.
type udpFlow struct {
	wq    waiter.Queue
	entry waiter.Entry
	ep    tcpip.Endpoint
	host  *net.UDPConn
	raw   syscall.RawConn
	idle  time.Duration
	last  atomic.Int64 // unix nanoseconds of the last datagram either way
	slot  *slots       // the flow's place under Config.MaxUDPFlows, given back by close
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// fromSandbox sends what the sandbox queued to the host, without waiting:
// a host socket whose buffer is full drops the datagram, as a router
// would, rather than stall the stack.
func (f *udpFlow) fromSandbox() {
	drainDatagrams(f.ep, &f.last, func(b []byte) {
		f.raw.Write(func(fd uintptr) bool {
			unix.Write(int(fd), b)
			return true
		})
	})
}

// drainDatagrams reads every datagram queued on ep into a pooled buffer
// and hands each to send, noting the time in last. It is called from ep's
// waiter callback, in the stack's goroutine that delivered them (gVisor's
// UDP endpoint notifies after releasing its receive lock), so send must
// not wait.
func drainDatagrams(ep tcpip.Endpoint, last *atomic.Int64, send func([]byte)) {
	bp := datagramBufs.Get().(*[]byte)
	defer datagramBufs.Put(bp)
	for {
		w := tcpip.SliceWriter(*bp)
		res, err := ep.Read(&w, tcpip.ReadOptions{})
		if err != nil {
			return // nothing queued (ErrWouldBlock), or closed
		}
		last.Store(time.Now().UnixNano())
		send((*bp)[:res.Count])
	}
}

// fromHost reads the host socket's replies into the sandbox until the flow
// has been idle both ways for f.idle, then ends the flow.
func (f *udpFlow) fromHost() {
	defer f.close()
	f.host.SetReadDeadline(time.Now().Add(f.idle))
	for {
		var (
			bp   *[]byte
			nr   int
			rerr error
		)
		err := f.raw.Read(func(fd uintptr) bool {
			bp = datagramBufs.Get().(*[]byte)
			nr, rerr = unix.Read(int(fd), *bp)
			if rerr == unix.EAGAIN {
				datagramBufs.Put(bp)
				bp = nil
				return false // wait in the poller, holding no buffer
			}
			return true
		})
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return // closed
			}
			next := time.Unix(0, f.last.Load()).Add(f.idle)
			if !time.Now().Before(next) {
				return
			}
			f.host.SetReadDeadline(next) // the other direction was busy
			continue
		}
		if rerr != nil {
			datagramBufs.Put(bp)
			if rerr == unix.EINTR {
				continue
			}
			return // e.g. ECONNREFUSED: the host port is closed
		}
		f.touch()
		f.ep.Write(bytes.NewReader((*bp)[:nr]), tcpip.WriteOptions{})
		datagramBufs.Put(bp)
		f.host.SetReadDeadline(time.Now().Add(f.idle))
	}
}

func (f *udpFlow) close() {
	f.wq.EventUnregister(&f.entry)
	f.ep.Close()
	f.host.Close()
	f.slot.release()
}
