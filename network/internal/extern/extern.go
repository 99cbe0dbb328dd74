// Package extern is what the external-helper modes (slirp4netns, pasta)
// share: finding the helper's binary and keeping its last words for an
// error.
package extern

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"

	"github.com/nsbox/nsbox/network"
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
