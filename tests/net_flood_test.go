package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Issue 21, item 6: the --net user launcher re-originates every flow the
// sandbox opens with a host socket, outside every limit the sandbox has.
// These floods come from inside; each test asserts from outside that the
// launcher stays bounded (its RSS, its socket descriptors in
// /proc/PID/fd, the bytes its host sockets queue as ss(8) reports them)
// and that what happens at a cap is what the docs say. Everything stays
// on loopback: the peers are this test's own sockets on 127.0.0.1, the
// DNS upstream a silent socket made here. The figures are logged (-v).

// flooder is the sandbox side, in Python: "ready …" once the flood is
// sent, then it holds everything open until it is killed.
const flooder = `import socket, sys, time, select, struct
mode, gw = sys.argv[1], "10.0.2.2"
if mode == "tcp":
    n, port, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    socks, refused = [], 0
    for i in range(n):
        s = socket.socket(); s.settimeout(5)
        try:
            s.connect((gw, port)); s.setblocking(False); socks.append(s)
        except OSError:
            refused += 1; s.close()
    buf, sent, end = b"x" * 65536, 0, time.time() + secs
    while time.time() < end and socks:
        _, w, _ = select.select([], socks, [], 0.1)
        for s in w:
            try: sent += s.send(buf)
            except OSError: pass
    print("ready connected=%d refused=%d sent=%d" % (len(socks), refused, sent), flush=True)
elif mode == "udp":
    n, port, echo = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"flow %d" % i, (gw, port)); s.close()
    # One more flow, to a server that answers: at the cap it is refused.
    # The refusal is an ICMP port unreachable, and gVisor rate-limits ICMP
    # (a token bucket the flood above emptied): let it refill, and try a
    # few flows, each of which must be refused, never answered.
    time.sleep(1.5)
    for attempt in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        s.connect((gw, echo)); s.send(b"probe")
        try: r = s.recv(100).decode()
        except Exception as e: r = type(e).__name__
        s.close()
        if r != "TimeoutError": break
    print("ready probe=%s" % r, flush=True)
elif mode == "dns":
    n, secs = int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("10.0.2.3", 53)); s.setblocking(False)
    q = b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05flood\x04test\x00\x00\x01\x00\x01"
    rcodes, start = {}, time.time()
    def drain():
        while True:
            try: r = s.recv(512)
            except OSError: return
            rcodes[r[3] & 15] = rcodes.get(r[3] & 15, 0) + 1
    for i in range(n):
        s.send(struct.pack("!H", i % 65536) + q)
        if i % 100 == 99:
            drain(); time.sleep(max(0, start + secs * (i + 1) / n - time.time()))
    time.sleep(0.5); drain()
    print("ready servfail=%d other=%d" % (rcodes.get(2, 0), sum(rcodes.values()) - rcodes.get(2, 0)), flush=True)
sys.stdout.flush()
time.sleep(600)
`

// launcherUse is what a launcher holds on the host.
type launcherUse struct {
	rssKiB      int
	sockets     int   // socket descriptors in /proc/PID/fd
	queuedBytes int64 // receive + send queue memory of those sockets (ss -m: r + w)
	tcpMemPages int   // /proc/net/sockstat "TCP: mem", every socket of the host
}

func (u launcherUse) String() string {
	return fmt.Sprintf("launcher RSS %.1f MiB, %d host sockets queuing %.1f MiB; host TCP memory %.1f MiB",
		float64(u.rssKiB)/1024, u.sockets, float64(u.queuedBytes)/(1<<20), float64(u.tcpMemPages)*float64(os.Getpagesize())/(1<<20))
}

var (
	ssInode = regexp.MustCompile(`\bino:(\d+)`)
	ssMem   = regexp.MustCompile(`skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f\d+,w(\d+)`)
)

// measureLauncher reads pid's use of the host.
func measureLauncher(t *testing.T, pid int) launcherUse {
	t.Helper()
	var u launcherUse
	_, u.rssKiB = procStatus(t, pid)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	assert.NilError(t, err)
	inodes := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	u.sockets = len(inodes)
	out, err := exec.Command("ss", "-tuanmeH").Output()
	assert.NilError(t, err)
	// One socket per line, its skmem on the continuation line.
	text := strings.ReplaceAll(string(out), "\n\t", " ")
	for _, l := range strings.Split(text, "\n") {
		ino, mem := ssInode.FindStringSubmatch(l), ssMem.FindStringSubmatch(l)
		if ino == nil || mem == nil || !inodes[ino[1]] {
			continue
		}
		r, _ := strconv.ParseInt(mem[1], 10, 64)
		w, _ := strconv.ParseInt(mem[2], 10, 64)
		u.queuedBytes += r + w
	}
	b, err := os.ReadFile("/proc/net/sockstat")
	assert.NilError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "TCP:" {
			for i := 1; i+1 < len(f); i += 2 {
				if f[i] == "mem" {
					u.tcpMemPages, _ = strconv.Atoi(f[i+1])
				}
			}
		}
	}
	return u
}

// startFlood runs the flooder in a --net user sandbox with args, waits for
// its "ready" line and returns that line, the launcher's pid and its
// stderr so far.
func startFlood(t *testing.T, nsboxArgs []string, floodArgs ...string) (ready string, pid int, stderr *lockedBuffer) {
	t.Helper()
	args := append(append([]string{"run", "--net", "user"}, nsboxArgs...), "--", requirePython(t), "-c", flooder)
	cmd := exec.Command(nsboxBin, append(args, floodArgs...)...)
	stderr = &lockedBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("nsbox stderr (last 2000 bytes): %s", stderr.tail(2000))
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		assert.Assert(t, strings.HasPrefix(l, "ready"), "flooder: %q; stderr: %s", l, stderr.tail(2000))
		return strings.TrimSpace(l), cmd.Process.Pid, stderr
	case <-time.After(60 * time.Second):
		t.Fatalf("the flood did not finish in 60 s; stderr: %s", stderr.tail(2000))
	}
	return "", 0, nil
}

// lockedBuffer is a bytes buffer safe to write from exec's copier and read
// from the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) > n {
		return string(l.b[len(l.b)-n:])
	}
	return string(l.b)
}

func (l *lockedBuffer) String() string { return l.tail(1 << 30) }

// silentTCPPeer accepts connections on 127.0.0.1 and never reads them.
func silentTCPPeer(t *testing.T) int {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	l := serveConns(t, "tcp4", "127.0.0.1:0", func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// silentUDP is a UDP socket on 127.0.0.1 that never answers.
func silentUDP(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	assert.NilError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).Port
}

func readyField(t *testing.T, ready, key string) int {
	t.Helper()
	for _, f := range strings.Fields(ready) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, err := strconv.Atoi(v)
			assert.NilError(t, err, ready)
			return n
		}
	}
	t.Fatalf("no %s in %q", key, ready)
	return 0
}

// 40 and 200 connections to a peer that never reads, each written to as
// fast as the sandbox can for 3 s. Before: the launcher's host sockets
// queued 150 MiB for 40 (754 MiB for 200), autotuned send buffers of up
// to tcp_wmem's 4 MiB each. Now each queues at most --net-send-buffer
// unsent bytes (TCP_NOTSENT_LOWAT), the relay stops reading the sandbox
// while it waits, and gVisor's window closes (auto-tuned for 16
// connections, 256 KiB for the others); past --net-max-tcp the
// sandbox's SYN gets a reset (256 by default; 128 here to see it).
func TestNetUserFloodTCPToAPeerThatNeverReads(t *testing.T) {
	requireNetTools(t)
	for _, tc := range []struct {
		conns, connected int
		flags            []string
	}{
		{40, 40, nil},
		{200, 200, nil},
		{200, 128, []string{"--net-max-tcp", "128"}},
	} {
		t.Run(strings.Join(append([]string{fmt.Sprint(tc.conns)}, tc.flags...), " "), func(t *testing.T) {
			port := silentTCPPeer(t)
			ready, pid, stderr := startFlood(t, append([]string{"--allow-host-loopback", "--verbose"}, tc.flags...),
				"tcp", fmt.Sprint(tc.conns), fmt.Sprint(port), "3")
			u := measureLauncher(t, pid)
			t.Logf("%d connections (%s): %v", tc.conns, ready, u)
			assert.Check(t, is.Equal(readyField(t, ready, "connected"), tc.connected), ready)
			assert.Check(t, is.Equal(readyField(t, ready, "refused"), tc.conns-tc.connected), ready)
			assert.Check(t, u.sockets <= tc.connected+16, u)
			// Per connection: 256 KiB unsent plus the kernel's
			// bookkeeping of it (ss counts truesize, about 2×).
			assert.Check(t, u.queuedBytes <= int64(tc.connected)*(1<<20), u)
			// gVisor's window (1 MiB a connection) is the rest.
			assert.Check(t, u.rssKiB <= 64*1024+tc.connected*1300, u)
			if tc.connected < tc.conns {
				assert.Check(t, is.Contains(stderr.String(), ": reset: cap of 128 reached (connections at once; fix: --net-max-tcp)"))
			}
		})
	}
}

// 8,000 UDP flows, each a new source port to a host socket that never
// answers. Before: 5,140 host sockets open for 60 s. Now --net-max-udp
// (512 by default) flows at once; past it a new flow's datagram gets
// ICMP port unreachable.
func TestNetUserFloodUDPFlows(t *testing.T) {
	requireNetTools(t)
	silent, echo := silentUDP(t), udpEcho(t)
	ready, pid, stderr := startFlood(t, []string{"--allow-host-loopback", "--verbose"}, "udp", "8000", fmt.Sprint(silent), fmt.Sprint(echo))
	u := measureLauncher(t, pid)
	t.Logf("8000 UDP flows (%s): %v", ready, u)
	assert.Check(t, u.sockets <= 512+16, u)
	assert.Check(t, is.Equal(ready, "ready probe=ConnectionRefusedError"), "a flow past the cap: %s", ready)
	assert.Check(t, u.rssKiB <= 64*1024, u)
	assert.Check(t, is.Contains(stderr.String(), ": port unreachable: cap of 512 reached (flows at once; fix: --net-max-udp)"))
	// Rate-limited: one line a second at most, not one per refusal.
	assert.Check(t, strings.Count(stderr.String(), "cap of 512 reached") <= 10, stderr.String())
}

// 12,000 DNS queries in 2 s to an upstream that never answers. Before:
// 3,460 sockets and goroutines in flight. Now --net-max-dns (128 by
// default) queries are in flight at once; the others are answered
// SERVFAIL at once.
func TestNetUserFloodDNS(t *testing.T) {
	requireNetTools(t)
	upstream := silentUDP(t)
	ready, pid, stderr := startFlood(t, []string{"--dns-server", fmt.Sprintf("127.0.0.1:%d", upstream), "--verbose"}, "dns", "12000", "2")
	u := measureLauncher(t, pid)
	t.Logf("12000 DNS queries in 2 s (%s): %v", ready, u)
	assert.Check(t, u.sockets <= 128+16, u)
	// Answers may be lost on a loaded machine (UDP): most must come back.
	assert.Check(t, readyField(t, ready, "servfail") >= 6000, ready)
	assert.Check(t, u.rssKiB <= 64*1024, u)
	assert.Check(t, is.Contains(stderr.String(), "flood.test. TypeA: SERVFAIL: cap of 128 reached (queries upstream at once; fix: --net-max-dns)"))
}
