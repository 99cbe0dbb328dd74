package tests

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// Docker: nsbox in a container as CI runners run it, a non-root user in a
// container whose settings decide what the kernel allows (docs/ci.md).
// The image is built here, without a registry: a tar stream of the nsbox
// binary under test, busybox-static and its applets, bubblewrap (for
// comparison) with the libraries it loads, and a user "user" (uid 1000)
// without subordinate ids, given to `docker import`.
//
// These tests talk to the Docker daemon, whose socket is root's: make test
// runs them in its real-root phase (hack/test.sh, pattern ^TestDocker),
// while the container's command runs as uid 1000.

const dockerImage = "nsbox-test:local"

// unconfined lifts the container's seccomp filter and AppArmor profile,
// as docs/ci.md's recipes do.
var unconfined = []string{"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"}

var dockerImageOnce struct {
	sync.Once
	err error
}

// requireDocker builds the image once, or fails the test (skips outside
// CI) where Docker cannot be used.
func requireDocker(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		cannotRun(t, "Docker tests run as root (the daemon's socket is root's); make test runs them in its real-root phase")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		cannotRun(t, "no docker in PATH (hack/setup-host.sh installs docker.io)")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		cannotRun(t, "the Docker daemon does not answer (hack/setup-host.sh starts it): %v: %s", err, out)
	}
	dockerImageOnce.Do(func() { dockerImageOnce.err = buildDockerImage() })
	assert.NilError(t, dockerImageOnce.err)
}

// buildDockerImage imports the image from a tar stream made here.
func buildDockerImage() error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{} // docker import refuses a name twice
	add := func(h *tar.Header, data []byte) {
		if !seen[h.Name] {
			seen[h.Name] = true
			tw.WriteHeader(h)
			tw.Write(data)
		}
	}
	dir := func(name string, mode int64, uid int) {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}, nil)
	}
	file := func(name string, mode int64, data []byte) {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data)
	}
	copyFile := func(host, name string) error {
		b, err := os.ReadFile(host)
		if err != nil {
			return err
		}
		file(name, 0o755, b)
		return nil
	}
	for _, d := range []string{"bin", "usr", "usr/bin", "etc", "proc", "sys", "dev", "root", "home", "lib", "lib64", "lib/x86_64-linux-gnu"} {
		dir(d, 0o755, 0)
	}
	dir("tmp", 0o1777, 0)
	dir("home/user", 0o755, 1000)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nuser:x:1000:\n"))
	if err := copyFile(nsboxBin, "usr/bin/nsbox"); err != nil {
		return err
	}
	// The test binary itself, as the hostile program of the escape tests
	// (its C library comes with bubblewrap's below).
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := copyFile(self, "usr/bin/nsbox-tests"); err != nil {
		return err
	}
	if err := copyFile("/usr/bin/busybox", "bin/busybox"); err != nil {
		return err
	}
	applets, err := exec.Command("/usr/bin/busybox", "--list").Output()
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(string(applets)) {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox"}, nil)
	}
	// bubblewrap and the shared libraries ldd says it loads.
	if err := copyFile("/usr/bin/bwrap", "usr/bin/bwrap"); err != nil {
		return err
	}
	ldd, err := exec.Command("ldd", "/usr/bin/bwrap").Output()
	if err != nil {
		return err
	}
	for _, lib := range regexp.MustCompile(`/[^ ]+`).FindAllString(string(ldd), -1) {
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		file(strings.TrimPrefix(lib, "/"), 0o755, b)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res := icmd.RunCmd(icmd.Command("docker", "import", "-c", "ENV PATH=/usr/bin:/bin", "-c", "WORKDIR /home/user", "-", dockerImage),
		icmd.WithStdin(io.Reader(&buf)))
	return res.Compare(icmd.Success)
}

// inDocker runs the shell command in a new container as uid 1000, with
// docker run's options opts.
func inDocker(opts []string, command string) *icmd.Result {
	args := append([]string{"run", "--rm", "--user", "1000:1000"}, opts...)
	args = append(args, dockerImage, "sh", "-c", command)
	return icmd.RunCmd(icmd.Command("docker", args...))
}

// Docker's default seccomp profile refuses unshare: nsbox names the filter
// and the option that lifts it, exit 125; nsbox check tries nothing past
// the user namespace and says so. bubblewrap fails there too.
func TestDockerDefaultSeccomp(t *testing.T) {
	requireDocker(t)
	res := inDocker(nil, "mkdir -p /home/user/w && cd /home/user/w && grep Seccomp: /proc/self/status; nsbox run -- true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Out: "Seccomp:\t2"})
	assert.Check(t, is.Contains(res.Stderr(), "create a user namespace (unshare CLONE_NEWUSER): Operation not permitted; fix: a seccomp filter refuses unshare (Seccomp: 2"))
	assert.Check(t, is.Contains(res.Stderr(), "--security-opt seccomp=unconfined"))
	assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(res.Stderr()), "\n"), 0), "one line")

	res = inDocker(nil, "nsbox check")
	res.Assert(t, icmd.Expected{ExitCode: 125, Out: "✗ user namespace: create a user namespace"})
	assert.Check(t, is.Contains(res.Stdout(), "– mount namespace: not tried"))
	assert.Check(t, !strings.Contains(res.Stdout(), "✓ mount namespace") && !strings.Contains(res.Stdout(), "✓ a default sandbox"), res.Stdout())

	inDocker(nil, "bwrap --unshare-all --ro-bind / / -- true").Assert(t, icmd.Expected{ExitCode: 1, Err: "No permissions to create new namespace"})
}

// Without the filter and the AppArmor profile, Docker's masked /proc paths
// still make the kernel refuse a new procfs, to bubblewrap as to nsbox:
// nsbox names the mounts and both fixes; --share pid (this /proc bound)
// works, as bwrap without --proc does; systempaths=unconfined makes
// everything work, bwrap --proc too.
func TestDockerUnconfined(t *testing.T) {
	requireDocker(t)
	res := inDocker(unconfined, "nsbox run -- true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "mount a new procfs: Operation not permitted; fix: mounts cover parts of this /proc (/proc/"})
	assert.Check(t, is.Contains(res.Stderr(), "--security-opt systempaths=unconfined"))
	assert.Check(t, is.Contains(res.Stderr(), "--share pid"))
	res = inDocker(unconfined, "nsbox check")
	res.Assert(t, icmd.Expected{ExitCode: 125, Out: "✓ mount namespace"})
	assert.Check(t, is.Contains(res.Stdout(), "✓ network namespace: lo up"))
	assert.Check(t, is.Contains(res.Stdout(), "✗ PID namespace with a new /proc"))

	inDocker(unconfined, "bwrap --unshare-all --ro-bind / / --proc /proc -- true").
		Assert(t, icmd.Expected{ExitCode: 1, Err: "Can't mount proc on /newroot/proc: Operation not permitted"})
	inDocker(unconfined, "bwrap --unshare-all --ro-bind / / -- true").Assert(t, icmd.Success)
	// The fix nsbox names: --share pid binds this /proc.
	res = inDocker(unconfined, "nsbox run --share pid -- sh -c 'id -u; cat /proc/self/uid_map'")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(normalizeMap(res.Stdout()), "1000\n1000 0 1"), "the command's nested map onto the caller (sandbox/nested.go)")

	// The other fix: /proc unmasked.
	all := append([]string{"--security-opt", "systempaths=unconfined"}, unconfined...)
	res = inDocker(all, "nsbox run -- sh -c 'echo $$; id -u'")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(res.Stdout(), "2\n1000\n"), "the command is PID 2 of its own PID namespace")
	res = inDocker(all, "nsbox check")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), "✓ PID namespace with a new /proc"))
	assert.Check(t, is.Contains(res.Stdout(), "✓ a default sandbox starts"))
	inDocker(all, "bwrap --unshare-all --ro-bind / / --proc /proc -- true").Assert(t, icmd.Success)
}

// A privileged container lets everything through, the TAP device too.
func TestDockerPrivileged(t *testing.T) {
	requireDocker(t)
	res := inDocker([]string{"--privileged"}, "nsbox run -- sh -c 'echo $$; id -u; cat /proc/self/uid_map'")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(normalizeMap(res.Stdout()), "2\n1000\n1000 0 1"))
	res = inDocker([]string{"--privileged"}, "nsbox check")
	res.Assert(t, icmd.Success)
	for _, want := range []string{"✓ user namespace", "✓ mount namespace", "✓ network namespace: lo up", "✓ PID namespace with a new /proc", "✓ TAP device", "✓ a default sandbox starts"} {
		assert.Check(t, is.Contains(res.Stdout(), want))
	}
	inDocker([]string{"--privileged"}, "bwrap --unshare-all --ro-bind / / --proc /proc -- true").Assert(t, icmd.Success)
}

// vm.memfd_noexec = 2 (per PID namespace: set in the container's) forbids
// the sealed in-memory copy nsbox runs when the sandbox could write its
// binary (here: owned by the user, who is root inside with --root): nsbox
// falls back to a private file copy, which it leaves nowhere. (The
// container's root sets the sysctl: CAP_SYS_ADMIN and a writable
// /proc/sys; --privileged would do, but this host's runc cannot apply all
// capabilities to a root process.)
func TestDockerMemfdNoexec(t *testing.T) {
	requireDocker(t)
	opts := append([]string{"--cap-add", "SYS_ADMIN", "--security-opt", "systempaths=unconfined"}, unconfined...)
	res := inDockerAsRoot(opts, `echo 2 >/proc/sys/vm/memfd_noexec && cat /proc/sys/vm/memfd_noexec &&
		cp /usr/bin/nsbox /home/user/nsbox && chown user:user /home/user/nsbox &&
		su -s /bin/sh user -c "mkdir -p /home/user/w && cd /home/user/w && /home/user/nsbox run --root -- sh -c 'id -u; cut -d\" \" -f2 /proc/1/stat'" && ls -A /tmp | grep -c nsbox-stage`)
	res.Assert(t, icmd.Expected{ExitCode: 1}) // grep -c found no leftover copy
	lines := strings.Split(strings.TrimSpace(res.Stdout()), "\n")
	assert.Assert(t, is.Len(lines, 4), res.Combined())
	assert.Check(t, is.Equal(lines[0], "2"))
	assert.Check(t, is.Equal(lines[1], "0"))
	// PID 1 is not dumpable (its /proc/1/exe is closed): its name shows
	// it was executed through a descriptor ("(11)", not "(nsbox)"), so
	// from a copy; with memfd_noexec=2 a memfd copy cannot execute, so
	// it is the file copy.
	assert.Check(t, regexp.MustCompile(`^\([0-9]+\)$`).MatchString(lines[2]), "PID 1 is %s, not run from a copy", lines[2])
	assert.Check(t, is.Equal(lines[3], "0"))
}

// inDockerAsRoot is inDocker with the container's root running command.
func inDockerAsRoot(opts []string, command string) *icmd.Result {
	args := append([]string{"run", "--rm"}, opts...)
	args = append(args, dockerImage, "sh", "-c", command)
	return icmd.RunCmd(icmd.Command("docker", args...))
}
