// Package slirp4netns gives a sandbox its network through slirp4netns
// (nsbox run --net slirp4netns), as rootlesskit's slirp4netns network
// driver does (github.com/rootless-containers/rootlesskit/v2/pkg/network),
// with the same addresses as the built-in usernet: 10.0.2.100/24, gateway
// 10.0.2.2, DNS 10.0.2.3.
//
// slirp4netns runs beside the launcher, attaches to the sandbox's
// namespaces through PID 1's pid and configures the device itself
// (--configure) while PID 1 waits. rootlesskit's driver is not called: it
// creates the device with `nsenter … ip tuntap add`, and that exec drops
// the capabilities ip needs unless the sandbox's user is root inside;
// slirp4netns joining the namespaces itself has them.
//
// Published ports go through slirp4netns's API socket (add_hostfwd, by
// rootlesskit's slirp4netns port driver). rootlesskit's builtin port driver
// is not used: it connects to the sandbox's service from 127.0.0.1, so a
// server that trusts localhost would trust every host user (podman's
// CVE-2021-20199); slirp4netns presents a host loopback client as
// 10.0.2.2, as usernet does.
package slirp4netns

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	portslirp "github.com/rootless-containers/rootlesskit/v2/pkg/port/slirp4netns"

	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/network/internal/extern"
	"github.com/nsbox/nsbox/sandbox"
)

// Config is what slirp4netns is asked for.
type Config struct {
	// MTU of the sandbox's link; 0 means 65520.
	MTU int
	// AllowHostLoopback lets the sandbox reach the host's loopback at the
	// gateway address.
	AllowHostLoopback bool
	// Publish are the host ports forwarded to the sandbox (IPv4 host
	// addresses only: slirp4netns is not given IPv6 here).
	Publish []network.Publish
	// Log receives slirp4netns's messages; nil discards them.
	Log io.Writer
	// Ports, when set, keeps slirp4netns's API socket for the sandbox's
	// life so that ports can change while it runs.
	Ports *Ports
}

// Validate reports a configuration slirp4netns cannot serve.
func (cfg Config) Validate() error {
	if err := extern.Validate("slirp4netns", cfg.MTU, cfg.Publish); err != nil {
		return err
	}
	for _, p := range cfg.Publish {
		if cfg.dropsUDPReplies(p) && p.Host.Addr().IsLoopback() {
			return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(), Problem: "slirp4netns drops the sandbox's UDP replies to a host loopback client while host loopback is blocked",
				Fix: "set AllowHostLoopback, or use usernet"}
		}
	}
	return nil
}

// dropsUDPReplies: libslirp treats the sandbox's reply to a host loopback
// client (which it presents as 10.0.2.2) like any packet to the host's
// loopback, and drops it under --disable-host-loopback.
func (cfg Config) dropsUDPReplies(p network.Publish) bool {
	return p.Proto == "udp" && !cfg.AllowHostLoopback
}

// Warning is what the published ports call for, or nil: while host
// loopback is blocked, slirp4netns drops UDP replies to loopback clients
// of a port published on 0.0.0.0.
func (cfg Config) Warning() *network.Error {
	for _, p := range cfg.Publish {
		if cfg.dropsUDPReplies(p) && p.Host.Addr().IsUnspecified() {
			return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(),
				Problem: "clients on the host's loopback get no UDP replies while host loopback is blocked",
				Fix:     "set AllowHostLoopback if they need them"}
		}
	}
	return nil
}

// New returns the network that starts slirp4netns for PID 1's namespaces.
// A missing slirp4netns is an error naming the package to install.
func New(cfg Config) (*sandbox.Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	return extern.Network("slirp4netns", "slirp4netns", func(bin string, pid1 int) (sandbox.TAP, func() error, error) { return start(bin, pid1, cfg) })
}

// start runs slirp4netns for PID 1's namespaces and waits until it
// configured tap0 (--configure, --ready-fd).
func start(bin string, pid1 int, cfg Config) (sandbox.TAP, func() error, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return sandbox.TAP{}, nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return sandbox.TAP{}, nil, err
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = network.DefaultMTU
	}
	args := []string{"--configure", "--mtu=" + strconv.Itoa(mtu), "--ready-fd=3", "--exit-fd=4",
		fmt.Sprintf("--userns-path=/proc/%d/ns/user", pid1)}
	if !cfg.AllowHostLoopback {
		args = append(args, "--disable-host-loopback")
	}
	apiDir := ""
	if len(cfg.Publish) > 0 || cfg.Ports != nil {
		// The API socket is what Publish talks to; it lives in a private
		// directory for the helper's life.
		if apiDir, err = os.MkdirTemp("", "nsbox-slirp4netns-"); err != nil {
			readyW.Close()
			exitR.Close()
			exitW.Close()
			return sandbox.TAP{}, nil, &network.Error{Mode: "slirp4netns", Problem: "directory for its API socket", Err: err}
		}
		args = append(args, "--api-socket="+filepath.Join(apiDir, "api.sock"))
	}
	args = append(args, strconv.Itoa(pid1), "tap0")
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	said := &extern.LastLine{}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(cfg.Log, said), io.MultiWriter(cfg.Log, said)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		if apiDir != "" {
			os.RemoveAll(apiDir)
		}
		return sandbox.TAP{}, nil, &network.Error{Mode: "slirp4netns", Err: err}
	}
	ports := cfg.Ports
	if ports == nil {
		ports = &Ports{} // for -p's ports alone
	}
	stop := func() error {
		ports.detach()
		exitW.Close() // slirp4netns exits when this closes
		err := cmd.Wait()
		if apiDir != "" {
			os.RemoveAll(apiDir)
		}
		return err
	}
	b := make([]byte, 1)
	if n, _ := readyR.Read(b); n != 1 {
		cmd.Process.Kill()
		stop() // waits: said has all it will get
		if line := said.String(); line != "" {
			return sandbox.TAP{}, nil, &network.Error{Mode: "slirp4netns", Problem: fmt.Sprintf("slirp4netns exited before the network was up, saying %q (set Log to see all its messages)", line)}
		}
		return sandbox.TAP{}, nil, &network.Error{Mode: "slirp4netns", Problem: "slirp4netns exited before the network was up (set Log to see its messages)"}
	}
	if apiDir != "" {
		err := ports.attach(cfg, filepath.Join(apiDir, "api.sock"))
		for _, p := range cfg.Publish {
			if err != nil {
				break
			}
			err = ports.Publish(p)
		}
		if err != nil {
			cmd.Process.Kill()
			stop()
			return sandbox.TAP{}, nil, err
		}
	}
	return sandbox.TAP{}, stop, nil
}

// newDriver is rootlesskit's slirp4netns port driver on sock.
func newDriver(cfg Config, sock string) (port.ParentDriver, error) {
	d, err := portslirp.NewParentDriver(cfg.Log, sock)
	if err != nil {
		return nil, &network.Error{Mode: "slirp4netns", Problem: "port driver", Err: err}
	}
	return d, nil
}
