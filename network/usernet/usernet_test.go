package usernet

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/nsbox/nsbox/network"
)

// The embedder's handle on the ports: it works from Serve (the sandbox's
// start) to the stop (the end of Wait), and says so outside that.
func TestNewWithPortsChangesPortsWhileServing(t *testing.T) {
	n, ports, err := NewWithPorts(Config{})
	assert.NilError(t, err)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	assert.NilError(t, err)
	hostPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p, err := network.ParsePublish(fmt.Sprintf("%d:80", hostPort))
	assert.NilError(t, err)
	assert.ErrorContains(t, ports.Publish(p), "not running")

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	assert.NilError(t, err)
	defer syscall.Close(fds[1])
	stop, err := n.Serve(os.NewFile(uintptr(fds[0]), "tap"))
	assert.NilError(t, err)

	assert.NilError(t, ports.Publish(p))
	got, err := ports.Ports()
	assert.NilError(t, err)
	assert.Equal(t, len(got), 1)
	assert.Equal(t, got[0], p)
	_, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", hostPort))
	assert.ErrorIs(t, err, syscall.EADDRINUSE) // the network holds it
	assert.NilError(t, ports.Unpublish(p))
	l, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", hostPort))
	assert.NilError(t, err) // released
	l.Close()

	assert.NilError(t, stop())
	_, err = ports.Ports()
	assert.ErrorContains(t, err, "not running")
}
