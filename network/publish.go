package network

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

// ParsePublish parses a published port as a user writes it (nsbox run's
// -p), rootlesskit's port spec: [HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|/udp]. IPv6 host addresses go in
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
		return Publish{}, publishError(s, fmt.Sprintf("protocol %q: use tcp or udp", proto), "")
	}
	// HOSTPORT:SANDBOXPORT alone: portutil wants the host address first.
	if !strings.HasPrefix(body, "[") && strings.Count(body, ":") == 1 {
		body = "127.0.0.1:" + body
	}
	ps, err := portutil.ParsePortSpec(body + "/" + proto)
	if err != nil {
		return Publish{}, publishError(s, err.Error(), "write [HOSTIP:]HOSTPORT:SANDBOXPORT[/tcp|/udp], e.g. 127.0.0.1:8080:80/tcp")
	}
	if ps.ChildIP != "" {
		return Publish{}, publishError(s, "a sandbox address cannot be chosen (the sandbox is 10.0.2.100)", "write [HOSTIP:]HOSTPORT:SANDBOXPORT")
	}
	for _, n := range []int{ps.ParentPort, ps.ChildPort} {
		if n < 1 || n > 65535 {
			return Publish{}, publishError(s, fmt.Sprintf("port %d is out of range", n), "ports are 1-65535")
		}
	}
	if err := portutil.ValidatePortSpec(*ps, nil); err != nil {
		return Publish{}, publishError(s, err.Error(), "ports are 1-65535")
	}
	host, err := netip.ParseAddr(ps.ParentIP)
	if err != nil {
		return Publish{}, publishError(s, fmt.Sprintf("host address %q: %v", ps.ParentIP, err), "")
	}
	return Publish{Proto: ps.Proto, Host: netip.AddrPortFrom(host.Unmap(), uint16(ps.ParentPort)), SandboxPort: uint16(ps.ChildPort)}, nil
}

// publishError is ParsePublish's error for spec.
func publishError(spec, problem, fix string) error {
	return &Error{Field: "Publish", Value: spec, Problem: problem, Fix: fix}
}
