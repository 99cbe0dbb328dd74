package tests

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// wildcardGreeter serves "hello from the host\n" on 0.0.0.0 and on :: (one
// port each, as a service bound to every address is) and counts clients by
// the local address they reached.
func wildcardGreeter(t *testing.T) (port4, port6 int, reached func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	serve := func(network, addr string) int {
		l := serveConns(t, network, addr, func(c net.Conn) {
			mu.Lock()
			seen = append(seen, c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String())
			mu.Unlock()
			io.WriteString(c, "hello from the host\n")
			c.Close()
		})
		return l.Addr().(*net.TCPAddr).Port
	}
	port4 = serve("tcp4", "0.0.0.0:0")
	port6 = serve("tcp6", "[::]:0")
	return port4, port6, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// hostGlobalAddrs returns the host's own non-loopback, non-link-local
// addresses that a sandbox can name: those inside the sandbox's own
// 10.0.2.0/24 and fd00::/64 mean the sandbox's network there.
func hostGlobalAddrs(t *testing.T) []netip.Addr {
	t.Helper()
	ifaddrs, err := net.InterfaceAddrs()
	assert.NilError(t, err)
	var out []netip.Addr
	for _, ia := range ifaddrs {
		p, err := netip.ParsePrefix(ia.String())
		assert.NilError(t, err)
		a := p.Addr().Unmap()
		if !a.IsGlobalUnicast() || netip.MustParsePrefix("10.0.2.0/24").Contains(a) || netip.MustParsePrefix("fd00::/64").Contains(a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Issue 21, item 5: a service bound to 0.0.0.0 or :: is reachable through
// each of the host's own addresses, and --deny-private used to let the
// sandbox dial them when they were global (only 10.0.2.2 and loopback
// were refused). Now every address of the host is refused, read from the
// kernel when checked. Where the host has no such address, TestRemote's
// "deny-private refuses the host itself" proves the same in a namespace
// it makes (v4 and v6).
func TestNetUserDenyPrivateRefusesTheHost(t *testing.T) {
	requireNetTools(t)
	addrs := hostGlobalAddrs(t)
	if len(addrs) == 0 {
		t.Log("no global address on this host: TestRemote covers the rule in a namespace of its own")
		return
	}
	port4, port6, reached := wildcardGreeter(t)
	var script []string
	for _, a := range addrs {
		port := port4
		if a.Is6() {
			port = port6
		}
		script = append(script, fmt.Sprintf("echo %s: $(busybox nc -w 5 %s %d)", a, a, port))
	}
	res := nsbox("run", "--net", "user", "--deny-private", "--verbose", "--", "sh", "-c", strings.Join(script, "; "))
	res.Assert(t, icmd.Success)
	for _, a := range addrs {
		port := port4
		if a.Is6() {
			port = port6
		}
		assert.Check(t, is.Contains(res.Stdout(), a.String()+":\n"), "%s reached the host", a)
		assert.Check(t, is.Contains(res.Stderr(), fmt.Sprintf("→ %s: deny (--deny-private: an address of the host itself)", netip.AddrPortFrom(a, uint16(port)))))
	}
	assert.Check(t, is.Len(reached(), 0), "%s", res.Stdout())
	// The control: the same sandbox without --deny-private reaches every
	// one of them.
	res = nsbox("run", "--net", "user", "--", "sh", "-c", strings.Join(script, "; "))
	res.Assert(t, icmd.Success)
	for _, a := range addrs {
		assert.Check(t, is.Contains(res.Stdout(), a.String()+": hello from the host\n"))
	}
	assert.Check(t, is.Len(reached(), len(addrs)), "%s", res.Stdout())
}
