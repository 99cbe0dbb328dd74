package netstack

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/nsbox/nsbox/network"
)

// ICMP echo (ping) is not terminated in the stack: gVisor, promiscuous and
// spoofing, would answer an echo to any address itself, a reply that
// proves nothing. The TAP reader hands each frame to divertEcho first; an
// echo request to anything but the DNS addresses is taken out, checked
// against the policy, and sent from the host with an unprivileged ICMP
// socket (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)), which the host
// allows to the groups in net.ipv4.ping_group_range. Replies are written
// to the TAP device as frames from the pinged address, with the
// sandbox's identifier, sequence number and payload. A denied or
// unreachable destination, or a host that refuses ICMP sockets, gets no
// reply, as a filtering router gives none.

// echoIdleTimeout ends a ping flow (one host socket) after this long
// without a request or reply; maxEchoFlows bounds the sockets at once.
const (
	echoIdleTimeout = 30 * time.Second
	maxEchoFlows    = 64
)

// echoKey names a ping flow: one identifier from one sandbox address to
// one destination.
type echoKey struct {
	src, dst netip.Addr
	ident    uint16
}

// echoFlow is a host ICMP socket, connected to the flow's target.
type echoFlow struct {
	file *os.File
	last time.Time // guarded by echoer.mu
}

// echoer holds the ping flows of a Network.
type echoer struct {
	mu     sync.Mutex
	flows  map[echoKey]*echoFlow
	closed bool
	refuse sync.Once // logs once why the host refuses ICMP sockets
}

// divertEcho reports whether frame is an ICMP echo request the stack must
// not see, and if so handles it. It runs on the TAP reader and does not
// block.
func (n *Network) divertEcho(frame []byte) bool {
	if len(frame) < header.EthernetMinimumSize {
		return false
	}
	eth := header.Ethernet(frame)
	pkt := frame[header.EthernetMinimumSize:]
	var src, dst netip.Addr
	var msg []byte
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) || ip.TransportProtocol() != header.ICMPv4ProtocolNumber {
			return false
		}
		msg = ip.Payload()
		if len(msg) < header.ICMPv4MinimumSize || header.ICMPv4(msg).Type() != header.ICMPv4Echo {
			return false
		}
		src, dst = toAddr(ip.SourceAddress()), toAddr(ip.DestinationAddress())
		if ip.More() || ip.FragmentOffset() != 0 {
			return true // fragmented echo: dropped, never answered by the stack
		}
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(pkt)
		if !ip.IsValid(len(pkt)) || ip.TransportProtocol() != header.ICMPv6ProtocolNumber {
			return false
		}
		msg = ip.Payload()
		if len(msg) < header.ICMPv6EchoMinimumSize || header.ICMPv6(msg).Type() != header.ICMPv6EchoRequest {
			return false
		}
		src, dst = toAddr(ip.SourceAddress()), toAddr(ip.DestinationAddress())
	default:
		return false
	}
	if dst == DNSIPv4 || dst == DNSIPv6 {
		return false // the stack's own address: it answers, truthfully
	}
	key := echoKey{src: src, dst: dst, ident: binary.BigEndian.Uint16(msg[4:6])}
	flow := n.echoFlow(key, eth)
	if flow == nil {
		return true
	}
	// The kernel sets the identifier (the socket's) and the checksum.
	req := append([]byte(nil), msg...)
	req[2], req[3] = 0, 0
	if _, err := flow.file.Write(req); err != nil {
		n.cfg.Logf("icmp %v → %v: %v", src, dst, err)
	}
	return true
}

// echoFlow returns the flow for key, opening its host socket on the first
// request, or nil when the request gets no reply.
func (n *Network) echoFlow(key echoKey, eth header.Ethernet) *echoFlow {
	e := &n.echo
	e.mu.Lock()
	if f, ok := e.flows[key]; ok {
		f.last = time.Now()
		e.mu.Unlock()
		return f
	}
	full := e.closed || len(e.flows) >= maxEchoFlows
	e.mu.Unlock()
	if full {
		return nil
	}
	target, ok := n.admitEcho(key.src, key.dst)
	if !ok {
		return nil
	}
	file, err := openEchoSocket(target)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			e.refuse.Do(func() {
				first, last := network.PingGroupRange()
				n.cfg.Logf("icmp: the host refuses ICMP echo sockets to gid %d (net.ipv4.ping_group_range = %d %d), so ping gets no reply; fix: as root, sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"",
					os.Getgid(), first, last)
			})
		} else {
			n.cfg.Logf("icmp %v → %v: %v", key.src, key.dst, err)
		}
		return nil
	}
	f := &echoFlow{file: file, last: time.Now()}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		file.Close()
		return nil
	}
	if e.flows == nil {
		e.flows = map[echoKey]*echoFlow{}
	}
	e.flows[key] = f
	// Replies go back with the request's link addresses swapped. Started
	// under the lock: once close has run, no goroutine is added.
	sandboxMAC, ourMAC := eth.SourceAddress(), eth.DestinationAddress()
	n.goroutine(func() { n.relayEchoReplies(key, f, ourMAC, sandboxMAC) })
	e.mu.Unlock()
	return f
}

// admitEcho applies the host loopback rules and the policy (as port 0: a
// rule with ports never matches ICMP) to a ping destination.
func (n *Network) admitEcho(src, dst netip.Addr) (netip.Addr, bool) {
	target, err := n.hostTarget(netip.AddrPortFrom(dst, 0))
	if err != nil {
		n.cfg.Logf("icmp %v → %v: deny: %v", src, dst, err)
		return dst, false
	}
	v, why := n.cfg.Policy.Check(dst, 0)
	if n.cfg.Log != nil {
		n.cfg.Logf("icmp %v → %v: %v (%s)", src, dst, v, why)
	}
	return target.Addr(), v == Allow
}

// openEchoSocket opens an unprivileged ICMP echo socket connected to a.
func openEchoSocket(a netip.Addr) (*os.File, error) {
	var sa unix.Sockaddr
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if a.Is4() {
		sa = &unix.SockaddrInet4{Addr: a.As4()}
	} else {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
		sa = &unix.SockaddrInet6{Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, os.NewSyscallError("socket(IPPROTO_ICMP)", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	return os.NewFile(uintptr(fd), "icmp"), nil
}

// relayEchoReplies writes each echo reply the host socket receives to the
// sandbox until the flow is idle or the network closes.
func (n *Network) relayEchoReplies(key echoKey, f *echoFlow, ourMAC, sandboxMAC tcpip.LinkAddress) {
	defer func() {
		n.echo.mu.Lock()
		if n.echo.flows[key] == f {
			delete(n.echo.flows, key)
		}
		n.echo.mu.Unlock()
		f.file.Close()
	}()
	raw, err := f.file.SyscallConn()
	if err != nil {
		return
	}
	var bp *[]byte
	defer func() {
		if bp != nil {
			datagramBufs.Put(bp)
		}
	}()
	for {
		if bp != nil {
			datagramBufs.Put(bp) // an idle flow holds no buffer
			bp = nil
		}
		f.file.SetReadDeadline(time.Now().Add(echoIdleTimeout))
		var nr int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			bp = datagramBufs.Get().(*[]byte)
			nr, rerr = unix.Read(int(fd), *bp)
			if rerr == unix.EAGAIN {
				datagramBufs.Put(bp)
				bp = nil
				return false
			}
			return true
		})
		if err == nil && rerr != nil && rerr != unix.EINTR {
			err = rerr
		}
		if err == nil && rerr == unix.EINTR {
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				n.echo.mu.Lock()
				idle := time.Since(f.last) >= echoIdleTimeout
				n.echo.mu.Unlock()
				if !idle {
					continue
				}
			}
			return
		}
		msg := (*bp)[:nr]
		want := header.ICMPv4EchoReply
		if key.dst.Is6() {
			want = header.ICMPv4Type(header.ICMPv6EchoReply)
		}
		if nr < header.ICMPv4MinimumSize || header.ICMPv4Type(msg[0]) != want {
			continue
		}
		frame := echoReplyFrame(key, msg, ourMAC, sandboxMAC)
		if err := n.link.writeFrame(frame); err != nil {
			return
		}
	}
}

// echoReplyFrame builds the ethernet frame that answers key's request
// with reply (an ICMP echo reply as the host socket gave it, carrying the
// socket's identifier), from key.dst to key.src with key.ident.
func echoReplyFrame(key echoKey, reply []byte, ourMAC, sandboxMAC tcpip.LinkAddress) []byte {
	src := tcpip.AddrFromSlice(key.dst.AsSlice())
	dst := tcpip.AddrFromSlice(key.src.AsSlice())
	ipLen := header.IPv4MinimumSize
	ethType := header.IPv4ProtocolNumber
	if key.dst.Is6() {
		ipLen, ethType = header.IPv6MinimumSize, header.IPv6ProtocolNumber
	}
	frame := make([]byte, header.EthernetMinimumSize+ipLen+len(reply))
	header.Ethernet(frame).Encode(&header.EthernetFields{SrcAddr: ourMAC, DstAddr: sandboxMAC, Type: ethType})
	ip := frame[header.EthernetMinimumSize:]
	msg := ip[ipLen:]
	copy(msg, reply)
	msg[1] = 0
	binary.BigEndian.PutUint16(msg[4:6], key.ident)
	msg[2], msg[3] = 0, 0
	payloadSum := checksum.Checksum(msg[header.ICMPv4MinimumSize:], 0)
	if key.dst.Is4() {
		h := header.IPv4(ip)
		h.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(ip)),
			TTL:         64,
			Protocol:    uint8(header.ICMPv4ProtocolNumber),
			SrcAddr:     src,
			DstAddr:     dst,
		})
		h.SetChecksum(^h.CalculateChecksum())
		icmp := header.ICMPv4(msg)
		icmp.SetChecksum(header.ICMPv4Checksum(icmp[:header.ICMPv4MinimumSize], payloadSum))
		return frame
	}
	header.IPv6(ip).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(len(msg)),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          64,
		SrcAddr:           src,
		DstAddr:           dst,
	})
	icmp := header.ICMPv6(msg)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header:      icmp[:header.ICMPv6EchoMinimumSize],
		Src:         src,
		Dst:         dst,
		PayloadCsum: payloadSum,
		PayloadLen:  len(msg) - header.ICMPv6EchoMinimumSize,
	}))
	return frame
}

// closeEcho closes every ping flow's socket, which ends its relay.
func (e *echoer) close() {
	e.mu.Lock()
	e.closed = true
	for _, f := range e.flows {
		f.file.Close()
	}
	e.mu.Unlock()
}
