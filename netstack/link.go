package netstack

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tapLink is the link endpoint over the TAP device: whole ethernet frames,
// one per read(2) and write(2). It replaces gVisor's fdbased endpoint,
// which leaks an eventfd per endpoint (its stop fd is never closed),
// blocks in readv outside Go's poller, and does segmentation offload only
// on sockets, never on a TAP. Here the fd is non-blocking and owned by an
// *os.File in Go's poller: closing it ends the reader.
//
// With vnet (the device opened with IFF_VNET_HDR and TUNSETOFFLOAD's
// TUN_F_CSUM, TUN_F_TSO4 and TUN_F_TSO6, sandbox/internal/stage/tap.c) every frame starts
// with a struct virtio_net_hdr. Out of the sandbox, the kernel then sends
// TCP segments of up to 64 KiB whatever the MTU, with the transport
// checksum left partial; the stack takes them as they are (receive
// checksum offload). Into the sandbox, the stack hands over segments of up
// to gsoMaxSize with a partial checksum, and the header tells the kernel
// the MSS to cut them at (host GSO): one write(2) per 64 KiB instead of
// one per MTU.
//
// The embedded channel.Endpoint supplies the bookkeeping (MTU, link
// address, dispatcher); its queue is unused: WritePackets writes directly
// from the sending goroutine.
type tapLink struct {
	*channel.Endpoint
	file *os.File
	raw  interface {
		Read(func(uintptr) bool) error
		Write(func(uintptr) bool) error
	}
	vnet    bool           // frames carry a virtio_net_hdr
	wg      sync.WaitGroup // the reader
	started sync.Once
	// divert, when set, sees each frame first; true means it took the
	// frame and the stack must not see it (ICMP echo, icmp.go).
	divert func(frame []byte) bool
}

var (
	_ stack.LinkEndpoint = (*tapLink)(nil)
	_ stack.GSOEndpoint  = (*tapLink)(nil)
)

// struct virtio_net_hdr (linux/virtio_net.h), little-endian, without
// num_buffers: the TAP's default TUNSETVNETHDRSZ.
const (
	vnetHdrSize       = 10
	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSONone       = 0 // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4      = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOTCPv6      = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

// gsoMaxSize bounds a segment the stack hands over with vnet: an IP
// packet's length field is 16 bits, and the kernel's own GSO limit on a
// TAP is 64 KiB.
const gsoMaxSize = 1 << 16

// The reader's buffers: a frame goes into a 64 KiB view (gVisor's largest
// pooled chunk) and, past it, a small tail (an MTU-65520 frame plus the
// vnet header is a few bytes over 64 KiB). A frame of up to copyMax bytes
// is copied out instead, so that the 64 KiB view is reused: a fresh one is
// cleared on allocation, which costs more than copying an ACK.
const (
	readMain = buffer.MaxChunkSize
	readTail = 256
	copyMax  = 8 << 10
)

// newTAPLink wraps tap (ownership passes to the link: close it with
// close) and returns the ethernet endpoint to give the stack. vnet says
// whether tap's frames carry a virtio_net_hdr (IFF_VNET_HDR).
func newTAPLink(tap *os.File, mtu uint32, mac tcpip.LinkAddress, vnet bool) (*tapLink, stack.LinkEndpoint, error) {
	sc, err := tap.SyscallConn()
	if err != nil {
		tap.Close()
		return nil, nil, fmt.Errorf("user-mode network: TAP device: %w", err)
	}
	var fd int
	var derr error
	sc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
	tap.Close()
	if derr != nil {
		return nil, nil, fmt.Errorf("user-mode network: TAP device: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("user-mode network: TAP device: %w", err)
	}
	f := os.NewFile(uintptr(fd), "tap")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	l := &tapLink{
		Endpoint: channel.New(0, mtu+header.EthernetMinimumSize, mac),
		file:     f,
		raw:      raw,
		vnet:     vnet,
	}
	// Frames come from the local kernel, whose checksums are right (or,
	// with vnet, partial and never checked on their way to a local
	// socket, which is where the stack's terminate).
	l.LinkEPCapabilities = stack.CapabilityRXChecksumOffload
	if vnet {
		l.SupportedGSOKind = stack.HostGSOSupported
	}
	return l, ethernet.New(l), nil
}

// GSOMaxSize implements stack.GSOEndpoint: the largest segment the stack
// may hand over (host GSO, with vnet only).
func (l *tapLink) GSOMaxSize() uint32 {
	if !l.vnet {
		return 0
	}
	return gsoMaxSize
}

// start starts reading frames. It is separate from Attach so that the
// stack is complete (handlers, servers) before the first frame arrives:
// a SYN read too early would be answered with a RST.
func (l *tapLink) start() {
	l.started.Do(func() {
		l.wg.Add(1)
		go l.read()
	})
}

// read delivers each frame read from the TAP device until it is closed.
func (l *tapLink) read() {
	defer l.wg.Done()
	hdr := 0
	if l.vnet {
		hdr = vnetHdrSize
	}
	var big, tail *buffer.View
	defer func() {
		if big != nil {
			big.Release()
		}
		if tail != nil {
			tail.Release()
		}
	}()
	iov := make([][]byte, 2)
	for {
		if big == nil {
			big = buffer.NewViewSize(readMain)
		}
		if tail == nil {
			tail = buffer.NewViewSize(readTail)
		}
		iov[0], iov[1] = big.AsSlice(), tail.AsSlice()
		var n int
		var rerr error
		err := l.raw.Read(func(fd uintptr) bool {
			n, rerr = unix.Readv(int(fd), iov)
			return rerr != unix.EAGAIN
		})
		if err != nil || rerr != nil || n == 0 {
			// Closed by us, or the sandbox's end is gone.
			return
		}
		if n < hdr+header.EthernetMinimumSize {
			continue
		}
		frame := big.AsSlice()[hdr:min(n, readMain)]
		if n > readMain && isICMP(frame) {
			// A frame past 64 KiB (MTU 65520 with vnet): divert wants
			// it whole, which only an echo request needs.
			frame = append(slices.Clip(frame), tail.AsSlice()[:n-readMain]...)
		}
		if l.divert != nil && l.divert(frame) {
			continue
		}
		var payload buffer.Buffer
		switch {
		case n <= copyMax:
			payload = buffer.MakeWithData(frame)
		case n <= readMain:
			big.CapLength(n)
			big.TrimFront(hdr)
			payload = buffer.MakeWithView(big)
			big = nil
		default:
			big.TrimFront(hdr)
			payload = buffer.MakeWithView(big)
			tail.CapLength(n - readMain)
			payload.Append(tail)
			big, tail = nil, nil
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
		l.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// isICMP says whether frame carries ICMP or ICMPv6 (divert's business).
func isICMP(frame []byte) bool {
	const eth = header.EthernetMinimumSize
	if len(frame) < eth+header.IPv6MinimumSize {
		return false
	}
	switch header.Ethernet(frame).Type() {
	case header.IPv4ProtocolNumber:
		return frame[eth+9] == uint8(header.ICMPv4ProtocolNumber)
	case header.IPv6ProtocolNumber:
		return frame[eth+6] == uint8(header.ICMPv6ProtocolNumber)
	}
	return false
}

// vnetHeader is the virtio_net_hdr for pkt: the partial checksum's place
// and, for a segment longer than its MSS, how the kernel is to cut it.
func vnetHeader(pkt *stack.PacketBuffer, b *[vnetHdrSize]byte) {
	*b = [vnetHdrSize]byte{}
	gso := pkt.GSOOptions
	if gso.Type == stack.GSONone {
		return
	}
	hdrLen := uint16(pkt.HeaderSize())
	binary.LittleEndian.PutUint16(b[2:], hdrLen)
	if gso.NeedsCsum {
		b[0] = vnetFlagNeedsCsum
		binary.LittleEndian.PutUint16(b[6:], uint16(header.EthernetMinimumSize+gso.L3HdrLen))
		binary.LittleEndian.PutUint16(b[8:], gso.CsumOffset)
	}
	if pkt.Data().Size() > int(gso.MSS) {
		switch gso.Type {
		case stack.GSOTCPv4:
			b[1] = vnetGSOTCPv4
		case stack.GSOTCPv6:
			b[1] = vnetGSOTCPv6
		default:
			return // not offered (SupportedGSO is host GSO only)
		}
		binary.LittleEndian.PutUint16(b[4:], gso.MSS)
	}
}

// WritePackets writes each frame with one writev(2).
func (l *tapLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	var vh [vnetHdrSize]byte
	var iov [][]byte
	for _, pkt := range pkts.AsSlice() {
		iov = iov[:0]
		if l.vnet {
			vnetHeader(pkt, &vh)
			iov = append(iov, vh[:])
		}
		iov = append(iov, pkt.AsSlices()...)
		var werr error
		err := l.raw.Write(func(fd uintptr) bool {
			_, werr = unix.Writev(int(fd), iov)
			return werr != unix.EAGAIN
		})
		if err != nil {
			werr = err
		}
		if werr != nil {
			if n == 0 {
				return 0, &tcpip.ErrClosedForSend{}
			}
			break
		}
		n++
	}
	return n, nil
}

// writeFrame writes one frame the stack did not make (an ICMP echo reply),
// its checksums complete.
func (l *tapLink) writeFrame(frame []byte) error {
	iov := [][]byte{frame}
	if l.vnet {
		iov = [][]byte{make([]byte, vnetHdrSize), frame}
	}
	var werr error
	err := l.raw.Write(func(fd uintptr) bool {
		_, werr = unix.Writev(int(fd), iov)
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return werr
}

// Wait does nothing: the stack calls it while holding its own lock, which
// the reader may be waiting for to deliver a frame. Network.Close calls
// waitReader after the stack is closed instead.
func (l *tapLink) Wait() {}

// waitReader waits for the reader to end (after close).
func (l *tapLink) waitReader() { l.wg.Wait() }

// close closes the TAP device, which ends the reader.
func (l *tapLink) close() error { return l.file.Close() }
