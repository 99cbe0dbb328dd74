package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// Issue 12 item 8, from inside: io_uring (its operations are not system
// calls, so no seccomp filter sees them) and nested user namespaces (a new
// set of capabilities over whatever the command can unshare).

// uringHelper sets up a real ring, then enters and registers on an fd that
// is not open (not -1: register takes -1 for ring-less operations).
func uringHelper() int {
	const closed = 1 << 20
	var params [120]byte // struct io_uring_params, zeroed
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	fmt.Printf("io_uring_setup %s\n", errnoName(e))
	if e == 0 {
		unix.Close(int(fd))
	}
	_, _, e = unix.Syscall6(unix.SYS_IO_URING_ENTER, closed, 0, 0, 0, 0, 0)
	fmt.Printf("io_uring_enter %s\n", errnoName(e))
	_, _, e = unix.Syscall6(unix.SYS_IO_URING_REGISTER, closed, 0, 0, 0, 0, 0)
	fmt.Printf("io_uring_register %s\n", errnoName(e))
	return 0
}

// usernsHelper tries every way into a new user namespace: a child in one
// (Go forks with clone), clone3, unshare, and setns into its own user
// namespace (EINVAL when the kernel sees it: it is already the caller's).
func usernsHelper() int {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	err := cmd.Run()
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	fmt.Printf("clone-newuser %s\n", errnoName(err))
	_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	fmt.Printf("clone3 %s\n", errnoName(e))
	_, _, e = unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	fmt.Printf("unshare %s\n", errnoName(e))
	fd, err := unix.Open("/proc/self/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Printf("open-ns %s\n", errnoName(err))
		return 0
	}
	for _, nstype := range []int{unix.CLONE_NEWUSER, 0} {
		_, _, e = unix.Syscall(unix.SYS_SETNS, uintptr(fd), uintptr(nstype), 0)
		fmt.Printf("setns-%#x %s\n", nstype, errnoName(e))
	}
	// A plain child still works.
	fmt.Printf("clone %s\n", errnoName(exec.Command("/bin/true").Run()))
	return 0
}

// helperResults runs helper h in a sandbox with the extra flags and
// returns its "NAME RESULT" lines.
func helperResults(t *testing.T, h string, extra ...string) map[string]string {
	t.Helper()
	res := nsboxWith(append(append([]string{"run"}, extra...), helperArgs(h)...))
	res.Assert(t, icmd.Success)
	m := map[string]string{}
	for _, l := range splitLines(res.Stdout()) {
		k, v, _ := strings.Cut(l, " ")
		m[k] = v
	}
	return m
}

func TestEscapeIOUringRefused(t *testing.T) {
	requireUnprivileged(t)
	for _, spec := range [][]string{nil, {"--root", "--cap-add", "ALL"}} {
		got := helperResults(t, "uring", spec...)
		for _, name := range []string{"io_uring_setup", "io_uring_enter", "io_uring_register"} {
			assert.Check(t, is.Equal(got[name], "EPERM"), "%v %s", spec, name)
		}
	}
	// Control: with --allow-io-uring the calls reach the kernel, and a
	// ring is really set up unless the host itself limits io_uring.
	got := helperResults(t, "uring", "--allow-io-uring")
	assert.Check(t, is.Equal(got["io_uring_enter"], "EBADF"))
	assert.Check(t, is.Equal(got["io_uring_register"], "EBADF"))
	if v, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err != nil || strings.TrimSpace(string(v)) == "0" {
		assert.Check(t, is.Equal(got["io_uring_setup"], "ok"))
	}
}

func TestEscapeNestedUsernsDisabled(t *testing.T) {
	requireUnprivileged(t)
	// Control: by default the command may nest user namespaces (nsbox
	// inside nsbox needs them).
	nsbox("run", "--", "unshare", "-U", "true").Assert(t, icmd.Success)
	got := helperResults(t, "userns")
	assert.Check(t, is.DeepEqual(got, map[string]string{
		"clone-newuser": "ok", "clone3": "EINVAL", "unshare": "EINVAL", // EINVAL: Go is multi-threaded
		"setns-0x10000000": "EINVAL", "setns-0x0": "EINVAL", "clone": "ok",
	}))

	// With --disable-userns no way in works, for root with every
	// capability too, and whatever the default filter says.
	for _, spec := range [][]string{{}, {"--root", "--cap-add", "ALL"}, {"--no-seccomp"}} {
		flags := append([]string{"--disable-userns"}, spec...)
		res := nsbox(append(append([]string{"run"}, flags...), "--", "unshare", "-U", "true")...)
		assert.Check(t, res.ExitCode != 0, "%v: %s", spec, res.Combined())
		assert.Check(t, is.Contains(res.Stderr(), "Operation not permitted"), "%v", spec)
		got := helperResults(t, "userns", flags...)
		assert.Check(t, is.DeepEqual(got, map[string]string{
			"clone-newuser": "EPERM", "clone3": "ENOSYS", "unshare": "EPERM",
			"setns-0x10000000": "EPERM", "setns-0x0": "EPERM", "clone": "ok",
		}), "%v", spec)
	}
	// clone3's ENOSYS is what glibc falls back on: threads still start.
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		cannotRun(t, "no /usr/bin/python3")
	}
	nsbox("run", "--disable-userns", "--", "/usr/bin/python3", "-c",
		"import threading; t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()").
		Assert(t, icmd.Expected{Out: "thread"})
}

func TestEscapeNestedUsernsExec(t *testing.T) {
	requireUnprivileged(t)
	s := newStateEnv(t)
	s.start("open", "--", "sleep", "60")
	s.start("closed", "--disable-userns", "--", "sleep", "60")
	// A command joined to the sandbox gets the sandbox's filter.
	s.run("exec", "open", "--", "unshare", "-U", "true").Assert(t, icmd.Success)
	res := s.run("exec", "closed", "--", "unshare", "-U", "true")
	assert.Check(t, res.ExitCode != 0, res.Combined())
	assert.Check(t, is.Contains(res.Stderr(), "Operation not permitted"))
}

func TestEscapeAssertUsernsDisabled(t *testing.T) {
	requireUnprivileged(t)
	// Nothing disables them: the command does not run.
	res := nsbox("run", "--assert-userns-disabled", "--", "echo", "ran")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "--assert-userns-disabled"})
	assert.Check(t, !strings.Contains(res.Stdout(), "ran"))
	assert.Check(t, is.Contains(res.Stderr(), "fix:"))
	nsbox("run", "--disable-userns", "--assert-userns-disabled", "--", "echo", "ran").Assert(t, icmd.Expected{Out: "ran"})
	// It checks whatever disables them, e.g. a program of the user's that
	// refuses unshare(2).
	file := bpfProgram(t, t.TempDir(), "no-unshare.bpf", map[uint32]unix.Errno{unix.SYS_UNSHARE: unix.EPERM})
	nsbox("run", "--seccomp", file, "--assert-userns-disabled", "--", "echo", "ran").Assert(t, icmd.Expected{Out: "ran"})
}
