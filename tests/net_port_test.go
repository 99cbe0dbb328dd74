package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// peerServer answers every TCP connection on port 8080 inside the sandbox
// with "peer ADDR".
const peerServer = `import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(("peer " + a[0] + "\n").encode()); c.close()`

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	assert.NilError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// peerVia dials 127.0.0.1:port and returns the server's line.
func peerVia(port int) (string, error) {
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// nsbox port add under traffic: the port forwards at once, shows in ps,
// and rm makes the host refuse it; a port published twice, one in use and
// a sandbox that ended are one-line errors naming sandbox, port and fix.
func TestPortAddRmWhileRunning(t *testing.T) {
	requireNetTools(t)
	for _, mode := range []string{"user", "slirp4netns"} {
		t.Run(mode, func(t *testing.T) {
			if _, err := exec.LookPath(mode); mode != "user" && err != nil {
				cannotRun(t, "%s is not installed", mode)
			}
			portAddRm(t, mode)
		})
	}
}

func portAddRm(t *testing.T, mode string) {
	name := "port-" + mode
	cmd := exec.Command(nsboxBin, "run", "--name", name, "--net", mode, "--", requirePython(t), "-c", peerServer)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if res := nsbox("port", "ls", name); res.ExitCode != 0 {
			return poll.Continue("port ls: %s", res.Combined())
		}
		return poll.Success()
	}, poll.WithTimeout(20*time.Second), poll.WithDelay(50*time.Millisecond))

	port := freePort(t)
	spec := fmt.Sprintf("%d:8080", port)
	_, err := peerVia(port)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	nsbox("port", "add", name, spec).Assert(t, icmd.Success)
	var peer string
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if peer, err = peerVia(port); err != nil {
			return poll.Continue("dial: %v", err)
		}
		return poll.Success()
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(50*time.Millisecond))
	assert.Equal(t, peer, "peer 10.0.2.2") // a loopback client is the gateway inside, as with -p
	want := fmt.Sprintf("127.0.0.1:%d->8080/tcp", port)
	assert.Check(t, is.Contains(nsbox("ps").Stdout(), want))
	assert.Check(t, is.Contains(nsbox("inspect", name).Stdout(), fmt.Sprintf(`"127.0.0.1:%d-\u003e8080/tcp"`, port))) // JSON escapes >
	assert.Equal(t, strings.TrimSpace(nsbox("port", "ls", name).Stdout()), want)

	oneErrorLine(t, nsbox("port", "add", name, spec), 125, "port add "+name, "published already", "fix:")
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	assert.NilError(t, err)
	defer busy.Close()
	busySpec := fmt.Sprintf("%d:8080", busy.Addr().(*net.TCPAddr).Port)
	oneErrorLine(t, nsbox("port", "add", name, busySpec), 125, "port add "+name+" "+busySpec, "pick a free host port")

	nsbox("port", "rm", name, spec).Assert(t, icmd.Success)
	_, err = peerVia(port)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Check(t, !strings.Contains(nsbox("ps").Stdout(), want))
	oneErrorLine(t, nsbox("port", "rm", name, spec), 125, "not published")

	// End the sandbox through nsbox (its launcher then stops slirp4netns
	// and waits for it), not by killing the launcher: slirp4netns would
	// linger as a zombie under init and another test's pgrep see it.
	nsbox("kill", name)
	cmd.Wait()
	// The checks only look: an assert in poll's goroutine, which may
	// outlive the test, would panic there.
	var res *icmd.Result
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		res = nsbox("port", "add", name, spec)
		if !strings.Contains(res.Stderr(), "no such sandbox") {
			return poll.Continue("port add after the end: %s", res.Combined())
		}
		return poll.Success()
	}, poll.WithTimeout(10*time.Second))
	assert.Equal(t, res.ExitCode, 125)
}

// Modes whose ports cannot change say so in one line; the control socket
// is nowhere in the sandbox's view.
func TestPortRefusedAndControlSocketHidden(t *testing.T) {
	requireNetTools(t)
	cmd := exec.Command(nsboxBin, "run", "--name", "port-none", "--", "sleep", "60")
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var refused *icmd.Result
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		refused = nsbox("port", "add", "port-none", "18080:80")
		if !strings.Contains(refused.Stderr(), "uses --net none") {
			return poll.Continue("port add: %s", refused.Combined())
		}
		return poll.Success()
	}, poll.WithTimeout(20*time.Second), poll.WithDelay(50*time.Millisecond))
	oneErrorLine(t, refused, 125, "port add port-none 18080:80", "uses --net none", "fix: start it with --net user")

	res := nsbox("run", "--name", "port-inside", "--net", "user", "--", "sh", "-c",
		"find / -xdev -name ports.sock 2>/dev/null; find /run /tmp -name ports.sock 2>/dev/null; echo done")
	res.Assert(t, icmd.Success)
	assert.Equal(t, strings.TrimSpace(res.Stdout()), "done")
}

// A sandbox that shares the host's mounts and runs as the user's own uid
// (--share mnt --map single) reaches the launcher's control socket, but
// its process is in a user namespace of its own: the launcher closes the
// connection unanswered and the port is not added.
func TestPortControlSocketRefusesSandboxes(t *testing.T) {
	requireNetTools(t)
	name := "port-target"
	cmd := exec.Command(nsboxBin, "run", "--name", name, "--net", "user", "--", "sleep", "60")
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sock := portsSocket(t, name)
	attack := fmt.Sprintf(`import socket
s = socket.socket(socket.AF_UNIX); s.connect(%q)
try:
    s.sendall(b'{"op":"add","spec":"18491:80"}\n')
    print("reply", repr(s.recv(4096)))
except OSError as e:
    print("refused", e)`, sock)
	res := nsbox("run", "--map", "single", "--share", "mnt", "--", requirePython(t), "-c", attack)
	res.Assert(t, icmd.Success)
	assert.Check(t, !strings.Contains(res.Stdout(), "ports"), res.Stdout()) // no reply of the launcher's
	assert.Equal(t, strings.TrimSpace(nsbox("port", "ls", name).Stdout()), "")
}

// portsSocket waits until the sandbox called name answers nsbox port ls
// and returns the path of its control socket.
func portsSocket(t *testing.T, name string) string {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if res := nsbox("port", "ls", name); res.ExitCode != 0 {
			return poll.Continue("port ls: %s", res.Combined())
		}
		return poll.Success()
	}, poll.WithTimeout(20*time.Second), poll.WithDelay(50*time.Millisecond))
	sock := ""
	for _, dir := range stateDirs() {
		if p := dir + "/" + name + "/ports.sock"; fileExists(p) {
			sock = p
		}
	}
	assert.Assert(t, sock != "", "no ports.sock in %v", stateDirs())
	return sock
}

// stateDirs are where nsbox keeps its state entries for this user
// (state.Candidates in cmd/nsbox/internal/state, in the initial user namespace).
func stateDirs() []string {
	var dirs []string
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		dirs = append(dirs, filepath.Join(x, "nsbox"))
	}
	return append(dirs, filepath.Join(os.TempDir(), fmt.Sprintf("nsbox-%d", os.Getuid())))
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// A process of the user's that connects to the control socket and never
// sends its request does not keep the sandbox's launcher alive once the
// command has ended: the server gives a request 10 s, answer included
// (portConnTimeout), and the launcher stops the server when the sandbox
// ends.
func TestPortControlSocketIdleClientDoesNotHoldTheEnd(t *testing.T) {
	requireNetTools(t)
	name := "port-idle"
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	cmd := exec.Command(nsboxBin, "run", "--name", name, "--net", "user", "--bind", dir, "--",
		"sh", "-c", `while [ ! -e "$0" ]; do sleep 0.05; done`, gate)
	assert.NilError(t, cmd.Start())
	var waitErr error
	ended := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(ended) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-ended
	})
	sock := portsSocket(t, name)
	c, err := net.Dial("unix", sock)
	assert.NilError(t, err)
	defer c.Close()
	// The command ends while the connection waits, silent.
	assert.NilError(t, os.WriteFile(gate, nil, 0o600))
	select {
	case <-ended:
		assert.NilError(t, waitErr)
	case <-time.After(60 * time.Second):
		t.Fatal("nsbox run still runs 60 s after its command ended, held by an idle control-socket client")
	}
}
