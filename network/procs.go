package network

import (
	"os"
	"runtime"
)

// Procs is the GOMAXPROCS that suits a process whose work is serving the
// user-mode network, such as nsbox's launcher: half the CPUs, at least one.
//
// Each packet crosses several goroutines (the TAP reader, gVisor's TCP
// processor, a relay); with a P per CPU, readying one wakes an idle thread
// on another CPU, and idle threads spin looking for work, taking CPU from
// the sandbox's command and from the kernel, which do the other half of
// every copy. Measured on a 2-core VM, same run, GOMAXPROCS 2 → 1: TCP
// connect + 1-byte echo to the host median 1034 → 722 µs, p99 4.7 →
// 1.4 ms; iperf3 sandbox → host 5.7-6.1 → 6.3-6.6 Gb/s; host → sandbox
// through -p 3.8-4.5 → 4.9-6.1 Gb/s. Machines with more CPUs were not
// measured; half leaves the rest to the command and the kernel there too.
func Procs() int {
	return max(1, runtime.NumCPU()/2)
}

// LimitProcs sets GOMAXPROCS to Procs unless the GOMAXPROCS environment
// variable chose it. It is for a process that runs a Network and little
// else (it changes the whole process); a program that embeds this
// package leaves its own setting alone.
func LimitProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(Procs())
	}
}
