// Package landlock asks the kernel which Landlock ABI it offers; package
// sandbox builds the ruleset records from it, the nsbox command's check
// reports it.
package landlock

import "golang.org/x/sys/unix"

// ABI returns the kernel's Landlock ABI version, 0 when Landlock is
// missing or disabled.
func ABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}
