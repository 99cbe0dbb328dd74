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

#include "protocol.h"

/* config is what the launcher asked for, decoded from CONFIG: one small
 * struct per job, each filled by its key table (config.h). */

/* The command: what runs, as whom, where, and when (stage.c). */
struct cfg_command {
	char **argv;       /* NULL-terminated, argc of them */
	char **envp;
	int argc, envc;
	const char *argv0; /* the command's argv[0], or NULL: argv[0] (the program) */
	const char *cwd;
	uid_t uid;         /* the command's identity */
	gid_t gid;
	int keep_uid;      /* the command keeps the uid it has (not uid) */
	int keep_gid;
	int no_new_privs;  /* set PR_SET_NO_NEW_PRIVS for the command */
	int extra_fds;     /* Process.ExtraFiles: fds 4… here, 3… in the command */
	int exec_wait;     /* after setup, wait for EXEC_GO before running the command */
	int command_first; /* with exec_wait: fork the command first, it waits (COMMAND_READY) */
	int pid1_command;  /* PID 1 execs the command itself, no init (--as-pid-1) */
};

/* Ids and maps. With nest_uid_map set, the command gets a nested user
 * namespace and mount namespace (see sandbox/nested.go) whose maps PID 1
 * writes: "inner outer count" lines, outer ids being this namespace's.
 * nest_uid/nest_gid are the command's ids as this namespace sees them
 * (its uid/gid when not nested): whom setup gives the command's files and
 * terminal. */
struct cfg_ids {
	int setup_root;    /* switch to inner uid/gid 0 for setup */
	int setgroups;     /* setgroups(2) is allowed (gid map not "deny") */
	char **groups;     /* supplementary gids (decimal), set when setgroups is */
	int ngroups;
	const char *nest_uid_map, *nest_gid_map;
	long long nest_uid, nest_gid;
	int nest_identity; /* nest with the identity over the entered namespace's ids */
	int maps_later;    /* the launcher's caller writes the maps after PID1 (Spec.WriteMaps) */
};

/* The namespaces: made, or entered (Spec.Enter; enter.c) as the stage's
 * descriptors (after the extra files), -1 for none. The numbers stay set
 * once the descriptors are used and closed: "entered". */
struct cfg_ns {
	int unshare_flags; /* namespaces to create after the user namespace */
	int mount_proc;    /* mount a fresh /proc */
	int lo_up;         /* bring the loopback interface up */
	const char *hostname;
	int enter_userns;  /* instead of a new user namespace */
	int enter_userns2; /* the command's, instead of the nested one */
	int nest_held;     /* enter_userns2 is nsbox's own nesting (nest_hold), not Spec.Enter's */
	int enter_pidns;   /* PID 1's (a new one below it with CLONE_NEWPID) */
	int pidns_entered; /* enter_pidns_first entered it already */
	int parent_death;  /* re-arm PR_SET_PDEATHSIG after the identity change */
	int net_wait;      /* wait for NET_READY, then configure its tap (external helper) */
};

/* nsbox exec: the sandbox to join (join.c). */
struct cfg_join {
	pid_t join_pid;                /* its PID 1 */
	unsigned long long join_start; /* and its start time, /proc/PID/stat field 22 */
	int join_nested;               /* its command has a nested user namespace */
	int join_pid1_command;         /* its command is its PID 1 (pid1-command) */
	/* live-op: instead of a command, act on the joined sandbox (live.c,
	 * nsbox mount/umount and Sandbox.Dial): LIVE_MOUNT the host path
	 * live_src at live_dest, LIVE_UMOUNT live_dest, LIVE_SOCKET make a
	 * socket(live_family, live_type) in its network namespace,
	 * LIVE_SIGNAL send live_signal to every process of its PID namespace
	 * but its PID 1; both mount ops use the empty host file or directory
	 * live_anchor. */
	int live_op;
	const char *live_src, *live_dest, *live_anchor;
	int live_ro, live_mkdir;
	int live_family, live_type;
	int live_signal;
};

/* The filesystem (mounts.c): with new_root, mounts[] build a fresh root
 * in order, then PID 1 pivots into it. */
struct cfg_root {
	int new_root;
	int root_mapped;     /* inner 0 is mapped: devpts can be mounted */
	long long owner_uid; /* inner ids of the caller, or -1: what setup */
	long long owner_gid; /* creates on host filesystems gets them */
	const char *cwd_try; /* the launcher's cwd, "/" if it is not inside */
	struct mount_op *mounts;
	int n_mounts;
};

/* The terminal (pty.c). */
struct cfg_term {
	int tty_fd;   /* terminal to hand to the command, or -1 */
	int pty;      /* give the command a pseudo-terminal */
	int pty_rows; /* its initial window size; 0: leave unset */
	int pty_cols;
	int pty_keep; /* bit N: fd N (0-2) keeps the launcher's file, not the slave */
};

/* security.c: capabilities, seccomp, Landlock. */
struct cfg_security {
	int caps_set;       /* caps below is the command's capability set */
	uint64_t caps;      /* bit N = capability N */
	struct seccomp_prog *seccomp; /* struct sock_filter programs, in order */
	int nseccomp;
	int new_session;    /* setsid for the command */
	int assert_userns_disabled; /* fail unless unshare(CLONE_NEWUSER) fails */
	int landlock;       /* restrict with Landlock (ll_* below) */
	uint64_t ll_fs, ll_net, ll_scoped;
	struct ll_path *ll_paths;
	int nll_paths;
	struct ll_port *ll_ports;
	int nll_ports;
};

/* security.c: resource limits. */
struct cfg_limits {
	struct rlimit_rec *rlimits;
	int nrlimits;
};

/* tap.c: the network device (--net user, slirp4netns, pasta). */
struct cfg_tap {
	const char *tap_name;  /* create this TAP device and send its fd (--net user) */
	int tap_mtu;           /* its MTU; 0 keeps the kernel's */
	int tap_vnet_hdr;      /* open it with IFF_VNET_HDR and the TSO/checksum offloads */
	const char *tap_addr4; /* "ADDR/BITS" */
	const char *tap_gw4;   /* default route's gateway */
	const char *tap_addr6;
	const char *tap_gw6;
};

struct config {
	struct cfg_command cmd;
	struct cfg_ids ids;
	struct cfg_ns ns;
	struct cfg_join join;
	struct cfg_root root;
	struct cfg_term term;
	struct cfg_security sec;
	struct cfg_limits lim;
	struct cfg_tap tap;
};

/* The security records, decoded (security.c). */
struct seccomp_prog {
	void *filter;      /* struct sock_filter[len] */
	unsigned short len;
};
struct rlimit_rec {
	int resource;
	unsigned long long soft, hard; /* RLIM_INFINITY is all ones */
};
struct ll_path {
	uint64_t access;
	int optional;      /* skip the path if it does not exist */
	const char *path;
};
struct ll_port {
	uint64_t access;
	uint64_t port;
};

/* mount_op is one filesystem operation; sandbox/mount.go documents each
 * type and config.go encodes them. */
enum mount_type {
	MT_BIND = 1, MT_TMPFS, MT_DIR, MT_SYMLINK, MT_CHMOD, MT_REMOUNT_RO, MT_PROC,
	MT_DEV, MT_MQUEUE, MT_FILE, MT_OVERLAY, MT_TMP_OVERLAY, MT_COPY_UP,
};
/* The MOUNT_* bits of flags are the protocol's (protocol.h). */
/* OP_MODE is an op's mode, def when it has none. */
#define OP_MODE(op, def) ((op)->mode || ((op)->flags & MOUNT_MODE_SET) ? (op)->mode : (def))
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

/* send_fd sends a message of kind with fd attached (SCM_RIGHTS): the
 * header's bytes carry it, so the launcher's recvmsg gets both; what
 * names the fd in the failure. */
void send_fd(uint32_t kind, int fd, const char *what);
/* send_with_fd sends len bytes of buf on sock in one sendmsg, with fd
 * attached (SCM_RIGHTS) unless it is -1; sendmsg's result. */
ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd);

/* fail reports "what: strerror(errno)" to the launcher as an ERROR
 * message and exits 125; fail_fix adds "; fix: FIX". */
__attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...);
__attribute__((format(printf, 2, 3), noreturn)) void fail_fix(const char *fix, const char *fmt, ...);

/* hex_decode decodes lowercase hex (how binary config values travel) into
 * out, which may be hex itself; the length, or -1 for bad hex. */
ssize_t hex_decode(const char *hex, char *out);

/* setup_mounts (mounts.c) builds the sandbox's filesystem in PID 1. */
void setup_mounts(const struct config *c);
/* mnt_before_proc, when set, runs once before setup_mounts uses a source
 * of the host's on procfs (mnt_open_source): PID 1 born beside the
 * nested namespaces joins them there (stage.c), so that such a source
 * (/proc/net, /proc/sys/net, the IPC sysctls: what a lookup finds there
 * depends on the looker's namespaces, and the mount keeps it) shows the
 * sandbox's namespaces, never the launcher's it was born in. */
extern void (*mnt_before_proc)(void);

/* The command's nested user and mount namespace (nest.c, see
 * sandbox/nested.go): nest_prepare (PID 1, before its mounts) keeps the
 * launcher's /proc to write the maps through and returns that descriptor
 * (-1 without nesting); nest_pipes (PID 1, before the fork) makes the
 * handshake's pipes; nest_enter (the command's child) unshares and waits
 * for the maps; nest_write_maps (PID 1) writes them and lets the child go
 * on, then closes what nest_prepare kept. Without nest_uid_map they do
 * nothing. nest_enter returns -1 with errno set. */
int nest_prepare(const struct config *c);
void nest_pipes(const struct config *c);
int nest_enter(const struct config *c);
void nest_write_maps(const struct config *c);
/* nest_enter_self is the handshake with the roles turned, for a PID 1
 * that becomes the command (pid1-command): a short-lived child stays
 * outside and writes the maps of PID 1's own nested namespace. -1 with
 * errno set if PID 1's unshare failed; the child's own failure is
 * reported by the child, and PID 1 exits. */
int nest_enter_self(const struct config *c);
/* nest_hold, in the stage before PID 1 exists (sandbox/nested.go): makes
 * the command's user namespace now, with its maps, and the owned
 * namespaces (CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC) created inside
 * it, which the stage then enters, so that root inside holds every
 * capability over its network, hostname and IPC while the mounts stay
 * locked. Leaves the user namespace in enter_userns2 (nest_held set)
 * and clears nest_uid_map: the command's process enters it instead of
 * unsharing one. Fails the stage on error. */
void nest_hold(struct config *c, int owned);
/* nest_hold beside PID 1 (nest.c draws it): nest_hold_begin, in the
 * stage, forks the holder, which makes the namespaces while the stage
 * clones PID 1, and leaves c as nest_hold does but for enter_userns2;
 * nest_hold_end, in the stage once PID 1 is cloned, waits for them,
 * writes their maps and tells PID 1, and writes namespace_ids' text
 * with the holder's namespaces into ids; fails the stage, and kills
 * PID 1, on error. PID 1 shares the stage's mount namespace and pivots
 * its root away meanwhile: the stage reaches /proc only through the
 * descriptor nest_hold_begin opened. In PID 1: nest_hold_pending says it was born before them;
 * nest_join_prepare, before the mounts, keeps the launcher's /proc;
 * nest_join, after them, enters the namespaces and sets enter_userns2;
 * nest_join_proc is that /proc (for allow_ping), nest_join_done closes
 * it; nest_hold_release lets the holder end once the stage is done with
 * it (nest_join does, and so must a PID 1 that fails before, lest the
 * stage wait for it). */
void nest_hold_begin(struct config *c, int owned);
void nest_hold_end(pid_t pid1, char *ids, size_t size);
/* nest_hold_tap, in the stage after nest_hold_end: the TAP device the
 * holder made in the network namespace (--net user), or -1; the caller
 * sends it to the launcher and closes it. */
int nest_hold_tap(void);
int nest_hold_pending(void);
void nest_join_prepare(void);
void nest_join(struct config *c);
int nest_join_proc(void);
void nest_join_done(void);
void nest_hold_release(void);
/* nest_reap waits for nest_hold's short-lived process, if any. */
void nest_reap(void);

/* close_fds_except closes every descriptor of the process but the n in
 * keep (negative entries are ignored) and those from lo up to hi (not
 * included). */
void close_fds_except(const int *keep, int n, int lo, int hi);

/* EXTRA_FD is where the stage holds the command's first extra file. */
#define EXTRA_FD (NSBOX_STAGE_FD + 1)

/* security.c: the hooks run in the command's child around the identity
 * switch. The CONFIG records are decoded by config.c (config.h). */
void security_before_identity(const struct config *c);
void security_before_exec(const struct config *c);

/* run_command (stage.c) is the command's child between fork and exec:
 * identity, working directory, no_new_privs, exec. A failure is written
 * to report_fd (close-on-exec), or with report_fd -1 (PID 1 becoming the
 * command) reported to the launcher at once (exec_failed); read_exec_report returns -1 when the exec
 * succeeded (EOF), else the step that failed with its errno in *err. */
enum exec_step {
	STEP_EXEC,         /* execvpe: EXEC_FAILED, exit 127 or 126 */
	STEP_CHDIR,        /* the working directory; the rest: ERROR, 125 */
	STEP_IDENTITY,     /* setgroups, setresgid, setresuid */
	STEP_NO_NEW_PRIVS,
	STEP_TERMINAL,     /* the controlling terminal */
	STEP_NEST,         /* the nested user namespace, command-first's wait */
	STEP_EXTRA_FDS,    /* Process.ExtraFiles */
};
__attribute__((noreturn)) void run_command(const struct config *c, int report_fd);
int read_exec_report(int report_fd, int *err);
/* exec_failed reports the step read_exec_report returned (with its errno)
 * to the launcher and exits: EXEC_FAILED with 127 or 126 for the exec
 * itself, an ERROR with 125 for the steps before it. Run and exec share
 * it, so a step means the same from both. */
__attribute__((noreturn)) void exec_failed(const struct config *c, int step, int err);

/* join.c: the live operations (live-op). */
enum { LIVE_MOUNT = 1, LIVE_UMOUNT, LIVE_SOCKET, LIVE_SIGNAL };
/* live_run does c->live_op with the descriptors join.c opened: the
 * sandbox's user namespace, the command's mount, PID and network
 * namespaces (-1 if not its own) and its root. */
__attribute__((noreturn)) void live_run(const struct config *c, int outer, int mntfd, int pidfd, int netfd, int rootfd);

/* enter.c: Spec.Enter. enter_userns (the stage, first) enters the given
 * user namespace and learns its maps; enter_pidns (the stage, before
 * PID 1's clone) enters the given PID namespace, and returns the host pid
 * of an intermediate process the launcher reaps (>0) when a new PID
 * namespace is made below it (then the caller is that process), else 0;
 * enter_highest_fd is the highest descriptor they keep, or -1. */
void enter_userns(struct config *c);
/* enter_adopt_maps reads the maps of our user namespace, written by
 * someone else (an entered namespace, or maps-later), into c: the nested
 * identity maps, root_mapped, the owner ids and the kept ids. */
void enter_adopt_maps(struct config *c);
pid_t enter_pidns(struct config *c);
/* enter_pidns_first enters a given PID namespace before the given user
 * namespace, from its owner, when that owner is an ancestor of it (and
 * sets pidns_entered); otherwise it leaves both to the usual order. */
void enter_pidns_first(struct config *c);
/* enter_host_pid turns a pidfd into the host's pid (and closes it): how
 * the intermediate learns PID 1's, which clone gave it in its own
 * numbering. */
pid_t enter_host_pid(int pidfd);
int enter_highest_fd(const struct config *c);

/* join.c: nsbox exec. nsbox_join enters the running sandbox whose PID 1
 * is c->join_pid (user namespace first) and starts the command there;
 * namespace_ids writes "name=inode\n" for each namespace of ours (pid:
 * our children's), for the launcher's records. */
__attribute__((noreturn)) void nsbox_join(struct config *c);
void namespace_ids(char *buf, size_t size);
/* namespace_ids_held is namespace_ids through proc, a descriptor of the
 * launcher's procfs (-1: /proc), with the network, IPC and UTS
 * namespaces of process held (nest_hold_end's holder; 0: ours). */
void namespace_ids_held(char *buf, size_t size, int proc, pid_t held);


/* pty.c: the command's pseudo-terminal, when c->pty. open_terminal (PID 1,
 * after setup_mounts) mounts the sandbox's own devpts, opens a pair, sends
 * the master to the launcher and makes the slave PID 1's controlling
 * terminal; attach_terminal (the command's child, before exec) puts the
 * command in the terminal's foreground and makes the slave its fds 0-2;
 * resume_terminal (PID 1) gives the foreground back to a continued
 * command. Without c->pty they do nothing (attach_terminal returns 0). */
void open_terminal(const struct config *c);
/* terminal_fd is the slave PID 1 keeps (-1 without a pty). */
int terminal_fd(void);
/* open_join_terminal (nsbox exec --tty, inside the sandbox's root) opens
 * one from the sandbox's /dev/ptmx and sends the master; attach_terminal
 * then makes the command lead a session of its own on it. */
void open_join_terminal(const struct config *c);
int attach_terminal(void);
void resume_terminal(pid_t cmd);

/* setup_tap (tap.c) creates and configures the TAP device of --net user in
 * PID 1 and sends its fd to the launcher; make_tap only creates and
 * configures it, in the caller's network namespace, and returns its fd
 * (the holder of the nested namespaces: nest.c). Both fail the process on
 * error. */
void setup_tap(const struct config *c);
int make_tap(const struct config *c);

/* wait_network (tap.c) waits for the launcher's NET_READY and configures
 * the device an external helper made. */
void wait_network(void);

/* allow_ping (ping.c) lets every group mapped into the sandbox open ICMP
 * echo sockets in its new network namespace (net.ipv4.ping_group_range);
 * best effort. proc is a descriptor of the launcher's procfs, or -1 for
 * the one on /proc (the sysctls are those of the caller's network
 * namespace either way). */
void allow_ping(int proc);

/* recv_msg reads one message from the launcher; the payload is malloc'd
 * and NUL-terminated. */
struct nsbox_msg;
char *recv_msg(struct nsbox_msg *m);
/* await_launcher (stage.c) is how PID 1 holds until the launcher's side of
 * a step is done: it reads the next message, which must be of that kind
 * (NET_READY, EXEC_GO), and returns its payload; anything else ends PID 1. */
char *await_launcher(uint32_t kind, struct nsbox_msg *m);

#endif
