package seccomp

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
)

// seccompProbeEnv makes the test binary a probe: it installs the filter the
// value names (seccompProbeRules), calls each filtered system call and
// prints "NAME ERRNO" lines, before any test runs.
const seccompProbeEnv = "_NSBOX_TEST_SECCOMP_PROBE"

var seccompProbeRules = map[string]*Rules{
	"none":           nil,
	"default":        {Defaults: true},
	"allow-io-uring": {Defaults: true, AllowIOUring: true},
	"disable-userns": {Defaults: true, DisableUserns: true},
	"only-userns":    {DisableUserns: true},
}

func init() {
	if v := os.Getenv(seccompProbeEnv); v != "" {
		os.Exit(seccompProbe(v))
	}
}

func seccompProbe(mode string) int {
	if r := seccompProbeRules[mode]; r != nil {
		prog, err := Build(*r)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "no_new_privs:", err)
			return 2
		}
		fprog := unix.SockFprog{Len: uint16(len(prog) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		// TSYNC: the Go runtime's other threads get the filter too.
		if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
			fmt.Fprintln(os.Stderr, "install the filter:", e)
			return 2
		}
	}
	say := func(name string, e error) {
		s := "ok"
		if en, ok := e.(syscall.Errno); ok {
			if en != 0 {
				s = unix.ErrnoName(en)
			}
		} else if e != nil {
			s = e.Error()
		}
		fmt.Printf("%s %s\n", name, s)
	}
	// All-ones arguments fail early in the kernel when the filter lets a
	// call through (bad fd, bad pointer, unknown flags), so even a broken
	// filter run as root changes nothing: kexec_load with zeros would
	// unload the kexec image, with flags ^0 it is EINVAL.
	bad := ^uintptr(0)
	for name, nr := range nativeSyscalls {
		switch name {
		case "clone", "ioctl", "unshare", "setns", "clone3":
			continue
		}
		args := [6]uintptr{bad, bad, bad, bad, bad, bad}
		if name == "init_module" {
			args = [6]uintptr{0, 0, 0} // length 0: ENOEXEC, no allocation
		}
		_, _, e := unix.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		say(name, e)
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, bad, unix.TIOCSTI, 0)
	say("tiocsti", e)
	_, _, e = unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0) // EINVAL unfiltered: Go is multi-threaded
	say("unshare-newuser", e)
	_, _, e = unix.Syscall(unix.SYS_CLONE3, 0, 0, 0) // EINVAL unfiltered: size 0
	say("clone3", e)
	_, _, e = unix.Syscall(unix.SYS_SETNS, bad, unix.CLONE_NEWUSER, 0)
	say("setns-user", e)
	_, _, e = unix.Syscall(unix.SYS_SETNS, bad, 0, 0)
	say("setns-any", e)
	_, _, e = unix.Syscall(unix.SYS_SETNS, bad, unix.CLONE_NEWNET, 0)
	say("setns-net", e)
	// A real child in a new user namespace (Go's fork uses clone), and a
	// plain one.
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	err := cmd.Run()
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	say("clone-newuser", err)
	say("clone", exec.Command("/bin/true").Run())
	_, _, e = unix.Syscall(unix.SYS_GETPID, 0, 0, 0)
	say("getpid", e)
	return 0
}

// TestSeccompInKernel installs each kind of program nsbox builds in a child
// process and calls the filtered system calls by this build's unix.SYS_*
// numbers: the kernel, not the table, says what is refused. The "none" run
// is the control: the same calls fail differently without a filter.
func TestSeccompInKernel(t *testing.T) {
	if _, err := os.Stat("/bin/true"); err != nil {
		t.Fatalf("no /bin/true for the clone probes: %v", err)
	}
	self, err := os.Executable()
	assert.NilError(t, err)
	probe := func(mode string) map[string]string {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), seccompProbeEnv+"="+mode)
		out, err := cmd.Output()
		assert.NilError(t, err, "probe %s: %s", mode, out)
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			k, v, _ := strings.Cut(l, " ")
			m[k] = v
		}
		return m
	}
	// io_uring_setup is refused by the kernel itself when
	// kernel.io_uring_disabled is set: only the filter's EPERM is ours then.
	uringSetupOK := !ioURingDisabled()
	userns := []string{"unshare-newuser", "clone3", "setns-user", "setns-any", "clone-newuser"}
	for _, mode := range []string{"none", "default", "allow-io-uring", "disable-userns", "only-userns"} {
		t.Run(mode, func(t *testing.T) {
			r := seccompProbeRules[mode]
			got := probe(mode)
			defaults := r != nil && r.Defaults
			disable := r != nil && r.DisableUserns
			for _, name := range denied {
				if _, ok := nativeSyscalls[name]; !ok {
					continue // iopl, ioperm: the integration test calls them on amd64
				}
				if defaults {
					assert.Check(t, is.Equal(got[name], "EPERM"), name)
				}
			}
			for _, name := range ioURing {
				switch {
				case defaults && !r.AllowIOUring:
					assert.Check(t, is.Equal(got[name], "EPERM"), name)
				case name != "io_uring_setup" || uringSetupOK:
					assert.Check(t, got[name] != "EPERM", "%s: %s", name, got[name])
				}
			}
			if !defaults {
				// Unprivileged or not, keyctl's unknown command reaches
				// the kernel.
				assert.Check(t, is.Equal(got["keyctl"], unix.ErrnoName(unix.EOPNOTSUPP)))
				assert.Check(t, is.Equal(got["tiocsti"], "EBADF"))
			} else {
				assert.Check(t, is.Equal(got["tiocsti"], "EPERM"))
			}
			want := map[string]string{"unshare-newuser": "EINVAL", "clone3": "EINVAL", "setns-user": "EBADF", "setns-any": "EBADF", "clone-newuser": "ok"}
			if disable {
				want = map[string]string{"unshare-newuser": "EPERM", "clone3": "ENOSYS", "setns-user": "EPERM", "setns-any": "EPERM", "clone-newuser": "EPERM"}
			}
			for _, name := range userns {
				assert.Check(t, is.Equal(got[name], want[name]), name)
			}
			assert.Check(t, is.Equal(got["setns-net"], "EBADF"))
			assert.Check(t, is.Equal(got["clone"], "ok"))
			assert.Check(t, is.Equal(got["getpid"], "ok"))
		})
	}
}

// ioURingDisabled reports whether kernel.io_uring_disabled is 2, which
// refuses io_uring_setup to everyone; a kernel without the sysctl (before
// 6.6) allows it.
func ioURingDisabled() bool {
	b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
	return err == nil && strings.TrimSpace(string(b)) == "2"
}
