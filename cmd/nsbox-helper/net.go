//go:build !nsbox_helper_image

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/cmd/internal/nethelper"
	"github.com/nsbox/nsbox/netstack"
	"github.com/nsbox/nsbox/network"
)

func init() { jobs[nethelper.Job] = job{run: netJob, files: 1} }

// netJob serves --net user's stack on the TAP device the launcher sends
// (the exchange is in package nethelper) until the launcher closes its
// end of the socket on fd 4 or dies.
func netJob([]string) int {
	// The launcher's terminal signals are the launcher's to handle (it
	// forwards them to the command); the stack stops when it says so.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	// Both descriptors are waited on through the runtime's poller, not in
	// a blocking system call: a thread blocked in one keeps its P until
	// the runtime's monitor takes it back, and the monitor, woken by each
	// such return, polls every 20 µs for the next millisecond. Only this
	// process holds these ends (the pipe's read end, the socket's end),
	// so their O_NONBLOCK is nobody else's business.
	unix.SetNonblock(0, true)
	unix.SetNonblock(4, true)
	sock := os.NewFile(4, "launcher")
	if sock == nil {
		return fail(nil, "no socket on fd 4")
	}
	// The launcher starts this program before it knows the request (so
	// that this start overlaps its own), and writes the request when it
	// has it. None at all: it did not start the sandbox after all.
	b, err := io.ReadAll(io.LimitReader(os.NewFile(0, "request"), nethelper.MaxRequest+1))
	if err == nil && len(b) == 0 {
		return 0
	}
	if err != nil || len(b) > nethelper.MaxRequest {
		return fail(sock, fmt.Sprintf("read the request: %v (%d bytes)", err, len(b)))
	}
	var req nethelper.Request
	if err := json.Unmarshal(b, &req); err != nil {
		return fail(sock, fmt.Sprintf("decode the request: %v", err))
	}
	if req.Protocol != nethelper.Protocol {
		return fail(sock, fmt.Sprintf("protocol %d, this helper speaks %d; fix: install nsbox and nsbox-helper from the same build", req.Protocol, nethelper.Protocol))
	}
	cfg := req.Config
	if req.Verbose {
		cfg.Log = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "nsbox: net: "+format+"\n", args...)
		}
	}
	network.LimitProcs() // serving the network is all this process does
	// All but the device now, while the sandbox is being set up: the
	// launcher waits only for Attach once the device exists.
	n, err := netstack.Prepare(cfg)
	if err != nil {
		return fail(sock, err)
	}
	tap, err := receiveTAP(sock)
	if err != nil {
		return 0 // the launcher closed or died before the sandbox's device existed
	}
	if err := n.Attach(tap); err != nil {
		return fail(sock, err)
	}
	reply(sock, nethelper.Reply{})
	// Serve until EOF (the launcher's stop, or its death), answering the
	// launcher's port changes meanwhile. Then exit without n.Close: the
	// kernel closes every socket and the device at exit, and the
	// launcher, which waits for this process, is not kept waiting for the
	// stack's orderly teardown (about 1 ms).
	buf := make([]byte, nethelper.MaxReply) // control messages are small
	for {
		k, err := sock.Read(buf)
		if err != nil || k == 0 {
			return 0
		}
		var c nethelper.Control
		if err := json.Unmarshal(buf[:k], &c); err != nil {
			fail(sock, fmt.Sprintf("decode a control message: %v", err))
			continue
		}
		if err := control(n, c); err != nil {
			fail(sock, err)
			continue
		}
		reply(sock, nethelper.Reply{Ports: n.Ports()})
	}
}

// control applies one port change.
func control(n *netstack.Network, c nethelper.Control) error {
	switch c.Op {
	case "add":
		return n.Publish(c.Port)
	case "rm":
		return n.Unpublish(c.Port)
	case "ls":
		return nil
	}
	return fmt.Errorf("unknown control %q", c.Op)
}

// receiveTAP reads the "tap" message and its descriptor.
func receiveTAP(sock *os.File) (*os.File, error) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	raw, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	for {
		var n, oobn int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, io.EOF
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return nil, errors.New("no descriptor with the tap message")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, errors.New("not one descriptor with the tap message")
		}
		if string(buf[:n]) != "tap" {
			unix.Close(fds[0])
			return nil, fmt.Errorf("unexpected message %q", buf[:n])
		}
		return os.NewFile(uintptr(fds[0]), "tap"), nil
	}
}

// fail replies with the failure, when the socket is there, and returns the
// job's exit status.
func fail(sock *os.File, failure any) int {
	var r nethelper.Reply
	var ne *network.Error
	switch f := failure.(type) {
	case error:
		if errors.As(f, &ne) {
			c := *ne
			if c.Err != nil {
				r.Cause = c.Err.Error()
				c.Err = nil
			}
			r.Error = &c
		} else {
			r.Message = f.Error()
		}
	default:
		r.Message = fmt.Sprintf("nsbox-helper: %v", f)
	}
	if sock == nil {
		fmt.Fprintln(os.Stderr, r.Message)
		return 1
	}
	reply(sock, r)
	return 1
}

func reply(sock *os.File, r nethelper.Reply) {
	b, err := json.Marshal(r)
	if err == nil && len(b) > nethelper.MaxReply {
		b, _ = json.Marshal(nethelper.Reply{Message: "nsbox-helper: reply too long"})
	}
	sock.Write(b)
}
