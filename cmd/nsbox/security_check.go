package main

import (
	"fmt"

	"github.com/nsbox/nsbox/sandbox"
)

// checkLandlock reports what --landlock can do on this kernel.
func checkLandlock() checkResult {
	r := checkResult{Name: "Landlock", NeededBy: "--landlock"}
	abi := sandbox.LandlockABI()
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
