package netstack

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/poll"
)

// logLines collects a Network's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(f string, a ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// Past MaxTCP a SYN gets a reset, logged once however many come; a
// closed connection gives its place back.
func TestTCPCapResetsAndGivesBack(t *testing.T) {
	port, _ := echoServer(t, "tcp4", "127.0.0.1:0")
	var log logLines
	sb := newSandbox(t, Config{AllowHostLoopback: true, MaxTCP: 3, Log: log.logf})
	dst := fmt.Sprintf("10.0.2.2:%d", port)
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c, err := sb.dialTCP(dst)
		assert.NilError(t, err)
		open = append(open, c)
	}
	for i := 0; i < 5; i++ {
		_, err := sb.dialTCP(dst)
		assert.ErrorContains(t, err, "refused")
	}
	assert.Equal(t, log.count("cap of 3 reached (connections at once; fix: --net-max-tcp)"), 1, "%v", log.all())
	open[0].Close()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if sb.net.limits.tcp.n.Load() < 3 {
			return poll.Success()
		}
		return poll.Continue("%d connections held", sb.net.limits.tcp.n.Load())
	}, poll.WithTimeout(10*time.Second))
	c, err := sb.dialTCP(dst)
	assert.NilError(t, err)
	c.Close()
}

// Past MaxUDPFlows a new flow is refused (ICMP port unreachable, which
// the sandbox's kernel reports as ECONNREFUSED: tests/net_flood_test.go;
// this test's gVisor stand-in only times out); the flows already open
// keep working.
func TestUDPCapRefusesNewFlows(t *testing.T) {
	port := udpEcho(t, "127.0.0.1:0")
	var log logLines
	sb := newSandbox(t, Config{AllowHostLoopback: true, MaxUDPFlows: 2, Log: log.logf})
	dst := fmt.Sprintf("10.0.2.2:%d", port)
	exchange := func(c net.Conn) error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 16)
		_, err := c.Read(buf)
		return err
	}
	var flows []net.Conn
	for i := 0; i < 3; i++ {
		c, err := sb.dialUDP(dst)
		assert.NilError(t, err)
		defer c.Close()
		flows = append(flows, c)
	}
	assert.NilError(t, exchange(flows[0]))
	assert.NilError(t, exchange(flows[1]))
	assert.Assert(t, exchange(flows[2]) != nil, "a flow past the cap was relayed")
	assert.NilError(t, exchange(flows[0]))
	assert.Equal(t, log.count("cap of 2 reached (flows at once; fix: --net-max-udp)"), 1, "%v", log.all())
}

// Past MaxDNSQueries a query is answered SERVFAIL at once, while the
// ones in flight still wait for their (silent) upstream.
func TestDNSCapAnswersServfail(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	assert.NilError(t, err)
	defer silent.Close()
	up := silent.LocalAddr().(*net.UDPAddr).AddrPort()
	var log logLines
	sb := newSandbox(t, Config{DNSServers: []netip.AddrPort{up}, MaxDNSQueries: 1, Log: log.logf})
	first, err := sb.dialUDP("10.0.2.3:53")
	assert.NilError(t, err)
	defer first.Close()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("slow.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	m, _ := b.Finish()
	_, err = first.Write(m)
	assert.NilError(t, err)
	// The first query is upstream (its goroutine holds the only place).
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if sb.net.limits.dns.n.Load() == 1 {
			return poll.Success()
		}
		return poll.Continue("no query upstream yet")
	}, poll.WithTimeout(5*time.Second))
	second, err := sb.dialUDP("10.0.2.3:53")
	assert.NilError(t, err)
	defer second.Close()
	start := time.Now()
	assert.Equal(t, query(t, second, "other.test."), dnsmessage.RCodeServerFailure)
	assert.Assert(t, time.Since(start) < dnsTimeout, "SERVFAIL came after %v", time.Since(start))
	assert.Equal(t, log.count("dns other.test. TypeA: SERVFAIL: cap of 1 reached"), 1, "%v", log.all())
}

// A host peer that never reads: the host connection holds at most about
// HostSendBuffer unsent bytes (TCP_NOTSENT_LOWAT), the relay stops
// reading, and the sandbox's writes stop once gVisor's window is full,
// instead of the launcher queuing megabytes.
func TestHostSendBufferBoundsUnsentBytes(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	assert.NilError(t, err)
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c // held, never read
		}
	}()
	const unsent = 64 << 10
	sb := newSandbox(t, Config{AllowHostLoopback: true, HostSendBuffer: unsent})
	c, err := sb.dialTCP(fmt.Sprintf("10.0.2.2:%d", l.Addr().(*net.TCPAddr).Port))
	assert.NilError(t, err)
	defer c.Close()
	peer := <-accepted
	defer peer.Close()
	chunk := make([]byte, 64<<10)
	written := 0
	c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	for written < 64<<20 {
		n, err := c.Write(chunk)
		written += n
		if err != nil {
			break
		}
	}
	// gVisor's auto-tuned window (up to tcpBufMax) + the host socket's
	// unsent bytes + what the peer's kernel took into its receive queue.
	assert.Assert(t, written < tcpBufMax+16<<20, "the sandbox wrote %d bytes toward a peer that never reads", written)
	sb.net.mu.Lock()
	var host []net.Conn
	for hc := range sb.net.conns {
		host = append(host, hc)
	}
	sb.net.mu.Unlock()
	assert.Equal(t, len(host), 1)
	raw, err := host[0].(*net.TCPConn).SyscallConn()
	assert.NilError(t, err)
	var queued int
	var qerr error
	raw.Control(func(fd uintptr) { queued, qerr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD) })
	assert.NilError(t, qerr)
	// One write may overshoot the mark by a segment or so.
	assert.Assert(t, queued <= unsent+256<<10, "%d bytes unsent in the host socket", queued)
}

func TestConfigValidateCaps(t *testing.T) {
	for _, c := range []Config{{MaxTCP: -1}, {MaxUDPFlows: -1}, {MaxDNSQueries: -1}, {HostSendBuffer: -1}, {HostSendBuffer: 100}} {
		assert.Check(t, c.Validate() != nil, "%+v", c)
	}
	d := Config{}.WithDefaults()
	assert.Equal(t, d.MaxTCP, DefaultMaxTCP)
	assert.Equal(t, d.MaxUDPFlows, DefaultMaxUDPFlows)
	assert.Equal(t, d.MaxDNSQueries, DefaultMaxDNSQueries)
	assert.Equal(t, d.HostSendBuffer, DefaultHostSendBuffer)
}
