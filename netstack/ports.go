package netstack

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rootless-containers/rootlesskit/v2/pkg/port/portutil"
)

// Publish is one forwarded port: the launcher listens on Host and passes
// each connection (or UDP flow) to SandboxPort on the sandbox's address.
type Publish struct {
	Proto       string // "tcp" or "udp"
	Host        netip.AddrPort
	SandboxPort uint16
}

func (p Publish) String() string {
	return fmt.Sprintf("%s:%d/%s", p.Host, p.SandboxPort, p.Proto)
}

// ParsePublish parses the argument of -p/--publish, rootlesskit's port
// spec: [HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|/udp]. IPv6 host addresses go in
// brackets ([::1]:8080:80). Without HOSTIP the port is published on
// 127.0.0.1 only (a safe default: 0.0.0.0 must be asked for); without a
// protocol it is tcp.
func ParsePublish(s string) (Publish, error) {
	spec := s
	body, proto, hasProto := strings.Cut(spec, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return Publish{}, fmt.Errorf("-p %s: protocol %q: use tcp or udp", s, proto)
	}
	// HOSTPORT:SANDBOXPORT alone: portutil wants the host address first.
	if !strings.HasPrefix(body, "[") && strings.Count(body, ":") == 1 {
		body = "127.0.0.1:" + body
	}
	ps, err := portutil.ParsePortSpec(body + "/" + proto)
	if err != nil {
		return Publish{}, fmt.Errorf("-p %s: %v; fix: write [HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80/tcp", s, err)
	}
	if ps.ChildIP != "" {
		return Publish{}, fmt.Errorf("-p %s: a sandbox address cannot be chosen (the sandbox is 10.0.2.100); fix: write [HOSTIP:]HOSTPORT:SANDBOXPORT", s)
	}
	for _, n := range []int{ps.ParentPort, ps.ChildPort} {
		if n < 1 || n > 65535 {
			return Publish{}, fmt.Errorf("-p %s: port %d is out of range; fix: ports are 1-65535", s, n)
		}
	}
	if err := portutil.ValidatePortSpec(*ps, nil); err != nil {
		return Publish{}, fmt.Errorf("-p %s: %v; fix: ports are 1-65535", s, err)
	}
	host, err := netip.ParseAddr(ps.ParentIP)
	if err != nil {
		return Publish{}, fmt.Errorf("-p %s: host address %q: %v", s, ps.ParentIP, err)
	}
	return Publish{Proto: ps.Proto, Host: netip.AddrPortFrom(host.Unmap(), uint16(ps.ParentPort)), SandboxPort: uint16(ps.ChildPort)}, nil
}
