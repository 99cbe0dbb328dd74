package sandbox

// The in-namespace half of nsbox is C (stage.c), run by the ELF constructor
// below before the Go runtime starts. The launcher re-executes its own binary
// (/proc/self/exe) with NSBOX_STAGE_ENV set and its end of a socketpair as
// fd 3; the constructor sees the variable, calls nsbox_stage, and that never
// returns: it ends in exec of the command or in _exit. Without the variable
// the constructor returns at once and the program starts as usual, so any
// binary that imports this package can launch sandboxes (as runc's nsenter).
//
// Hand-off, in short: Go decides (spec, validation, id maps, the config
// records of config.go); C obeys, step by step, and reports each failure as
// an ERROR message. stage.h draws the message order.

/*
#cgo CFLAGS: -Wall -Wextra -O2 -std=gnu11
#include <stdlib.h>
#include "stage.h"

__attribute__((constructor)) static void nsbox_stage_constructor(void)
{
	if (getenv(NSBOX_STAGE_ENV))
		nsbox_stage();
}
*/
import "C"

const (
	stageEnv = C.NSBOX_STAGE_ENV

	msgConfig      = C.NSBOX_MSG_CONFIG
	msgUsernsReady = C.NSBOX_MSG_USERNS_READY
	msgMapsDone    = C.NSBOX_MSG_MAPS_DONE
	msgPID1        = C.NSBOX_MSG_PID1
	msgExecOK      = C.NSBOX_MSG_EXEC_OK
	msgExecFailed  = C.NSBOX_MSG_EXEC_FAILED
	msgError       = C.NSBOX_MSG_ERROR
	msgStopped     = C.NSBOX_MSG_STOPPED
	msgResume      = C.NSBOX_MSG_RESUME
	msgTAP         = C.NSBOX_MSG_TAP
	msgNetReady    = C.NSBOX_MSG_NET_READY

	maxPayload = C.NSBOX_MAX_PAYLOAD
)
