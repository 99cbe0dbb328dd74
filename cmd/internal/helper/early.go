//go:build nsbox_helper && amd64 && cgo

package helper

/*
extern int nsbox_early_helper_pid, nsbox_early_helper_stdin, nsbox_early_helper_sock;
*/
import "C"

import (
	"os"
	"sync"
)

var early sync.Mutex

// Early hands over the network's helper that the ELF constructor started
// before the Go runtime (early.c, for an `nsbox run` whose flags ask for
// --net user): its pid (a child of this process), the write end of its
// stdin and this end of its socket, the helper's fd 4. ok is false when
// none was started, or Early already handed it over. The caller owns it
// from then on: it sends its request and serves it, or kills and reaps
// it.
func Early() (pid int, stdin, sock *os.File, ok bool) {
	early.Lock()
	defer early.Unlock()
	if C.nsbox_early_helper_pid <= 0 {
		return 0, nil, nil, false
	}
	pid = int(C.nsbox_early_helper_pid)
	stdin = os.NewFile(uintptr(C.nsbox_early_helper_stdin), "net-helper-stdin")
	sock = os.NewFile(uintptr(C.nsbox_early_helper_sock), "net-helper")
	C.nsbox_early_helper_pid, C.nsbox_early_helper_stdin, C.nsbox_early_helper_sock = -1, -1, -1
	return pid, stdin, sock, true
}
