package flagwords

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nsbox/nsbox/network"
)

// The network packages word their errors in Config fields
// (*network.Error); nsbox's users wrote flags. This file is the one table
// of that translation, as flagwords.go is for *sandbox.SpecError.

// netFieldFlags names the flag that sets each network Config field the
// network packages report (network.Error.Field). A function: a
// package-level map is built at every start of nsbox.
func netFieldFlags() map[string]string {
	return map[string]string{
		"MTU":            "--mtu",
		"Publish":        "-p",
		"DNSServers":     "--dns-server",
		"MaxTCP":         "--net-max-tcp",
		"MaxUDPFlows":    "--net-max-udp",
		"MaxDNSQueries":  "--net-max-dns",
		"HostSendBuffer": "--net-send-buffer",
	}
}

// netFixWords rewords the network packages' remedies, which name Config
// fields and packages, into flags: the first match of each pair is
// replaced, in order.
var netFixWords = []struct{ lib, cli string }{
	{"use usernet or slirp4netns", "use --net user or --net slirp4netns"},
	{"use usernet", "use --net user"},
	{"set AllowHostLoopback", "add --allow-host-loopback"},
	{"set Log to see", "run with --verbose to see"},
	{"an IPv4 host address", "an IPv4 HOSTIP"},
	{"each Publish host port", "each -p host port"},
	{"e.g. 1.1.1.1 or 127.0.0.1:5353", "e.g. --dns-server 1.1.1.1 or --dns-server 127.0.0.1:5353"},
	{"(Ports lists them)", "(nsbox port ls lists them)"},
	{"or unpublish it first", "or nsbox port rm it first"},
}

// NetWords returns err's message with a *network.Error in it worded as
// nsbox's flags: "-p 8080:80/sctp: …" for a field, "--net slirp4netns: …"
// for a mode.
func NetWords(err error) string {
	msg := err.Error()
	var ne *network.Error
	if !errors.As(err, &ne) {
		return msg
	}
	c := *ne
	c.Problem, c.Fix = netFix(c.Problem), netFix(c.Fix)
	text := c.Error()
	switch flag, ok := netFieldFlags()[c.Field]; {
	case ok:
		text = flag + strings.TrimPrefix(text, c.Field)
	case c.Field == "" && c.Mode != "":
		text = "--net " + text
	}
	return strings.Replace(msg, ne.Error(), text, 1)
}

// netFix applies netFixWords to s.
func netFix(s string) string {
	for _, w := range netFixWords {
		s = strings.Replace(s, w.lib, w.cli, 1)
	}
	return s
}

// NetNotice words a mode's warning about its published ports as nsbox's
// notice: "nsbox: -p SPEC with --net MODE: PROBLEM; REMEDY".
func NetNotice(w *network.Error) string {
	return fmt.Sprintf("nsbox: %s %s with --net %s: %s; %s", netFieldFlags()[w.Field], w.Value, w.Mode, netFix(w.Problem), netFix(w.Fix))
}
