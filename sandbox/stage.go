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
#include <string.h>
#include "stage.h"

static int nsbox_constructor_ran;

__attribute__((constructor)) static void nsbox_stage_constructor(int argc, char **argv)
{
	nsbox_constructor_ran = 1;
	if (getenv(NSBOX_STAGE_ENV))
		nsbox_stage();
	if (getenv(NSBOX_HANDOFF_ENV))
		nsbox_handoff();
	if (!&nsbox_prefork_command || argc < 2 || !argv || !argv[1] || getenv(NSBOX_NO_PREFORK_ENV))
		return;
	for (const char *p = nsbox_prefork_command; *p; p += strlen(p) + 1)
		if (!strcmp(argv[1], p)) {
			nsbox_prefork();
			return;
		}
}

// nsbox_stage_linked tells Init the constructor above ran in this binary.
static int nsbox_stage_linked(void) { return nsbox_constructor_ran; }
*/
import "C"

const (
	stageEnv   = C.NSBOX_STAGE_ENV
	handOffEnv = C.NSBOX_HANDOFF_ENV

	msgConfig      = C.NSBOX_MSG_CONFIG
	msgUsernsReady = C.NSBOX_MSG_USERNS_READY
	msgMapsDone    = C.NSBOX_MSG_MAPS_DONE
	msgPID1        = C.NSBOX_MSG_PID1
	msgExecOK      = C.NSBOX_MSG_EXEC_OK
	msgExecFailed  = C.NSBOX_MSG_EXEC_FAILED
	msgError       = C.NSBOX_MSG_ERROR
	msgStopped     = C.NSBOX_MSG_STOPPED
	msgExited      = C.NSBOX_MSG_EXITED
	msgResume      = C.NSBOX_MSG_RESUME
	msgPtyMaster   = C.NSBOX_MSG_PTY_MASTER
	msgTAP         = C.NSBOX_MSG_TAP
	msgNetReady    = C.NSBOX_MSG_NET_READY
	msgExecGo      = C.NSBOX_MSG_EXEC_GO
	msgHandOff     = C.NSBOX_MSG_HANDOFF
	msgHandOffOK   = C.NSBOX_MSG_HANDOFF_READY
	msgArm         = C.NSBOX_MSG_ARM

	maxPayload = C.NSBOX_MAX_PAYLOAD
)

// stageLinked reports whether the stage's constructor ran at startup.
func stageLinked() bool { return C.nsbox_stage_linked() != 0 }
