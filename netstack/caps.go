package netstack

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The launcher is outside every limit the sandbox has (its cgroup, its
// RLIMIT_NOFILE): each TCP connection and UDP flow the sandbox opens
// becomes a host socket of the launcher's, each DNS query a goroutine and
// a socket, and bytes the sandbox sends toward a host peer that does not
// read would queue in the launcher's socket buffers. So each has a cap
// per Network, and what happens at the cap is what a loaded router or
// resolver does:
//
//	TCP connections (Config.MaxTCP)         the SYN gets a reset (ECONNREFUSED inside)
//	UDP flows (Config.MaxUDPFlows)          ICMP port unreachable for the new flow
//	DNS queries upstream (MaxDNSQueries)    an immediate SERVFAIL answer
//	unsent bytes per host TCP connection    the relay stops reading the sandbox
//	  (Config.HostSendBuffer)               until the host peer drains; gVisor's
//	                                        window closes meanwhile
//
// The ICMP echo path has had the same shape from the start (maxEchoFlows).
// With Config.Log, a refusal at a cap is logged at most once a second per
// kind, with the count since the last line.

// wideTCPConns is how many of a Network's TCP connections get gVisor's
// auto-tuned receive window (tcpBufDefault growing to tcpBufMax) toward
// the host at once; the others get a fixed narrowWindow. A window is
// what a connection whose host peer stalls holds in the launcher (the
// sandbox fills it and gVisor acknowledges it), so the launcher holds at
// most wideTCPConns×tcpBufMax + (MaxTCP−wideTCPConns)×narrowWindow of
// the sandbox's data, plus HostSendBuffer per connection in the kernel.
// A few bulk transfers keep the full speed; hundreds of connections
// share a small window each, as slirp4netns gives every connection.
const (
	wideTCPConns = 16
	narrowWindow = 256 << 10
)

// slots counts what a cap bounds: acquire fails at max.
type slots struct {
	n   atomic.Int64
	max int64
}

func (s *slots) acquire() bool {
	if s.n.Add(1) > s.max {
		s.n.Add(-1)
		return false
	}
	return true
}

func (s *slots) release() { s.n.Add(-1) }

// capLog logs refusals at one cap at most once per second.
type capLog struct {
	mu      sync.Mutex // guards last and refused
	last    time.Time
	refused int
}

// refuse notes one refusal and logs it (with those not logged since the
// last line) unless a line went out less than a second ago: "WHAT: cap of
// MAX reached (UNIT; fix: FLAG): refused N since the last such line",
// WHAT formatted from format and args only when a line goes out.
func (c *capLog) refuse(n *Network, max int64, unit string, format string, args ...any) {
	if n.cfg.Log == nil {
		return
	}
	c.mu.Lock()
	c.refused++
	now := time.Now()
	if now.Sub(c.last) < time.Second {
		c.mu.Unlock()
		return
	}
	count := c.refused
	c.refused, c.last = 0, now
	c.mu.Unlock()
	n.cfg.Logf("%s: cap of %d reached (%s): refused %d since the last such line", fmt.Sprintf(format, args...), max, unit, count)
}

// limits are a Network's caps and their logs.
type limits struct {
	tcp, udp, dns, wide    slots
	tcpLog, udpLog, dnsLog capLog
}

func (l *limits) init(cfg *Config) {
	l.tcp.max = int64(cfg.MaxTCP)
	l.udp.max = int64(cfg.MaxUDPFlows)
	l.dns.max = int64(cfg.MaxDNSQueries)
	l.wide.max = wideTCPConns
}
