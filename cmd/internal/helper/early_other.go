//go:build !(nsbox_helper && amd64 && cgo)

package helper

import "os"

// Early is early.go's, in a build whose constructor starts no helper (no
// embedded helper, no loader, or no cgo): there is never one to hand
// over.
func Early() (pid int, stdin, sock *os.File, ok bool) { return 0, nil, nil, false }
