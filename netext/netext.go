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
package netext

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/sandbox"
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
	// Log receives the helper's messages; nil discards them.
	Log io.Writer
}

// Network returns the sandbox.Network that starts the helper for PID 1's
// namespace. A missing helper binary is an error naming the package to
// install.
func Network(cfg Config) (*sandbox.Network, error) {
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
	args = append(args, strconv.Itoa(pid1), "tap0")
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return sandbox.TAP{}, nil, fmt.Errorf("--net slirp4netns: %w", err)
	}
	stop := func() error {
		exitW.Close() // slirp4netns exits when this closes
		return cmd.Wait()
	}
	b := make([]byte, 1)
	if n, _ := readyR.Read(b); n != 1 {
		cmd.Process.Kill()
		stop()
		return sandbox.TAP{}, nil, fmt.Errorf("--net slirp4netns: slirp4netns exited before the network was up (run with --verbose to see its messages)")
	}
	return sandbox.TAP{}, stop, nil
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
		"--ipv4-only", "--tcp-ports=none", "--udp-ports=none", "--pid=" + pidFile}
	if !cfg.AllowHostLoopback {
		args = append(args, "--no-map-gw")
	}
	args = append(args, strconv.Itoa(pid1))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	if err := cmd.Run(); err != nil {
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
