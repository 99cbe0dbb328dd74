package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"

	"github.com/nsbox/nsbox/internal/remedy"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// Network is a sandbox's network beyond its loopback link, in one of two
// forms. With Serve: a TAP device PID 1 creates in the sandbox's network
// namespace and a service in the launcher that serves it (nsbox's
// netstack for --net user). With Attach: an external helper (slirp4netns,
// pasta) attached to PID 1's namespace while PID 1 waits, which then
// configures what Attach returns. A nil *Network leaves lo only.
type Network struct {
	// TAP describes the device PID 1 creates and configures (Serve).
	TAP TAP `json:"tap"`
	// Serve is called in the launcher once PID 1 created the device, with
	// its file descriptor (Serve owns it from then on). It returns the
	// function that stops the service, called once: when PID 1 reports
	// the command's exit (it exits next), else by Sandbox.Wait once PID 1
	// ended; Wait waits for it. Not part of the JSON form.
	Serve func(tap *os.File) (stop func() error, err error) `json:"-"`
	// Attach is called in the launcher with PID 1's pid, before the
	// command starts. It returns the device PID 1 is to configure (a TAP
	// without Name: nothing to do) and the function that stops the
	// helper. Not part of the JSON form.
	Attach func(pid1 int) (tap TAP, stop func() error, err error) `json:"-"`
}

// TAP is a TAP device inside the sandbox: ethernet frames, no packet
// information header, addresses and default routes set, link up.
type TAP struct {
	Name string `json:"name"`
	// MTU of the link; 0 keeps the kernel's default (1500).
	MTU int `json:"mtu,omitempty"`
	// VnetHdr opens the device with IFF_VNET_HDR and turns on its
	// checksum and TCP segmentation offloads (TUNSETOFFLOAD: TUN_F_CSUM,
	// TUN_F_TSO4, TUN_F_TSO6): every frame on the file descriptor Serve
	// gets then starts with a struct virtio_net_hdr, and TCP crosses in
	// segments of up to 64 KiB. Serve only; false: plain frames.
	VnetHdr bool `json:"vnet_hdr,omitempty"`
	// Address4 and Address6 are "ADDR/BITS"; Gateway4 and Gateway6 the
	// default routes' next hops. Empty fields are left out; IPv6 is
	// skipped on a kernel without it.
	Address4 netip.Prefix `json:"address4,omitzero"`
	Gateway4 netip.Addr   `json:"gateway4,omitzero"`
	Address6 netip.Prefix `json:"address6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
}

// validate checks the network against the namespaces it needs.
func (n *Network) validate(ns Namespaces) error {
	if n == nil {
		return nil
	}
	if !ns.Net {
		return &SpecError{Field: "Network", Problem: "a sandbox network needs a network namespace of its own", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "net"}}
	}
	if (n.Serve == nil) == (n.Attach == nil) {
		return errors.New("network: set exactly one of Serve and Attach")
	}
	if n.Serve != nil && (n.TAP.Name == "" || len(n.TAP.Name) >= unix.IFNAMSIZ) {
		return fmt.Errorf("TAP device name %q: must be 1 to %d bytes", n.TAP.Name, unix.IFNAMSIZ-1)
	}
	return nil
}

// records sets the network's part of the stage's config.
func (n *Network) records(c *stage.Config) {
	if n == nil {
		return
	}
	if n.Attach != nil {
		c.NetWait = true
		return
	}
	c.TAP = n.TAP.records()
}

// records is the TAP for the stage (CONFIG, or NET_READY's payload).
func (t TAP) records() *stage.TAP {
	return &stage.TAP{Name: t.Name, MTU: t.MTU, VnetHdr: t.VnetHdr, Address4: t.Address4, Gateway4: t.Gateway4,
		Address6: t.Address6, Gateway6: t.Gateway6}
}

// startNetwork receives the TAP device from PID 1 and starts serving it,
// or attaches the helper and tells PID 1 what to configure.
func startNetwork(sync *os.File, n *Network, pid1 int) (stop func() error, err error) {
	if n.Attach != nil {
		tap, stop, err := n.Attach(pid1)
		if err != nil {
			return nil, err
		}
		if err := stage.WriteMessage(sync, stage.MsgNetReady, 0, stage.EncodeTAP(*tap.records())); err != nil {
			stop()
			return nil, fmt.Errorf("resume PID 1 after the network: %w", err)
		}
		return stop, nil
	}
	tap, err := expectFD(sync, stage.MsgTAP)
	if err != nil {
		return nil, err
	}
	stop, err = n.Serve(tap)
	if err != nil {
		return nil, err
	}
	return stop, nil
}

// stopOnce makes a network's stop function safe to call more than once and
// from two goroutines (Sandbox.watch and Wait): the first call runs it,
// the others wait for it and get its result. nil stays nil.
func stopOnce(stop func() error) func() error {
	if stop == nil {
		return nil
	}
	return sync.OnceValue(stop)
}

// expectFD is expect for a message that carries a file descriptor
// (SCM_RIGHTS): it reads with recvmsg so the descriptor is not lost. An
// ERROR or EXEC_FAILED message in its place becomes the error, as with
// expect.
func expectFD(f *os.File, want uint32) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		hdr  [stage.HeaderSize]byte
		got  int
		fd   = -1
		rerr error
	)
	oob := make([]byte, unix.CmsgSpace(4))
	for got < stage.HeaderSize && rerr == nil {
		err := rc.Read(func(s uintptr) bool {
			n, oobn, _, _, e := unix.Recvmsg(int(s), hdr[got:], oob, unix.MSG_CMSG_CLOEXEC)
			if e == unix.EAGAIN {
				return false
			}
			if e == unix.EINTR {
				return true
			}
			if e != nil {
				rerr = e
				return true
			}
			if n == 0 {
				rerr = io.EOF
				return true
			}
			got += n
			if oobn > 0 {
				if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
					for _, m := range msgs {
						if fds, err := unix.ParseUnixRights(&m); err == nil {
							for _, x := range fds {
								if fd < 0 {
									fd = x
								} else {
									unix.Close(x)
								}
							}
						}
					}
				}
			}
			return true
		})
		if err != nil {
			rerr = err
		}
	}
	closeFD := func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if rerr != nil {
		closeFD()
		if rerr == io.EOF {
			return nil, errStageGone
		}
		return nil, fmt.Errorf("read from the sandbox: %w", rerr)
	}
	// The header is in; a payload (ERROR's text) follows with plain reads.
	m, err := stage.ReadMessageAfter(f, hdr)
	if err != nil {
		closeFD()
		return nil, err
	}
	switch {
	case m.Kind == want && fd >= 0:
		return os.NewFile(uintptr(fd), "tap"), nil
	}
	closeFD()
	return nil, messageError(m, want, " with a file descriptor")
}
