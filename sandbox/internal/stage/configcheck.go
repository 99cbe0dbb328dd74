//go:build nsbox_configcheck

package stage

// The CONFIG decoder (config.c) called from Go, for the tests that hold
// the protocol's two halves together (configcheck_test.go) and the fuzz
// targets. cgo is not allowed in _test.go files, so the bridge lives here,
// behind the nsbox_configcheck build tag (hack/test.sh and make unit set
// it): with it, the C side also gets its writer (NSBOX_CONFIG_CHECK in
// config.c and the tables' CFG_FORMAT), which the shipped stage lacks.

/*
#cgo CFLAGS: -DNSBOX_CONFIG_CHECK
#include <stdlib.h>
#include "config.h"
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"
)

// Areas of the decoder, as config.h's CFG_AREA_* bits.
const (
	configAreaAll = C.CFG_AREA_ALL
	configAreaTAP = C.CFG_AREA_TAP
)

// decodeConfigC decodes records with the stage's decoder, the keys of
// areas only, the version first when versioned. It returns the records the
// C side writes back out from the decoded struct, or the decoder's error.
func decodeConfigC(b []byte, areas uint, versioned bool) ([]byte, error) {
	var in *C.char
	if len(b) > 0 {
		in = (*C.char)(unsafe.Pointer(&b[0]))
	}
	v := C.int(0)
	if versioned {
		v = 1
	}
	var out *C.char
	var errbuf [512]C.char
	n := C.nsbox_config_check(in, C.size_t(len(b)), C.unsigned(areas), v, &out, &errbuf[0], C.size_t(len(errbuf)))
	if n < 0 {
		return nil, errors.New(C.GoString(&errbuf[0]))
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}

// CheckConfig decodes an encoded CONFIG (Config.Encode) with the stage's
// own C decoder, as the stage will, and returns its error: for tests of
// the launcher's side, which build Configs from Specs.
func CheckConfig(b []byte) error {
	_, err := decodeConfigC(b, configAreaAll, true)
	return err
}

// configKeysC lists the decoder's keys as "area key".
func configKeysC() []string {
	buf := make([]byte, 1<<14)
	n := C.nsbox_config_keys((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")
}

// hexDecodeC is the stage's hex_decode: ok is false for what it refuses.
func hexDecodeC(s string) (b []byte, ok bool) {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	n := C.hex_decode(cs, cs)
	if n < 0 {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(cs), C.int(n)), true
}

// mountinfoUnescapeC is mounts.c's mountinfo_unescape.
func mountinfoUnescapeC(s string) string {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	C.mountinfo_unescape(cs)
	return C.GoString(cs)
}

// mountFlagNameC is the stage's name of a MOUNT_* bit, "" for none.
func mountFlagNameC(bit int) string {
	s := C.nsbox_mount_flag_name(C.int(bit))
	if s == nil {
		return ""
	}
	return C.GoString(s)
}
