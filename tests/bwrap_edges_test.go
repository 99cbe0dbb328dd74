package tests

// bubblewrap's edges that its own suite (tests/test-seccomp.py,
// test-run.sh) found: each is compared with /usr/bin/bwrap.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// Stacked --add-seccomp-fd programs where the first refuses seccomp(2)
// (as flatpak's allowlist does): the second still goes in, through
// prctl(PR_SET_SECCOMP), which the first allows, and both apply.
func TestBwrapStackedSeccompBlocksSeccomp(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	bpfProgram(t, dir, "no-seccomp.bpf", map[uint32]unix.Errno{unix.SYS_SECCOMP: unix.ENOSYS})
	bpfProgram(t, dir, "no-chmod.bpf", map[uint32]unix.Errno{unix.SYS_FCHMODAT: unix.ECONNREFUSED, unix.SYS_CHMOD: unix.ECONNREFUSED})
	script := `$B --ro-bind / / --tmpfs /tmp --add-seccomp-fd 3 --add-seccomp-fd 4 -- sh -c 'touch /tmp/f; chmod 600 /tmp/f; echo "chmod $?"' 3<no-seccomp.bpf 4<no-chmod.bpf`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Expected{Out: "chmod 1\n", Err: "Connection refused"})
}

// An empty program is bubblewrap's kernel refusal, after every other
// check: a missing bind source is reported first, a program of a length
// that is no multiple of 8 too (at parse time), and alone it is
// bubblewrap's prctl line.
func TestBwrapEmptySeccompErrorOrder(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "empty.bpf"), nil, 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "odd.bpf"), []byte{1}, 0o644))
	for _, script := range []string{
		`$B --ro-bind / / --add-seccomp-fd 3 --bind /nonexistent-nsbox /x true 3<empty.bpf`,
		`$B --ro-bind / / --add-seccomp-fd 3 --add-seccomp-fd 4 true 3<empty.bpf 4<odd.bpf`,
		`$B --ro-bind / / --add-seccomp-fd 3 true 3<empty.bpf`,
		// An empty --add-seccomp-fd program still counts as one.
		`$B --ro-bind / / --add-seccomp-fd 3 --seccomp 4 true 3<empty.bpf 4<empty.bpf`,
	} {
		res := compareBwraps(t, dir, script)
		res.Assert(t, icmd.Expected{ExitCode: 1})
	}
}

// --new-session with --unshare-pid: the session is the init's, so the
// command is not its leader and may start a session of its own, as under
// bubblewrap; still without a terminal.
func TestBwrapNewSessionCommandCanSetsid(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	script := `$B --ro-bind / / --proc /proc --unshare-pid --new-session -- ` + requirePython(t) + ` -c '
import os
print("leader" if os.getsid(0) == os.getpid() else "not-leader")
os.setsid()
print("setsid-ok")
try:
    os.open("/dev/tty", os.O_RDWR)
except OSError:
    print("no-tty")'`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Expected{Out: "not-leader\nsetsid-ok\nno-tty\n"})
}

// --info-fd's child-pid is the command's own process, created before
// --block-fd lets it run: its namespaces are the command's (the mount
// namespace bubblewrap's test 32 compares, the user and PID namespaces
// test-specifying-userns.sh and test-specifying-pidns.sh and flatpak's
// --parent-pid open from outside), while nsbox's PID 1, its parent,
// stays out of reach.
func TestBwrapInfoChildPidIsTheCommand(t *testing.T) {
	bwrap := bwrapLink(t)
	infoR, infoW, err := os.Pipe()
	assert.NilError(t, err)
	blockR, blockW, err := os.Pipe()
	assert.NilError(t, err)
	cmd := exec.Command(bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--unshare-all", "--info-fd", "3", "--block-fd", "4",
		"--", "readlink", "/proc/self/ns/mnt", "/proc/self/ns/user", "/proc/self/ns/pid")
	cmd.ExtraFiles = []*os.File{infoW, blockR}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	assert.NilError(t, cmd.Start())
	infoW.Close()
	blockR.Close()
	defer func() { blockW.Close(); cmd.Process.Kill(); cmd.Wait() }()
	b, err := io.ReadAll(infoR) // bwrap closes it once written
	assert.NilError(t, err)
	var info map[string]uint64
	assert.NilError(t, json.Unmarshal(b, &info), string(b))
	pid := int(info["child-pid"])
	assert.Assert(t, pid > 0, string(b))

	// Its namespaces, read from outside while it waits.
	link := func(p int, ns string) string {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p, ns))
		assert.NilError(t, err, "the caller reads /proc/CHILD-PID/ns/%s", ns)
		return l
	}
	mnt, user, pidns := link(pid, "mnt"), link(pid, "user"), link(pid, "pid")
	assert.Equal(t, mnt, fmt.Sprintf("mnt:[%d]", info["mnt-namespace"]))
	assert.Equal(t, pidns, fmt.Sprintf("pid:[%d]", info["pid-namespace"]))

	// test-specifying-pidns.sh: another sandbox given its user and PID
	// namespaces runs in that PID namespace.
	second := icmd.RunCmd(icmd.Command("bash", "-c", `"$0" --ro-bind / / --userns 11 --pidns 12 readlink /proc/self/ns/pid 11<"/proc/$1/ns/user" 12<"/proc/$1/ns/pid"`,
		bwrap, strconv.Itoa(pid)))
	second.Assert(t, icmd.Expected{Out: pidns + "\n"})

	// Its parent is nsbox's PID 1: not dumpable, nothing of it readable.
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	assert.NilError(t, err)
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	pid1, _ := strconv.Atoi(f[1])
	for _, p := range []string{"ns/mnt", "ns/user", "environ", "fd"} {
		path := fmt.Sprintf("/proc/%d/%s", pid1, p)
		_, err := os.Readlink(path)
		if p == "environ" || p == "fd" {
			_, err = os.ReadDir(path)
			if p == "environ" {
				_, err = os.ReadFile(path)
			}
		}
		assert.Check(t, errors.Is(err, os.ErrPermission), "%s: %v", path, err)
	}

	// Let it run: the command sees what the caller saw.
	blockW.Close()
	assert.NilError(t, cmd.Wait(), out.String())
	assert.Equal(t, out.String(), mnt+"\n"+user+"\n"+pidns+"\n")
}
