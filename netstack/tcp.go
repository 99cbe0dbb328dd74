package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
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
	if !n.limits.tcp.acquire() {
		n.limits.tcpLog.refuse(n, n.limits.tcp.max, "connections at once; fix: --net-max-tcp", "tcp %v → %v: reset", src, dst)
		r.Complete(true)
		return
	}
	defer n.limits.tcp.release()
	host, err := dialHost(n.ctx, &net.Dialer{Timeout: dialTimeout}, target, n.cfg.HostSendBuffer)
	if err != nil {
		n.cfg.Logf("tcp %v → %v: %v", src, dst, err)
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
	// The window toward the host: auto-tuned for the first few
	// connections, a fixed narrow one for the rest (caps.go).
	if n.limits.wide.acquire() {
		defer n.limits.wide.release()
	} else {
		ep.SocketOptions().SetReceiveBufferSize(narrowWindow, true)
	}
	sandbox := newSandboxStream(&wq, ep)
	if !n.trackConn(host) {
		host.Close()
		sandbox.Close()
		return
	}
	// The relay runs on this goroutine (the forwarder's, one per SYN):
	// starting another would put a wake-up on every connection's first
	// byte.
	defer n.untrackConn(host)
	relay(sandbox, hostStream{host.(*net.TCPConn)})
}

// stream is one side of a relay: it reads into a relay buffer that it
// takes from the pool only once it has data (so an idle connection holds
// none: two 256 KiB buffers each before), writes, and shuts its write
// side alone.
type stream interface {
	// readSome waits for data, then reads it into a pool buffer; the
	// caller puts the buffer back. io.EOF at the end.
	readSome() (*[]byte, int, error)
	Write([]byte) (int, error)
	CloseWrite() error
	Close() error
}

// relay copies both ways until both directions ended, passing a half-close
// on (EOF one way shuts down writing the other way), then closes both.
func relay(a, b stream) {
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
// request fell from 5.8 ms to under 2 ms with the pool). Large copies
// mean fewer system calls on a 64 KiB-MTU link.
var relayBuffers = sync.Pool{New: func() any {
	b := make([]byte, relayBuffer)
	return &b
}}

// copyHalf copies src to dst.
func copyHalf(dst, src stream) {
	for {
		bp, nr, rerr := src.readSome()
		if nr > 0 {
			_, werr := dst.Write((*bp)[:nr])
			relayBuffers.Put(bp)
			if werr != nil {
				// The writer is gone: stop the reader's side too.
				src.Close()
				return
			}
		} else if bp != nil {
			relayBuffers.Put(bp)
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

// hostStream is a host TCP connection as a relay side: it waits in Go's
// poller for data and only then takes a buffer.
type hostStream struct{ *net.TCPConn }

func (h hostStream) readSome() (*[]byte, int, error) {
	rc, err := h.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	var (
		bp   *[]byte
		nr   int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		bp = relayBuffers.Get().(*[]byte)
		for {
			nr, rerr = unix.Read(int(fd), *bp)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			relayBuffers.Put(bp)
			bp = nil
			return false // wait in the poller, holding no buffer
		}
		return true
	})
	switch {
	case err != nil:
		return nil, 0, err
	case rerr != nil:
		return bp, 0, rerr
	case nr == 0:
		return bp, 0, io.EOF
	}
	return bp, nr, nil
}

// sandboxStream is a gVisor TCP endpoint as a relay side: gonet's
// TCPConn for writes (it waits for send room), and reads that wait on the
// endpoint's queue and only then take a buffer.
type sandboxStream struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
	wq *waiter.Queue
}

func newSandboxStream(wq *waiter.Queue, ep tcpip.Endpoint) *sandboxStream {
	return &sandboxStream{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq}
}

func (s *sandboxStream) readSome() (*[]byte, int, error) {
	var (
		entry    waiter.Entry
		notify   chan struct{}
		waitedOn bool
	)
	for {
		bp := relayBuffers.Get().(*[]byte)
		w := tcpip.SliceWriter(*bp)
		res, err := s.ep.Read(&w, tcpip.ReadOptions{})
		if err == nil {
			if waitedOn {
				s.wq.EventUnregister(&entry)
			}
			return bp, res.Count, nil
		}
		relayBuffers.Put(bp)
		if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
			if waitedOn {
				s.wq.EventUnregister(&entry)
			}
			if _, ok := err.(*tcpip.ErrClosedForReceive); ok {
				return nil, 0, io.EOF
			}
			return nil, 0, errors.New(err.String())
		}
		if !waitedOn {
			// Registered, then read again: data that came in between
			// is seen by that read, later data wakes the channel.
			entry, notify = waiter.NewChannelEntry(waiter.ReadableEvents)
			s.wq.EventRegister(&entry)
			waitedOn = true
			continue
		}
		<-notify
	}
}

// dialSandbox connects from the stack, bound to laddr, to raddr in the
// sandbox, as gonet.DialTCPWithBind does, and returns the connection as a
// relay side.
func dialSandbox(ctx context.Context, s *stack.Stack, laddr, raddr tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (*sandboxStream, error) {
	var wq waiter.Queue
	ep, terr := s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, errors.New(terr.String())
	}
	entry, notify := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if terr := ep.Bind(laddr); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("bind %v: %s", laddr.Addr, terr)
	}
	terr = ep.Connect(raddr)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-notify:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, errors.New(terr.String())
	}
	return newSandboxStream(&wq, ep), nil
}
