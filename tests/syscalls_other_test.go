//go:build !amd64

package tests

// extraSyscalls are the refused calls only amd64 has: none here.
func extraSyscalls() map[string]uintptr { return nil }
