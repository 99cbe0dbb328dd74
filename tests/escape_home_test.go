package tests

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// The attacks of issue 12 items 4 and 5, from inside a default sandbox:
// the user's secrets, the session's sockets and the dotfiles must be out
// of reach; each has a control showing the attack works when the user
// opens the door explicitly.

// fakeHome makes a home directory outside /tmp (the sandbox's /tmp is
// private anyway, which would prove nothing), with a planted private key.
func fakeHome(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("/var/tmp", "nsbox-home-")
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(home) })
	assert.NilError(t, os.Chmod(home, 0o755))
	assert.NilError(t, os.Mkdir(filepath.Join(home, ".ssh"), 0o700))
	assert.NilError(t, os.WriteFile(filepath.Join(home, ".ssh", "id_rsa"), []byte("PRIVATE-KEY-MATERIAL\n"), 0o600))
	assert.NilError(t, os.WriteFile(filepath.Join(home, ".bashrc"), []byte("# host bashrc\n"), 0o644))
	return home
}

// withHome runs nsbox with HOME set for the launcher (and XDG_RUNTIME_DIR
// cleared unless given), from dir.
func withHome(home, dir string, extraEnv ...string) []icmd.CmdOp {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	return []icmd.CmdOp{icmd.WithEnv(append(env, extraEnv...)...), icmd.Dir(dir)}
}

// notices are the lines of nsbox's own on stderr.
func notices(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "nsbox:") {
			out = append(out, l)
		}
	}
	return out
}

func TestEscapeReadSSHKey(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	key := filepath.Join(home, ".ssh", "id_rsa")
	res := nsboxWith([]string{"run", "--", "sh", "-c", "cat ~/.ssh/id_rsa; cat " + key + "; ls -A ~ /home"}, withHome(home, t.TempDir())...)
	assert.Check(t, !strings.Contains(res.Combined(), "PRIVATE-KEY"), res.Combined())
	assert.Check(t, is.Contains(res.Stderr(), "No such file"))
	// Nobody's home shows under /home: at most the private one.
	for _, l := range splitLines(res.Stdout()) {
		assert.Check(t, l == "" || l == filepath.Base(home) || !strings.Contains(l, "nsbox-test"), "visible in /home: %q", l)
	}
	// Control: --share-home shows it, read-only.
	res = nsboxWith([]string{"run", "--share-home", "--", "sh", "-c", "cat ~/.ssh/id_rsa; touch ~/x"}, withHome(home, t.TempDir())...)
	assert.Check(t, is.Contains(res.Stdout(), "PRIVATE-KEY"))
	assert.Check(t, is.Contains(res.Stderr(), "Read-only file system"))
}

// listen makes a listening unix socket at path; connections are accepted
// and answered "hello".
func listen(t *testing.T, path string) {
	t.Helper()
	serveConns(t, "unix", path, func(c net.Conn) {
		c.Write([]byte("hello\n"))
		c.Close()
	})
	assert.NilError(t, os.Chmod(path, 0o777))
}

// connectScript connects to the unix socket $1 and prints what it reads.
const connectScript = `import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print(s.recv(16).decode().strip())
except OSError as e:
    print("refused:", e.strerror)
`

func TestEscapeConnectSessionSockets(t *testing.T) {
	requireUnprivileged(t)
	requirePython(t)
	home := fakeHome(t)
	runtime, err := os.MkdirTemp("/var/tmp", "nsbox-runtime-")
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(runtime) })
	assert.NilError(t, os.Chmod(runtime, 0o700))
	agent := filepath.Join(home, "agent.sock")
	bus := filepath.Join(runtime, "bus")
	listen(t, agent)
	listen(t, bus)
	for _, sock := range []string{agent, bus} {
		res := nsboxWith([]string{"run", "--", "python3", "-c", connectScript, sock},
			withHome(home, t.TempDir(), "XDG_RUNTIME_DIR="+runtime)...)
		res.Assert(t, icmd.Success)
		assert.Check(t, is.Contains(res.Stdout(), "refused:"), "%s: %s", sock, res.Combined())
		// Control: bound explicitly, the socket answers.
		res = nsboxWith([]string{"run", "--bind", filepath.Dir(sock), "--", "python3", "-c", connectScript, sock},
			withHome(home, t.TempDir(), "XDG_RUNTIME_DIR="+runtime)...)
		assert.Check(t, is.Equal(res.Stdout(), "hello\n"), "%s: %s", sock, res.Combined())
	}
	// The XDG_RUNTIME_DIR inside is a private, writable directory.
	res := nsboxWith([]string{"run", "--", "sh", "-c", `touch "$XDG_RUNTIME_DIR/x" && ls -A "$XDG_RUNTIME_DIR"`},
		withHome(home, t.TempDir(), "XDG_RUNTIME_DIR="+runtime)...)
	res.Assert(t, icmd.Expected{Out: "x"})
	// /run is empty of sockets: no docker.sock, no dbus.
	res = nsboxWith([]string{"run", "--", "sh", "-c", "find /run /var/run -type s"}, withHome(home, t.TempDir())...)
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(res.Stdout(), ""))
}

// cd ~ && nsbox run -- sh -c 'echo x >> ~/.bashrc' must not reach the host.
func TestEscapeDotfilesFromHome(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	for _, dir := range []string{home, filepath.Join(home, ".ssh"), filepath.Dir(home)} {
		res := nsboxWith([]string{"run", "--", "sh", "-c", "echo planted >> ~/.bashrc; echo planted >> ./.bashrc; echo key >> ~/.ssh/authorized_keys"},
			withHome(home, dir)...)
		assert.Check(t, is.Contains(res.Stderr(), "nothing is bound writable; fix: --bind "+dir), dir)
		assert.Check(t, is.Len(notices(res.Stderr()), 1), res.Stderr())
		b, err := os.ReadFile(filepath.Join(home, ".bashrc"))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(b), "# host bashrc\n"), "from %s", dir)
		_, err = os.Stat(filepath.Join(home, ".ssh", "authorized_keys"))
		assert.Check(t, os.IsNotExist(err), "from %s", dir)
	}
	// / and system directories: nothing writable either.
	for _, dir := range []string{"/", "/usr", "/etc"} {
		res := nsboxWith([]string{"run", "--", "true"}, withHome(home, dir)...)
		res.Assert(t, icmd.Success)
		assert.Check(t, is.Contains(res.Stderr(), "is a system directory: nothing is bound writable"), dir)
	}
	// Control: asked with --bind, the home is writable.
	res := nsboxWith([]string{"run", "--bind", home, "--", "sh", "-c", "echo opted-in >> ~/.bashrc"}, withHome(home, home)...)
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Len(notices(res.Stderr()), 0), res.Stderr())
	b, _ := os.ReadFile(filepath.Join(home, ".bashrc"))
	assert.Check(t, is.Equal(string(b), "# host bashrc\nopted-in\n"))
}

// Binds to paths that do not exist, under read-only directories of the
// host's tree, work; the directories keep their entries; the host is not
// written.
func TestBindToNewPathUnderReadOnlyParent(t *testing.T) {
	requireUnprivileged(t)
	home := fakeHome(t)
	data := filepath.Join(home, "data")
	assert.NilError(t, os.Mkdir(data, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(data, "f"), []byte("data-file\n"), 0o644))
	cwd := t.TempDir()
	assert.NilError(t, os.Mkdir(filepath.Join(cwd, "data"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(cwd, "data", "g"), []byte("cwd-file\n"), 0o644))
	before, err := os.ReadDir("/")
	assert.NilError(t, err)

	res := nsboxWith([]string{"run", "--ro-bind", data + ":/mnt/nsbox-data", "--ro-bind", "./data:/nsbox-data",
		"--tmpfs", "/opt/nsbox-new/deep", "--file", "/etc/hostname:/usr/nsbox-file", "--", "sh", "-c",
		"cat /mnt/nsbox-data/f /nsbox-data/g; test -d /opt/nsbox-new/deep && echo tmpfs; test -f /usr/nsbox-file && echo file; " +
			"test -e /usr/bin/sh && test -e /etc/passwd && echo entries-kept; touch /nsbox-x /mnt/nsbox-x 2>/dev/null || echo still-read-only"},
		withHome(home, cwd)...)
	res.Assert(t, icmd.Expected{Out: "data-file\ncwd-file\ntmpfs\nfile\nentries-kept\nstill-read-only\n"})
	// The root lists the same entries as the host's, plus the new one.
	res = nsboxWith([]string{"run", "--ro-bind", "./data:/nsbox-data", "--", "ls", "-A", "/"}, withHome(home, cwd)...)
	res.Assert(t, icmd.Success)
	inside := map[string]bool{}
	for _, n := range splitLines(res.Stdout()) {
		inside[n] = true
	}
	for _, e := range before {
		assert.Check(t, inside[e.Name()], "%s hidden by the new mount point", e.Name())
	}
	assert.Check(t, inside["nsbox-data"])
	for _, p := range []string{"/mnt/nsbox-data", "/nsbox-data", "/opt/nsbox-new", "/usr/nsbox-file", "/nsbox-x"} {
		_, err := os.Lstat(p)
		assert.Check(t, os.IsNotExist(err), "%s made on the host", p)
	}
}
