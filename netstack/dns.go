package netstack

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// dnsTimeout bounds one upstream exchange.
const dnsTimeout = 5 * time.Second

// dnsForwarder answers the sandbox's queries at 10.0.2.3 and fd00::3 by
// asking the upstream resolvers from the launcher, and filters them by the
// policy's host names.
type dnsForwarder struct {
	upstream []netip.AddrPort
	policy   *Policy
	logf     func(string, ...any)
}

func newDNSForwarder(cfg *Config) (*dnsForwarder, error) {
	up := cfg.DNSServers
	if len(up) == 0 {
		var err error
		if up, err = ResolvConfServers("/etc/resolv.conf"); err != nil {
			return nil, err
		}
	}
	return &dnsForwarder{upstream: up, policy: cfg.Policy, logf: cfg.Logf}, nil
}

// ResolvConfServers returns the nameservers a resolv.conf file lists, on
// port 53. A missing file or one without nameservers means 127.0.0.1, as
// the C library assumes.
func ResolvConfServers(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("user-mode network: read the host's resolvers: %w", err)
	}
	defer f.Close()
	var out []netip.AddrPort
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil || a.Zone() != "" {
			continue // scoped link-local resolvers cannot be used from here
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
	}
	if len(out) == 0 {
		out = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}
	}
	return out, nil
}

// serveDNS starts the in-stack servers on the DNS addresses, UDP and TCP.
func (n *Network) serveDNS() error {
	for _, a := range []netip.Addr{DNSIPv4, DNSIPv6} {
		fa, proto := fullAddr(netip.AddrPortFrom(a, 53))
		pc, err := gonet.DialUDP(n.stack, &fa, nil, proto)
		if err != nil {
			return fmt.Errorf("user-mode network: DNS server on %v: %w", a, err)
		}
		if !n.track(pc) {
			pc.Close()
			return errors.New("user-mode network closed")
		}
		n.goroutine(func() { n.serveDNSUDP(pc) })
		l, err := gonet.ListenTCP(n.stack, fa, proto)
		if err != nil {
			return fmt.Errorf("user-mode network: DNS server on %v: %w", a, err)
		}
		if !n.track(l) {
			l.Close()
			return errors.New("user-mode network closed")
		}
		n.goroutine(func() { n.serveDNSTCP(l) })
	}
	return nil
}

func (n *Network) serveDNSUDP(pc *gonet.UDPConn) {
	buf := make([]byte, maxDatagram)
	for {
		nr, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if !n.limits.dns.acquire() {
			if a := n.dnsAtCap(buf[:nr]); a != nil {
				pc.WriteTo(a, from)
			}
			continue
		}
		q := append([]byte(nil), buf[:nr]...)
		n.goroutine(func() {
			defer n.limits.dns.release()
			if a := n.dns.answer(q, false); a != nil {
				pc.WriteTo(a, from)
			}
		})
	}
}

// serveDNSTCP serves DNS over TCP. Each connection counts under
// Config.MaxTCP, each query under Config.MaxDNSQueries, as their UDP and
// forwarded kin do: past the first cap a connection is closed at once,
// past the second a query is answered SERVFAIL.
func (n *Network) serveDNSTCP(l *gonet.TCPListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if !n.limits.tcp.acquire() {
			n.limits.tcpLog.refuse(n, n.limits.tcp.max, "connections at once; fix: --net-max-tcp", "tcp %v → DNS: closed", c.RemoteAddr())
			c.Close()
			continue
		}
		n.goroutine(func() {
			defer n.limits.tcp.release()
			defer c.Close()
			for {
				c.SetReadDeadline(time.Now().Add(dnsIdleTimeout))
				q, err := readTCPMessage(c)
				if err != nil {
					return
				}
				var a []byte
				if n.limits.dns.acquire() {
					a = n.dns.answer(q, true)
					n.limits.dns.release()
				} else {
					a = n.dnsAtCap(q)
				}
				if a == nil {
					return
				}
				if _, err := c.Write(tcpMessage(a)); err != nil {
					return
				}
			}
		})
	}
}

func readTCPMessage(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	m := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, m); err != nil {
		return nil, err
	}
	return m, nil
}

// tcpMessage frames m for DNS over TCP: a 16-bit length, then m.
func tcpMessage(m []byte) []byte {
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(m)), uint16(len(m))), m...)
}

// answer returns the reply to query, or nil to drop it (not a query, or
// no upstream answered).
func (d *dnsForwarder) answer(query []byte, viaTCP bool) []byte {
	h, q, ok := parseQuery(query)
	if !ok {
		return nil
	}
	name := q.Name.String()
	if !d.policy.HostAllowed(name) {
		d.logf("dns %s %v: deny (not an --allow-host name)", name, q.Type)
		return refuse(h, q)
	}
	for _, up := range d.upstream {
		reply, err := exchange(up, query, viaTCP)
		if err != nil {
			d.logf("dns %s %v via %v: %v", name, q.Type, up, err)
			continue
		}
		d.learn(reply)
		return reply
	}
	return nil
}

// learn allows the addresses in a reply's answers (for --allow-host).
func (d *dnsForwarder) learn(reply []byte) {
	if d.policy == nil || len(d.policy.Hosts) == 0 {
		return
	}
	var p dnsmessage.Parser
	if _, err := p.Start(reply); err != nil {
		return
	}
	if err := p.SkipAllQuestions(); err != nil {
		return
	}
	for {
		h, err := p.AnswerHeader()
		if err != nil {
			return
		}
		switch h.Type {
		case dnsmessage.TypeA:
			if r, err := p.AResource(); err == nil {
				d.policy.Learn(netip.AddrFrom4(r.A))
			}
		case dnsmessage.TypeAAAA:
			if r, err := p.AAAAResource(); err == nil {
				d.policy.Learn(netip.AddrFrom16(r.AAAA))
			}
		default:
			if p.SkipAnswer() != nil {
				return
			}
		}
	}
}

// dnsAtCap answers a query that came past Config.MaxDNSQueries: SERVFAIL,
// at once (nil for what is not a query), and logs it at most once a second.
func (n *Network) dnsAtCap(query []byte) []byte {
	h, q, ok := parseQuery(query)
	if !ok {
		return nil
	}
	n.limits.dnsLog.refuse(n, n.limits.dns.max, "queries upstream at once; fix: --net-max-dns", "dns %s %v: SERVFAIL", q.Name, q.Type)
	return reply(h, q, dnsmessage.RCodeServerFailure)
}

// parseQuery reads a query's header and first question; ok is false for
// what is not a query (a reply, or a message that does not parse).
func parseQuery(query []byte) (h dnsmessage.Header, q dnsmessage.Question, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return h, q, false
	}
	q, err = p.Question()
	return h, q, err == nil
}

// refuse builds a REFUSED reply to a query for a name the policy denies.
func refuse(h dnsmessage.Header, q dnsmessage.Question) []byte {
	return reply(h, q, dnsmessage.RCodeRefused)
}

// reply builds an answer to q with rcode and no records.
func reply(h dnsmessage.Header, q dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode})
	b.StartQuestions()
	b.Question(q)
	m, err := b.Finish()
	if err != nil {
		return nil
	}
	return m
}

// exchange sends one query to server over UDP (retrying over TCP when the
// answer is truncated) or TCP, and returns the reply.
func exchange(server netip.AddrPort, query []byte, viaTCP bool) ([]byte, error) {
	if !viaTCP {
		reply, err := exchangeUDP(server, query)
		if err != nil || len(reply) < 3 || reply[2]&0x02 == 0 { // TC bit
			return reply, err
		}
	}
	c, err := net.DialTimeout("tcp", server.String(), dnsTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(dnsTimeout))
	if _, err := c.Write(tcpMessage(query)); err != nil {
		return nil, err
	}
	return readTCPMessage(c)
}

func exchangeUDP(server netip.AddrPort, query []byte) ([]byte, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(dnsTimeout))
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	bp := datagramBufs.Get().(*[]byte) // not a fresh 64 KiB to zero per query
	defer datagramBufs.Put(bp)
	buf := *bp
	for {
		nr, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if nr >= 2 && buf[0] == query[0] && buf[1] == query[1] {
			return append([]byte(nil), buf[:nr]...), nil
		}
	}
}
