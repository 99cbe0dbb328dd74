package tests

// nsbox as bwrap: the options about namespaces and PID 1 (--as-pid-1,
// --userns, --userns2, --pidns), checked from outside the sandbox.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestBwrapAsPID1: with --as-pid-1 the command is PID 1 of the new PID
// namespace (NSpid ends in 1, seen from the host), nothing else runs
// there (PID 1 has no child while it waits), and its exit status is
// bwrap's. Without --unshare-pid it is refused with bubblewrap's words.
func TestBwrapAsPID1(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	script := `set -e
rm -f go info; mkfifo go
$B --ro-bind / / --bind "$PWD" "$PWD" --proc /proc --dev /dev --unshare-pid --as-pid-1 --info-fd 3 \
  sh -c 'echo "pid=$$"; tr "\0" " " </proc/1/cmdline; echo; read x < go; exit 7' 3>info &
for i in $(seq 200); do grep -q child-pid info 2>/dev/null && break; sleep 0.05; done
pid=$(sed -n 's/.*"child-pid": \([0-9]*\).*/\1/p' info)
sleep 0.3
echo "outside: NSpid ends in $(awk '/^NSpid/ {print $NF}' /proc/$pid/status)"
echo "outside: cmdline $(tr '\0' ' ' </proc/$pid/cmdline | cut -c1-5)"
echo "outside: children [$(cat /proc/$pid/task/$pid/children)]"
echo > go
wait $! || echo "exit $?"
$B --ro-bind / / --as-pid-1 true || echo "exit $?"`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Expected{Out: "pid=1\nsh -c echo \"pid=$$\"; tr \"\\0\" \" \" </proc/1/cmdline; echo; read x < go; exit 7 \n" +
		"outside: NSpid ends in 1\noutside: cmdline sh -c\noutside: children []\nexit 7\nexit 1\n",
		Err: "bwrap: Specifying --as-pid-1 requires --unshare-pid\n"})

	// nsbox's own: the command keeps the locked mounts of a forked one:
	// root with every capability of its namespace cannot make the
	// read-only root writable.
	b := bwrapLink(t)
	res = icmd.RunCmd(icmd.Command(b, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--as-pid-1", "--uid", "0", "--cap-add", "ALL",
		"sh", "-c", `echo "pid=$$"; grep CapEff /proc/self/status; mount -o remount,bind,rw / 2>/dev/null && echo remounted || echo locked`))
	res.Assert(t, icmd.Expected{Out: "pid=1\nCapEff:\t000001ffffffffff\nlocked\n"})
	// A command that cannot run is reported, as for a forked one.
	res = icmd.RunCmd(icmd.Command(b, "--ro-bind", "/", "/", "--unshare-pid", "--as-pid-1", "nsbox-no-such-command"))
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: execvp nsbox-no-such-command: No such file or directory\n"})
	assert.Assert(t, !strings.Contains(res.Stdout(), "pid"))
}

// nsInode is the inode of the namespace file f refers to.
func nsInode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	assert.NilError(t, unix.Fstat(int(f.Fd()), &st))
	return st.Ino
}

// nsParent opens the parent of the user or PID namespace f refers to
// (ioctl NS_GET_PARENT).
func nsParent(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_PARENT)
	assert.NilError(t, err)
	p := os.NewFile(uintptr(fd), "parent of "+f.Name())
	t.Cleanup(func() { p.Close() })
	return p
}

// openNS opens /proc/PID/ns/NAME.
func openNS(t *testing.T, pid int, name string) *os.File {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// bwrapInBackground starts bwrap with args and --info-fd (ExtraFiles:
// extra, then the info pipe) and returns its command's host pid
// (child-pid: the command's process, PID 1 itself with --as-pid-1) once
// it runs sh.
func bwrapInBackground(t *testing.T, b string, out *bytes.Buffer, extra []*os.File, args ...string) (*exec.Cmd, int) {
	t.Helper()
	r, w, err := os.Pipe()
	assert.NilError(t, err)
	defer r.Close()
	infoFD := strconv.Itoa(3 + len(extra))
	cmd := exec.Command(b, append([]string{"--info-fd", infoFD}, args...)...)
	cmd.ExtraFiles = append(append([]*os.File(nil), extra...), w)
	cmd.Stdout, cmd.Stderr = out, out
	assert.NilError(t, cmd.Start())
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var info struct {
		ChildPid int `json:"child-pid"`
	}
	assert.NilError(t, json.NewDecoder(r).Decode(&info))
	deadline := time.Now().Add(10 * time.Second)
	for {
		pid := info.ChildPid
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); pid > 0 && string(comm) == "sh\n" {
			return cmd, pid
		}
		assert.Assert(t, time.Now().Before(deadline), "the command of the sandbox never started")
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBwrapEnterNamespaces: --userns, --userns2 and --pidns enter the
// namespaces of a running sandbox (as flatpak does for a new command of a
// running app: the user namespace above the command's, the command's, its
// PID namespace), checked against that sandbox's from the host: the
// namespace files' inodes, and NS_GET_PARENT for the ones made below.
func TestBwrapEnterNamespaces(t *testing.T) {
	b := bwrapLink(t)
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	fifo, fifo2 := filepath.Join(dir, "go"), filepath.Join(dir, "go2")
	assert.NilError(t, unix.Mkfifo(fifo, 0o600))
	assert.NilError(t, unix.Mkfifo(fifo2, 0o600))
	var firstOut, secondOut bytes.Buffer
	first, firstCmd := bwrapInBackground(t, b, &firstOut, nil, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc",
		"sh", "-c", "read x < "+fifo)
	cmdUser := openNS(t, firstCmd, "user") // the nested one
	outerUser := nsParent(t, cmdUser)      // the sandbox's
	pidNS := openNS(t, firstCmd, "pid")

	// All three: the command is in the first one's user and PID
	// namespaces.
	res := icmd.RunCmd(icmd.Command(b, "--userns", "3", "--userns2", "4", "--pidns", "5", "--ro-bind", "/", "/", "--proc", "/proc",
		"sh", "-c", `stat -L -c %i /proc/self/ns/user /proc/self/ns/pid; id -u`),
		func(c *icmd.Cmd) { c.ExtraFiles = []*os.File{outerUser, cmdUser, pidNS} })
	res.Assert(t, icmd.Expected{Out: fmt.Sprintf("%d\n%d\n%d\n", nsInode(t, cmdUser), nsInode(t, pidNS), os.Getuid())})

	// --userns and --pidns with --unshare-pid: a new PID namespace below
	// the first one's, a nested user namespace below its outer one, the
	// command (--as-pid-1) its init, the mounts locked for root with
	// every capability.
	second, secondCmd := bwrapInBackground(t, b, &secondOut, []*os.File{outerUser, pidNS},
		"--userns", "3", "--pidns", "4", "--unshare-pid", "--as-pid-1", "--ro-bind", "/", "/", "--dev", "/dev", "--uid", "0", "--cap-add", "ALL",
		"sh", "-c", `mount -o remount,bind,rw / 2>/dev/null && echo remounted || echo locked; read x < `+fifo2)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", secondCmd))
	assert.NilError(t, err)
	nspid := regexp.MustCompile(`(?m)^NSpid:\t(.*)$`).FindSubmatch(status)
	assert.Assert(t, nspid != nil)
	levels := strings.Fields(string(nspid[1]))
	assert.Equal(t, len(levels), 3, "host, the first sandbox's PID namespace, the new one: %q", nspid[1])
	assert.Equal(t, levels[2], "1")
	secondPID := openNS(t, secondCmd, "pid")
	assert.Assert(t, nsInode(t, secondPID) != nsInode(t, pidNS))
	assert.Equal(t, nsInode(t, nsParent(t, secondPID)), nsInode(t, pidNS))
	assert.Equal(t, nsInode(t, nsParent(t, openNS(t, secondCmd, "user"))), nsInode(t, outerUser))

	// A --userns2 that is no child of --userns.
	own, err := os.Open("/proc/self/ns/user")
	assert.NilError(t, err)
	defer own.Close()
	res = icmd.RunCmd(icmd.Command(b, "--userns", "3", "--userns2", "4", "--ro-bind", "/", "/", "true"),
		func(c *icmd.Cmd) { c.ExtraFiles = []*os.File{outerUser, own} })
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: enter the given command user namespace (setns) and make its mount namespace: Operation not permitted; fix: pass a child of the entered user namespace"})

	// The second sandbox ends, then the first: not both at once, since
	// the first's PID namespace ending kills what runs in the second's,
	// below it.
	release := func(name string) {
		f, err := os.OpenFile(name, os.O_WRONLY, 0) // waits for the reader
		assert.NilError(t, err)
		f.Write([]byte("go\n"))
		f.Close()
	}
	release(fifo2)
	assert.NilError(t, second.Wait())
	release(fifo)
	assert.NilError(t, first.Wait())
	assert.Equal(t, secondOut.String(), "locked\n")
	assert.Equal(t, firstOut.String(), "")

	// What cannot be honoured, and what bubblewrap refuses.
	icmd.RunCmd(icmd.Command(b, "--userns2", "0", "--ro-bind", "/", "/", "true")).Assert(t, icmd.Expected{ExitCode: 1,
		Err: "bwrap: --userns2 requires --userns in nsbox: a user namespace it creates has no child to switch to; fix: pass the parent of the --userns2 namespace with --userns\n"})
	icmd.RunCmd(icmd.Command(b, "--userns", "99", "--ro-bind", "/", "/", "true")).Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: Invalid fd: 99\n"})
	res = icmd.RunCmd(icmd.Command(b, "--userns", "3", "--ro-bind", "/", "/", "true"), func(c *icmd.Cmd) { c.ExtraFiles = []*os.File{own} })
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: enter the given user namespace (setns): Invalid argument; fix: pass a user namespace below yours"})
}

// TestBwrapUsernsBlockFD: with --userns-block-fd the caller writes the
// maps of the sandbox's user namespace (through child-pid from --info-fd)
// and then writes to FD; the command runs with those maps. In nsbox it is
// still locked in its nested namespace, the identity over the written
// maps.
func TestBwrapUsernsBlockFD(t *testing.T) {
	dir := t.TempDir()
	script := `rm -f blk info; mkfifo blk; exec 5<>blk
$B --unshare-user --ro-bind / / --dev /dev --proc /proc --unshare-pid --info-fd 3 --userns-block-fd 4 $EXTRA \
  sh -c 'id -u; id -g; stat -c "%u %g" /proc/self/status; mount -o remount,bind,rw / 2>/dev/null && echo remounted || echo locked' 3>info 4<blk &
for i in $(seq 200); do grep -q child-pid info 2>/dev/null && break; sleep 0.05; done
pid=$(sed -n 's/.*"child-pid": \([0-9]*\).*/\1/p' info)
echo "0 $(id -u) 1" > /proc/$pid/uid_map || echo uid_map failed
echo deny > /proc/$pid/setgroups
echo "0 $(id -g) 1" > /proc/$pid/gid_map || echo gid_map failed
echo go >&5
wait $!; echo "exit $?"`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Expected{Out: "0\n0\n0 0\nlocked\nexit 0\n"})
	// Root with every capability: bubblewrap would let it remount (it
	// makes no second namespace in this mode); nsbox's nesting does not.
	res = runScript(bwrapLink(t), dir, "EXTRA='--cap-add ALL'\n"+script)
	res.Assert(t, icmd.Expected{Out: "0\n0\n0 0\nlocked\nexit 0\n"})
	// bubblewrap's conditions.
	res = compareBwraps(t, dir, `$B --unshare-user --userns-block-fd 0 true; $B --userns-block-fd 0 --info-fd 1 true`)
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: --userns-block-fd requires --info-fd\nbwrap: --userns-block-fd requires --unshare-user\n"})
}
