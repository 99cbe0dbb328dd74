package flagwords

import (
	"errors"
	"fmt"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/network/pasta"
	"github.com/nsbox/nsbox/network/slirp4netns"
)

// The network packages word errors in Config fields; nsbox's users see
// the flags, and the lines they saw before the packages were split.
func TestNetWordsKeepTheFlagLines(t *testing.T) {
	parse := func(s string) network.Publish {
		p, err := network.ParsePublish(s)
		assert.NilError(t, err)
		return p
	}
	_, perr := network.ParsePublish("8080:80/sctp")
	_, derr := network.ParseDNSServer("nope")
	cfg := network.UserConfig{MTU: 100}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{perr, `-p 8080:80/sctp: protocol "sctp": use tcp or udp`},
		{derr, "--dns-server nope: not an IP address with an optional port; fix: e.g. --dns-server 1.1.1.1 or --dns-server 127.0.0.1:5353"},
		{cfg.Validate(), "--mtu 100: out of range; fix: pick 1280 to 65520"},
		{slirp4netns.Config{Publish: []network.Publish{parse("5353:53/udp")}}.Validate(),
			"-p 127.0.0.1:5353:53/udp: slirp4netns drops the sandbox's UDP replies to a host loopback client while host loopback is blocked; fix: add --allow-host-loopback, or use --net user"},
		{fmt.Errorf("start: %w", &network.Error{Mode: "slirp4netns", Problem: "slirp4netns exited before the network was up (set Log to see its messages)"}),
			"start: --net slirp4netns: slirp4netns exited before the network was up (run with --verbose to see its messages)"},
		{errors.New("plain"), "plain"},
	} {
		assert.Equal(t, NetWords(tc.err), tc.want)
	}
	assert.Equal(t, NetNotice(pasta.Config{Publish: []network.Publish{parse("8080:80")}}.Warning()),
		"nsbox: -p 127.0.0.1:8080:80/tcp with --net pasta: pasta passes connections from the host's loopback to the sandbox's, so the server sees them from 127.0.0.1 and a server that trusts localhost trusts every host user; use --net user or --net slirp4netns (they show 10.0.2.2) if it does")
}
