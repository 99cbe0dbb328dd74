// Package stage is the sandbox's setup stage: the C that runs in the new
// namespaces before the Go runtime starts (stage.c and the files beside
// it), and the Go half of its protocol next to it: the CONFIG records
// (config.go), the messages (messages.go) and starting the stage
// (prefork.go). Package sandbox decides what a sandbox is; this package
// carries the decision to the C side, which obeys. cgo compiles only the C
// files beside the Go file that imports "C", so all of the C lives here.
package stage

// The in-namespace half of nsbox is C (stage.c), run by the ELF constructor
// below before the Go runtime starts. The launcher re-executes its own binary
// (/proc/self/exe) with NSBOX_STAGE_ENV set and its end of a socketpair as
// fd 3; the constructor sees the variable, calls nsbox_stage, and that never
// returns: it ends in exec of the command or in _exit. Without the variable
// the constructor returns at once and the program starts as usual, so any
// binary that imports this package can launch sandboxes (as runc's nsenter).
//
// Hand-off, in short: Go decides (package sandbox: spec, validation, id
// maps; the config records of config.go); C obeys, step by step, and reports each failure as
// an ERROR message. stage.h draws the message order.

/*
#cgo CFLAGS: -Wall -Wextra -O2 -std=gnu11
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include "stage.h"
#include "replay.h"

static int nsbox_constructor_ran;

// listed tells whether name is in list, a NUL-separated list that an
// empty name ends (stage.h); a weak list that is not defined is empty.
static int listed(const char *list, const char *name)
{
	if (!list)
		return 0;
	for (const char *p = list; *p; p += strlen(p) + 1)
		if (!strcmp(name, p))
			return 1;
	return 0;
}

#ifndef __GLIBC__
#include <fcntl.h>
#include <unistd.h>

// procArgs reads the command line from /proc/self/cmdline: only glibc
// passes argc and argv to constructors, musl passes nothing. Only the
// subcommand (argv[1]) is looked at: the first 512 bytes hold it, or
// it is too long to be one.
static int procArgs(char ***argvp)
{
	static char buf[512];
	static char *args[3];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC), n = 0;
	ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (len > 0) {
		buf[len] = 0;
		for (char *p = buf; p < buf + len && n < 2; p += strlen(p) + 1)
			args[n++] = p;
	}
	args[n] = NULL;
	*argvp = args;
	return n;
}
#endif

// takeName gives a re-executed stage or supervisor (the hand-off's, or
// a detached sandbox's Go launcher) the launcher's name (stage.h's
// NSBOX_NAME_ENV) and drops the variable, which nothing after it is to
// inherit: the Go runtime reads the environment after this constructor.
static void takeName(void)
{
	const char *name = getenv(NSBOX_NAME_ENV);
	if (!name)
		return;
	if (*name)
		prctl(PR_SET_NAME, name, 0, 0, 0);
	unsetenv(NSBOX_NAME_ENV);
}

__attribute__((constructor)) static void nsbox_stage_constructor(int argc, char **argv)
{
	nsbox_constructor_ran = 1;
	takeName();
	if (getenv(NSBOX_STAGE_ENV))
		nsbox_stage();
	if (getenv(NSBOX_HANDOFF_ENV))
		nsbox_handoff();
#ifndef __GLIBC__
	argc = procArgs(&argv);
#endif
	const char *fast = getenv(NSBOX_FASTPATH_ENV);
	if (argc < 2 || !argv || !argv[1] || getenv(NSBOX_NO_PREFORK_ENV) || (fast && !strcmp(fast, "off")))
		return;
	// The subcommand alone decides: the launcher, once its flags are
	// parsed, tells the stage what else to do ahead (UNSHARE).
	if (listed(nsbox_prefork_command, argv[1])) {
		// nsbox run, planned before: run the plan (replay.c), which
		// forks its own stage and returns only when the Go launcher
		// must run instead, with a stage pre-forked for it.
		if (!strcmp(argv[1], "run")) {
			nsbox_replay();
			if (nsbox_early_helper)
				nsbox_early_helper();
		} else
			nsbox_prefork();
	}
}

// nsbox_stage_linked tells Linked the constructor above ran in this binary.
static int nsbox_stage_linked(void) { return nsbox_constructor_ran; }
*/
import "C"

// The environment variables that make the constructor run the stage
// (Env) or the handed-off supervisor (HandOffEnv) instead of the program,
// and the one that turns the speed tricks off (FastPathEnv=off:
// sandbox/fastpath).
const (
	Env         = C.NSBOX_STAGE_ENV
	HandOffEnv  = C.NSBOX_HANDOFF_ENV
	FastPathEnv = C.NSBOX_FASTPATH_ENV
)

// The message kinds of the protocol drawn in stage.h, in the order a run
// meets them.
const (
	MsgConfig       = C.NSBOX_MSG_CONFIG
	MsgUsernsReady  = C.NSBOX_MSG_USERNS_READY
	MsgMapsDone     = C.NSBOX_MSG_MAPS_DONE
	MsgPID1         = C.NSBOX_MSG_PID1
	MsgExecOK       = C.NSBOX_MSG_EXEC_OK
	MsgExecFailed   = C.NSBOX_MSG_EXEC_FAILED
	MsgError        = C.NSBOX_MSG_ERROR
	MsgStopped      = C.NSBOX_MSG_STOPPED
	MsgExited       = C.NSBOX_MSG_EXITED
	MsgResume       = C.NSBOX_MSG_RESUME
	MsgPtyMaster    = C.NSBOX_MSG_PTY_MASTER
	MsgTAP          = C.NSBOX_MSG_TAP
	MsgNetReady     = C.NSBOX_MSG_NET_READY
	MsgExecGo       = C.NSBOX_MSG_EXEC_GO
	MsgHandOff      = C.NSBOX_MSG_HANDOFF
	MsgHandOffOK    = C.NSBOX_MSG_HANDOFF_READY
	MsgArm          = C.NSBOX_MSG_ARM
	MsgCommandReady = C.NSBOX_MSG_COMMAND_READY
	MsgUnshare      = C.NSBOX_MSG_UNSHARE
	MsgLiveDone     = C.NSBOX_MSG_LIVE_DONE
)

// MaxPayload is the largest payload a message may carry.
const MaxPayload = C.NSBOX_MAX_PAYLOAD

// ReplayWhy says why the constructor did not replay this `nsbox run`
// (replay.c): its plan was missing, or did not match. "" when it did not
// try, and when it started the plan's sandbox, which failed before the
// command ran (the launcher then meets that failure again and reports it).
func ReplayWhy() string {
	if C.nsbox_replay_sent != 0 {
		return ""
	}
	return C.GoString(&C.nsbox_replay_why[0])
}

// ReplayNoticed reports whether the constructor printed the plan's
// notice before it left the run to Go after all.
func ReplayNoticed() bool { return C.nsbox_replay_noticed != 0 }

// Linked reports whether the stage's constructor ran at startup.
func Linked() bool { return C.nsbox_stage_linked() != 0 }
