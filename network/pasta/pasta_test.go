package pasta

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/network"
)

func port(t *testing.T, spec string) network.Publish {
	t.Helper()
	p, err := network.ParsePublish(spec)
	assert.NilError(t, err)
	return p
}

func TestPorts(t *testing.T) {
	assert.DeepEqual(t, ports(nil), []string{"--tcp-ports=none", "--udp-ports=none"})
	got := ports([]network.Publish{port(t, "8080:80"), port(t, "0.0.0.0:5353:53/udp"), port(t, "8443:443/tcp")})
	assert.DeepEqual(t, got, []string{"--tcp-ports=127.0.0.1/8080:80", "--tcp-ports=127.0.0.1/8443:443", "--udp-ports=0.0.0.0/5353:53"})
}

func TestValidateAndWarning(t *testing.T) {
	assert.NilError(t, Config{Publish: []network.Publish{port(t, "5353:53/udp")}}.Validate())
	assert.ErrorContains(t, Config{Publish: []network.Publish{port(t, "[::1]:8080:80")}}.Validate(), "only IPv4 host addresses")
	assert.Check(t, is.Contains(Config{Publish: []network.Publish{port(t, "8080:80")}}.Warning().Error(), "127.0.0.1"))
	assert.Check(t, Config{Publish: []network.Publish{port(t, "192.0.2.1:8080:80")}}.Warning() == nil)
}
