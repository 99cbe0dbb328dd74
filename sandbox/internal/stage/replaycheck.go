//go:build nsbox_configcheck

package stage

// replay.c's pieces called from Go, for replay_check_test.go, which holds
// them to their Go twins in internal/replay (cgo is not allowed in
// _test.go files; see configcheck.go).

/*
#include <stdlib.h>
#include "replay.h"
*/
import "C"

import "unsafe"

// replayHMAC is nsbox_hmac_sha256.
func replayHMAC(key, msg []byte) []byte {
	out := make([]byte, 32)
	k, m := C.CBytes(key), C.CBytes(msg)
	defer C.free(k)
	defer C.free(m)
	C.nsbox_hmac_sha256((*C.uint8_t)(k), C.size_t(len(key)), m, C.size_t(len(msg)), (*C.uint8_t)(unsafe.Pointer(&out[0])))
	return out
}

// replaySHAPortable sets nsbox_sha256_portable.
func replaySHAPortable(on bool) {
	C.nsbox_sha256_portable = 0
	if on {
		C.nsbox_sha256_portable = 1
	}
}

// replayLook is nsbox_replay_look.
func replayLook(kind byte, path string) string {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	buf := make([]byte, 8192)
	n := C.nsbox_replay_look(C.char(kind), p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if n < 0 {
		return "(failed)"
	}
	return string(buf[:n])
}

// replayCreds is nsbox_replay_creds.
func replayCreds() string {
	buf := make([]byte, 4096)
	n := C.nsbox_replay_creds((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if n < 0 {
		return "(failed)"
	}
	return string(buf[:n])
}

// recordValues are a record's holes' values (struct nsbox_record_values).
type recordValues struct {
	name, created, uidMap, gidMap string
	pid, launcher, fd             int
	start                         uint64
	ns                            [7]uint64
}

// replayRecordFill is nsbox_record_fill.
func replayRecordFill(tmpl []byte, v recordValues) (string, bool) {
	var cv C.struct_nsbox_record_values
	strs := []*C.char{C.CString(v.name), C.CString(v.created), C.CString(v.uidMap), C.CString(v.gidMap)}
	for _, s := range strs {
		defer C.free(unsafe.Pointer(s))
	}
	cv.name, cv.created, cv.uid_map, cv.gid_map = strs[0], strs[1], strs[2], strs[3]
	cv.pid, cv.launcher, cv.record_fd = C.pid_t(v.pid), C.pid_t(v.launcher), C.int(v.fd)
	cv.start_time = C.ulonglong(v.start)
	for i, n := range v.ns {
		cv.ns[i] = C.ulonglong(n)
	}
	t := C.CBytes(tmpl)
	defer C.free(t)
	var out *C.char
	var n C.size_t
	if C.nsbox_record_fill((*C.char)(t), C.size_t(len(tmpl)), &cv, &out, &n) < 0 {
		return "", false
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoStringN(out, C.int(n)), true
}
