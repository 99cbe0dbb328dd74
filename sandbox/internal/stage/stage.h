/*
 * stage.h: the messages between the nsbox launcher (Go, launch.go) and the
 * pre-runtime stage (C, stage.c). Both sides read their constants from here:
 * stage.go imports them through cgo, so they cannot drift apart.
 *
 * The launcher and the stage share one SOCK_STREAM socketpair; the stage's
 * end is file descriptor 3. Every message is a struct nsbox_msg header
 * followed by len bytes of payload. The order is fixed:
 *
 *   launcher                         stage                      PID 1
 *   (UNSHARE                 ──▶     a pre-forked stage only: unshare(user),
 *                                    unshare(mnt, cgroup) ahead of CONFIG;
 *                                    the replay's stage is born in its user
 *                                    namespace and needs no UNSHARE)
 *   CONFIG (v=2\0key=value\0 …) ──▶
 *                                    unshare(CLONE_NEWUSER)
 *                            ◀──     USERNS_READY
 *   write uid_map, gid_map           unshare(mnt, cgroup)
 *   MAPS_DONE                ──▶
 *                                    setresuid(0) if mapped,
 *                                    the command's user namespace owning
 *                                    net, uts, ipc (nest.c), unshare(pid)
 *                                    clone(CLONE_PARENT) ──────▶ (born)
 *                            ◀──     PID1 (its pid)
 *                                    _exit(0)
 *                                                               lo
 *                            ◀──────────────────────────────── TAP + fd (only with tap=)
 *   NET_READY (tap=… records) ──────────────────────────────▶ (only with net-wait=)
 *                                                               mounts, hostname
 *                            ◀──────────────────────────────── PTY_MASTER (with --tty only)
 *                            ◀──────────────────────────────── COMMAND_READY (command-first=:
 *                                                               forked, waits for EXEC_GO)
 *   EXEC_GO                  ──────────────────────────────▶ (only with exec-wait=)
 *                                                               fork + exec command
 *                            ◀──────────────────────────────── EXEC_OK | EXEC_FAILED | ERROR
 *                            ◀──────────────────────────────── STOPPED (job control)
 *   RESUME                   ──────────────────────────────▶
 *                            ◀──────────────────────────────── EXITED (status, usage), then PID 1 exits
 *   HANDOFF                  ──────────────────────────────▶ (an idle sandbox:
 *                            ◀──────────────────────────────── HANDOFF_READY  handoff.c)
 *   (exec of the supervisor) ARM ──────────────────────────▶
 *
 * ERROR may come from the stage or PID 1 at any step instead of the
 * expected message; its payload says what failed and value is the errno.
 */
#ifndef NSBOX_STAGE_H
#define NSBOX_STAGE_H

#include <stdint.h>

/* NSBOX_STAGE_ENV in the environment makes a process the stage. */
#define NSBOX_STAGE_ENV "_NSBOX_STAGE"
/* NSBOX_NAME_ENV carries the name (comm, what ps shows) of the process
 * that re-executes the binary through /proc/self/exe as the stage or the
 * supervisor: the kernel names the new program after the path's last
 * component, "exe", and the constructor gives the launcher's name back
 * (prctl PR_SET_NAME), so that a stage, PID 1 and a handed-off launcher
 * are named as the stage the constructor forks and the launcher before
 * its exec are (prefork.go's Start). */
#define NSBOX_NAME_ENV "_NSBOX_NAME"
/* NSBOX_STAGE_FD is the stage's end of the socketpair. */
#define NSBOX_STAGE_FD 3

enum nsbox_msg_kind {
	NSBOX_MSG_CONFIG = 1,   /* L→S  payload: key=value\0 records */
	NSBOX_MSG_USERNS_READY, /* S→L  user namespace exists; write its maps */
	NSBOX_MSG_MAPS_DONE,    /* L→S  maps written */
	NSBOX_MSG_PID1,         /* S→L  value: PID 1's pid in the launcher's namespace */
	NSBOX_MSG_EXEC_OK,      /* P→L  value: the command's pid inside the sandbox */
	NSBOX_MSG_EXEC_FAILED,  /* P→L  value: errno of execvpe; payload: the command */
	NSBOX_MSG_ERROR,        /* S,P→L value: errno; payload: what failed */
	NSBOX_MSG_STOPPED,      /* P→L  value: the signal that stopped the command */
	NSBOX_MSG_RESUME,       /* L→P  value: 1 give the command the terminal, 0 not */
	NSBOX_MSG_PTY_MASTER,   /* P→L  SCM_RIGHTS: the master of the command's pty (--tty) */
	NSBOX_MSG_TAP,          /* P→L  the TAP device's fd, as SCM_RIGHTS; no payload */
	NSBOX_MSG_NET_READY,    /* L→P  external network helper attached; payload: tap=… records to configure */
	NSBOX_MSG_EXITED,       /* P→L  value: the command's wait status; payload: struct nsbox_usage */
	NSBOX_MSG_EXEC_GO,      /* L→P  run the command now (only with exec-wait=); no payload */
	NSBOX_MSG_HANDOFF,      /* L→P  the launcher is about to exec its supervisor: disarm the parent-death signal */
	NSBOX_MSG_HANDOFF_READY, /* P→L disarmed */
	NSBOX_MSG_ARM,          /* L→P  arm it again (the supervisor, or a launcher whose exec failed) */
	NSBOX_MSG_COMMAND_READY, /* P→L (command-first) the command's process exists, in its namespaces, and waits for EXEC_GO; value: its pid inside */
	NSBOX_MSG_UNSHARE,      /* L→S  (a pre-forked stage, before CONFIG) create NSBOX_PREFORK_UNSHARE's namespaces now */
	NSBOX_MSG_LIVE_DONE,    /* S→L  live-op done; LIVE_SOCKET: the socket as SCM_RIGHTS, no payload */
};

/* nsbox_usage is what PID 1 reports with EXITED: getrusage(RUSAGE_CHILDREN)
 * of PID 1, so the command and every orphan it reaped. */
struct nsbox_usage {
	int64_t utime_us;  /* user CPU time, microseconds */
	int64_t stime_us;  /* system CPU time, microseconds */
	int64_t maxrss_kb; /* largest resident set of one of them, KiB */
};

struct nsbox_msg {
	uint32_t kind;
	int32_t value;
	uint32_t len;
};

/* NSBOX_CONFIG_VERSION is CONFIG's first record, "v=2" (config.h). It
 * changes whenever a record changes meaning; version 1 had no record. */
#define NSBOX_CONFIG_VERSION 2

/* NSBOX_MAX_PAYLOAD bounds one message: the command line and environment
 * together may not exceed it (Linux's own ARG_MAX default is 2 MiB). */
#define NSBOX_MAX_PAYLOAD (8u << 20)

void nsbox_stage(void);

/* NSBOX_HANDOFF_ENV in the environment makes a process the supervisor of
 * a running sandbox that a launcher handed off (handoff.c, handoff.go):
 * "PID1,SYNC_FD,STATUS_FD,TTY_FD,PGRP[;CLEANUP]". */
#define NSBOX_HANDOFF_ENV "_NSBOX_HANDOFF"
void nsbox_handoff(void);
/* nsbox_run_after runs a supervisor's cleanup steps (handoff.c): the
 * ";VERB:HEX[:HEX]" list the launcher encodes (sandbox/handoff.go). */
void nsbox_run_after(const char *ops);

/* nsbox_supervise is the hand-off supervisor's loop, for a launcher that
 * is C from the start (replay.c): it waits for PID 1 (a child of the
 * caller), relays signals, mirrors stops, runs the cleanup steps after
 * and exits with the command's status; it never returns. */
#include <sys/types.h>
__attribute__((noreturn)) void nsbox_supervise(pid_t pid1, int sync, int status_fd, int tty, pid_t pgrp, const char *after);

/* nsbox_prefork forks a stage before the Go runtime starts, so the stage is waiting for its
 * CONFIG by the time the launcher has planned: no exec of the binary, and
 * the fork overlaps the Go runtime's start. On success it sets
 * nsbox_prefork_pid and nsbox_prefork_fd (the launcher's end of the
 * socket, close-on-exec); on any failure they stay -1 and the launcher
 * re-executes itself as usual. */
void nsbox_prefork(void);
extern int nsbox_prefork_pid;
extern int nsbox_prefork_fd;
/* nsbox_prefork_userns is nsbox_prefork for the replay (replay.c): the
 * stage is born in a user namespace of its own (clone(CLONE_NEWUSER)), so
 * the namespace exists when this returns and newuidmap and newgidmap can
 * start at once, and it then makes NSBOX_PREFORK_UNSHARE's early
 * namespaces, as if sent UNSHARE, while the replay goes on. Returns 0;
 * 1 when no stage can be forked this way (as nsbox_prefork); -1 with
 * errno when the clone failed (no user namespace for this user). */
int nsbox_prefork_userns(void);

/* Sent UNSHARE before its CONFIG (the launcher decides, once its flags are
 * parsed: cmd/nsbox/fastpath.go), the pre-forked stage creates its user
 * namespace and then NSBOX_PREFORK_UNSHARE's namespaces (every one nsbox
 * makes by default) but the network, UTS, IPC and PID ones (which wait for
 * the maps: stage.c, LATE_UNSHARE) while the launcher builds the sandbox's
 * spec. The launcher then takes that stage only for a sandbox that wants
 * exactly those namespaces, joins none and has no cgroup of its own (a
 * cgroup namespace's root is fixed when it is created); otherwise it lets
 * the stage go and re-executes. */
#define NSBOX_PREFORK_UNSHARE (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET)

/* A program opts in to the pre-forked stage by defining
 * nsbox_prefork_command, a list of NUL-terminated names ending with an
 * empty one: the constructor pre-forks when argv[1] equals one of them
 * (cmd/nsbox defines "run" and "exec"); it reads nothing else of the
 * command line. Programs that embed the sandbox package do not define it
 * and always re-execute. */
extern const char nsbox_prefork_command[] __attribute__((weak));
/* A program may also define nsbox_early_helper: for `run`, the
 * constructor calls it once the stage is pre-forked (and a replay did not
 * run), to start what the launcher will need early (cmd/nsbox's
 * --net user helper: cmd/internal/helper/early.c). It must return, and
 * leave nothing the stage could inherit: it runs after the fork. */
extern void nsbox_early_helper(void) __attribute__((weak));
/* NSBOX_FASTPATH=off in the environment turns every speed trick off (the
 * pre-forked stage here, the early namespaces and the hand-off with it:
 * sandbox/fastpath); NSBOX_NO_PREFORK only this one. For comparisons. */
#define NSBOX_FASTPATH_ENV "NSBOX_FASTPATH"
#define NSBOX_NO_PREFORK_ENV "NSBOX_NO_PREFORK"

#endif
