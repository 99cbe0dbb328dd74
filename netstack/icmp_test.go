package netstack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/nsbox/nsbox/network"
)

// rawSandbox is the sandbox's end of the link as raw ethernet frames, for
// tests that craft packets the sandbox's kernel would send.
type rawSandbox struct {
	fd   int
	vnet bool // frames carry a virtio_net_hdr (testVnet)
	mu   sync.Mutex
	log  []string
}

var sandboxMAC = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x64")

func newRawSandbox(t *testing.T, cfg Config) *rawSandbox {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	assert.NilError(t, err)
	rs := &rawSandbox{fd: fds[1], vnet: testVnet}
	cfg.VnetHdr = testVnet
	cfg.Log = func(format string, args ...any) {
		rs.mu.Lock()
		rs.log = append(rs.log, fmt.Sprintf(format, args...))
		rs.mu.Unlock()
	}
	n, err := Start(os.NewFile(uintptr(fds[0]), "tap"), cfg)
	if err != nil {
		syscall.Close(fds[1])
	}
	assert.NilError(t, err)
	t.Cleanup(func() {
		n.Close()
		syscall.Close(fds[1])
	})
	return rs
}

// send writes frame as the sandbox's kernel would (after a zero
// virtio_net_hdr with vnet: complete checksums, no segmentation).
func (rs *rawSandbox) send(frame []byte) error {
	if rs.vnet {
		frame = append(make([]byte, vnetHdrSize), frame...)
	}
	_, err := syscall.Write(rs.fd, frame)
	return err
}

func (rs *rawSandbox) logged() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return strings.Join(rs.log, "\n")
}

// echoRequest builds an ethernet frame with an ICMP echo request from the
// sandbox's address to dst.
func echoRequest(dst netip.Addr, ident, seq uint16, payload []byte) []byte {
	src := SandboxIPv4
	ipLen, ethType, typ := header.IPv4MinimumSize, header.IPv4ProtocolNumber, byte(header.ICMPv4Echo)
	if dst.Is6() {
		src = SandboxIPv6
		ipLen, ethType, typ = header.IPv6MinimumSize, header.IPv6ProtocolNumber, byte(header.ICMPv6EchoRequest)
	}
	frame := make([]byte, header.EthernetMinimumSize+ipLen+8+len(payload))
	header.Ethernet(frame).Encode(&header.EthernetFields{SrcAddr: sandboxMAC, DstAddr: gatewayMAC, Type: ethType})
	ip := frame[header.EthernetMinimumSize:]
	msg := ip[ipLen:]
	msg[0] = typ
	binary.BigEndian.PutUint16(msg[4:], ident)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], payload)
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	psum := checksum.Checksum(payload, 0)
	if dst.Is4() {
		h := header.IPv4(ip)
		h.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber), SrcAddr: s, DstAddr: d})
		h.SetChecksum(^h.CalculateChecksum())
		header.ICMPv4(msg).SetChecksum(header.ICMPv4Checksum(msg[:8], psum))
		return frame
	}
	header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(len(msg)), TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 64, SrcAddr: s, DstAddr: d})
	header.ICMPv6(msg).SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: msg[:8], Src: s, Dst: d, PayloadCsum: psum, PayloadLen: len(payload)}))
	return frame
}

// echoReply waits up to wait for an ICMP echo reply and returns its IP
// packet, or nil. Other frames (ARP, neighbour discovery) are skipped.
func (rs *rawSandbox) echoReply(t *testing.T, wait time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		tv := syscall.NsecToTimeval(left.Nanoseconds())
		assert.NilError(t, syscall.SetsockoptTimeval(rs.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv))
		n, err := syscall.Read(rs.fd, buf)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			continue
		}
		assert.NilError(t, err)
		frame := buf[:n]
		if rs.vnet {
			frame = frame[vnetHdrSize:]
		}
		eth := header.Ethernet(frame)
		ip := frame[header.EthernetMinimumSize:]
		switch eth.Type() {
		case header.IPv4ProtocolNumber:
			h := header.IPv4(ip)
			if h.IsValid(len(ip)) && h.TransportProtocol() == header.ICMPv4ProtocolNumber && header.ICMPv4(h.Payload()).Type() == header.ICMPv4EchoReply {
				assert.Equal(t, eth.DestinationAddress(), sandboxMAC)
				return append([]byte(nil), ip...)
			}
		case header.IPv6ProtocolNumber:
			h := header.IPv6(ip)
			if h.IsValid(len(ip)) && h.TransportProtocol() == header.ICMPv6ProtocolNumber && header.ICMPv6(h.Payload()).Type() == header.ICMPv6EchoReply {
				assert.Equal(t, eth.DestinationAddress(), sandboxMAC)
				return append([]byte(nil), ip...)
			}
		}
	}
}

func requirePing(t *testing.T) {
	t.Helper()
	if network.PingAllowed() {
		return
	}
	first, last := network.PingGroupRange()
	msg := fmt.Sprintf("net.ipv4.ping_group_range is %d %d, which excludes gid %d; fix: hack/setup-host.sh, or sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"", first, last, os.Getgid())
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestPingHostLoopbackThroughGateway(t *testing.T) {
	requirePing(t)
	rs := newRawSandbox(t, Config{AllowHostLoopback: true})
	payload := []byte("nsbox ping payload 0123456789")
	for _, c := range []struct{ dst, sandbox netip.Addr }{
		{GatewayIPv4, SandboxIPv4},
		{GatewayIPv6, SandboxIPv6},
	} {
		for seq := uint16(1); seq <= 2; seq++ {
			err := rs.send(echoRequest(c.dst, 0x4242, seq, payload))
			assert.NilError(t, err)
			ip := rs.echoReply(t, 5*time.Second)
			assert.Assert(t, ip != nil, "no echo reply from %v (seq %d); log:\n%s", c.dst, seq, rs.logged())
			var src, dst tcpip.Address
			var msg []byte
			if c.dst.Is4() {
				h := header.IPv4(ip)
				assert.Assert(t, h.IsChecksumValid())
				src, dst, msg = h.SourceAddress(), h.DestinationAddress(), h.Payload()
				assert.Equal(t, header.ICMPv4Checksum(msg[:8], checksum.Checksum(msg[8:], 0)), header.ICMPv4(msg).Checksum())
			} else {
				h := header.IPv6(ip)
				src, dst, msg = h.SourceAddress(), h.DestinationAddress(), h.Payload()
				assert.Equal(t, header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: msg[:8], Src: src, Dst: dst,
					PayloadCsum: checksum.Checksum(msg[8:], 0), PayloadLen: len(msg) - 8}), header.ICMPv6(msg).Checksum())
			}
			assert.Equal(t, toAddr(src), c.dst)
			assert.Equal(t, toAddr(dst), c.sandbox)
			assert.Equal(t, binary.BigEndian.Uint16(msg[4:]), uint16(0x4242))
			assert.Equal(t, binary.BigEndian.Uint16(msg[6:]), seq)
			assert.Assert(t, bytes.Equal(msg[8:], payload))
		}
	}
}

// Without --allow-host-loopback, under a deny rule, or to another address
// on the sandbox's network, there is no reply: not even a made-up one from
// the stack.
func TestPingWithoutReply(t *testing.T) {
	requirePing(t)
	for _, c := range []struct {
		name string
		cfg  Config
		dst  netip.Addr
		log  string
	}{
		{"host loopback refused", Config{}, GatewayIPv4, "host loopback is not reachable"},
		{"deny rule", Config{AllowHostLoopback: true, Policy: &Policy{Rules: []Rule{{Verdict: Deny, Prefix: netip.MustParsePrefix("10.0.2.2/32")}}}}, GatewayIPv4, "deny (--deny 10.0.2.2/32)"},
		{"port rule does not allow ping", Config{Policy: &Policy{Rules: []Rule{{Verdict: Allow, Prefix: netip.MustParsePrefix("0.0.0.0/0"), Ports: []network.PortRange{{First: 443, Last: 443}}}}}}, netip.MustParseAddr("192.0.2.1"), "deny (not allowed by any rule)"},
		{"other sandbox address", Config{}, netip.MustParseAddr("10.0.2.50"), "no such host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := newRawSandbox(t, c.cfg)
			err := rs.send(echoRequest(c.dst, 7, 1, []byte("x")))
			assert.NilError(t, err)
			assert.Assert(t, rs.echoReply(t, 1500*time.Millisecond) == nil)
			assert.Assert(t, strings.Contains(rs.logged(), c.log), "log:\n%s", rs.logged())
		})
	}
}
