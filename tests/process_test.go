package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

func TestOnlyLoopbackAndItIsUp(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("run", "--", "cat", "/proc/net/dev")
	res.Assert(t, icmd.Success)
	var ifaces []string
	for _, l := range strings.Split(res.Stdout(), "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			ifaces = append(ifaces, name)
		}
	}
	assert.DeepEqual(t, ifaces, []string{"lo"})
	// lo is up: something can listen on and reach 127.0.0.1.
	up := nsbox("run", "--", "cat", "/sys/class/net/lo/flags", "/proc/net/if_inet6")
	up.Assert(t, icmd.Success)
	ip := nsbox("run", "--", "ip", "-o", "link", "show", "lo")
	ip.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(ip.Stdout(), "UP"))
}

func TestNewPIDNamespace(t *testing.T) {
	requireUnprivileged(t)
	host, err := os.Readlink("/proc/self/ns/pid")
	assert.NilError(t, err)
	res := nsbox("run", "--", "sh", "-c", "readlink /proc/self/ns/pid; echo $$; ls -d /proc/[0-9]* | wc -l")
	res.Assert(t, icmd.Success)
	lines := strings.Fields(res.Stdout())
	assert.Assert(t, len(lines) == 3, res.Stdout())
	assert.Check(t, lines[0] != host, "pid namespace %s is the host's", lines[0])
	assert.Equal(t, lines[1], "2", "the command is PID 2 under nsbox's init")
	n, _ := strconv.Atoi(lines[2])
	assert.Check(t, n <= 4, "a fresh /proc shows only the sandbox's processes, got %d", n)
}

func TestHostname(t *testing.T) {
	requireUnprivileged(t)
	before, _ := os.Hostname()
	res := nsbox("run", "--hostname", "box", "--", "hostname")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "box\n")
	after, _ := os.Hostname()
	assert.Equal(t, after, before)
}

func TestEnvironmentFlags(t *testing.T) {
	requireUnprivileged(t)
	res := nsboxWith([]string{"run", "--clearenv", "--setenv", "A=1", "--setenv", "PATH=/usr/bin:/bin", "--", "env"})
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "A=1\nPATH=/usr/bin:/bin\n")
	res = nsboxWith([]string{"run", "--unsetenv", "NSBOX_X", "--", "sh", "-c", "echo ${NSBOX_X-unset} $NSBOX_Y"},
		icmd.WithEnv(append(os.Environ(), "NSBOX_X=1", "NSBOX_Y=2")...))
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "unset 2\n")
	dir := t.TempDir()
	res = nsbox("run", "--dir", dir, "--chdir", dir, "--", "pwd")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), dir+"\n")
}

// Every namespace of the sandbox differs from the host's and is owned by
// the sandbox's user namespace or the command's below it: the user
// namespaces came first.
func TestNamespacesOwnedBySandboxUserNamespace(t *testing.T) {
	requireUnprivileged(t)
	cmd, pid := startSleeper(t)
	defer cmd.Process.Kill()
	// The command runs in a nested user namespace (sandbox/nested.go):
	// it owns the command's mount, network, IPC and UTS namespaces (so
	// root inside may configure them), and its parent, the sandbox's,
	// owns the PID and cgroup ones; neither is the host's.
	cmdUser := inode(t, fmt.Sprintf("/proc/%d/ns/user", pid))
	assert.Check(t, cmdUser != inode(t, "/proc/self/ns/user"))
	nsIoctl := func(path string, req uint) uint64 {
		f, err := os.Open(path)
		assert.NilError(t, err)
		defer f.Close()
		fd, err := unix.IoctlRetInt(int(f.Fd()), req)
		assert.NilError(t, err, "ioctl on %s", path)
		defer unix.Close(fd)
		var st unix.Stat_t
		assert.NilError(t, unix.Fstat(fd, &st))
		return st.Ino
	}
	sandboxUser := nsIoctl(fmt.Sprintf("/proc/%d/ns/user", pid), unix.NS_GET_PARENT)
	assert.Check(t, sandboxUser != inode(t, "/proc/self/ns/user"), "the command's user namespace is a child of the host's")
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "cgroup"} {
		path := fmt.Sprintf("/proc/%d/ns/%s", pid, ns)
		assert.Check(t, inode(t, path) != inode(t, "/proc/self/ns/"+ns), "%s is the host's", ns)
		want := sandboxUser
		if ns == "mnt" || ns == "net" || ns == "ipc" || ns == "uts" {
			want = cmdUser
		}
		owner := nsIoctl(path, unix.NS_GET_USERNS)
		assert.Check(t, owner == want, "%s is owned by user namespace %d, not %d", ns, owner, want)
	}
}

// outsideMaps starts a sandbox with args (and env, nil for the test's) and
// returns its command's uid_map and gid_map read from the host, where the
// kernel shows the ids of every user namespace between the command and the
// host composed: what the command's ids are on the host. (Inside, the
// command sees its nested namespace's map relative to the sandbox's.)
func outsideMaps(t *testing.T, env []string, args ...string) (string, string) {
	t.Helper()
	cmd, pid := startSleeperEnv(t, env, args...)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	uids, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	assert.NilError(t, err)
	gids, err := os.ReadFile(fmt.Sprintf("/proc/%d/gid_map", pid))
	assert.NilError(t, err)
	return normalizeMap(string(uids)), normalizeMap(string(gids))
}

// startSleeper starts nsbox running a uniquely named sleep and returns the
// launcher and the host pid of the sleep. The launcher is killed and
// reaped at the end of the test, so that a test that fails before it
// ends its sandbox leaves none to the tests that count what is left
// (leftovers).
func startSleeper(t *testing.T, extra ...string) (*exec.Cmd, int) {
	t.Helper()
	return startSleeperEnv(t, nil, extra...)
}

// startSleeperEnv is startSleeper with the launcher's environment (nil:
// the test's).
func startSleeperEnv(t *testing.T, env []string, extra ...string) (*exec.Cmd, int) {
	t.Helper()
	arg := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	cmd := exec.Command(nsboxBin, append(append([]string{"run"}, extra...), "--", "sleep", arg)...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var pid int
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		pid = findProcess("sleep " + arg)
		if pid > 0 {
			return poll.Success()
		}
		return poll.Continue("sleep %s not running yet", arg)
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
	return cmd, pid
}

// findProcess returns the pid of a process whose command line is cmdline,
// or 0.
func findProcess(cmdline string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		if strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	assert.NilError(t, unix.Stat(path, &st))
	return st.Ino
}

// PID 1 reaps a double-forked orphan: no zombie remains.
func TestInitReapsOrphans(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("run", "--", "sh", "-c",
		`(sleep 0.1 &); sleep 0.8; for f in /proc/[0-9]*/stat; do read -r l < $f && echo "$l"; done`)
	res.Assert(t, icmd.Success)
	for _, l := range strings.Split(strings.TrimSpace(res.Stdout()), "\n") {
		_, rest, _ := strings.Cut(l, ") ")
		assert.Check(t, !strings.HasPrefix(rest, "Z"), "zombie left: %s", l)
	}
}

// Signals sent to the launcher reach the command.
func TestSignalsReachTheCommand(t *testing.T) {
	requireUnprivileged(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
			cmd := exec.Command(nsboxBin, "run", "--", "sh", "-c",
				fmt.Sprintf(`trap 'echo got %s; exit 3' %s; echo ready; while :; do sleep 0.05; done`, name, name))
			r := startUntilReady(t, cmd)
			assert.NilError(t, cmd.Process.Signal(sig))
			rest, _ := r.ReadString('\n')
			err := cmd.Wait()
			assert.Equal(t, rest, "got "+name+"\n")
			assert.Equal(t, cmd.ProcessState.ExitCode(), 3, "wait: %v", err)
		})
	}
}

// SIGKILL of the launcher leaves nothing of the sandbox behind.
func TestLauncherKilledLeavesNothing(t *testing.T) {
	requireUnprivileged(t)
	cmd, pid := startSleeper(t)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	assert.NilError(t, err)
	assert.NilError(t, cmd.Process.Kill())
	cmd.Wait()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if findProcess(strings.TrimRight(strings.ReplaceAll(string(cmdline), "\x00", " "), " ")) == 0 {
			return poll.Success()
		}
		return poll.Continue("sleep (pid %d) still running", pid)
	}, poll.WithTimeout(time.Second), poll.WithDelay(10*time.Millisecond))
}

// Descriptors nsbox holds, or that leak into it, do not reach the command.
func TestNoDescriptorLeaks(t *testing.T) {
	requireUnprivileged(t)
	leak, err := os.Open("/etc/hostname")
	assert.NilError(t, err)
	defer leak.Close()
	cmd := exec.Command(nsboxBin, "run", "--", "sh", "-c", `ls /proc/$$/fd`)
	cmd.ExtraFiles = []*os.File{leak} // fd 3 in nsbox, without close-on-exec
	out, err := cmd.Output()
	assert.NilError(t, err)
	// sh's own descriptors, listed by its child ls.
	fds := strings.Fields(string(out))
	for _, fd := range fds {
		n, _ := strconv.Atoi(fd)
		assert.Check(t, n <= 2, "descriptor %s leaked into the sandbox (all: %v)", fd, fds)
	}
}
