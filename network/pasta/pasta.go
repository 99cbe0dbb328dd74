// Package pasta gives a sandbox its network through pasta, of passt
// (nsbox run --net pasta), with the same addresses as the built-in
// usernet: 10.0.2.100/24, gateway 10.0.2.2, DNS forwarded at 10.0.2.3
// (IPv4 only).
//
// pasta is run with the options rootlesskit's pasta network driver uses
// (github.com/rootless-containers/rootlesskit/v2/pkg/network/pasta) plus
// --pid: that driver lets pasta daemonize and forgets it, and pasta
// attached to a pid outlives the sandbox; this package stops it when the
// sandbox ends. pasta returns once the device is configured
// (--config-net). Published ports are pasta's -t/-u (rootlesskit's
// "implicit" port driver).
package pasta

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/network/internal/extern"
	"github.com/nsbox/nsbox/sandbox"
)

// Config is what pasta is asked for.
type Config struct {
	// MTU of the sandbox's link; 0 means 65520.
	MTU int
	// AllowHostLoopback lets the sandbox reach the host's loopback at the
	// gateway address.
	AllowHostLoopback bool
	// Publish are the host ports forwarded to the sandbox (IPv4 host
	// addresses only: pasta is run --ipv4-only).
	Publish []network.Publish
	// Log receives pasta's messages; nil discards them.
	Log io.Writer
}

// Validate reports a configuration pasta cannot serve.
func (cfg Config) Validate() error {
	return extern.Validate("pasta", cfg.MTU, cfg.Publish)
}

// Warning is what the published ports call for, or nil: pasta hands a
// host loopback client to the sandbox's own loopback, so the server sees
// 127.0.0.1.
func (cfg Config) Warning() *network.Error {
	for _, p := range cfg.Publish {
		if a := p.Host.Addr(); a.IsLoopback() || a.IsUnspecified() {
			return &network.Error{Mode: "pasta", Field: "Publish", Value: p.String(),
				Problem: "pasta passes connections from the host's loopback to the sandbox's, so the server sees them from 127.0.0.1 and a server that trusts localhost trusts every host user",
				Fix:     "use usernet or slirp4netns (they show 10.0.2.2) if it does"}
		}
	}
	return nil
}

// New returns the network that starts pasta for PID 1's namespaces. A
// missing pasta is an error naming the package to install (passt).
func New(cfg Config) (*sandbox.Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	return extern.Network("pasta", "passt", func(bin string, pid1 int) (sandbox.TAP, func() error, error) { return start(bin, pid1, cfg) })
}

// start runs pasta for PID 1's namespaces; it returns once tap0 is
// configured, leaving pasta in the background, and the stop function
// signals it.
func start(bin string, pid1 int, cfg Config) (sandbox.TAP, func() error, error) {
	dir, err := os.MkdirTemp("", "nsbox-pasta-")
	if err != nil {
		return sandbox.TAP{}, nil, &network.Error{Mode: "pasta", Err: err}
	}
	defer os.RemoveAll(dir)
	pidFile := dir + "/pid"
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = network.DefaultMTU
	}
	args := []string{"--stderr", "--ns-ifname=tap0", "--mtu=" + strconv.Itoa(mtu), "--config-net",
		"--address=10.0.2.100", "--netmask=24", "--gateway=10.0.2.2", "--dns-forward=10.0.2.3",
		"--ipv4-only", "--pid=" + pidFile}
	args = append(args, ports(cfg.Publish)...)
	if !cfg.AllowHostLoopback {
		args = append(args, "--no-map-gw")
	}
	args = append(args, strconv.Itoa(pid1))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	if err := cmd.Run(); err != nil {
		if len(cfg.Publish) > 0 {
			return sandbox.TAP{}, nil, &network.Error{Mode: "pasta", Problem: fmt.Sprintf("pasta failed: %v", err), Fix: "check that each Publish host port is free (set Log to see pasta's messages)"}
		}
		return sandbox.TAP{}, nil, &network.Error{Mode: "pasta", Problem: fmt.Sprintf("pasta failed: %v (set Log to see its messages)", err)}
	}
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		return sandbox.TAP{}, nil, &network.Error{Mode: "pasta", Problem: "read pasta's pid file", Err: errors.Join(err, perr)}
	}
	stop := func() error {
		err := syscall.Kill(pid, syscall.SIGTERM)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	return sandbox.TAP{}, stop, nil
}

// ports turns the published ports into pasta's -t/-u options
// ("ADDR/HOSTPORT:PORT"); a protocol with nothing published is "none", so
// pasta does not forward every port the sandbox binds (its default).
func ports(pub []network.Publish) []string {
	var tcp, udp []string
	for _, p := range pub {
		o := fmt.Sprintf("%s/%d:%d", p.Host.Addr(), p.Host.Port(), p.SandboxPort)
		if p.Proto == "udp" {
			udp = append(udp, "--udp-ports="+o)
		} else {
			tcp = append(tcp, "--tcp-ports="+o)
		}
	}
	if len(tcp) == 0 {
		tcp = []string{"--tcp-ports=none"}
	}
	if len(udp) == 0 {
		udp = []string{"--udp-ports=none"}
	}
	return append(tcp, udp...)
}
