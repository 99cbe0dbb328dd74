package tests

import "golang.org/x/sys/unix"

// extraSyscalls are the refused calls only this architecture has.
func extraSyscalls() map[string]uintptr {
	return map[string]uintptr{"iopl": unix.SYS_IOPL, "ioperm": unix.SYS_IOPERM, "x32 getpid": x32Bit | unix.SYS_GETPID}
}

// x32Bit marks the x32 ABI's syscall numbers (__X32_SYSCALL_BIT,
// asm/unistd.h); x/sys has no constant for it.
const x32Bit = 0x40000000
