package main

import (
	"fmt"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"io"
	"net/netip"
	"os"

	"github.com/nsbox/nsbox/cmd/internal/nethelper"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/network/pasta"
	"github.com/nsbox/nsbox/network/slirp4netns"
	"github.com/nsbox/nsbox/network/tapnet"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
)

// netFlags are nsbox run's network flags.
type netFlags struct {
	mode              string
	mtu               uint32
	allowHostLoopback bool
	dnsServers        []string
	rules             ruleList // --allow, --deny and --deny-private, in command-line order
	allowHosts        []string
	publish           []string
	tapOffload        bool   // --tap-offload (hidden): virtio_net_hdr and offloads on the TAP
	maxTCP            int    // --net-max-tcp
	maxUDP            int    // --net-max-udp
	maxDNS            int    // --net-max-dns
	sendBuffer        string // --net-send-buffer

	// Set by apply: a warning for stderr, and the ports that are
	// forwarded.
	notice  string
	ports   []network.Publish
	verbose bool

	// ports changes the published ports while the sandbox runs (nsbox
	// port, through the launcher: port_control.go): --net user's helper,
	// or slirp4netns's API; nil in other modes.
	changer network.Ports

	// helper is --net user's helper, started by startHelper before apply
	// configures it; nil otherwise, and once apply handed it to the
	// sandbox's network, which serves with served: the sandbox's Wait
	// stops it, and run reaps it last (waitHelper).
	helper, served *nethelper.Client
}

// startHelper starts --net user's helper program now, before the flags
// are turned into a spec, when this process will start the sandbox (not
// with --print-spec, nor in --detach's first process, which hands the
// flags to its supervisor): the helper's exec, Go runtime and package
// inits then run beside the launcher's own work up to CONFIG, while the
// sandbox's stage waits for it, rather than beside the stage's and PID
// 1's work after it. apply configures it; closeHelper ends it if apply
// never did.
//
// The ELF constructor may have started it already, before the Go runtime
// (cmd/internal/helper/early.c): it is adopted here, or, when the flags
// say this process serves no --net user, killed and reaped
// (endEarlyHelper does the same on every way out of run).
func (f *netFlags) startHelper(startsSandbox bool) {
	early := nethelper.Early(os.Stderr)
	if f.mode != "user" || !startsSandbox {
		if early != nil {
			early.Close()
		}
		return
	}
	if early != nil {
		f.helper = early
		return
	}
	c, err := nethelper.New(os.Stderr)
	if err != nil {
		return // apply makes one, started by Serve, and reports what fails
	}
	c.Start()
	f.helper = c
}

// waitHelper stops --net user's helper, if the sandbox's end has not,
// and waits for it to exit. run calls it last, after its own tear-down,
// which the helper's exit overlaps.
func (f *netFlags) waitHelper() {
	if f.served != nil {
		f.served.Wait()
	}
}

// closeHelper kills and reaps a helper that startHelper started and apply
// did not configure (the flags were refused).
func (f *netFlags) closeHelper() {
	if f.helper != nil {
		f.helper.Close()
		f.helper = nil
	}
}

// endEarlyHelper kills and reaps the --net user helper that the ELF
// constructor started for this process's flags, if nothing adopted it
// (startHelper): the flags were refused, asked for help, or ran no
// sandbox. main calls it before it exits, whatever the command was.
func endEarlyHelper() {
	if early := nethelper.Early(os.Stderr); early != nil {
		early.Close()
	}
}

// ruleList collects egress rules from several flags in the order given:
// the first matching rule decides.
type ruleList struct {
	rules []network.Rule
	err   error
}

// ruleFlag is one of the flags that append to a ruleList.
type ruleFlag struct {
	list    *ruleList
	verdict network.Verdict
	private bool // --deny-private: a bool flag standing for several rules
}

func (f ruleFlag) String() string { return "" }
func (f ruleFlag) Type() string {
	if f.private {
		return "bool"
	}
	return "CIDR[:PORTS]"
}
func (f ruleFlag) Set(s string) error {
	if f.private {
		if s == "true" {
			f.list.rules = append(f.list.rules, network.DenyPrivate()...)
		}
		return nil
	}
	r, err := network.ParseRule(f.verdict, s)
	if err != nil {
		return err
	}
	f.list.rules = append(f.list.rules, r)
	return nil
}

func addNetFlags(fs *pflag.FlagSet) *netFlags {
	f := &netFlags{}
	fs.StringVar(&f.mode, "net", "none", "network `MODE`: none (only lo), host (share the host's), user (built-in user-mode network), slirp4netns or pasta")
	fs.Uint32Var(&f.mtu, "mtu", network.DefaultMTU, "MTU of the sandbox's link with --net user")
	fs.BoolVar(&f.allowHostLoopback, "allow-host-loopback", false, "let the sandbox reach the host's 127.0.0.1 (and ::1) at 10.0.2.2 (fd00::2)")
	listVar(fs, &f.dnsServers, "dns-server", "", "forward the sandbox's DNS queries to `ADDR[:PORT]` (repeatable; default: the host's /etc/resolv.conf)")
	fs.Var(ruleFlag{list: &f.rules, verdict: network.Allow}, "allow", "allow egress to `CIDR[:PORTS]` (repeatable; any allow rule denies the rest)")
	fs.Var(ruleFlag{list: &f.rules, verdict: network.Deny}, "deny", "deny egress to `CIDR[:PORTS]` (repeatable; rules apply in order, first match wins)")
	fs.Var(ruleFlag{list: &f.rules, private: true}, "deny-private", "deny egress to the host itself (every address of its interfaces) and to private ranges: RFC 1918, link-local (169.254.169.254), CGNAT, ULA")
	fs.Lookup("deny-private").NoOptDefVal = "true"
	listVar(fs, &f.allowHosts, "allow-host", "", "allow `NAME` (or *.DOMAIN): only such names resolve, and their addresses are allowed")
	listVar(fs, &f.publish, "publish", "p", "forward host port to the sandbox: `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]` (HOSTIP defaults to 127.0.0.1)")
	fs.BoolVar(&f.verbose, "verbose", false, "log each network policy decision to stderr")
	fs.IntVar(&f.maxTCP, "net-max-tcp", network.DefaultMaxTCP, "TCP connections the sandbox may have open through --net user at once (more get a reset)")
	fs.IntVar(&f.maxUDP, "net-max-udp", network.DefaultMaxUDPFlows, "UDP flows the sandbox may have open through --net user at once (more get ICMP port unreachable)")
	fs.IntVar(&f.maxDNS, "net-max-dns", network.DefaultMaxDNSQueries, "DNS queries the --net user forwarder keeps waiting upstream at once (more are answered SERVFAIL)")
	fs.StringVar(&f.sendBuffer, "net-send-buffer", "256k", "unsent bytes each --net user host TCP connection may queue before the sandbox must wait (`SIZE`: bytes, or with k or m)")
	// Hidden: the plain-frame TAP, for measuring what the offloads bring.
	fs.BoolVar(&f.tapOffload, "tap-offload", true, "virtio_net_hdr with checksum and TCP segmentation offload on the --net user TAP device")
	fs.MarkHidden("tap-offload")
	return f
}

// userModeOnly are the flags that mean something only with --net user.
var userModeOnly = []string{"mtu", "allow-host-loopback", "dns-server", "allow", "deny", "deny-private", "allow-host", "publish", "verbose", "tap-offload",
	"net-max-tcp", "net-max-udp", "net-max-dns", "net-send-buffer"}

// apply sets spec's network from the flags.
func (f *netFlags) apply(fs *pflag.FlagSet, spec *sandbox.Spec) error {
	switch f.mode {
	case "none":
	case "host":
		spec.Namespaces.Net = false
	case "user":
		return f.applyUser(spec)
	case "slirp4netns", "pasta":
		return f.applyExternal(fs, spec)
	default:
		return usageError{fmt.Sprintf("--net %s: unknown mode; fix: use none, host, user, slirp4netns or pasta", f.mode)}
	}
	for _, name := range userModeOnly {
		if fs.Changed(name) {
			return usageError{fmt.Sprintf("--%s needs --net user", name)}
		}
	}
	return nil
}

// externalFlag reports whether slirp4netns and pasta honour the user-mode
// flag name too.
func externalFlag(name string) bool {
	switch name {
	case "mtu", "allow-host-loopback", "publish", "verbose":
		return true
	}
	return false
}

func (f *netFlags) applyExternal(fs *pflag.FlagSet, spec *sandbox.Spec) error {
	for _, name := range userModeOnly {
		if fs.Changed(name) && !externalFlag(name) {
			return usageError{fmt.Sprintf("--%s needs --net user (the built-in network); --net %s takes only --mtu, --allow-host-loopback, -p and --verbose", name, f.mode)}
		}
	}
	if !spec.Namespaces.Net {
		return usageError{fmt.Sprintf("--net %s needs a network namespace of its own; fix: drop net from --share", f.mode)}
	}
	var log io.Writer
	if f.verbose {
		log = os.Stderr
	}
	pub, err := f.parsePublish()
	if err != nil {
		return err
	}
	var warn *network.Error
	if f.mode == "slirp4netns" {
		ports := &slirp4netns.Ports{}
		cfg := slirp4netns.Config{MTU: int(f.mtu), AllowHostLoopback: f.allowHostLoopback, Publish: pub, Log: log, Ports: ports}
		f.changer = ports
		warn = cfg.Warning()
		spec.Network, err = slirp4netns.New(cfg)
	} else {
		cfg := pasta.Config{MTU: int(f.mtu), AllowHostLoopback: f.allowHostLoopback, Publish: pub, Log: log}
		warn = cfg.Warning()
		spec.Network, err = pasta.New(cfg)
	}
	if err != nil {
		return usageError{flagwords.NetWords(err)}
	}
	if warn != nil {
		f.notice = flagwords.NetNotice(warn)
	}
	return nil
}

func (f *netFlags) applyUser(spec *sandbox.Spec) error {
	if !spec.Namespaces.Net {
		return usageError{"--net user needs a network namespace of its own; fix: drop net from --share"}
	}
	cfg := network.UserConfig{MTU: f.mtu, AllowHostLoopback: f.allowHostLoopback, VnetHdr: f.tapOffload,
		MaxTCP: f.maxTCP, MaxUDPFlows: f.maxUDP, MaxDNSQueries: f.maxDNS}
	for _, c := range []struct {
		name string
		v    int
	}{{"net-max-tcp", f.maxTCP}, {"net-max-udp", f.maxUDP}, {"net-max-dns", f.maxDNS}} {
		if c.v < 1 || c.v > 1<<20 {
			return usageError{fmt.Sprintf("--%s %d: out of range; fix: pick 1 to %d", c.name, c.v, 1<<20)}
		}
	}
	buf, err := parseSize(f.sendBuffer)
	if err != nil || buf < 4096 || buf > 1<<30 {
		return usageError{fmt.Sprintf("--net-send-buffer %s: not a size from 4k to 1g; fix: e.g. --net-send-buffer 256k", f.sendBuffer)}
	}
	cfg.HostSendBuffer = int(buf)
	if err := cfg.Validate(); err != nil {
		return usageError{flagwords.NetWords(err)}
	}
	for _, s := range f.dnsServers {
		ap, err := network.ParseDNSServer(s)
		if err != nil {
			return usageError{flagwords.NetWords(err)}
		}
		cfg.DNSServers = append(cfg.DNSServers, ap)
	}
	pol := &network.Policy{Rules: f.rules.rules}
	for _, h := range f.allowHosts {
		n, err := network.ParseHostName(h)
		if err != nil {
			return usageError{fmt.Sprintf("--allow-host %v; fix: give a DNS name such as example.com or *.example.com", err)}
		}
		pol.Hosts = append(pol.Hosts, n)
	}
	if len(pol.Rules) > 0 || len(pol.Hosts) > 0 {
		cfg.Policy = pol
	}
	if cfg.Publish, err = f.parsePublish(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{flagwords.NetWords(err)}
	}
	// The stack runs in nsbox's helper program (nsbox itself links no
	// stack), started by run before the flags were read (startHelper) so
	// that its start overlaps them; here it learns what to serve.
	helper := f.helper
	f.helper = nil // from here on, the sandbox's network owns it
	if helper == nil {
		if helper, err = nethelper.New(os.Stderr); err != nil {
			return err
		}
	}
	helper.Configure(cfg, f.verbose)
	f.changer = helper
	f.served = helper
	serve := func(tap *os.File, cfg network.UserConfig) (func() error, error) {
		// As when the launcher served the stack itself: from here on it
		// only waits, and a P per CPU would have idle threads spin
		// (network.Procs says what that costs).
		network.LimitProcs()
		return helper.Serve(tap, cfg)
	}
	n, err := tapnet.New(cfg, serve)
	if err != nil {
		helper.Close()
		return usageError{flagwords.NetWords(err)}
	}
	spec.Network = n
	return nil
}

// placeFiles binds generated /etc/resolv.conf and /etc/hosts over the
// host's (read-only) ones when the sandbox has a network whose DNS is at
// 10.0.2.3 (--net user, whose forwarder serves it, and slirp4netns, which
// does the same): the host's resolv.conf may name a loopback resolver
// that is not reachable from inside. The host's search domains carry over.
// Nothing is placed without a filesystem view of nsbox's own, or where the
// host has no such file to cover.
func (f *netFlags) placeFiles(spec *sandbox.Spec) {
	if (f.mode != "user" && f.mode != "slirp4netns") || spec.Mounts == nil || !spec.Namespaces.Mount {
		return
	}
	if host, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Type: sandbox.MountFile, Destination: "/etc/resolv.conf",
			Data: network.ResolvConf(network.ResolvConfSearch(string(host))), Flag: "--net " + f.mode})
	}
	if _, err := os.Stat("/etc/hosts"); err == nil {
		name := spec.Hostname
		if name == "" {
			name, _ = os.Hostname()
		}
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Type: sandbox.MountFile, Destination: "/etc/hosts",
			Data: network.Hosts(name), Flag: "--net " + f.mode})
	}
}

// parsePublish parses the -p flags and keeps the result for stateInfo.
func (f *netFlags) parsePublish() ([]network.Publish, error) {
	f.ports = nil
	for _, s := range f.publish {
		p, err := network.ParsePublish(s)
		if err != nil {
			return nil, usageError{flagwords.NetWords(err)}
		}
		f.ports = append(f.ports, p)
	}
	return f.ports, nil
}

// stateInfo is the network as nsbox ps and inspect show it; nil without a
// network of the sandbox's own beyond lo.
func (f *netFlags) stateInfo() *state.Network {
	if f.mode != "user" && f.mode != "slirp4netns" && f.mode != "pasta" {
		return nil
	}
	n := &state.Network{Mode: f.mode,
		Addresses: []string{netip.PrefixFrom(network.SandboxIPv4, network.PrefixIPv4.Bits()).String()},
		Gateway:   network.GatewayIPv4.String(), DNS: network.DNSIPv4.String()}
	if f.mode == "user" {
		n.Addresses = append(n.Addresses, netip.PrefixFrom(network.SandboxIPv6, network.PrefixIPv6.Bits()).String())
	}
	if f.mode == "pasta" {
		// pasta forwards DNS at 10.0.2.3 to the host's first resolver but
		// the sandbox keeps the host's resolv.conf (placeFiles).
		n.DNS = ""
	}
	for _, p := range f.ports {
		n.Ports = append(n.Ports, fmt.Sprintf("%s->%d/%s", p.Host, p.SandboxPort, p.Proto))
	}
	return n
}
