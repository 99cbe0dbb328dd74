package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The round-trip workloads: from inside the sandbox to the host, per
// request in µs. The client is this program itself (`bench tcp-client`,
// `udp-client`, `dns-client`), so every stack runs the same code.

// latency: TCP connect + one request/response + close, to a server on
// the host's 127.0.0.1.
func latency(cfg *config) *comparison {
	c := &comparison{
		Title: "TCP connect + request latency, sandbox → host (per connection)",
		Unit:  "µs",
		Note:  fmt.Sprintf("each sample: connect to the host's 127.0.0.1 through the stack, send 1 byte, read 1 byte, close; %d connections per run, %d runs each.", cfg.latencyConns, cfg.iperfRounds),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Contenders = []*contender{{Name: "nsbox --net user", Missing: "listen: " + err.Error()}}
		return c
	}
	defer l.Close()
	go serveEcho(l)
	port := l.Addr().(*net.TCPAddr).Port
	roundTrips(cfg, c, "tcp-client", fmt.Sprintf(`"$GW:%d"`, port), fmt.Sprintf("127.0.0.1:%d", port), "host loopback, no sandbox")
	sampleRoundTrips(cfg, c)
	return c
}

// latencyParts splits latency's sample in two, to show where a
// connection's time goes from outside: connect(2) alone (the SYN, the
// stack's dial of the host, the handshake's completion), and a 1-byte
// round trip on a connection already open (the per-packet path).
func latencyParts(cfg *config) []*comparison {
	connect := &comparison{
		Title: "TCP connect alone, sandbox → host (per connection)",
		Unit:  "µs",
		Note:  fmt.Sprintf("each sample: connect(2) to the host's 127.0.0.1 through the stack, then close; %d connections per run, %d runs each.", cfg.latencyConns, cfg.iperfRounds),
	}
	rtt := &comparison{
		Title: "TCP 1-byte round trip on an open connection, sandbox → host",
		Unit:  "µs",
		Note:  fmt.Sprintf("each sample: write 1 byte, read 1 byte back, on one connection to the host's 127.0.0.1 through the stack (TCP_NODELAY, Go's default); %d round trips per run, %d runs each.", cfg.latencyConns, cfg.iperfRounds),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		for _, c := range []*comparison{connect, rtt} {
			c.Contenders = []*contender{{Name: "nsbox --net user", Missing: "listen: " + err.Error()}}
		}
		return []*comparison{connect, rtt}
	}
	defer l.Close()
	go serveEcho(l)
	port := l.Addr().(*net.TCPAddr).Port
	for _, x := range []struct {
		c    *comparison
		mode string
	}{{connect, "tcp-connect-client"}, {rtt, "tcp-rtt-client"}} {
		roundTrips(cfg, x.c, x.mode, fmt.Sprintf(`"$GW:%d"`, port), fmt.Sprintf("127.0.0.1:%d", port), "host loopback, no sandbox")
		sampleRoundTrips(cfg, x.c)
	}
	return []*comparison{connect, rtt}
}

// latencyUDP: a fresh UDP socket per request, one datagram each way, to
// an echo server on the host's 127.0.0.1 (a new flow for the stack each
// time, as for most DNS lookups and many RPC clients).
func latencyUDP(cfg *config) *comparison {
	c := &comparison{
		Title: "UDP request latency, sandbox → host (fresh socket per request)",
		Unit:  "µs",
		Note:  fmt.Sprintf("each sample: a new UDP socket sends 1 byte to the host's 127.0.0.1 through the stack and reads the 1-byte reply; %d requests per run, %d runs each.", cfg.latencyConns, cfg.iperfRounds),
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		c.Contenders = []*contender{{Name: "nsbox --net user", Missing: "listen: " + err.Error()}}
		return c
	}
	defer pc.Close()
	go serveUDPEcho(pc)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	roundTrips(cfg, c, "udp-client", fmt.Sprintf(`"$GW:%d"`, port), fmt.Sprintf("127.0.0.1:%d", port), "host loopback, no sandbox")
	sampleRoundTrips(cfg, c)
	return c
}

// latencyDNS: one query (an A record) per fresh UDP socket, answered by a
// responder on the host's 127.0.0.1:P. nsbox --net user is asked
// through its own DNS forwarder (10.0.2.3, --dns-server 127.0.0.1:P),
// the path a sandbox's lookups take when the host's resolver is on
// loopback (systemd-resolved, dnsmasq). slirp4netns and pasta forward
// their DNS addresses only to port 53 of the host's resolver, which an
// unprivileged benchmark cannot serve, so they (and nsbox's helper
// modes) carry the same query to the responder through the gateway.
func latencyDNS(cfg *config) *comparison {
	c := &comparison{
		Title: "DNS query latency, sandbox → a resolver on the host's loopback",
		Unit:  "µs",
		Note: fmt.Sprintf("each sample: a new UDP socket sends an A query and reads the answer of a responder on the host's 127.0.0.1:P; nsbox --net user asks its DNS forwarder at 10.0.2.3 (--dns-server 127.0.0.1:P), the others $GATEWAY:P (their DNS forwarders only reach port 53); %d queries per run, %d runs each.",
			cfg.latencyConns, cfg.iperfRounds),
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		c.Contenders = []*contender{{Name: "nsbox --net user", Missing: "listen: " + err.Error()}}
		return c
	}
	defer pc.Close()
	go serveDNS(pc)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	roundTrips(cfg, c, "dns-client", fmt.Sprintf(`"$GW:%d"`, port), fmt.Sprintf("127.0.0.1:%d", port), "host loopback, no sandbox")
	k := c.nsbox()
	if k.Missing == "" {
		self, _ := os.Executable()
		k.Argv = []string{cfg.nsbox, "run", "--net", "user", "--dns-server", fmt.Sprintf("127.0.0.1:%d", port), "--",
			self, "dns-client", "10.0.2.3:53", strconv.Itoa(cfg.latencyConns)}
	}
	sampleRoundTrips(cfg, c)
	return c
}

// roundTrips fills c with the user-mode stacks running `bench MODE ADDR
// N`, then the client alone on the host (hostName); addr is the shell
// word for the in-sandbox target and hostAddr the host's own.
func roundTrips(cfg *config, c *comparison, mode, addr, hostAddr, hostName string) {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	n := strconv.Itoa(cfg.latencyConns)
	client := fmt.Sprintf(`exec %s %s %s %s`, self, mode, addr, n)
	host := []string{self, mode, hostAddr, n}
	c.Contenders = netSandboxes(cfg, "", inGateway(client))
	c.Contenders = append(c.Contenders, &contender{Name: hostName, Argv: host})
}

// sampleRoundTrips runs c's contenders alternately, each run adding every
// request's µs.
func sampleRoundTrips(cfg *config, c *comparison) {
	for r := 0; r < cfg.iperfRounds; r++ {
		alternate(1, c.Contenders, func(k *contender) (float64, error) {
			out, err := outputOf(k.Argv)
			if err != nil {
				return 0, err
			}
			vals, err := parseMicros(out)
			if err != nil {
				return 0, err
			}
			// All but the last go in directly; the last is alternate's.
			k.Values = append(k.Values, vals[:len(vals)-1]...)
			return vals[len(vals)-1], nil
		})
	}
}

// echoMore, as a connection's first byte, asks serveEcho to keep echoing
// (tcp-rtt-client); any other byte is answered and the connection closed.
const echoMore = 'E'

// serveEcho answers each connection's byte with one byte and closes it,
// unless the byte was echoMore.
func serveEcho(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			b := make([]byte, 1)
			if _, err := io.ReadFull(conn, b); err != nil {
				return
			}
			more := b[0] == echoMore
			for {
				if _, err := conn.Write(b); err != nil || !more {
					return
				}
				if _, err := io.ReadFull(conn, b); err != nil {
					return
				}
			}
		}()
	}
}

// serveUDPEcho sends each datagram back to where it came from.
func serveUDPEcho(pc net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

// clientTimeout bounds one request of the UDP and DNS clients: a lost
// datagram is a failed run, not a hang.
const clientTimeout = 5 * time.Second

// roundTripClient is the in-sandbox half: n requests made by one, one
// line of microseconds per request on stdout.
func roundTripClient(n int, one func() error) error {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := one(); err != nil {
			return err
		}
		fmt.Fprintf(&sb, "%.1f\n", float64(time.Since(start))/float64(time.Microsecond))
	}
	_, err := os.Stdout.WriteString(sb.String())
	return err
}

// tcpClient: connect, one byte each way, close.
func tcpClient(addr string, n int) error {
	b := []byte{'x'}
	return roundTripClient(n, func() error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		defer conn.Close()
		if _, err := conn.Write(b); err != nil {
			return fmt.Errorf("write to %s: %w", addr, err)
		}
		if _, err := io.ReadFull(conn, b); err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		return nil
	})
}

// tcpConnectClient: connect, close.
func tcpConnectClient(addr string, n int) error {
	return roundTripClient(n, func() error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		return conn.Close()
	})
}

// tcpRTTClient: one connection, n round trips of one byte.
func tcpRTTClient(addr string, n int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	defer conn.Close()
	b := []byte{echoMore}
	if _, err := conn.Write(b); err == nil {
		_, err = io.ReadFull(conn, b)
	}
	if err != nil {
		return fmt.Errorf("echo with %s: %w", addr, err)
	}
	return roundTripClient(n, func() error {
		if _, err := conn.Write(b); err != nil {
			return fmt.Errorf("write to %s: %w", addr, err)
		}
		if _, err := io.ReadFull(conn, b); err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		return nil
	})
}

// udpClient: a fresh socket, one datagram each way.
func udpClient(addr string, n int) error {
	return roundTripClient(n, func() error {
		return udpExchange(addr, []byte{'x'}, func(reply []byte) bool { return len(reply) == 1 })
	})
}

// dnsBenchName is the name dns-client asks for.
const dnsBenchName = "nsbox-bench.example.com."

// dnsClient: one A query per fresh socket to addr.
func dnsClient(addr string, n int) error {
	id := uint16(os.Getpid())
	return roundTripClient(n, func() error {
		id++
		q := dnsQuery(id, dnsBenchName)
		return udpExchange(addr, q, func(reply []byte) bool {
			return len(reply) >= 12 && reply[0] == q[0] && reply[1] == q[1] && reply[2]&0x80 != 0
		})
	})
}

// serveDNS answers every query on pc with one A record, 192.0.2.1.
func serveDNS(pc net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if a := dnsAnswer(buf[:n]); a != nil {
			pc.WriteTo(a, from)
		}
	}
}

// dnsAnswer is the reply to a one-question query q: the question and an A
// record for it, or nil for anything else.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || q[4] != 0 || q[5] != 1 {
		return nil
	}
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5 // the root label, type, class
	if end > len(q) {
		return nil
	}
	a := append([]byte{q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}, q[12:end]...)
	return append(a, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1)
}

// udpExchange sends req from a new socket and waits for a datagram that
// ok accepts.
func udpExchange(addr string, req []byte, ok func([]byte) bool) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return fmt.Errorf("udp %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(clientTimeout))
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("send to %s: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("reply from %s: %w", addr, err)
		}
		if ok(buf[:n]) {
			return nil
		}
	}
}

// dnsQuery is a DNS query for name's A record with recursion desired.
func dnsQuery(id uint16, name string) []byte {
	q := []byte{byte(id >> 8), byte(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// parseMicros reads a client's output: one positive number per line.
func parseMicros(out string) ([]float64, error) {
	var vals []float64
	for _, f := range strings.Fields(out) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !finite(v) || v <= 0 {
			return nil, fmt.Errorf("the client printed %q, not a duration in µs", f)
		}
		vals = append(vals, v)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("the client printed no durations")
	}
	return vals, nil
}

// latencyBreakdown is the report's account of a short connection through
// nsbox --net user, measured inside the launcher with an instrumented
// build (a timestamp at each step below, per connection): it is not
// rerun by the harness, and says when it was measured.
const latencyBreakdown = `## Where the latency goes (nsbox --net user)

One short connection of the TCP latency row (connect to the host's 127.0.0.1 through the gateway, 1 byte each way, close), timed inside the launcher with an instrumented build, 600 connections per build, both builds alternating in one sitting on the 2-core VM of this report (2026-11-30). Medians in µs; "before" is the launcher before issue 15's changes (GOMAXPROCS 2, net.Dial, a relay goroutine and two fresh 256 KiB buffers per connection), "now" is this tree.

| step | before | now | what runs |
|---|---|---|---|
| SYN read from the TAP → forwarder goroutine running | 14 | 15–17 | TAP reader, gVisor forwarder starts a goroutine per SYN |
| host dial | 165 | 123 | socket, connect(2) to 127.0.0.1 (45–50 of it: the host kernel's whole handshake), options, poller |
| → SYN-ACK write starts | 26 | 29 | gVisor creates the endpoint |
| SYN-ACK write(2) | 36 | 26–33 | the sandbox's kernel runs its receive path inside the write |
| → its ACK read, → the request byte read | 62 | 122–174 | the sandbox's client wakes up; the TAP reader waits for the one P (GOMAXPROCS 1) |
| request byte → relay reads it | 117 | 40–64 | gVisor's TCP processor goroutine, then the relay goroutine (before: a new goroutine and 512 KiB to clear) |
| write(2) to the host socket | 38 | 37–41 | the host kernel delivers to the server inside the call |
| host server answers, relay wakes | 76 | 62–68 | the server's own wake-up and write, then Go's poller |
| reply → its frame written | 23 | 9–10 | gVisor sends from the relay goroutine |
| **SYN read → reply written** | **675** | **568–630** | |

What stands in the way of more, measured:
- Every frame written to the TAP costs 25–70 µs of the launcher's time, because the sandbox's kernel processes it inside write(2); a short connection writes five (SYN-ACK, the ACK of the request, the reply, FIN, the ACK of the client's FIN). slirp4netns pays the same per frame.
- Hand-offs between goroutines: Go's scheduler-latency profile of 300 connections plus 300 round trips counted 84 ms spent runnable but not running, 65 ms of it gVisor's TCP processor goroutine after the TAP reader readied it (gVisor queues every inbound segment to a processor goroutine; there is no inline path), 14 ms the relay after gVisor's notification.
- The Go runtime's sysmon thread: 1902 of the launcher's ~4000 context switches in the same run were its 20 µs sleeps while the process is busy, plus 344 wake-ups from system calls; it cannot be turned off.
- Tried and not kept, no effect measurable on this (shared, noisy) machine: holding gVisor's pure ACK back up to 500 µs so the reply carries it (gVisor has no delayed ACK); raw system calls for TAP and host-socket writes (so sysmon does not hand the P away during them); yielding after each small frame so the processor goroutine runs sooner; reading small frames into small buffers (gVisor clears the whole 64 KiB view it hands out).
- GOMAXPROCS 1 (netstack.LimitProcs: half the CPUs) beat 2 on this machine for latency and throughput alike: with a P per CPU, each hand-off wakes a thread on the other CPU and idle threads spin there, taking CPU from the sandbox's client and the host's server.

### Where the rest goes: accounting of one connection (second pass, 2026-11-30)

Same workload, nsbox --net user against rootlesskit + slirp4netns and pasta, alternated in one sitting on the 2-core VM while it was quiet (load < 0.5), 1000 samples each (µs, median): connect + request 410 / 322 / 245 (1.27× slirp4netns), connect alone 232 / 115 / 113 (2.02×), 1-byte round trip on an open connection 117 / 37 / 132 (3.2×). Later in the same session, with other work on the machine, connect + request was 1.6–1.7× slirp4netns: the ratio moves with the load, because the launcher needs more CPU per connection than slirp4netns and the sandbox's client and the host's server share the two CPUs with it.

What the launcher does for one short connection (perf trace, 30 connections):
- the host dial: 12 system calls (socket, connect, poll, getsockopt, connect again (EISCONN, net's own), epoll_ctl, getsockname, getpeername, five setsockopt: TCP_NODELAY and net's keep-alive defaults);
- 5 frames written to the TAP (SYN-ACK, the ACK of the request, the reply, FIN, the ACK of the client's FIN), 6–7 frames read, 3 epoll_pwait, 3 reads and 1 write on the host socket, shutdown, epoll_ctl, close.

What it costs (perf stat on the launcher, and on slirp4netns for rootlesskit, 1000 connections each, same sitting):

| per connection | nsbox launcher | slirp4netns |
|---|---|---|
| CPU, user + kernel (the kernel work inside its writes included) | ~340 µs | ~260 µs |
| context switches | 9.5 | 4.4 |

Per thread (/proc/PID/task/*/status): Go's sysmon thread 3.6 wake-ups per connection (it sleeps 20 µs at a time while the process is busy, and is woken again after each idle gap), the thread running the single P 1 voluntary + 1 involuntary switch (preempted by the client or server it woke inside a write), a second thread 0.4 + 0.7 (taking the P while a system call blocks).

Where the launcher's CPU goes (perf record -g, 20 kHz, 1000 connections, symbols from an unstripped build): 58% in the kernel, 42% in Go. By call tree, of all of it: the host dial 18% (connect(2) itself 10%: the host's whole loopback handshake runs inside it), TAP writes 15% (the sandbox's receive path runs inside them), gVisor's TCP processor goroutine 14%, sysmon 12%, the scheduler looking for work and polling 7.5%, growing the stack of the goroutine gVisor starts per SYN 3.3%, garbage collection 1.3%; the rest is spread thin over gVisor (locks, segment queues, packet buffers), with no single hot spot.

Tried in this pass, measured, not kept:
- Raw system calls (no scheduler hand-off) for the TAP writev, the host connect and the host write: sysmon's wake-ups did not fall (3.6 → 5 per connection), median 405 → 406 µs.
- Holding gVisor's pure ACK back (one slot, written when a frame of the same connection does not carry it, when another ACK needs the slot, or after 200 µs, which Go's timers round up to about 1 ms in an idle process): frames written per round trip fell from 2.2 to 1.2 as intended, but the round trip stayed at 90 vs 91 µs and connect + request at 475 vs 458 µs, inside the noise, and it delays a lone ACK (a client using Nagle waits for it) by up to a millisecond.
- GOMAXPROCS 2: 631 against 462 µs, p99 5.4 ms.
- GOGC=off: 436 against 462 µs in one run, no difference in the next; a launcher collects only about 5 times in 2000 connections.

Kept: gVisor's TIME_WAIT cut from 60 s to 1 s (netstack.timeWait). The host's server usually closes first, so every short connection left an endpoint of about 3 KB in the launcher for a minute: 2000 connections in a row grew the live heap from 4 to 10 MB and each garbage collection's mark from 0.5 to 11 ms (GODEBUG=gctrace=1); with 1 s, the live heap stays near 1 MB. It does not move the latency rows (100 connections per launcher), it bounds the launcher's memory under a stream of short connections.

UDP, third pass: a UDP flow had two goroutines parked in Read with a 64 KiB buffer each, so a request crossed from the stack's goroutine to one of them and the reply from the poller to the other. Now the sandbox → host direction runs in the gVisor endpoint's waiter callback, in the goroutine that delivered the datagram (gVisor notifies after releasing the endpoint's receive lock, so reading there is safe; TCP notifies with the endpoint lock held, so the same cannot be done for TCP), and host → sandbox waits in Go's poller through RawConn.Read, taking a pooled buffer only once a datagram is there. Same run, 300 samples: UDP request 217 → 122 µs median, 2.47× → 1.43× rootlesskit + slirp4netns. An idle TCP connection likewise no longer holds its two 256 KiB relay buffers (27 MB for 50 idle connections before); its latency and throughput did not move.

What stands between this and slirp4netns: not one step but the per-connection work of a Go program with gVisor's TCP in it, ~80 µs more CPU and 5 more context switches per connection than slirp4netns's single-threaded poll loop, on a machine where that CPU is taken from the client and the server. Closing the gap needs that work gone, not moved: a per-connection path without gVisor's endpoint, processor goroutine and per-SYN goroutine (terminating TCP in a loop of our own, as slirp4netns does), or a launcher that is not a Go process. Neither was attempted in this pass.

make bench-net with -rows tcp,out,in on this tree (a6bc2ec), load average 3.9 at the start: connect + request 428 µs, p99 1481 µs (3.5× its median), against rootlesskit + slirp4netns 255 µs (1.68×) and pasta 215 µs (1.99×); sandbox → host 7.80 Gb/s, 3.17× slirp4netns; host → sandbox through -p 11.4 Gb/s, 1.60× pasta -t. The latency target (≤ 1.0× slirp4netns, p99 ≤ 3× median) is not met; the throughput rows hold.
`
