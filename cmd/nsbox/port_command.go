package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
)

const portUsage = `Usage: nsbox port add NAME [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]
       nsbox port rm NAME [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]
       nsbox port ls NAME

Forward a host port to the running sandbox NAME, stop forwarding it, or
list the forwarded ports, as run's -p does at start (HOSTIP defaults to
127.0.0.1; a loopback client shows inside as 10.0.2.2). Works for
sandboxes started with --net user or --net slirp4netns (through its API
socket, IPv4 host addresses only); pasta keeps the ports -p gave it at
start, and --net none and host have no ports.
`

// portCommand is nsbox port: it asks the sandbox's launcher, through the
// control socket in the sandbox's state entry (port_control.go).
func portCommand(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, portUsage)
		return nil
	}
	want := map[string]int{"add": 3, "rm": 3, "ls": 2}
	if len(args) == 0 || want[args[0]] == 0 || len(args) != want[args[0]] {
		return usageError{"port: wrong arguments; fix: " + strings.SplitN(portUsage, "\n", 2)[0]}
	}
	op, name, spec := args[0], args[1], ""
	if op != "ls" {
		spec = args[2]
	}
	what := strings.TrimSpace("port " + op + " " + name + " " + spec)
	dir, err := state.Dir()
	if err != nil {
		return err
	}
	// The fast way: the launcher's socket in the sandbox's entry (a
	// directory only this user can write), served only by a process of
	// this uid. No socket: the sandbox is not running, or its mode has no
	// ports to change; the checked lookup says which.
	c, err := dialPorts(filepath.Join(dir, name))
	if err != nil {
		return portRefusal(dir, name, what, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(c).Encode(portRequest{Op: op, Spec: spec}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var r portReply
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&r); err != nil {
		return fmt.Errorf("%s: sandbox %s ended before it answered; fix: nsbox ps lists the running sandboxes", what, name)
	}
	if r.Error != "" {
		return fmt.Errorf("%s: %s", what, r.Error)
	}
	if op == "ls" {
		for _, p := range r.Ports {
			fmt.Fprintln(stdout, p)
		}
	}
	return nil
}

// dialPorts connects to the control socket in entry and checks that the
// process at the other end runs as this uid.
func dialPorts(entry string) (*net.UnixConn, error) {
	if state.ValidName(filepath.Base(entry)) != nil {
		return nil, syscall.ENOENT
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(entry, portSocket), Net: "unix"})
	if err != nil {
		return nil, err
	}
	if !peerIsUs(c) {
		c.Close()
		return nil, fmt.Errorf("the control socket is not served by a process of uid %d in this user namespace", os.Getuid())
	}
	return c, nil
}

// portRefusal words why no launcher answered: the sandbox does not run,
// its mode has no ports to change, or it is ending.
func portRefusal(dir, name, what string, dialErr error) error {
	live, err := lookup(dir, name)
	if err != nil {
		return err
	}
	defer live.Close()
	mode := "none"
	if live.Network != nil {
		mode = live.Network.Mode
	} else if !live.Spec.Namespaces.Net {
		mode = "host"
	}
	if mode != "user" && mode != "slirp4netns" {
		return fmt.Errorf("%s: sandbox %s uses --net %s, whose ports cannot change while it runs; fix: start it with --net user (or give -p to nsbox run)", what, name, mode)
	}
	if errors.Is(dialErr, syscall.ENOENT) || errors.Is(dialErr, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: sandbox %s is ending (its launcher no longer takes port changes); fix: nsbox ps lists the running sandboxes", what, name)
	}
	return fmt.Errorf("%s: %w", what, dialErr)
}
