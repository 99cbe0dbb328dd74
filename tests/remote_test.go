package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestRemote* stand in for "the internet": the test binary re-executes
// itself as root of a new user and network namespace (unshare -Urn) where
// a dummy (or veth) interface holds a "remote host", 198.51.100.2 and
// 2001:db8::2, with an HTTP server, a UDP echo server and a DNS server
// written here. nsbox --net user runs inside that namespace, so the
// launcher's host sockets reach the remote host exactly as they would reach
// a server on the internet, and nothing leaves the machine.
//
// The helper reads one request (the nsbox arguments) per line on stdin and
// answers with what the command printed and what the servers saw; the
// tests assert on that from outside.

// remoteHelperEnv tells TestMain to run remoteHelper instead of the tests.
const remoteHelperEnv = "NSBOX_REMOTE_HELPER"

const (
	remoteIPv4 = "198.51.100.2"
	remoteIPv6 = "2001:db8::2"
	remoteName = "www.remote.test"
)

// remoteReady is the helper's first line.
type remoteReady struct {
	Error string // setup failed: why
	Ping  bool   // the namespace lets gid 0 open ICMP sockets
}

// remoteRequest is one nsbox run inside the outer namespace.
type remoteRequest struct {
	Args []string // after "nsbox run --map single --map-host-root --net user --dns-server 198.51.100.2"
}

// remoteResult is what that run printed and what the remote host saw
// during it: "http PORT PATH", "dns TYPE NAME", "udp PORT DATA".
type remoteResult struct {
	Exit           int
	Stdout, Stderr string
	Seen           []string
}

func (r remoteResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s\nremote saw: %q", r.Exit, r.Stdout, r.Stderr, r.Seen)
}

// remote is the running helper.
type remote struct {
	enc  *json.Encoder
	dec  *json.Decoder
	ping bool
}

// startRemote starts the helper and waits for its servers.
func startRemote(t *testing.T) *remote {
	t.Helper()
	requireNetTools(t)
	for _, tool := range []string{"unshare", "ip", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			cannotRun(t, "%s is needed for the remote host namespace (apt-get install util-linux iproute2 libc-bin)", tool)
		}
	}
	self, err := os.Executable()
	assert.NilError(t, err)
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--net", self)
	// Root inside unshare -Ur would use /tmp/nsbox-0 as its state
	// directory, which may belong to someone else: give it its own.
	cmd.Env = append(os.Environ(), remoteHelperEnv+"=1", "NSBOX_BIN="+nsboxBin, "XDG_RUNTIME_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	assert.NilError(t, err)
	out, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() {
		in.Close() // the helper ends at EOF
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			assert.Check(t, err, "remote helper: %s", stderr.String())
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("remote helper did not end; stderr: %s", stderr.String())
		}
	})
	r := &remote{enc: json.NewEncoder(in), dec: json.NewDecoder(out)}
	var ready remoteReady
	if err := r.dec.Decode(&ready); err != nil {
		t.Fatalf("remote helper did not start: %v; stderr: %s", err, stderr.String())
	}
	if ready.Error != "" {
		cannotRun(t, "cannot build the remote host namespace: %s", ready.Error)
	}
	r.ping = ready.Ping
	return r
}

// run runs nsbox with args in the outer namespace.
func (r *remote) run(t *testing.T, args ...string) remoteResult {
	t.Helper()
	assert.NilError(t, r.enc.Encode(remoteRequest{Args: args}))
	var res remoteResult
	assert.NilError(t, r.dec.Decode(&res))
	return res
}

// remoteHelper is the outer namespace's side; its result is the exit
// status.
func remoteHelper() int {
	enc := json.NewEncoder(os.Stdout)
	seen := &seenLog{}
	ping, err := setupRemote(seen)
	if err != nil {
		enc.Encode(remoteReady{Error: err.Error()})
		return 1
	}
	if err := enc.Encode(remoteReady{Ping: ping}); err != nil {
		return 1
	}
	dec := json.NewDecoder(os.Stdin)
	for {
		var req remoteRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "remote helper:", err)
			return 1
		}
		res := runInRemote(req.Args)
		res.Seen = seen.take()
		if err := enc.Encode(res); err != nil {
			return 1
		}
	}
}

// setupRemote gives the namespace its remote host and starts the servers.
func setupRemote(seen *seenLog) (ping bool, err error) {
	ipCmd := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := ipCmd("link", "set", "lo", "up"); err != nil {
		return false, err
	}
	// A dummy device is simplest; where its module is not loaded (and
	// cannot be from a user namespace), one end of a veth pair will do:
	// either way the addresses are local, delivered through lo.
	if ipCmd("link", "add", "remote0", "type", "dummy") != nil {
		if err := ipCmd("link", "add", "remote0", "type", "veth", "peer", "name", "remote1"); err != nil {
			return false, err
		}
		if err := ipCmd("link", "set", "remote1", "up"); err != nil {
			return false, err
		}
	}
	for _, args := range [][]string{
		{"addr", "add", remoteIPv4 + "/24", "dev", "remote0"},
		{"-6", "addr", "add", remoteIPv6 + "/64", "dev", "remote0", "nodad"},
		{"link", "set", "remote0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return false, err
		}
	}
	// The namespace's own ping_group_range starts as "1 0" (nobody);
	// its root may open it to its groups, which are just gid 0 (the
	// kernel refuses a range naming unmapped gids).
	ping = os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 0"), 0) == nil

	for _, addr := range []string{
		net.JoinHostPort(remoteIPv4, "80"),
		net.JoinHostPort(remoteIPv4, "8080"),
		net.JoinHostPort(remoteIPv6, "8080"),
	} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			seen.add("http %d %s", port, req.URL.Path)
			fmt.Fprintf(w, "hello from the remote host on port %d\n", port)
		}))
	}
	// Port 8081 on every address, as a service bound to 0.0.0.0 and ::
	// is: reachable through each of the namespace's own addresses.
	for _, l := range []struct{ network, addr string }{{"tcp4", "0.0.0.0:8081"}, {"tcp6", "[::]:8081"}} {
		l, err := net.Listen(l.network, l.addr)
		if err != nil {
			return false, err
		}
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			seen.add("http 8081 %s", req.URL.Path)
			fmt.Fprintf(w, "hello from the remote host on port 8081\n")
		}))
	}
	echo, err := net.ListenPacket("udp", net.JoinHostPort(remoteIPv4, "7"))
	if err != nil {
		return false, err
	}
	go serveDatagrams(echo, func(p []byte) []byte {
		seen.add("udp 7 %s", p)
		return echoReply(p)
	})
	dns, err := net.ListenPacket("udp", net.JoinHostPort(remoteIPv4, "53"))
	if err != nil {
		return false, err
	}
	go serveRemoteDNS(dns, seen)
	return ping, nil
}

// serveRemoteDNS answers A and AAAA for remoteName with the remote host's
// addresses; any other name does not exist.
func serveRemoteDNS(c net.PacketConn, seen *seenLog) {
	serveDNS(c, func(q dnsmessage.Question) ([]dnsmessage.ResourceBody, bool) {
		seen.add("dns %s %s", strings.TrimPrefix(q.Type.String(), "Type"), q.Name)
		if !strings.EqualFold(q.Name.String(), remoteName+".") {
			return nil, false
		}
		switch q.Type {
		case dnsmessage.TypeA:
			return []dnsmessage.ResourceBody{&dnsmessage.AResource{A: [4]byte(net.ParseIP(remoteIPv4).To4())}}, true
		case dnsmessage.TypeAAAA:
			return []dnsmessage.ResourceBody{&dnsmessage.AAAAResource{AAAA: [16]byte(net.ParseIP(remoteIPv6).To16())}}, true
		}
		return nil, true
	})
}

// runInRemote runs nsbox with the remote network flags and args.
func runInRemote(args []string) remoteResult {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"run", "--map", "single", "--map-host-root", "--net", "user", "--dns-server", remoteIPv4}
	cmd := exec.CommandContext(ctx, os.Getenv("NSBOX_BIN"), append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := remoteResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.Exit = exit.ExitCode()
	case err != nil:
		res.Exit = -1
		res.Stderr += err.Error()
	}
	return res
}

// seenLog is what the remote host's servers saw since it was last taken.
type seenLog struct {
	mu    sync.Mutex
	lines []string
}

func (s *seenLog) add(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

func (s *seenLog) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lines
	s.lines = nil
	return l
}

// fetch is a Python client printing the body of URL, or the exception's
// class name (the sandbox's view of a refused or reset connection). It
// ignores any proxy the environment names.
const fetch = `import sys, urllib.request
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    print(opener.open(sys.argv[1], timeout=10).read().decode(), end="")
except Exception as e:
    r = getattr(e, "reason", e)
    print(type(r).__name__, r); sys.exit(1)
`

// udpClient sends a datagram to the echo server on port 7 of the host
// named by its argument and prints the reply, or the exception's class name.
const udpClient = `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
try:
    s.connect((sys.argv[1], 7)); s.send(b"ping over udp"); print(s.recv(512).decode())
except Exception as e:
    print(type(e).__name__, e); sys.exit(1)
`

func TestRemote(t *testing.T) {
	python := requirePython(t)
	r := startRemote(t)

	t.Run("urllib by name", func(t *testing.T) {
		// /etc/resolv.conf inside names 10.0.2.3, whose forwarder
		// asks the --dns-server: the remote host's own.
		res := r.run(t, "--", python, "-c", fetch, "http://"+remoteName+"/urllib")
		assert.Equal(t, res.Exit, 0, res)
		assert.Equal(t, res.Stdout, "hello from the remote host on port 80\n", res)
		assert.Check(t, is.Contains(res.Seen, "dns A "+remoteName+"."), res)
		assert.Check(t, is.Contains(res.Seen, "http 80 /urllib"), res)
	})

	t.Run("getent", func(t *testing.T) {
		res := r.run(t, "--", "sh", "-c", "cat /etc/resolv.conf; echo ---; getent hosts "+remoteName+
			"; echo ---; getent ahostsv4 "+remoteName+"; echo ---; getent ahostsv6 "+remoteName)
		assert.Equal(t, res.Exit, 0, res)
		parts := strings.Split(res.Stdout, "---\n")
		assert.Assert(t, len(parts) == 4, res)
		assert.Check(t, is.Contains(parts[0], "nameserver 10.0.2.3\n"), res)
		assert.Check(t, strings.Contains(parts[1], remoteIPv4+" ") || strings.Contains(parts[1], remoteIPv6+" "), res)
		assert.Check(t, is.Contains(parts[1], remoteName), res)
		assert.Check(t, is.Contains(parts[2], remoteIPv4+" "), res)
		assert.Check(t, is.Contains(parts[3], remoteIPv6+" "), res)
		assert.Check(t, is.Contains(res.Seen, "dns AAAA "+remoteName+"."), res)
		// A name the remote DNS does not know does not resolve.
		res = r.run(t, "--", "getent", "hosts", "nowhere.remote.test")
		assert.Check(t, res.Exit == 2, res)
		assert.Check(t, is.Contains(res.Seen, "dns A nowhere.remote.test."), res)
	})

	t.Run("IPv6 TCP", func(t *testing.T) {
		res := r.run(t, "--", python, "-c", fetch, "http://["+remoteIPv6+"]:8080/v6")
		assert.Equal(t, res.Exit, 0, res)
		assert.Equal(t, res.Stdout, "hello from the remote host on port 8080\n", res)
		assert.Check(t, is.DeepEqual(res.Seen, []string{"http 8080 /v6"}), res)
	})

	t.Run("UDP", func(t *testing.T) {
		res := r.run(t, "--", python, "-c", udpClient, remoteName)
		assert.Equal(t, res.Exit, 0, res)
		assert.Equal(t, res.Stdout, "echo: ping over udp\n", res)
		assert.Check(t, is.Contains(res.Seen, "udp 7 ping over udp"), res)
	})

	t.Run("deny", func(t *testing.T) {
		// The forwarder still answers (DNS is not the sandbox's own
		// traffic to the remote host), but TCP and UDP to it are refused.
		res := r.run(t, "--deny", "198.51.100.0/24", "--verbose", "--", "sh", "-c",
			"getent ahostsv4 "+remoteName+"; echo ---; "+python+" -c '"+fetch+"' http://"+remoteName+"/denied; echo ---; "+
				python+" -c '"+udpClient+"' "+remoteName)
		parts := strings.Split(res.Stdout, "---\n")
		assert.Assert(t, len(parts) == 3, res)
		assert.Check(t, is.Contains(parts[0], remoteIPv4+" "), res)
		assert.Check(t, strings.HasPrefix(parts[1], "ConnectionRefusedError") || strings.HasPrefix(parts[1], "ConnectionResetError"), res)
		assert.Check(t, strings.HasPrefix(parts[2], "ConnectionRefusedError"), res)
		assert.Check(t, is.Contains(res.Stderr, "deny (--deny 198.51.100.0/24)"), res)
		for _, s := range res.Seen {
			assert.Check(t, strings.HasPrefix(s, "dns "), "denied traffic reached the remote host: %s", res)
		}
	})

	// In this namespace the "remote host" is the launcher's own host: its
	// addresses are the namespace's interface addresses. --deny-private
	// refuses them (a service on 0.0.0.0 or :: listens there), v4 and v6,
	// although 198.51.100.0/24 and 2001:db8::/32 are in no private range.
	t.Run("deny-private refuses the host itself", func(t *testing.T) {
		both := python + " -c '" + fetch + "' http://" + remoteIPv4 + ":8081/v4; echo ---; " +
			python + " -c '" + fetch + "' http://[" + remoteIPv6 + "]:8081/v6"
		res := r.run(t, "--deny-private", "--verbose", "--", "sh", "-c", both)
		v4, v6, ok := strings.Cut(res.Stdout, "---\n")
		assert.Assert(t, ok, res)
		for _, out := range []string{v4, v6} {
			assert.Check(t, strings.HasPrefix(out, "ConnectionRefusedError") || strings.HasPrefix(out, "ConnectionResetError"), res)
		}
		assert.Check(t, is.Contains(res.Stderr, "deny (--deny-private: an address of the host itself)"), res)
		assert.Check(t, is.Len(res.Seen, 0), res)
		// The control: without it, both reach the wildcard server.
		res = r.run(t, "--", "sh", "-c", both)
		assert.Check(t, is.Equal(res.Stdout, "hello from the remote host on port 8081\n---\nhello from the remote host on port 8081\n"), res)
		assert.Check(t, is.DeepEqual(res.Seen, []string{"http 8081 /v4", "http 8081 /v6"}), res)
	})

	t.Run("allow port", func(t *testing.T) {
		res := r.run(t, "--allow", remoteIPv4+":8080", "--", "sh", "-c",
			python+" -c '"+fetch+"' http://"+remoteName+":8080/allowed; echo ---; "+python+" -c '"+fetch+"' http://"+remoteName+"/other-port")
		allowed, other, ok := strings.Cut(res.Stdout, "---\n")
		assert.Assert(t, ok, res)
		assert.Check(t, is.Equal(allowed, "hello from the remote host on port 8080\n"), res)
		assert.Check(t, strings.HasPrefix(other, "ConnectionRefusedError") || strings.HasPrefix(other, "ConnectionResetError"), res)
		assert.Check(t, is.Contains(res.Seen, "http 8080 /allowed"), res)
		assert.Check(t, !strings.Contains(strings.Join(res.Seen, "\n"), "/other-port"), res)
	})

	t.Run("ping", func(t *testing.T) {
		if !r.ping {
			cannotRun(t, "the remote namespace's net.ipv4.ping_group_range could not be opened")
		}
		client := `import socket, struct, sys
for fam, proto, typ, addr in ((socket.AF_INET, socket.IPPROTO_ICMP, 8, "` + remoteIPv4 + `"),
                              (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, "` + remoteIPv6 + `")):
    s = socket.socket(fam, socket.SOCK_DGRAM, proto); s.settimeout(float(sys.argv[1]))
    s.sendto(struct.pack("!BBHHH", typ, 0, 0, 0, 7) + b"remote", (addr, 0))
    try:
        reply, src = s.recvfrom(512)
        print(src[0], struct.unpack("!H", reply[6:8])[0], reply[8:].decode())
    except socket.timeout:
        print(addr, "timeout")
`
		res := r.run(t, "--", python, "-c", client, "5")
		assert.Equal(t, res.Exit, 0, res)
		assert.Equal(t, res.Stdout, remoteIPv4+" 7 remote\n"+remoteIPv6+" 7 remote\n", res)
		res = r.run(t, "--deny", remoteIPv4, "--", python, "-c", client, "2")
		assert.Equal(t, res.Exit, 0, res)
		assert.Equal(t, res.Stdout, remoteIPv4+" timeout\n"+remoteIPv6+" 7 remote\n", res)
	})
}
