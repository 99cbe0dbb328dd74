package tests

// Fixtures shared by the integration tests: servers on the host that a
// sandbox reaches, and checks of what it left on the host. One helper for
// each; a test that needs another behaviour passes it in.

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// serveConns listens on network and addr and hands every connection to
// handle, in the accepting goroutine, until the test ends (the listener
// is closed then; handle closes or keeps each connection).
func serveConns(t *testing.T, network, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	assert.NilError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return l
}

// serveDatagrams answers the datagrams that arrive on c with reply's
// answer (none when it is nil) until c is closed.
func serveDatagrams(c net.PacketConn, reply func(p []byte) []byte) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if b := reply(buf[:n]); b != nil {
			c.WriteTo(b, from)
		}
	}
}

// echoReply is the echo servers' answer: "echo: " and the datagram.
func echoReply(p []byte) []byte { return append([]byte("echo: "), p...) }

// udpEcho answers every datagram on 127.0.0.1 with echoReply and returns
// its port.
func udpEcho(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	assert.NilError(t, err)
	t.Cleanup(func() { c.Close() })
	go serveDatagrams(c, echoReply)
	return c.LocalAddr().(*net.UDPAddr).Port
}

// serveDNS answers the DNS queries that arrive on c until it is closed:
// answer gives the records for a question and whether the name exists
// (NXDOMAIN otherwise).
func serveDNS(c net.PacketConn, answer func(q dnsmessage.Question) ([]dnsmessage.ResourceBody, bool)) {
	serveDatagrams(c, func(query []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(query)
		if err != nil {
			return nil
		}
		q, err := p.Question()
		if err != nil {
			return nil
		}
		bodies, known := answer(q)
		m := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true},
			Questions: []dnsmessage.Question{q},
		}
		if !known {
			m.Header.RCode = dnsmessage.RCodeNameError
		}
		for _, body := range bodies {
			m.Answers = append(m.Answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, Body: body})
		}
		b, _ := m.Pack()
		return b
	})
}

// resumeReadExit4 ends the job-control tests: the shell at "host> " has
// a stopped nsbox whose command is `read x; echo got:$x; exit 4`. It
// brings it back with fg, types "hello" and enter (\n or \r), checks the
// command read it and its status reached the shell, and exits the shell.
func (term *terminal) resumeReadExit4(enter string) {
	term.typeIn("fg\n")
	term.typeIn("hello" + enter)
	term.expect(`got:hello\r\n`)
	// nsbox reads the terminal until it exits: type only at the prompt.
	term.expect(`host> `)
	term.typeIn("echo status=$?\n")
	term.expect(`status=4\r\n`)
	term.typeIn("exit\n")
	term.wait()
}

// lockCheck is a shell line that sets $lockcheck to a Python program
// printing "locked" when another process holds a lock on file $1
// (fcntl, as bubblewrap's and nsbox's --lock-file take), else "unlocked".
const lockCheck = `lockcheck='import fcntl,sys
f = open(sys.argv[1], "r+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print("unlocked")
except OSError:
    print("locked")'
`

// denyProgram is a raw struct sock_filter array (bubblewrap's --seccomp
// format) denying each syscall with its errno and allowing everything
// else (this architecture's numbers; enough for a test that runs here).
func denyProgram(deny map[uint32]unix.Errno) []byte {
	type insn struct {
		op     uint16
		jt, jf uint8
		k      uint32
	}
	prog := []insn{{0x20, 0, 0, 0}} // ld [0]: the syscall number
	for nr, errno := range deny {
		prog = append(prog, insn{0x15, 0, 1, nr}, insn{0x06, 0, 0, unix.SECCOMP_RET_ERRNO | uint32(errno)})
	}
	prog = append(prog, insn{0x06, 0, 0, unix.SECCOMP_RET_ALLOW})
	var b []byte
	for _, in := range prog {
		b = binary.NativeEndian.AppendUint16(b, in.op)
		b = append(b, in.jt, in.jf)
		b = binary.NativeEndian.AppendUint32(b, in.k)
	}
	return b
}

// bpfProgram writes denyProgram(deny) to file name in dir and returns its
// path.
func bpfProgram(t *testing.T, dir, name string, deny map[uint32]unix.Errno) string {
	t.Helper()
	file := filepath.Join(dir, name)
	assert.NilError(t, os.WriteFile(file, denyProgram(deny), 0o644))
	return file
}

// assertHostOwner checks that path, as the host sees it, belongs to uid
// and gid (host ids: what a sandbox's ids map to).
func assertHostOwner(t *testing.T, path string, uid, gid uint32) {
	t.Helper()
	st, err := os.Stat(path)
	assert.NilError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	assert.Equal(t, sys.Uid, uid, path)
	assert.Equal(t, sys.Gid, gid, path)
}
