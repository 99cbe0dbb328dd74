package slirp4netns

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/network"
)

func pub(t *testing.T, spec string) network.Publish {
	t.Helper()
	p, err := network.ParsePublish(spec)
	assert.NilError(t, err)
	return p
}

func TestValidatePublish(t *testing.T) {
	cfg := Config{Publish: []network.Publish{pub(t, "[::1]:8080:80")}}
	assert.ErrorContains(t, cfg.Validate(), "only IPv4 host addresses")
	cfg = Config{Publish: []network.Publish{pub(t, "5353:53/udp")}}
	assert.ErrorContains(t, cfg.Validate(), "set AllowHostLoopback")
	cfg.AllowHostLoopback = true
	assert.NilError(t, cfg.Validate())
	assert.ErrorContains(t, Config{MTU: 100}.Validate(), "MTU 100: out of range")
}

func TestWarning(t *testing.T) {
	assert.Check(t, Config{Publish: []network.Publish{pub(t, "8080:80")}}.Warning() == nil)
	assert.Check(t, is.Contains(Config{Publish: []network.Publish{pub(t, "0.0.0.0:53:53/udp")}}.Warning().Error(), "no UDP replies"))
}
