package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/network"
)

// Ports at run time (nsbox port add|rm|ls) for --net user and --net
// slirp4netns. The launcher of a sandbox with a state entry listens on
// ports.sock in the entry's directory ($XDG_RUNTIME_DIR/nsbox/NAME: the
// user's alone, 0700, hidden from every sandbox's view) and relays each
// request to what forwards the ports (the helper that runs --net user's
// stack, or slirp4netns's API socket), then rewrites the entry so nsbox ps
// and inspect show the ports. A connection whose peer (SO_PEERCRED) is not
// of the launcher's uid and user namespace is closed unanswered; so is
// one that does not send a request within portRequestMax bytes.

// portSocket is the control socket's name in the entry's directory.
const portSocket = "ports.sock"

// portRequestMax bounds a request.
const portRequestMax = 4096

// portRequest is one line of JSON from nsbox port.
type portRequest struct {
	Op   string `json:"op"`   // add, rm, ls
	Spec string `json:"spec"` // -p's form, for add and rm
}

// portReply is the launcher's answer.
type portReply struct {
	Error string   `json:"error,omitempty"`
	Ports []string `json:"ports"`
}

// servePorts starts the control socket for s's sandbox when its network's
// ports can change and it has a state entry; the returned function closes
// it.
func (f *netFlags) servePorts(s *session) (stop func()) {
	if f.changer == nil || s == nil || s.entry == nil || s.record == nil || s.record.Network == nil {
		return func() {}
	}
	path := filepath.Join(s.entry.Path, portSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		fmt.Fprintf(s.stderr, "nsbox: notice: sandbox %s: no control socket for nsbox port (%v); its ports stay those of -p\n", s.entry.Name, err)
		return func() {}
	}
	os.Chmod(path, 0o600)
	var wg sync.WaitGroup
	var mu sync.Mutex // one change at a time, and the entry rewritten in order
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			mu.Lock()
			f.servePortConn(c, s)
			mu.Unlock()
		}
	}()
	return func() {
		l.Close()
		wg.Wait()
	}
}

// portConnTimeout bounds one request on the control socket, answer
// included.
const portConnTimeout = 10 * time.Second

// servePortConn answers one request on c.
func (f *netFlags) servePortConn(c *net.UnixConn, s *session) {
	defer c.Close()
	if !peerIsUs(c) {
		return
	}
	// A client that connects and never asks would hold the server, and
	// the sandbox's end that stops it, for as long as it likes.
	c.SetDeadline(time.Now().Add(portConnTimeout))
	var req portRequest
	if err := json.NewDecoder(io.LimitReader(c, portRequestMax)).Decode(&req); err != nil {
		return
	}
	ports, err := f.portChange(req)
	r := portReply{Ports: formatPorts(ports)}
	if err != nil {
		r.Error = flagwords.NetWords(err)
	} else if req.Op != "ls" {
		s.record.Network.Ports = r.Ports
		if werr := s.entry.Write(s.record); werr != nil {
			r.Error = fmt.Sprintf("the port changed but the state entry was not rewritten: %v", werr)
		}
	}
	json.NewEncoder(c).Encode(r)
}

// controller is a network.Ports that answers a change with the ports it
// publishes afterwards (the --net user helper's client): one round trip
// to it per nsbox port add or rm, not two.
type controller interface {
	Control(op string, p network.Publish) ([]network.Publish, error)
}

// portChange applies req and returns the published ports.
func (f *netFlags) portChange(req portRequest) ([]network.Publish, error) {
	var p network.Publish
	if req.Op == "add" || req.Op == "rm" {
		var err error
		if p, err = network.ParsePublish(req.Spec); err != nil {
			return nil, err
		}
	}
	if c, ok := f.changer.(controller); ok && (req.Op == "add" || req.Op == "rm" || req.Op == "ls") {
		return c.Control(req.Op, p)
	}
	var err error
	switch req.Op {
	case "add":
		err = f.changer.Publish(p)
	case "rm":
		err = f.changer.Unpublish(p)
	case "ls":
	default:
		return nil, errors.New("unknown request " + req.Op)
	}
	if err != nil {
		return nil, err
	}
	return f.changer.Ports()
}

// peerIsUs reports whether c's peer runs as this process's uid and in its
// user namespace: every sandbox has a user namespace of its own, so no
// process of a sandbox passes, whatever its uid (as state's verify checks
// a launcher).
func peerIsUs(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil || int(cred.Uid) != os.Getuid() {
		return false
	}
	ours, err1 := os.Readlink("/proc/self/ns/user")
	theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", cred.Pid))
	return err1 == nil && err2 == nil && ours == theirs
}

// formatPorts is the ports as ps and inspect show them.
func formatPorts(ports []network.Publish) []string {
	out := []string{}
	for _, p := range ports {
		out = append(out, fmt.Sprintf("%s->%d/%s", p.Host, p.SandboxPort, p.Proto))
	}
	return out
}
