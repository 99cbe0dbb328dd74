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
	/* The filesystem (mounts.c): with new_root, mounts[] build a fresh
	 * root in order, then PID 1 pivots into it. */
	int new_root;
	int root_mapped;           /* inner 0 is mapped: devpts can be mounted */
	long long owner_uid;       /* inner ids of the caller, or -1: what setup */
	long long owner_gid;       /* creates on host filesystems gets them */
	const char *cwd_try;       /* the launcher's cwd, "/" if it is not inside */
	struct mount_op *mounts;
	int n_mounts;
	/* With nest_uid >= 0 the command gets a nested user namespace that
	 * maps nest_uid/nest_gid onto inner 0 (see sandbox/nested.go). */
	long long nest_uid, nest_gid;
	pid_t join_pid;                  /* nsbox exec: the sandbox's PID 1 (join.c) */
	unsigned long long join_start;   /* and its start time, /proc/PID/stat field 22 */
	int parent_death;                /* re-arm PR_SET_PDEATHSIG after the identity change */
	int pty;           /* give the command a pseudo-terminal (pty.c) */
	int pty_rows;      /* its initial window size; 0: leave unset */
	int pty_cols;

	/* security.c: capabilities, seccomp, Landlock, limits. */
	int caps_set;       /* caps below is the command's capability set */
	uint64_t caps;      /* bit N = capability N */
	char **seccomp;     /* hex of struct sock_filter programs, in order */
	int nseccomp;
	int new_session;    /* setsid for the command */
	char **rlimits;     /* "resource:soft:hard" */
	int nrlimits;
	int landlock;       /* restrict with Landlock (ll_* below) */
	uint64_t ll_fs, ll_net, ll_scoped;
	char **ll_paths;    /* "access:optional:path" */
	int nll_paths;
	char **ll_ports;    /* "access:port" */
	int nll_ports;

	/* tap.c: the network device (--net user, slirp4netns, pasta). */
	const char *tap_name;  /* create this TAP device and send its fd (--net user) */
	int tap_mtu;           /* its MTU; 0 keeps the kernel's */
	const char *tap_addr4; /* "ADDR/BITS" */
	const char *tap_gw4;   /* default route's gateway */
	const char *tap_addr6;
	const char *tap_gw6;
	int net_wait;          /* wait for NET_READY, then configure its tap (external helper) */
};

/* mount_op is one filesystem operation; sandbox/mount.go documents each
 * type and config.go encodes them. */
enum mount_type {
	MT_BIND = 1, MT_TMPFS, MT_DIR, MT_SYMLINK, MT_CHMOD, MT_REMOUNT_RO, MT_PROC,
	MT_DEV, MT_MQUEUE, MT_FILE, MT_OVERLAY, MT_TMP_OVERLAY, MT_COPY_UP,
};
#define MOUNT_READONLY 1
#define MOUNT_DEVICES 2
#define MOUNT_OPTIONAL 4
#define MOUNT_OWNED 8 /* a tmpfs whose root is the command's */
struct mount_op {
	int type;
	const char *src, *dst, *what;
	int flags;
	unsigned mode;
	unsigned long long size;
	const char *data;
	size_t data_len;
	const char **lower;
	int n_lower;
	const char *upper, *work;
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

/* hex_decode decodes lowercase hex (how binary config values travel) into
 * out, which may be hex itself; the length, or -1 for bad hex. */
ssize_t hex_decode(const char *hex, char *out);

/* setup_mounts (mounts.c) builds the sandbox's filesystem in PID 1. */
void setup_mounts(const struct config *c);

/* enter_nested_userns (mounts.c) moves the calling process into the
 * nested user namespace config asks for, if any; -1 with errno on error. */
int enter_nested_userns(const struct config *c);
/* keep_host_proc (nsbox exec, before entering the sandbox's root) keeps
 * the caller's /proc for enter_nested_userns: a joined command writes its
 * nested maps through the host's procfs, never the sandbox's. */
void keep_host_proc(void);

/* parse_mount_record (mounts.c) takes the config records of the
 * filesystem; returns 0 for a key it does not know. */
int parse_mount_record(struct config *c, const char *key, char *value);
/* security.c: parse_security_config takes the records it knows (returns
 * 1); the hooks run in the command's child around the identity switch. */
int parse_security_config(struct config *c, const char *key, char *v);
void security_before_identity(const struct config *c);
void security_before_exec(const struct config *c);

/* run_command (stage.c) is the command's child between fork and exec:
 * identity, working directory, no_new_privs, exec. A failure is written
 * to report_fd (close-on-exec); read_exec_report returns -1 when the exec
 * succeeded (EOF), else the step that failed (0 exec, 1 chdir, 2
 * identity, 3 no_new_privs, 4 terminal) with its errno in *err. */
__attribute__((noreturn)) void run_command(const struct config *c, int report_fd);
int read_exec_report(int report_fd, int *err);

/* join.c: nsbox exec. nsbox_join enters the running sandbox whose PID 1
 * is c->join_pid (user namespace first) and starts the command there;
 * namespace_ids writes "name=inode\n" for each namespace of ours (pid:
 * our children's), for the launcher's records; make_joinable keeps PID 1
 * open to its owner's nsbox exec. */
__attribute__((noreturn)) void nsbox_join(struct config *c);
void namespace_ids(char *buf, size_t size);
void make_joinable(void);

/* pty.c: the command's pseudo-terminal, when c->pty. open_terminal (PID 1,
 * after setup_mounts) mounts the sandbox's own devpts, opens a pair, sends
 * the master to the launcher and makes the slave PID 1's controlling
 * terminal; attach_terminal (the command's child, before exec) puts the
 * command in the terminal's foreground and makes the slave its fds 0-2;
 * resume_terminal (PID 1) gives the foreground back to a continued
 * command. Without c->pty they do nothing (attach_terminal returns 0). */
void open_terminal(const struct config *c);
/* open_join_terminal (nsbox exec --tty, inside the sandbox's root) opens
 * one from the sandbox's /dev/ptmx and sends the master; attach_terminal
 * then makes the command lead a session of its own on it. */
void open_join_terminal(const struct config *c);
int attach_terminal(void);
void resume_terminal(pid_t cmd);

/* setup_tap (tap.c) creates and configures the TAP device of --net user in
 * PID 1 and sends its fd to the launcher. */
void setup_tap(const struct config *c);

/* wait_network (tap.c) waits for the launcher's NET_READY and configures
 * the device an external helper made. */
void wait_network(void);

/* allow_ping (ping.c) lets every group mapped into the sandbox open ICMP
 * echo sockets in its new network namespace (net.ipv4.ping_group_range);
 * best effort. */
void allow_ping(void);

/* recv_msg reads one message from the launcher; the payload is malloc'd
 * and NUL-terminated. */
struct nsbox_msg;
char *recv_msg(struct nsbox_msg *m);

#endif
