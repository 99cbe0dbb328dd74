// Package netext gives a sandbox its network through an external helper,
// slirp4netns or pasta, as rootlesskit's network drivers do
// (github.com/rootless-containers/rootlesskit/v2/pkg/network). It is the
// alternative to the built-in --net user (package netstack), with the same
// addresses: 10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3.
//
// The helper runs beside the launcher and attaches to the sandbox's
// network namespace through PID 1's pid, and configures the device itself
// (slirp4netns --configure, pasta --config-net) while PID 1 waits. Both are
// run directly with the options rootlesskit's drivers use; startSlirp4netns
// and startPasta say why those drivers are not called as they are.
//
// Published ports (-p) go through each helper's own forwarding, the
// drivers rootlesskit pairs with them: slirp4netns's API socket
// (add_hostfwd, through rootlesskit's slirp4netns port driver) and pasta's
// -t/-u (rootlesskit's "implicit" driver). rootlesskit's builtin port
// driver is not used: it connects to the sandbox's service from
// 127.0.0.1, so a server that trusts localhost would trust every host
// user (podman's CVE-2021-20199); slirp4netns presents a host loopback
// client as 10.0.2.2, as --net user does.
package netext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/nsbox/nsbox/netstack"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	portslirp "github.com/rootless-containers/rootlesskit/v2/pkg/port/slirp4netns"
)

// Helper is an external network helper.
type Helper string

const (
	Slirp4netns Helper = "slirp4netns"
	Pasta       Helper = "pasta"
)

// packages names the distribution package that installs each helper.
var packages = map[Helper]string{Slirp4netns: "slirp4netns", Pasta: "passt"}

// Config is what the helper is asked for.
type Config struct {
	Helper Helper
	// MTU of the sandbox's link; 0 means 65520.
	MTU int
	// AllowHostLoopback lets the sandbox reach the host's loopback at the
	// gateway address.
	AllowHostLoopback bool
	// Publish are the host ports forwarded to the sandbox (IPv4 only:
	// neither helper is given IPv6 here).
	Publish []netstack.Publish
	// Log receives the helper's messages; nil discards them.
	Log io.Writer
}

// Validate reports a configuration the helper cannot serve, naming the
// flag and the fix.
func (cfg Config) Validate() error {
	for _, p := range cfg.Publish {
		if !p.Host.Addr().Is4() {
			return fmt.Errorf("-p %s: --net %s forwards only IPv4 host addresses; fix: give an IPv4 HOSTIP (e.g. 127.0.0.1:%d:%d), or use --net user", p, cfg.Helper, p.Host.Port(), p.SandboxPort)
		}
		if cfg.slirpDropsUDPReplies(p) && p.Host.Addr().IsLoopback() {
			return fmt.Errorf("-p %s: slirp4netns drops the sandbox's UDP replies to a host loopback client while host loopback is blocked; fix: add --allow-host-loopback, or use --net user", p)
		}
	}
	return nil
}

// slirpDropsUDPReplies: libslirp treats the sandbox's reply to a host
// loopback client (which it presents as 10.0.2.2) like any packet to the
// host's loopback, and drops it under --disable-host-loopback.
func (cfg Config) slirpDropsUDPReplies(p netstack.Publish) bool {
	return cfg.Helper == Slirp4netns && p.Proto == "udp" && !cfg.AllowHostLoopback
}

// PublishNotice is the warning the published ports call for, or "":
// pasta hands a host loopback client to the sandbox's own loopback, so the
// server sees 127.0.0.1; slirp4netns, while host loopback is blocked,
// drops UDP replies to loopback clients of a port published on 0.0.0.0.
func (cfg Config) PublishNotice() string {
	for _, p := range cfg.Publish {
		a := p.Host.Addr()
		switch {
		case cfg.Helper == Pasta && (a.IsLoopback() || a.IsUnspecified()):
			return fmt.Sprintf("nsbox: -p %s with --net pasta: pasta passes connections from the host's loopback to the sandbox's, so the server sees them from 127.0.0.1 and a server that trusts localhost trusts every host user; use --net user or --net slirp4netns (they show 10.0.2.2) if it does", p)
		case cfg.slirpDropsUDPReplies(p) && a.IsUnspecified():
			return fmt.Sprintf("nsbox: -p %s with --net slirp4netns: clients on the host's loopback get no UDP replies while host loopback is blocked; add --allow-host-loopback if they need them", p)
		}
	}
	return ""
}

// Network returns the sandbox.Network that starts the helper for PID 1's
// namespace. A missing helper binary is an error naming the package to
// install.
func Network(cfg Config) (*sandbox.Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath(string(cfg.Helper))
	if err != nil {
		pkg, ok := packages[cfg.Helper]
		if !ok {
			return nil, fmt.Errorf("--net %s: unknown network helper", cfg.Helper)
		}
		return nil, fmt.Errorf("--net %s: %s is not installed (not in PATH); fix: install the %s package (e.g. apt-get install %s), or use --net user", cfg.Helper, cfg.Helper, pkg, pkg)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	return &sandbox.Network{
		Attach: func(pid1 int) (sandbox.TAP, func() error, error) {
			if cfg.Helper == Slirp4netns {
				return startSlirp4netns(bin, pid1, cfg)
			}
			return startPasta(bin, pid1, cfg)
		},
	}, nil
}

// startSlirp4netns runs slirp4netns for PID 1's namespaces and waits until
// it configured tap0 (--configure, --ready-fd). rootlesskit's slirp4netns
// driver is not used: it creates the device with `nsenter … ip tuntap add`,
// and that exec drops the capabilities ip needs unless the sandbox's user
// is root inside; slirp4netns joining the namespaces itself has them.
func startSlirp4netns(bin string, pid1 int, cfg Config) (sandbox.TAP, func() error, error) {
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
		mtu = 65520
	}
	args := []string{"--configure", "--mtu=" + strconv.Itoa(mtu), "--ready-fd=3", "--exit-fd=4",
		fmt.Sprintf("--userns-path=/proc/%d/ns/user", pid1)}
	if !cfg.AllowHostLoopback {
		args = append(args, "--disable-host-loopback")
	}
	apiDir := ""
	if len(cfg.Publish) > 0 {
		// The API socket is what -p talks to; it lives in a private
		// directory for the helper's life.
		if apiDir, err = os.MkdirTemp("", "nsbox-slirp4netns-"); err != nil {
			readyW.Close()
			exitR.Close()
			exitW.Close()
			return sandbox.TAP{}, nil, fmt.Errorf("--net slirp4netns: directory for its API socket: %w", err)
		}
		args = append(args, "--api-socket="+filepath.Join(apiDir, "api.sock"))
	}
	args = append(args, strconv.Itoa(pid1), "tap0")
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	said := &lastLine{}
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
		return sandbox.TAP{}, nil, fmt.Errorf("--net slirp4netns: %w", err)
	}
	stop := func() error {
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
			return sandbox.TAP{}, nil, fmt.Errorf("--net slirp4netns: slirp4netns exited before the network was up, saying %q (run with --verbose to see all its messages)", line)
		}
		return sandbox.TAP{}, nil, fmt.Errorf("--net slirp4netns: slirp4netns exited before the network was up (run with --verbose to see its messages)")
	}
	if err := publishSlirp4netns(filepath.Join(apiDir, "api.sock"), cfg); err != nil {
		cmd.Process.Kill()
		stop()
		return sandbox.TAP{}, nil, err
	}
	return sandbox.TAP{}, stop, nil
}

// publishSlirp4netns asks slirp4netns, through rootlesskit's slirp4netns
// port driver and the API socket, to forward each published port to the
// sandbox's address.
func publishSlirp4netns(sock string, cfg Config) error {
	if len(cfg.Publish) == 0 {
		return nil
	}
	d, err := portslirp.NewParentDriver(cfg.Log, sock)
	if err != nil {
		return fmt.Errorf("--net slirp4netns: port driver: %w", err)
	}
	for _, p := range cfg.Publish {
		spec := port.Spec{Proto: p.Proto, ParentIP: p.Host.Addr().String(), ParentPort: int(p.Host.Port()),
			ChildIP: netstack.SandboxIPv4.String(), ChildPort: int(p.SandboxPort)}
		if _, err := d.AddPort(context.Background(), spec); err != nil {
			return fmt.Errorf("-p %s: slirp4netns could not forward it: %v; fix: pick a free host port", p, err)
		}
	}
	return nil
}

// startPasta runs pasta for PID 1's namespaces with the options
// rootlesskit's pasta driver uses (github.com/rootless-containers/
// rootlesskit/v2/pkg/network/pasta) plus --pid: that driver lets pasta
// daemonize and forgets it, and pasta attached to a pid outlives the
// sandbox; nsbox kills it when the sandbox ends. pasta returns once the
// device is configured (--config-net).
func startPasta(bin string, pid1 int, cfg Config) (sandbox.TAP, func() error, error) {
	dir, err := os.MkdirTemp("", "nsbox-pasta-")
	if err != nil {
		return sandbox.TAP{}, nil, fmt.Errorf("--net pasta: %w", err)
	}
	defer os.RemoveAll(dir)
	pidFile := dir + "/pid"
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 65520
	}
	args := []string{"--stderr", "--ns-ifname=tap0", "--mtu=" + strconv.Itoa(mtu), "--config-net",
		"--address=10.0.2.100", "--netmask=24", "--gateway=10.0.2.2", "--dns-forward=10.0.2.3",
		"--ipv4-only", "--pid=" + pidFile}
	args = append(args, pastaPorts(cfg.Publish)...)
	if !cfg.AllowHostLoopback {
		args = append(args, "--no-map-gw")
	}
	args = append(args, strconv.Itoa(pid1))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	if err := cmd.Run(); err != nil {
		if len(cfg.Publish) > 0 {
			return sandbox.TAP{}, nil, fmt.Errorf("--net pasta: pasta failed: %v; fix: check that each -p host port is free (run with --verbose to see pasta's messages)", err)
		}
		return sandbox.TAP{}, nil, fmt.Errorf("--net pasta: pasta failed: %v (run with --verbose to see its messages)", err)
	}
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		return sandbox.TAP{}, nil, fmt.Errorf("--net pasta: read pasta's pid file: %v", errors.Join(err, perr))
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

// pastaPorts turns the published ports into pasta's -t/-u options
// ("ADDR/HOSTPORT:PORT"); a protocol with nothing published is "none", so
// pasta does not forward every port the sandbox binds (its default).
func pastaPorts(pub []netstack.Publish) []string {
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

// lastLine keeps the last non-empty line a helper wrote, for an error that
// should say why it stopped without --verbose.
type lastLine struct {
	mu   sync.Mutex
	line []byte
	cur  []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range p {
		if c == '\n' {
			if len(bytes.TrimSpace(l.cur)) > 0 {
				l.line = append(l.line[:0], l.cur...)
			}
			l.cur = l.cur[:0]
			continue
		}
		if len(l.cur) < 512 {
			l.cur = append(l.cur, c)
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(bytes.TrimSpace(l.cur)) > 0 {
		return string(bytes.TrimSpace(l.cur))
	}
	return string(bytes.TrimSpace(l.line))
}
