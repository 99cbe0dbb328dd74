package netstack

import (
	"fmt"
	"os"
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
// which leaks an eventfd per endpoint (its stop fd is never closed) and
// blocks in readv outside Go's poller. Here the fd is non-blocking and
// owned by an *os.File in Go's poller: closing it ends the reader.
//
// The embedded channel.Endpoint supplies the bookkeeping (MTU, link
// address, dispatcher); its queue is unused: WritePackets writes directly
// from the sending goroutine.
type tapLink struct {
	*channel.Endpoint
	file *os.File
	raw  interface {
		Write(func(uintptr) bool) error
	}
	wg      sync.WaitGroup // the reader
	started sync.Once
	// divert, when set, sees each frame first; true means it took the
	// frame and the stack must not see it (ICMP echo, icmp.go).
	divert func(frame []byte) bool
}

var _ stack.LinkEndpoint = (*tapLink)(nil)

// newTAPLink wraps tap (ownership passes to the link: close it with
// close) and returns the ethernet endpoint to give the stack.
func newTAPLink(tap *os.File, mtu uint32, mac tcpip.LinkAddress) (*tapLink, stack.LinkEndpoint, error) {
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
	}
	// Frames come from the local kernel, whose checksums are right.
	l.LinkEPCapabilities = stack.CapabilityRXChecksumOffload
	return l, ethernet.New(l), nil
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
	size := int(l.MTU())
	for {
		v := buffer.NewViewSize(size)
		n, err := l.file.Read(v.AsSlice())
		if err != nil {
			// Closed by us, or the sandbox's end is gone.
			v.Release()
			return
		}
		if l.divert != nil && l.divert(v.AsSlice()[:n]) {
			v.Release()
			continue
		}
		v.CapLength(n)
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
		l.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// WritePackets writes each frame with one writev(2).
func (l *tapLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	var iov [][]byte
	for _, pkt := range pkts.AsSlice() {
		iov = pkt.AsSlices()
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

// writeFrame writes one frame the stack did not make (an ICMP echo reply).
func (l *tapLink) writeFrame(frame []byte) error {
	var werr error
	err := l.raw.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
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
