package nethelper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nsbox/nsbox/cmd/internal/helper"
	"github.com/nsbox/nsbox/network"
)

// Client is the helper for one sandbox: not started yet, being started,
// or started and waiting for its Request and then its TAP device.
type Client struct {
	stderr  io.Writer
	once    sync.Once
	started chan struct{} // closed once start returned
	err     error         // start's error, set before started is closed
	pid     int           // the helper, our child, once started; 0 once reaped
	sock    *os.File
	// stdin is the helper's stdin, a pipe made by New: Configure writes
	// the Request into reqW and closes it; the read end goes to the
	// helper at its start (and is closed here then).
	stdin, reqW *os.File
	configured  bool       // Configure was called
	ctl         sync.Mutex // one Control exchange at a time; guards pid and stopped after the start
	stopped     bool       // the launcher's end of sock is closed
	begun       bool       // Start ran (started will close)
}

// New returns a helper that is not started yet; stderr receives its log
// lines (with Request.Verbose) and any crash. Nothing starts until Start
// or Serve, and nothing is served before Configure.
func New(stderr io.Writer) (*Client, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%s: pipe: %w", helper.Name, err)
	}
	return &Client{stderr: stderr, started: make(chan struct{}), stdin: r, reqW: w}, nil
}

// Start starts the helper in the background, before its Request is
// known: the exec and the helper's Go runtime and package inits (most of
// its start, and of the CPU it needs) then overlap the launcher's own
// flags and spec, when the sandbox's stage is still waiting for its
// CONFIG and a second CPU, where there is one, is idle. The helper waits
// for Configure's Request on its stdin. Serve waits for the start and
// reports its failure. A caller that may not start the sandbox (it only
// checks the flags, or hands them to another process) does not call it:
// Serve starts the helper itself.
func (c *Client) Start() {
	c.once.Do(func() {
		c.begun = true
		go func() {
			defer close(c.started)
			c.pid, c.sock, c.err = start(c.stdin, c.stderr)
		}()
	})
}

// Adopt is New and Start for a helper that is already running: the one
// the ELF constructor started (helper.Early), whose stdin's write end
// and socket are given. It is then the Client's as if Start had started
// it; Close kills and reaps it. pid must be this process's child that
// nobody else reaps: until Wait or Close reaps it, its pid names it.
func Adopt(stderr io.Writer, pid int, stdin, sock *os.File) *Client {
	c := &Client{stderr: stderr, started: make(chan struct{}), reqW: stdin, pid: pid, sock: sock, begun: true}
	c.once.Do(func() { close(c.started) })
	return c
}

// Early adopts the helper the ELF constructor started, if it did
// (helper.Early); nil otherwise.
func Early(stderr io.Writer) *Client {
	pid, stdin, sock, ok := helper.Early()
	if !ok {
		return nil
	}
	return Adopt(stderr, pid, stdin, sock)
}

// Configure sends the helper what to serve: cfg, and with verbose its
// log lines. Called once, before Serve; the Request is encoded and
// written in the background (a pipe holds 64 KiB; a longer one waits
// for the helper to read it).
func (c *Client) Configure(cfg network.UserConfig, verbose bool) {
	c.configured = true
	go func() {
		defer c.reqW.Close()
		req, err := json.Marshal(Request{Protocol: Protocol, Config: cfg, Verbose: verbose})
		if err != nil {
			return // the helper reads no request and says so on the socket
		}
		c.reqW.Write(req)
	}()
}

// start runs the helper with stdin as its stdin; it closes stdin, which
// only the helper needs from then on.
func start(stdin *os.File, stderr io.Writer) (int, *os.File, error) {
	defer stdin.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: socketpair: %w", helper.Name, err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "net-helper"), os.NewFile(uintptr(fds[1]), "net-helper")
	defer theirs.Close()
	cmd, closeAfter, err := helper.Command(Job)
	if err != nil {
		ours.Close()
		return 0, nil, err
	}
	for _, f := range cmd.ExtraFiles {
		defer f.Close()
	}
	if closeAfter != nil {
		defer closeAfter.Close()
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// network.LimitProcs from the helper's first instruction, not
		// after its runtime started a thread per CPU.
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", network.Procs()))
	}
	cmd.Stdin = stdin // a file: passed as it is, with no copying goroutine
	cmd.Stderr = stderr
	cmd.ExtraFiles = append(cmd.ExtraFiles, theirs) // the helper's fd 4
	if err := cmd.Start(); err != nil {
		ours.Close()
		return 0, nil, fmt.Errorf("%s: %w", helper.Name, err)
	}
	// Reaped by its pid (reap), as an adopted helper is, for which an
	// os.Process (os.FindProcess) would fork a throwaway child to probe
	// pidfds first.
	return cmd.Process.Pid, ours, nil
}

// Serve hands tap to the helper and waits until its stack serves it: a
// tapnet.Server (cfg went with Configure, which must come first). The
// returned function stops the helper; Wait waits for it.
func (c *Client) Serve(tap *os.File, _ network.UserConfig) (func() error, error) {
	if !c.configured {
		tap.Close()
		c.Close()
		return nil, fmt.Errorf("%s: served before it was configured", helper.Name)
	}
	c.Start()
	<-c.started
	if c.err != nil {
		tap.Close()
		return nil, c.err
	}
	err := c.sendTAP(tap)
	tap.Close()
	// A helper that failed before the device said why; its reply is the
	// better error than the failed send.
	if rerr := c.reply(); rerr != nil {
		err = rerr
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c.stop, nil
}

func (c *Client) sendTAP(tap *os.File) error {
	rc, err := c.sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(s uintptr) bool {
		serr = unix.Sendmsg(int(s), []byte("tap"), unix.UnixRights(int(tap.Fd())), nil, 0)
		return serr != unix.EAGAIN
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("%s: hand over the TAP device: %w", helper.Name, err)
	}
	return nil
}

// Control has the serving helper publish (add), unpublish (rm) or list
// (ls) ports, and returns the published ports afterwards. Its errors are
// *network.Error where the stack's are.
func (c *Client) Control(op string, p network.Publish) ([]network.Publish, error) {
	c.ctl.Lock()
	defer c.ctl.Unlock()
	if c.pid == 0 || c.stopped {
		return nil, fmt.Errorf("%s: not serving", helper.Name)
	}
	b, err := json.Marshal(Control{Op: op, Port: p})
	if err != nil {
		return nil, err
	}
	if _, err := c.sock.Write(b); err != nil {
		return nil, fmt.Errorf("%s: %w", helper.Name, err)
	}
	return c.readReply()
}

// Publish forwards one more host port (nsbox port add).
func (c *Client) Publish(p network.Publish) error {
	_, err := c.Control("add", p)
	return err
}

// Unpublish stops forwarding one (nsbox port rm).
func (c *Client) Unpublish(p network.Publish) error {
	_, err := c.Control("rm", p)
	return err
}

// Ports lists the published ports (nsbox port ls).
func (c *Client) Ports() ([]network.Publish, error) {
	return c.Control("ls", network.Publish{})
}

// reply reads the helper's answer to the device.
func (c *Client) reply() error {
	_, err := c.readReply()
	return err
}

// readReply reads one Reply; a failure in it is the error.
func (c *Client) readReply() ([]network.Publish, error) {
	b := make([]byte, MaxReply)
	n, err := c.sock.Read(b)
	if err != nil || n == 0 {
		werr := c.reap()
		return nil, fmt.Errorf("%s: exited before it answered (%v)", helper.Name, errors.Join(err, werr))
	}
	var r Reply
	if err := json.Unmarshal(b[:n], &r); err != nil {
		return nil, fmt.Errorf("%s: bad reply: %w", helper.Name, err)
	}
	switch {
	case r.Error != nil:
		if r.Cause != "" {
			r.Error.Err = errors.New(r.Cause)
		}
		return nil, r.Error
	case r.Message != "":
		return nil, errors.New(r.Message)
	}
	return r.Ports, nil
}

// stop closes the launcher's end, on which the helper exits (without
// tearing its stack down: the kernel closes every socket and the device
// as it exits). It does not wait for that: Wait does, so that the
// launcher's own tear-down (the state entry, the port control socket)
// overlaps the helper's exit, about 0.8 ms of a Go process's threads and
// memory going, in which the kernel also closes its descriptors.
func (c *Client) stop() error {
	c.ctl.Lock()
	defer c.ctl.Unlock()
	if !c.stopped {
		c.stopped = true
		c.sock.Close()
	}
	return nil
}

// Wait stops the helper, if Serve's stop has not, and waits for it to
// exit: the launcher calls it last, and then no process of the helper's
// and none of its host sockets (-p's listeners) are left. It returns the
// helper's exit error, if any. A helper that was never started, or is
// already reaped, gives nil.
func (c *Client) Wait() error {
	if !c.begun {
		return nil // never started: nothing to wait for
	}
	<-c.started
	if c.err != nil || c.sock == nil {
		return nil
	}
	c.stop()
	c.ctl.Lock()
	defer c.ctl.Unlock()
	if err := c.reap(); err != nil {
		return fmt.Errorf("%s: %w", helper.Name, err)
	}
	return nil
}

// reap waits for the helper's exit (c.ctl held), once: an exit that is
// not status 0 is the error.
func (c *Client) reap() error {
	if c.pid == 0 {
		return nil
	}
	var ws unix.WaitStatus
	_, err := unix.Wait4(c.pid, &ws, 0, nil)
	for err == unix.EINTR {
		_, err = unix.Wait4(c.pid, &ws, 0, nil)
	}
	c.pid = 0
	switch {
	case err != nil:
		return fmt.Errorf("wait: %w", err)
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	case ws.ExitStatus() != 0:
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	}
	return nil
}

// Close ends a helper that will not serve (the sandbox did not start):
// it is killed and waited for.
func (c *Client) Close() {
	c.once.Do(func() { close(c.started); c.stdin.Close() }) // never started: nothing to end
	<-c.started
	if !c.configured {
		c.reqW.Close()
	}
	if c.err != nil || c.sock == nil {
		return
	}
	c.ctl.Lock()
	if c.pid != 0 {
		unix.Kill(c.pid, unix.SIGKILL)
	}
	c.ctl.Unlock()
	c.Wait()
}

var _ network.Ports = (*Client)(nil)
