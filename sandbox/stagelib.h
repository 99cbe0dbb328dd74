/*
 * stagelib.h: what the C files of the stage share (stage.c runs the
 * sequence; mounts.c and the other area files add the steps of PID 1's
 * setup). Not part of the launcher protocol: that is stage.h.
 */
#ifndef NSBOX_STAGELIB_H
#define NSBOX_STAGELIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* config is what the launcher asked for, decoded from CONFIG. */
struct config {
	int unshare_flags; /* namespaces to create after the user namespace */
	int setup_root;    /* switch to inner uid/gid 0 for setup */
	int setgroups;     /* setgroups(2) is allowed (gid map not "deny") */
	int mount_proc;    /* mount a fresh /proc */
	int lo_up;         /* bring the loopback interface up */
	int no_new_privs;  /* set PR_SET_NO_NEW_PRIVS for the command */
	int tty_fd;        /* terminal to hand to the command, or -1 */
	uid_t uid;         /* the command's identity */
	gid_t gid;
	const char *hostname;
	const char *cwd;
	char **argv;
	char **envp;
	const char *tap_name;  /* create this TAP device and send its fd (--net user) */
	int tap_mtu;           /* its MTU; 0 keeps the kernel's */
	const char *tap_addr4; /* "ADDR/BITS" */
	const char *tap_gw4;   /* default route's gateway */
	const char *tap_addr6;
	const char *tap_gw6;
	int net_wait;          /* wait for NET_READY, then configure its tap (external helper) */
};

/* sync_fd is the stage's end of the launcher socket. */
extern int sync_fd;

/* write_all and read_all loop over short transfers and EINTR; -1 on error
 * (read_all also on EOF: the launcher is gone). */
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);

/* send_msg sends one message to the launcher in a single write. */
void send_msg(uint32_t kind, int32_t value, const char *text);

/* fail reports "what: strerror(errno)" to the launcher as an ERROR
 * message and exits 125; fail_fix adds "; fix: FIX". */
__attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...);
__attribute__((format(printf, 2, 3), noreturn)) void fail_fix(const char *fix, const char *fmt, ...);

/* setup_mounts (mounts.c) builds the sandbox's filesystem in PID 1. */
void setup_mounts(const struct config *c);

/* setup_tap (tap.c) creates and configures the TAP device of --net user in
 * PID 1 and sends its fd to the launcher. */
void setup_tap(const struct config *c);

/* wait_network (tap.c) waits for the launcher's NET_READY and configures
 * the device an external helper made. */
void wait_network(void);

/* recv_msg reads one message from the launcher; the payload is malloc'd
 * and NUL-terminated. */
struct nsbox_msg;
char *recv_msg(struct nsbox_msg *m);

#endif
