package tests

import (
	"os"
	"testing"

	"github.com/nsbox/nsbox/network"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// --net user forwards ICMP echo with the launcher's unprivileged ICMP
// socket: the host must let the test user's groups open one.
func requireHostPing(t *testing.T) {
	t.Helper()
	requireNetTools(t)
	if !network.PingAllowed() {
		first, last := network.PingGroupRange()
		cannotRun(t, "net.ipv4.ping_group_range is %d %d, which excludes gid %d; fix: hack/setup-host.sh", first, last, os.Getgid())
	}
}

// pingOnce is a Python ICMP echo client (a datagram ICMP socket, which
// net.ipv4.ping_group_range lets the sandbox's users open): one echo to
// argv[1], waiting argv[2] seconds, then "1 packets received" or "0 packets
// received", as ping prints. Raw-socket pings such as busybox's work only
// for root inside, which owns the sandbox's network namespace
// (sandbox/nested.go).
const pingOnce = `import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); s.settimeout(float(sys.argv[2]))
s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"nsbox", (sys.argv[1], 0))
try:
    s.recvfrom(512); print("1 packets received")
except socket.timeout:
    print("0 packets received"); sys.exit(1)
`

// The gateway is the host's loopback only with --allow-host-loopback, and
// a deny rule wins over it.
func TestNetUserPingGateway(t *testing.T) {
	requireHostPing(t)
	ping := []string{"--", requirePython(t), "-c", pingOnce, "10.0.2.2", "5"}
	res := nsbox(append([]string{"run", "--net", "user", "--allow-host-loopback"}, ping...)...)
	res.Assert(t, icmd.Expected{Out: "1 packets received"})

	ping[5] = "2" // no reply is coming: do not wait long for it
	res = nsbox(append([]string{"run", "--net", "user", "--verbose"}, ping...)...)
	assert.Check(t, res.ExitCode != 0, "ping got a reply: %s", res.Stdout())
	assert.Check(t, is.Contains(res.Stdout(), "0 packets received"))
	assert.Check(t, is.Contains(res.Stderr(), "host loopback is not reachable"))

	res = nsbox(append([]string{"run", "--net", "user", "--allow-host-loopback", "--deny", "10.0.2.2/32", "--verbose"}, ping...)...)
	assert.Check(t, res.ExitCode != 0, "ping got a reply: %s", res.Stdout())
	assert.Check(t, is.Contains(res.Stdout(), "0 packets received"))
	assert.Check(t, is.Contains(res.Stderr(), "deny (--deny 10.0.2.2/32)"))

	// Root inside owns the sandbox's network namespace and opens a raw
	// socket (busybox's ping): its hand-made packets still meet the
	// policy outside, which sees only what comes out of the TAP.
	root := []string{"run", "--net", "user", "--root", "--verbose"}
	rawPing := []string{"--", "busybox", "ping", "-c", "1", "-W", "2", "10.0.2.2"}
	res = nsbox(append(append(root, "--allow-host-loopback"), rawPing...)...)
	res.Assert(t, icmd.Expected{Out: "1 packets received"})
	res = nsbox(append(root, rawPing...)...)
	assert.Check(t, res.ExitCode != 0, "raw ping got a reply: %s", res.Stdout())
	assert.Check(t, is.Contains(res.Stderr(), "host loopback is not reachable"))
	res = nsbox(append(append(root, "--allow-host-loopback", "--deny", "10.0.2.2/32"), rawPing...)...)
	assert.Check(t, res.ExitCode != 0, "raw ping got a reply: %s", res.Stdout())
	assert.Check(t, is.Contains(res.Stderr(), "deny (--deny 10.0.2.2/32)"))
}

// The sandbox's own user pings without privilege, as on a stock host: PID 1
// opens net.ipv4.ping_group_range in the sandbox's network namespace, and
// the reply carries the sandbox's identifier back. Python opens the ICMP
// socket (busybox's ping only knows raw ones), over IPv4 and IPv6.
func TestNetUserPingUnprivileged(t *testing.T) {
	requireHostPing(t)
	client := `import socket, struct
for fam, proto, typ, addr in ((socket.AF_INET, socket.IPPROTO_ICMP, 8, "10.0.2.2"),
                              (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, "fd00::2")):
    s = socket.socket(fam, socket.SOCK_DGRAM, proto); s.settimeout(5)
    s.sendto(struct.pack("!BBHHH", typ, 0, 0, 0, 7) + b"nsbox", (addr, 0))
    reply, src = s.recvfrom(512)
    print(src[0], struct.unpack("!H", reply[6:8])[0], reply[8:].decode())
`
	res := nsbox("run", "--net", "user", "--allow-host-loopback", "--", requirePython(t), "-c", client)
	res.Assert(t, icmd.Expected{Out: "10.0.2.2 7 nsbox\nfd00::2 7 nsbox\n"})
	res = nsbox("run", "--net", "user", "--", "cat", "/proc/sys/net/ipv4/ping_group_range")
	res.Assert(t, icmd.Success)
	assert.Check(t, res.Stdout() != "1\t0\n", "ping_group_range inside: %q", res.Stdout())
}
