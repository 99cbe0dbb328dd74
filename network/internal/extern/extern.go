// Package extern is what the external-helper modes (slirp4netns, pasta)
// share: finding the helper's binary and keeping its last words for an
// error.
package extern

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"sync"

	"github.com/nsbox/nsbox/network"
	"github.com/nsbox/nsbox/sandbox"
)

// Look finds the helper bin in PATH. A missing one is an error naming the
// distribution package that installs it.
func Look(bin, pkg string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", &network.Error{Mode: bin, Problem: bin + " is not installed (not in PATH)",
			Fix: fmt.Sprintf("install the %s package (e.g. apt-get install %s), or use usernet", pkg, pkg)}
	}
	return path, nil
}

// Validate reports what both helpers refuse: an MTU out of range (0 is
// the default), and a published host address that is not IPv4 (neither
// is given IPv6 here). mode names the helper in the error.
func Validate(mode string, mtu int, publish []network.Publish) error {
	if mtu != 0 && (mtu < network.MinMTU || mtu > network.DefaultMTU) {
		return &network.Error{Mode: mode, Field: "MTU", Value: strconv.Itoa(mtu), Problem: "out of range", Fix: fmt.Sprintf("pick %d to %d", network.MinMTU, network.DefaultMTU)}
	}
	for _, p := range publish {
		if !p.Host.Addr().Is4() {
			return &network.Error{Mode: mode, Field: "Publish", Value: p.String(), Problem: mode + " forwards only IPv4 host addresses",
				Fix: fmt.Sprintf("give an IPv4 host address (e.g. 127.0.0.1:%d:%d), or use usernet", p.Host.Port(), p.SandboxPort)}
		}
	}
	return nil
}

// Network returns the network that runs the helper bin (installed by the
// distribution package pkg) for PID 1's namespaces: start is given the
// helper's path and PID 1's pid when the sandbox asks for its network. A
// missing helper is Look's error, before anything starts.
func Network(bin, pkg string, start func(path string, pid1 int) (sandbox.TAP, func() error, error)) (*sandbox.Network, error) {
	path, err := Look(bin, pkg)
	if err != nil {
		return nil, err
	}
	return &sandbox.Network{
		Attach: func(pid1 int) (sandbox.TAP, func() error, error) { return start(path, pid1) },
	}, nil
}

// LastLine keeps the last non-empty line a helper wrote (up to 512 bytes
// of it), for an error that should say why it stopped when its messages
// are not shown.
type LastLine struct {
	mu   sync.Mutex
	line []byte
	cur  []byte
}

func (l *LastLine) Write(p []byte) (int, error) {
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

// String is the last non-empty line, trimmed.
func (l *LastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(bytes.TrimSpace(l.cur)) > 0 {
		return string(bytes.TrimSpace(l.cur))
	}
	return string(bytes.TrimSpace(l.line))
}
