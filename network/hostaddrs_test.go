package network

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// Every address the host's interfaces carry is denied by --deny-private,
// whatever range it is in; other addresses keep their verdicts.
func TestDenyPrivateRefusesTheHostsOwnAddresses(t *testing.T) {
	ifaddrs, err := net.InterfaceAddrs()
	assert.NilError(t, err)
	assert.Assert(t, len(ifaddrs) > 0)
	p := &Policy{Rules: DenyPrivate()}
	for _, ia := range ifaddrs {
		pfx, err := netip.ParsePrefix(ia.String())
		assert.NilError(t, err)
		v, why := p.Check(pfx.Addr(), 80)
		assert.Equal(t, v, Deny, "%v: %s", pfx.Addr(), why)
	}
	// 192.0.2.0/24 is TEST-NET-1: public for the policy. .77 is nobody's
	// here (the test machines carry .2 at most).
	other := netip.MustParseAddr("192.0.2.77")
	own, err := readHostPrefixes()
	assert.NilError(t, err)
	for _, pf := range own {
		if pf.Contains(other) {
			t.Skipf("%v is this host's own (%v)", other, pf)
		}
	}
	v, _ := p.Check(other, 80)
	assert.Equal(t, v, Allow)
}

// The host's addresses are read again when a check finds the last read
// older than hostAddrsMaxAge: an address added while the sandbox runs is
// refused too.
func TestHostAddrCacheRereads(t *testing.T) {
	added := netip.MustParseAddr("198.51.100.9")
	var now []netip.Prefix
	reads := 0
	c := &hostAddrCache{read1: func() ([]netip.Prefix, error) {
		reads++
		return now, nil
	}}
	assert.Assert(t, !c.contains(added))
	now = []netip.Prefix{netip.PrefixFrom(added, 32), netip.MustParsePrefix("2001:db8::/64")}
	// Within the cache's age: the old read stands (no netlink dump per check).
	assert.Assert(t, !c.contains(added))
	assert.Equal(t, reads, 1)
	time.Sleep(hostAddrsMaxAge)
	assert.Assert(t, c.contains(added))
	assert.Assert(t, c.contains(netip.MustParseAddr("::ffff:198.51.100.9")))
	assert.Assert(t, c.contains(netip.MustParseAddr("2001:db8::1234")))
	assert.Assert(t, !c.contains(netip.MustParseAddr("198.51.100.10")))
	assert.Equal(t, reads, 2)
}

// The kernel's local routes count: 127.0.0.0/8 is the host's whole,
// not only 127.0.0.1, and so is every interface address.
func TestReadHostPrefixes(t *testing.T) {
	own, err := readHostPrefixes()
	assert.NilError(t, err)
	has := func(a string) bool {
		for _, p := range own {
			if p.Contains(netip.MustParseAddr(a)) {
				return true
			}
		}
		return false
	}
	assert.Assert(t, has("127.0.0.1"), "%v", own)
	assert.Assert(t, has("127.1.2.3"), "%v", own)
	assert.Assert(t, has("::1"), "%v", own)
}

func BenchmarkHostAddrsRead(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := readHostPrefixes(); err != nil {
			b.Fatal(err)
		}
	}
}
