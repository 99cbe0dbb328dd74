package netstack

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"gotest.tools/v3/assert"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestVnetHdr runs the tests of TCP, UDP, DNS, ICMP and published ports
// again with the virtio_net_hdr format on both ends of the link.
func TestVnetHdr(t *testing.T) {
	testVnet = true
	defer func() { testVnet = false }()
	for _, c := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"TCP echo and half-close", TestAllowHostLoopbackTCPEchoAndHalfClose},
		{"refused port reset", TestRefusedHostPortIsReset},
		{"UDP", TestUDPThroughGateway},
		{"deny rule", TestDenyRuleResetsTCP},
		{"DNS", TestDNSForwarderAndAllowHost},
		{"publish", TestPublishTCP},
		{"ping", TestPingHostLoopbackThroughGateway},
		{"ping without reply", TestPingWithoutReply},
	} {
		t.Run(c.name, c.f)
	}
}

// TestVnetHdrSegmentsAtMTU1500 sends data both ways through a 1500-byte
// link with the offloads on: it arrives intact, and into the sandbox it
// crosses in frames larger than the MTU (the kernel's GSO cuts them).
func TestVnetHdrSegmentsAtMTU1500(t *testing.T) {
	const mtu = 1500
	var frames, large atomic.Int64
	sandboxFrames = func(frame []byte) {
		frames.Add(1)
		if len(frame) > mtu+header.EthernetMinimumSize {
			large.Add(1)
		}
	}
	defer func() { sandboxFrames = nil }()
	port, _ := echoServer(t, "tcp4", "127.0.0.1:0")
	sb := newSandbox(t, Config{AllowHostLoopback: true, MTU: mtu, VnetHdr: true})
	c, err := sb.dialTCP(fmt.Sprintf("10.0.2.2:%d", port))
	assert.NilError(t, err)
	defer c.Close()
	msg := make([]byte, 4<<20)
	rand.Read(msg)
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	assert.NilError(t, err)
	assert.Assert(t, bytes.Equal(got, msg), "echoed %d bytes, different from the %d sent", len(got), len(msg))
	assert.Assert(t, large.Load() > 0, "none of %d frames into the sandbox was larger than the MTU", frames.Load())
}
