package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// The live operations on the handle Start returns, in a sandbox with a
// network of its own and no way out (loopback only).
func TestLiveAPI(t *testing.T) {
	requireUnprivileged(t)
	spec := defaultSpec(t, "sh", "-c", "busybox nc -ll -p 7001 -e echo pong & exec sleep 600")
	spec.Process.Stdout, spec.Process.Stderr = io.Discard, io.Discard
	sb, err := sandbox.Start(context.Background(), spec)
	assert.NilError(t, err)
	defer func() { sb.Signal(os.Kill); sb.Wait() }()

	// Dial: the server inside, not reachable from the host.
	var conn net.Conn
	waitFor(t, func() bool {
		conn, err = sb.Dial(context.Background(), "tcp", "127.0.0.1:7001")
		return err == nil
	}, "the server inside")
	line, err := bufio.NewReader(conn).ReadString('\n')
	assert.NilError(t, err)
	assert.Equal(t, line, "pong\n")
	conn.Close()
	_, err = net.DialTimeout("tcp", "127.0.0.1:7001", time.Second)
	assert.Check(t, err != nil, "the sandbox's port is reachable from the host")
	_, err = sb.Dial(context.Background(), "tcp", "127.0.0.1:7999")
	assert.Check(t, errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "connection refused"), err)

	// Listen: a client inside reaches the caller's listener.
	ln, err := sb.Listen("tcp", "127.0.0.1:7002")
	assert.NilError(t, err)
	defer ln.Close()
	target := sandbox.TargetOf(spec, sb.Pid(), 0)
	st, err := os.ReadFile("/proc/" + itoa(uint32(sb.Pid())) + "/stat")
	assert.NilError(t, err)
	target.StartTime = statStart(string(st))
	var out bytes.Buffer
	client, err := sandbox.Join(context.Background(), target, &sandbox.Process{
		Args: []string{"sh", "-c", "echo ping | busybox nc 127.0.0.1 7002"}, UID: spec.Process.UID, GID: spec.Process.GID,
		Stdout: &out, Stderr: &out, NoNewPrivs: true,
	})
	assert.NilError(t, err)
	c, err := ln.Accept()
	assert.NilError(t, err)
	line, err = bufio.NewReader(c).ReadString('\n')
	assert.NilError(t, err)
	assert.Equal(t, line, "ping\n")
	c.Close()
	client.Wait()

	// Lookup gives the same operations without the Start handle.
	looked, err := sandbox.Lookup(target)
	assert.NilError(t, err)
	host := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(host, "f"), []byte("via the API\n"), 0o644))
	assert.NilError(t, os.Chmod(host, 0o755))
	assert.NilError(t, looked.Mount(host, "/tmp/api", sandbox.MountOptions{ReadOnly: true, Mkdir: true}))
	var tarOut bytes.Buffer
	skipped, err := sb.CopyFrom("/tmp/api", &tarOut)
	assert.NilError(t, err)
	assert.Check(t, is.Len(skipped, 0))
	assert.DeepEqual(t, tarNames(t, tarOut.String()), []string{"api/", "api/f"})
	assert.NilError(t, sb.Unmount("/tmp/api"))

	// Pause and resume, through the looked-up handle.
	assert.NilError(t, looked.Pause())
	paused, err := sb.Paused()
	assert.NilError(t, err)
	assert.Check(t, paused)
	assert.NilError(t, looked.Resume())
	paused, err = sb.Paused()
	assert.NilError(t, err)
	assert.Check(t, !paused)

	// Ended: every operation says so.
	sb.Signal(os.Kill)
	sb.Wait()
	assert.NilError(t, looked.Wait())
	_, err = looked.Dial(context.Background(), "tcp", "127.0.0.1:7001")
	assert.Check(t, errors.Is(err, sandbox.ErrEnded), err)
	assert.Check(t, errors.Is(looked.Pause(), sandbox.ErrEnded))
	assert.Check(t, errors.Is(looked.Mount(host, "/tmp/x", sandbox.MountOptions{}), sandbox.ErrEnded))
	_, err = sandbox.Lookup(target)
	assert.Check(t, errors.Is(err, sandbox.ErrEnded), err)
}

func statStart(stat string) uint64 {
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	var n uint64
	for _, c := range f[19] {
		n = n*10 + uint64(c-'0')
	}
	return n
}

// nsbox connect relays to a port of a --net none sandbox.
func TestLiveConnect(t *testing.T) {
	s := newStateEnv(t)
	s.detached("n", "--net", "none", "--", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hello")
	waitFor(t, func() bool { return s.run("connect", "n", "8080").Stdout() == "hello\n" }, "the server inside")
	res := icmd.RunCmd(icmd.Command(nsboxBin, "connect", "n", "127.0.0.1:8080"), icmd.WithEnv(s.env()...), icmd.WithStdin(strings.NewReader("x\n")))
	res.Assert(t, icmd.Expected{Out: "hello\n"})
	res = s.run("connect", "n", "8081")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "nsbox: sandbox n: dial tcp 127.0.0.1:8081 in the sandbox"})
	assert.Check(t, is.Contains(res.Stderr(), "connection refused"))
	assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	s.run("connect", "n", "example.org:80").Assert(t, icmd.Expected{ExitCode: 125, Err: "names are not resolved"})
}
