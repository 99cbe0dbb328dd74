package tapnet

import (
	"os"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/nsbox/nsbox/network"
)

func TestDeviceIsSlirp4netnsLayout(t *testing.T) {
	d := Device(network.UserConfig{VnetHdr: true})
	assert.Equal(t, d.Name, "tap0")
	assert.Equal(t, d.MTU, network.DefaultMTU)
	assert.Assert(t, d.VnetHdr)
	assert.Equal(t, d.Address4.String(), "10.0.2.100/24")
	assert.Equal(t, d.Gateway4.String(), "10.0.2.2")
	assert.Equal(t, d.Address6.String(), "fd00::100/64")
	assert.Equal(t, d.Gateway6.String(), "fd00::2")
	assert.Equal(t, Device(network.UserConfig{MTU: 1500}).MTU, 1500)
}

func TestNewChecksAndServesWithTheConfig(t *testing.T) {
	_, err := New(network.UserConfig{MTU: 100}, nil)
	assert.Error(t, err, "MTU 100: out of range; fix: pick 1280 to 65520")

	var got network.UserConfig
	n, err := New(network.UserConfig{MaxTCP: 7}, func(tap *os.File, cfg network.UserConfig) (func() error, error) {
		got = cfg
		return func() error { return nil }, nil
	})
	assert.NilError(t, err)
	_, err = n.Serve(nil)
	assert.NilError(t, err)
	assert.Equal(t, got.MaxTCP, 7)
}
