//go:build nsbox_configcheck

package stage

// handoff.c's cleanup steps called from Go, for handoff_check_test.go
// (cgo is not allowed in _test.go files; see configcheck.go).

/*
#include <stdlib.h>
#include "stage.h"
*/
import "C"

import "unsafe"

// runAfter is nsbox_run_after.
func runAfter(ops string) {
	p := C.CString(ops)
	defer C.free(unsafe.Pointer(p))
	C.nsbox_run_after(p)
}
