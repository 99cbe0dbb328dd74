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

// latency: TCP connect + one request/response + close, from inside the
// sandbox to a server on the host, per connection in µs. The client is
// this program itself (`bench tcp-client ADDR N`), so every stack runs
// the same code.
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
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	client := fmt.Sprintf(`exec %s tcp-client "$GW:%d" %d`, self, port, cfg.latencyConns)
	c.Contenders = netSandboxes(cfg, "", inGateway(client))
	c.Contenders = append(c.Contenders, &contender{Name: "host loopback, no sandbox",
		Argv: []string{self, "tcp-client", fmt.Sprintf("127.0.0.1:%d", port), strconv.Itoa(cfg.latencyConns)}})
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
	return c
}

// serveEcho answers each connection's byte with one byte and closes it.
func serveEcho(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			b := make([]byte, 1)
			if _, err := io.ReadFull(conn, b); err == nil {
				conn.Write(b)
			}
		}()
	}
}

// tcpClient is the in-sandbox half: n connections to addr, one line of
// microseconds per connection on stdout.
func tcpClient(addr string, n int) error {
	var sb strings.Builder
	b := []byte{'x'}
	for i := 0; i < n; i++ {
		start := time.Now()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		if _, err := conn.Write(b); err != nil {
			conn.Close()
			return fmt.Errorf("write to %s: %w", addr, err)
		}
		if _, err := io.ReadFull(conn, b); err != nil {
			conn.Close()
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		conn.Close()
		fmt.Fprintf(&sb, "%.1f\n", float64(time.Since(start))/float64(time.Microsecond))
	}
	_, err := os.Stdout.WriteString(sb.String())
	return err
}

// parseMicros reads tcp-client's output: one positive number per line.
func parseMicros(out string) ([]float64, error) {
	var vals []float64
	for _, f := range strings.Fields(out) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !finite(v) || v <= 0 {
			return nil, fmt.Errorf("tcp-client printed %q, not a duration in µs", f)
		}
		vals = append(vals, v)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("tcp-client printed no durations")
	}
	return vals, nil
}
