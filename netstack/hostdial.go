package netstack

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dialHost connects to target from the host, as net.Dialer does, but
// without parking the calling goroutine when connect(2) has already
// finished, as it nearly always has for the host's loopback: the kernel
// runs a loopback handshake to completion inside the call. net.Dial gets
// EINPROGRESS and waits for Go's poller to report the socket writable,
// a park and a wake-up on another thread; measured on a 2-core VM, a
// loopback dial took 140-150 µs that way against 100-105 µs here.
//
// The connect is made in the dialer's Control hook, on the fresh
// non-blocking socket; if the zero-timeout poll(2) after it says the
// connection is up, net's own connect(2) then returns EISCONN, which it
// takes as success. Otherwise it gets EALREADY and waits in the poller
// as usual (with ctx and the dialer's timeout).
//
// unsent, when positive, is the socket's TCP_NOTSENT_LOWAT, set before
// the connect: the kernel then takes no more writes while that many bytes
// wait unsent (a peer that does not read), and the writer waits instead.
// The congestion window and the autotuned send buffer still govern the
// bytes in flight, so a fast path keeps its speed.
func dialHost(ctx context.Context, d *net.Dialer, target netip.AddrPort, unsent int) (net.Conn, error) {
	d.Control = func(network, address string, c syscall.RawConn) error {
		var cerr error
		err := c.Control(func(fd uintptr) {
			if unsent > 0 {
				if cerr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, unsent); cerr != nil {
					cerr = os.NewSyscallError("setsockopt(TCP_NOTSENT_LOWAT)", cerr)
					return
				}
			}
			cerr = connectNow(int(fd), target)
		})
		if err != nil {
			return err
		}
		return cerr
	}
	return d.DialContext(ctx, "tcp", target.String())
}

// connectNow starts connecting the non-blocking socket fd to target and
// returns at once: nil when connected or still in progress, else the
// connection's error (ECONNREFUSED…).
func connectNow(fd int, target netip.AddrPort) error {
	var sa unix.Sockaddr
	if target.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(target.Port()), Addr: target.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(target.Port()), Addr: target.Addr().As16()}
	}
	err := unix.Connect(fd, sa)
	if err != unix.EINPROGRESS {
		return err
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if n, perr := unix.Poll(pfd, 0); perr != nil || n == 0 {
		return nil // still in progress: net waits for it
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soerr != 0 {
		return syscall.Errno(soerr)
	}
	return nil
}
