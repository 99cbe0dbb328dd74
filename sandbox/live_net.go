package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"golang.org/x/sys/unix"
)

// Dial connects to address in the running sandbox's network namespace, as
// net.Dial would from inside it: network is "tcp", "tcp4", "tcp6", "udp",
// "udp4" or "udp6", address an IP literal (or "localhost") and a port,
// like "127.0.0.1:8080". The socket is made inside by a short-lived stage
// process (stage live.c) and handed to the caller, so this reaches a
// server of a --net none sandbox with no forward and nothing exposed on
// the host. Names are not resolved: the sandbox's resolver is not the
// caller's. A sandbox that shares the caller's network is dialled from
// the caller's side.
func (s *Sandbox) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	t, err := s.target()
	if err != nil {
		return nil, err
	}
	if !t.Namespaces.Net {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	sa, family, typ, err := sockaddr(network, address)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s in the sandbox: %w", network, address, err)
	}
	f, err := runLive(t, &stage.Live{Op: stage.LiveSocket, Family: family, Type: typ})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s in the sandbox: %w", network, address, err)
	}
	defer f.Close()
	if err := connectCtx(ctx, int(f.Fd()), sa); err != nil {
		return nil, fmt.Errorf("dial %s %s in the sandbox: %w", network, address, os.NewSyscallError("connect", err))
	}
	return net.FileConn(f)
}

// Listen listens on address in the running sandbox's network namespace:
// network "tcp", "tcp4" or "tcp6", address an IP literal (or "localhost")
// and a port. Connections made inside the sandbox to that address reach
// the caller's listener; nothing is exposed on the host. A sandbox that
// shares the caller's network listens on the caller's side.
func (s *Sandbox) Listen(network, address string) (net.Listener, error) {
	t, err := s.target()
	if err != nil {
		return nil, err
	}
	if !t.Namespaces.Net {
		return net.Listen(network, address)
	}
	sa, family, typ, err := sockaddr(network, address)
	if err != nil || typ != unix.SOCK_STREAM {
		if err == nil {
			err = fmt.Errorf("only tcp, tcp4 and tcp6 listen")
		}
		return nil, fmt.Errorf("listen on %s %s in the sandbox: %w", network, address, err)
	}
	f, err := runLive(t, &stage.Live{Op: stage.LiveSocket, Family: family, Type: typ})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in the sandbox: %w", network, address, err)
	}
	defer f.Close()
	fd := int(f.Fd())
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("listen on %s %s in the sandbox: %w", network, address, os.NewSyscallError("bind", err))
	}
	if err := unix.Listen(fd, 128); err != nil {
		return nil, fmt.Errorf("listen on %s %s in the sandbox: %w", network, address, os.NewSyscallError("listen", err))
	}
	return net.FileListener(f)
}

// sockaddr parses network and address into what socket(2) and connect(2)
// or bind(2) take.
func sockaddr(network, address string) (unix.Sockaddr, int, int, error) {
	typ := unix.SOCK_STREAM
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "udp", "udp4", "udp6":
		typ = unix.SOCK_DGRAM
	default:
		return nil, 0, 0, fmt.Errorf("network %q: use tcp, tcp4, tcp6, udp, udp4 or udp6", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, 0, 0, err
	}
	if host == "localhost" || host == "" {
		host = "127.0.0.1"
		if network[len(network)-1] == '6' {
			host = "::1"
		}
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: an IP address and a port (names are not resolved)", address)
	}
	ip := ap.Addr()
	if ip.Is4() || ip.Is4In6() {
		if network[len(network)-1] == '6' {
			return nil, 0, 0, fmt.Errorf("%s: not an IPv6 address", address)
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.Unmap().As4()}, unix.AF_INET, typ, nil
	}
	if network[len(network)-1] == '4' {
		return nil, 0, 0, fmt.Errorf("%s: not an IPv4 address", address)
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}, unix.AF_INET6, typ, nil
}

// connectCtx connects fd to sa, giving up when ctx ends.
func connectCtx(ctx context.Context, fd int, sa unix.Sockaddr) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return err
	}
	err := unix.Connect(fd, sa)
	if err != unix.EINPROGRESS {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wait := 100 * time.Millisecond
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			wait = max(time.Until(d), time.Millisecond)
		}
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(p, int(wait/time.Millisecond))
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return err
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
}
