package network

import (
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The host itself is reachable through every address it answers on, not
// only 127.0.0.1: a service bound to 0.0.0.0 or :: listens on the host's
// global addresses too, and the launcher's connect(2) to one of them
// never leaves the host. So --deny-private also refuses "the host"
// (Rule.Host), the set of destinations the host's kernel delivers to
// itself:
//
//   - every address of every interface (RTM_GETADDR), v4 and v6, whether
//     the interface is up or not;
//   - every local and anycast route (RTM_GETROUTE, RTN_LOCAL and
//     RTN_ANYCAST): "ip route add local 198.51.100.0/24 dev lo" makes a
//     whole prefix the host's own without an address on any interface.
//
// The set is read from the kernel when a rule is checked, at most every
// hostAddrsMaxAge: an address added later is refused within that time,
// and a check costs two netlink dumps at most that often (a few dozen
// microseconds each), not one per connection.

// hostAddrsMaxAge is how long a read of the host's addresses is used.
const hostAddrsMaxAge = 200 * time.Millisecond

// hostAddrs is the process's cache of the host's own destinations.
var hostAddrs hostAddrCache

// hostAddrCache holds the prefixes the host delivers to itself.
type hostAddrCache struct {
	mu       sync.Mutex     // guards the fields below
	read     time.Time      // when prefixes was read; zero: never
	prefixes []netip.Prefix // single addresses are /32 and /128
	read1    func() ([]netip.Prefix, error)
}

// contains reports whether a is one of the host's own addresses, reading
// them again when the last read is older than hostAddrsMaxAge. If the
// kernel cannot be asked, the last good read is used (none: no match;
// the rule's ranges still apply).
func (c *hostAddrCache) contains(a netip.Addr) bool {
	a = a.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); c.read.IsZero() || now.Sub(c.read) >= hostAddrsMaxAge {
		read := c.read1
		if read == nil {
			read = readHostPrefixes
		}
		if p, err := read(); err == nil {
			c.prefixes, c.read = p, now
		}
	}
	for _, p := range c.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// readHostPrefixes asks the kernel for the destinations the host delivers
// to itself: every interface address and every local or anycast route.
func readHostPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseNetlinkMessage(addrs)
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		for _, at := range attrs {
			// IFA_LOCAL is the address itself; IFA_ADDRESS the peer's
			// on a point-to-point link, else the same address. Both are
			// kept: a peer address only ever adds a refusal.
			if at.Attr.Type == syscall.IFA_LOCAL || at.Attr.Type == syscall.IFA_ADDRESS {
				if a, ok := netip.AddrFromSlice(at.Value); ok {
					out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				}
			}
		}
	}
	routes, err := syscall.NetlinkRIB(syscall.RTM_GETROUTE, syscall.AF_UNSPEC)
	if err != nil {
		return nil, err
	}
	if msgs, err = syscall.ParseNetlinkMessage(routes); err != nil {
		return nil, err
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWROUTE || len(m.Data) < syscall.SizeofRtMsg {
			continue
		}
		rt := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
		if rt.Type != unix.RTN_LOCAL && rt.Type != unix.RTN_ANYCAST {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		for _, at := range attrs {
			if at.Attr.Type != syscall.RTA_DST {
				continue
			}
			if a, ok := netip.AddrFromSlice(at.Value); ok {
				bits := int(rt.Dst_len)
				if a.Is4In6() {
					a, bits = a.Unmap(), max(bits-96, 0)
				}
				if p, err := a.Prefix(bits); err == nil {
					out = append(out, p)
				}
			}
		}
	}
	return out, nil
}
