package netext

import (
	"io"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/netstack"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func publish(t *testing.T, spec string) netstack.Publish {
	t.Helper()
	p, err := netstack.ParsePublish(spec)
	assert.NilError(t, err)
	return p
}

func TestPastaPorts(t *testing.T) {
	assert.DeepEqual(t, pastaPorts(nil), []string{"--tcp-ports=none", "--udp-ports=none"})
	got := pastaPorts([]netstack.Publish{publish(t, "8080:80"), publish(t, "0.0.0.0:5353:53/udp"), publish(t, "8443:443/tcp")})
	assert.DeepEqual(t, got, []string{"--tcp-ports=127.0.0.1/8080:80", "--tcp-ports=127.0.0.1/8443:443", "--udp-ports=0.0.0.0/5353:53"})
}

func TestValidatePublish(t *testing.T) {
	cfg := Config{Helper: Slirp4netns, Publish: []netstack.Publish{publish(t, "[::1]:8080:80")}}
	assert.ErrorContains(t, cfg.Validate(), "only IPv4 host addresses")
	cfg = Config{Helper: Slirp4netns, Publish: []netstack.Publish{publish(t, "5353:53/udp")}}
	assert.ErrorContains(t, cfg.Validate(), "--allow-host-loopback")
	cfg.AllowHostLoopback = true
	assert.NilError(t, cfg.Validate())
	cfg = Config{Helper: Pasta, Publish: []netstack.Publish{publish(t, "5353:53/udp")}}
	assert.NilError(t, cfg.Validate())
}

func TestPublishNotice(t *testing.T) {
	assert.Equal(t, Config{Helper: Slirp4netns, Publish: []netstack.Publish{publish(t, "8080:80")}}.PublishNotice(), "")
	assert.Check(t, is.Contains(Config{Helper: Pasta, Publish: []netstack.Publish{publish(t, "8080:80")}}.PublishNotice(), "127.0.0.1"))
	assert.Equal(t, Config{Helper: Pasta, Publish: []netstack.Publish{publish(t, "192.0.2.1:8080:80")}}.PublishNotice(), "")
	assert.Check(t, is.Contains(Config{Helper: Slirp4netns, Publish: []netstack.Publish{publish(t, "0.0.0.0:53:53/udp")}}.PublishNotice(), "no UDP replies"))
}

func TestLastLineKeepsTheHelpersLastWords(t *testing.T) {
	var l lastLine
	assert.Equal(t, l.String(), "")
	io.WriteString(&l, "starting\nWARNING: x\n")
	io.WriteString(&l, "\n  \n")
	assert.Equal(t, l.String(), "WARNING: x")
	io.WriteString(&l, "setns: Operation ")
	io.WriteString(&l, "not permitted")
	assert.Equal(t, l.String(), "setns: Operation not permitted")
	io.WriteString(&l, strings.Repeat("y", 2000)+"\n")
	assert.Equal(t, len(l.String()), 512)
}
