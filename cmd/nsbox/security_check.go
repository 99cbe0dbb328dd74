package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/nsbox/nsbox/internal/landlock"
	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/internal/seccomp"
)

// checkLandlock reports what --landlock can do on this kernel.
func checkLandlock() checkResult {
	r := checkResult{Name: "Landlock", NeededBy: "--landlock"}
	abi := landlock.ABI()
	switch {
	case abi == 0:
		r.Detail = "not available (kernel < 5.13, or landlock missing from the lsm= boot parameter)"
		r.Fix = "boot a kernel with CONFIG_SECURITY_LANDLOCK=y and landlock in lsm=; without it --landlock is skipped with a notice"
	case abi < 4:
		r.OK = true
		r.Detail = fmt.Sprintf("ABI %d: files only (TCP port rules need ABI 4, Linux 6.7)", abi)
	case abi < 6:
		r.OK = true
		r.Detail = fmt.Sprintf("ABI %d: files and TCP ports", abi)
	default:
		r.OK = true
		r.Detail = fmt.Sprintf("ABI %d: files, TCP ports, abstract unix sockets and signals", abi)
	}
	return r
}

// checkSeccomp reports what the default seccomp filter refuses here, and
// what --allow-io-uring and --disable-userns change.
func checkSeccomp() checkResult {
	r := checkResult{Name: "seccomp", NeededBy: "the default filter, --seccomp, --disable-userns"}
	status, _ := os.ReadFile("/proc/self/status")
	_, mode := procfs.StatusField(status, "Seccomp")
	_, filters := procfs.StatusField(status, "Seccomp_filters")
	if !mode && !filters {
		r.Detail = "not in this kernel (no Seccomp line in /proc/self/status)"
		r.Fix = "boot a kernel built with CONFIG_SECCOMP_FILTER=y, or pass --no-seccomp"
		return r
	}
	if _, err := seccomp.Build(seccomp.Rules{Defaults: true}); err != nil {
		r.Detail = err.Error()
		return r
	}
	x32 := ""
	if runtime.GOARCH == "amd64" {
		x32 = ", the x32 ABI"
	}
	r.OK = true
	r.Detail = "the default filter refuses (EPERM) " + strings.Join(seccomp.Denied(), ", ") +
		" (io_uring: --allow-io-uring lets it through), ioctl TIOCSTI and TIOCLINUX" + x32 +
		", and kills other architectures; --disable-userns adds unshare and clone with CLONE_NEWUSER and setns into a user namespace (EPERM), and clone3 (ENOSYS)"
	if v := readTrim("/proc/sys/kernel/io_uring_disabled"); v != "" && v != "0" {
		r.Detail += "; the kernel itself limits io_uring (kernel.io_uring_disabled = " + v + ")"
	}
	return r
}
