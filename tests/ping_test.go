package tests

import (
	"os"
	"testing"

	"github.com/nsbox/nsbox/netstack"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// --net user forwards ICMP echo with the launcher's unprivileged ICMP
// socket: the host must let the test user's groups open one.
func requireHostPing(t *testing.T) {
	t.Helper()
	requireNetTools(t)
	if !netstack.PingAllowed() {
		first, last := netstack.PingGroupRange()
		cannotRun(t, "net.ipv4.ping_group_range is %d %d, which excludes gid %d; fix: hack/setup-host.sh", first, last, os.Getgid())
	}
}

// The gateway is the host's loopback only with --allow-host-loopback, and
// a deny rule wins over it. busybox ping uses a raw socket, so it runs as
// root inside (CAP_NET_RAW in the sandbox's own network namespace).
func TestNetUserPingGateway(t *testing.T) {
	requireHostPing(t)
	ping := []string{"--", "busybox", "ping", "-c", "1", "-W", "5", "10.0.2.2"}
	res := nsbox(append([]string{"run", "--net", "user", "--root", "--allow-host-loopback"}, ping...)...)
	res.Assert(t, icmd.Expected{Out: "1 packets received"})

	ping[6] = "2" // no reply is coming: do not wait long for it
	res = nsbox(append([]string{"run", "--net", "user", "--root", "--verbose"}, ping...)...)
	assert.Check(t, res.ExitCode != 0, "ping got a reply: %s", res.Stdout())
	assert.Check(t, is.Contains(res.Stdout(), "0 packets received"))
	assert.Check(t, is.Contains(res.Stderr(), "host loopback is not reachable"))

	res = nsbox(append([]string{"run", "--net", "user", "--root", "--allow-host-loopback", "--deny", "10.0.2.2/32", "--verbose"}, ping...)...)
	assert.Check(t, res.ExitCode != 0, "ping got a reply: %s", res.Stdout())
	assert.Check(t, is.Contains(res.Stdout(), "0 packets received"))
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
