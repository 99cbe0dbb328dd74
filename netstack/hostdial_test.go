package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func TestDialHostConnectsAndCarriesData(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (no such loopback here)", addr, err)
			continue
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
		}()
		target := l.Addr().(*net.TCPAddr).AddrPort()
		c, err := dialHost(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, target, 0)
		assert.NilError(t, err)
		assert.Equal(t, c.RemoteAddr().(*net.TCPAddr).AddrPort(), netip.AddrPortFrom(target.Addr().Unmap(), target.Port()))
		_, err = c.Write([]byte("ping"))
		assert.NilError(t, err)
		b := make([]byte, 4)
		_, err = io.ReadFull(c, b)
		assert.NilError(t, err)
		assert.Equal(t, string(b), "ping")
		c.Close()
	}
}

func TestDialHostRefusedIsECONNREFUSED(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	target := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	_, err = dialHost(context.Background(), &net.Dialer{Timeout: 5 * time.Second}, target, 0)
	assert.Assert(t, err != nil)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
}
