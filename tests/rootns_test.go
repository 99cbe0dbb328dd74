package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// Root inside owns the sandbox's network, UTS and IPC namespaces, as after
// `unshare -rn`: they are created inside the command's nested user
// namespace (sandbox/nested.go, stage nest.c nest_hold), while the mounts
// stay locked (TestEscapeRootCannotUndoMounts runs the same modes).

// rootNetModes are the ways a root command gets a network of its own.
var rootNetModes = [][]string{
	{"--root"},
	{"--root", "--map", "single"},
	{"--root", "--net", "user"},
}

func TestRootOwnsItsNetwork(t *testing.T) {
	requireUnprivileged(t)
	for _, mode := range rootNetModes {
		// A link of a kind this kernel builds in (bridge), brought up,
		// and an address added: netlink with CAP_NET_ADMIN.
		script := `ip link add d0 type bridge && ip link set d0 up && ip addr add 10.9.9.9/32 dev lo && ip -br link show d0 && ip -br addr show lo`
		res := nsbox(append(append([]string{"run"}, mode...), "--", "sh", "-c", script)...)
		res.Assert(t, icmd.Success)
		assert.Check(t, is.Contains(res.Stdout(), "d0 "), "%v", mode)
		assert.Check(t, is.Contains(res.Stdout(), "10.9.9.9/32"), "%v", mode)
	}
	// The issue's own command. A kernel without CONFIG_DUMMY answers
	// "Unknown device type" even to real root; what must never come back
	// is a refusal.
	res := nsbox("run", "--root", "--", "ip", "link", "add", "d0", "type", "dummy")
	if res.ExitCode != 0 {
		assert.Check(t, is.Contains(res.Stderr(), "Unknown device type"))
	}
	assert.Check(t, !strings.Contains(res.Combined(), "not permitted"), res.Combined())
	// Without --root the command holds no capability: refused.
	res = nsbox("run", "--", "ip", "link", "add", "d0", "type", "bridge")
	assert.Check(t, res.ExitCode != 0)
	assert.Check(t, is.Contains(res.Stderr(), "Operation not permitted"))
}

// --net user: root may reconfigure the TAP nsbox brought up, and it is up
// with its address and route first.
func TestRootNetUserAddresses(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("run", "--root", "--net", "user", "--", "sh", "-c",
		"ip -br addr show tap0; ip route show default; ip addr add 10.0.2.77/24 dev tap0 && ip -br addr show tap0")
	res.Assert(t, icmd.Success)
	lines := splitLines(res.Stdout())
	assert.Assert(t, is.Len(lines, 3), res.Stdout())
	assert.Check(t, is.Contains(lines[0], "10.0.2.100/24"))
	assert.Check(t, is.Contains(lines[1], "default via 10.0.2.2 dev tap0"))
	assert.Check(t, is.Contains(lines[2], "10.0.2.77/24"))
}

func TestRootOwnsItsHostname(t *testing.T) {
	requireUnprivileged(t)
	before, err := os.Hostname()
	assert.NilError(t, err)
	for _, mode := range rootNetModes {
		res := nsbox(append(append([]string{"run"}, mode...), "--", "sh", "-c", "hostname rootns-x && hostname")...)
		res.Assert(t, icmd.Expected{Out: "rootns-x"})
	}
	after, err := os.Hostname()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(after, before), "the host's hostname changed")
	// Not root: refused.
	res := nsbox("run", "--", "hostname", "rootns-y")
	assert.Check(t, res.ExitCode != 0)
}

// Raw sockets (IPv4 ICMP and packet) need CAP_NET_RAW over the network
// namespace: root has it, busybox ping (raw ICMP as root) works.
func TestRootRawSockets(t *testing.T) {
	requireUnprivileged(t)
	for _, mode := range rootNetModes {
		res := nsboxWith(append(append([]string{"run"}, mode...), helperArgs("raw")...))
		res.Assert(t, icmd.Expected{Out: "raw ok\npacket ok\n"})
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		cannotRun(t, "no /bin/busybox (busybox-static)")
	}
	res := nsbox("run", "--root", "--", "/bin/busybox", "ping", "-c", "1", "-W", "5", "127.0.0.1")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), "1 packets received"))
	// A plain command: refused (its ICMP goes through datagram sockets).
	res = nsboxWith(append([]string{"run"}, helperArgs("raw")...))
	res.Assert(t, icmd.Expected{Out: "raw EPERM\npacket EPERM\n"})
}

// rawHelper opens a raw IPv4 ICMP socket and a packet socket.
func rawHelper() int {
	for _, s := range []struct {
		name          string
		family, proto int
	}{{"raw", unix.AF_INET, unix.IPPROTO_ICMP}, {"packet", unix.AF_PACKET, int(htons(unix.ETH_P_ALL))}} {
		fd, err := unix.Socket(s.family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, s.proto)
		if err == nil {
			unix.Close(fd)
		}
		fmt.Printf("%s %s\n", s.name, errnoName(err))
	}
	return 0
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// nsbox exec into a root sandbox gets the same powers over the same
// namespaces: what one joined command sets, the next one sees.
func TestRootExecOwnsNamespaces(t *testing.T) {
	s := newStateEnv(t)
	s.start("rootns", "--root", "--", "sleep", "60")
	s.run("exec", "rootns", "--", "sh", "-c", "hostname second && ip link add e0 type bridge").Assert(t, icmd.Success)
	res := s.run("exec", "rootns", "--", "sh", "-c", "hostname && ip -br link show e0")
	res.Assert(t, icmd.Success)
	assert.Check(t, strings.HasPrefix(res.Stdout(), "second\ne0 "), res.Stdout())
}

// TestRootNSProcSources: a source of the host's on procfs whose content
// depends on the looker's namespaces (/proc/net, the network and IPC
// sysctls) is bound as the sandbox's, as if the command had looked it
// up: PID 1 makes its mounts in the sandbox's network and IPC namespaces
// (with the nested namespaces made beside it, it joins them before such
// a mount). Never the host's interfaces, nor the host's IPC limits.
func TestRootNSProcSources(t *testing.T) {
	requireUnprivileged(t)
	for _, mode := range [][]string{{"--root"}, {"--root", "--map", "single"}} {
		args := append(append([]string{"run"}, mode...), "--ro-bind", "/proc/net/dev:/mnt/dev",
			"--ro-bind", "/proc/sys/kernel/shmmni:/mnt/shmmni", "--", "sh", "-c",
			`tail -n +3 /mnt/dev | cut -d: -f1 | tr -d ' '; echo 100 > /proc/sys/kernel/shmmni && cat /mnt/shmmni`)
		res := nsbox(args...)
		res.Assert(t, icmd.Success)
		assert.Check(t, is.Equal(res.Stdout(), "lo\n100\n"), "%v", mode)
	}
}
