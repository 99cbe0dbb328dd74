/*
 * stage.c: the part of nsbox that runs inside the new namespaces.
 *
 * It runs from an ELF constructor (see stage.go), before the Go runtime
 * starts, in a re-executed copy of the nsbox binary. Two reasons:
 *
 *  - unshare(CLONE_NEWUSER) and unshare(CLONE_NEWNS) refuse a process with
 *    more than one thread, and a Go process always has several;
 *  - starting a Go runtime (and every package init) costs about a
 *    millisecond per stage; this code costs none.
 *
 * The stage decides nothing. The Go launcher validated the spec, planned
 * the id maps and sent a flat list of key=value records (config.go
 * encodes them, config.c decodes them); this file only carries them out, in the kernel's
 * order: user namespace first, maps written by the host side, then the
 * other namespaces, then PID 1's setup, then exec. Every failure is sent
 * back as an ERROR message naming the step, so the launcher can print one
 * line and exit 125.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "stage.h"
#include "stagelib.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

extern char **environ;

int sync_fd = NSBOX_STAGE_FD;
static pid_t launcher_pid;
/* pid1_gate orders the socket: PID 1 waits for EOF on [0] (the stage
 * exiting, after its PID1 message) before it sends anything itself, so
 * the launcher reads PID1 first and a PTY_MASTER's descriptor is never
 * consumed by a plain read. */
static int pid1_gate[2] = {-1, -1};
/* gate_pending is PID 1's end of pid1_gate while PID 1 sets up before
 * the stage has sent PID1 (born beside the nested namespaces, nest.c):
 * pass_gate, before its first message, waits for the stage's end. */
static int gate_pending = -1;

static void pass_gate(void)
{
	if (gate_pending < 0)
		return;
	/* The stage waits for the holder, which waits for this. */
	nest_hold_release();
	char b;
	while (read(gate_pending, &b, 1) < 0 && errno == EINTR)
		;
	close(gate_pending);
	gate_pending = -1;
}

/* --- messages ----------------------------------------------------------- */

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return -1; /* the launcher is gone */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void send_msg(uint32_t kind, int32_t value, const char *text)
{
	pass_gate();
	struct nsbox_msg m = {.kind = kind, .value = value, .len = text ? (uint32_t)strlen(text) : 0};
	/* One buffer, one write: messages from PID 1 and the stage never interleave. */
	char buf[sizeof m + 1024];
	if (m.len > sizeof buf - sizeof m)
		m.len = sizeof buf - sizeof m;
	memcpy(buf, &m, sizeof m);
	if (m.len)
		memcpy(buf + sizeof m, text, m.len);
	(void)write_all(sync_fd, buf, sizeof m + m.len);
}

ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof u.buf;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	/* MSG_NOSIGNAL: a peer gone is a failure to report, not SIGPIPE. */
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

void send_fd(uint32_t kind, int fd, const char *what)
{
	pass_gate();
	struct nsbox_msg m = {.kind = kind, .value = 0, .len = 0};
	if (send_with_fd(sync_fd, &m, sizeof m, fd) != (ssize_t)sizeof m)
		fail("send %s to the launcher", what);
}

/* recv_msg reads one message; the payload (NUL-terminated) is malloc'd. A
 * closed socket means the launcher died: the stage leaves quietly. */
char *recv_msg(struct nsbox_msg *m)
{
	if (read_all(sync_fd, m, sizeof *m) < 0 || m->len > NSBOX_MAX_PAYLOAD)
		_exit(1);
	char *payload = malloc((size_t)m->len + 1);
	if (!payload || read_all(sync_fd, payload, m->len) < 0)
		_exit(1);
	payload[m->len] = '\0';
	return payload;
}

char *await_launcher(uint32_t kind, struct nsbox_msg *m)
{
	char *payload = recv_msg(m);
	if (m->kind != kind)
		_exit(125);
	return payload;
}

/* vfail reports "what: strerror(errno)[; fix: fix]" to the launcher and
 * exits. */
__attribute__((noreturn)) static void vfail(const char *fix, const char *fmt, va_list ap)
{
	int err = errno;
	char what[768];
	vsnprintf(what, sizeof what, fmt, ap);
	char line[1536];
	snprintf(line, sizeof line, "%s: %s%s%s", what, strerror(err), fix ? "; fix: " : "", fix ? fix : "");
	send_msg(NSBOX_MSG_ERROR, err, line);
	_exit(125);
}

void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(NULL, fmt, ap);
}

/* fail_fix is fail with the fix nsbox knows for it. */
void fail_fix(const char *fix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(fix, fmt, ap);
}

/* --- configuration ------------------------------------------------------ */

/* The records of this file's steps (config.h), a table per struct. */
#undef CFG_STRUCT
#define CFG_STRUCT struct cfg_command
/* command_keys: the command: what runs, as whom, where, when. */
const struct cfg_key command_keys[] = {
	{CFG_KEY(KEY_ARG, CFG_LIST, CFG_REQUIRED | CFG_REPEAT, argv), .count_off = CFG_FIELD(argc)},
	{CFG_KEY(KEY_ENV, CFG_LIST, CFG_REPEAT, envp), .count_off = CFG_FIELD(envc)},
	{CFG_KEY(KEY_ARGV0, CFG_STR, 0, argv0)},
	{CFG_KEY(KEY_NO_NEW_PRIVS, CFG_BOOL, 0, no_new_privs)},
	{CFG_KEY(KEY_EXTRA_FDS, CFG_INT, 0, extra_fds), .min = 0, .max = 4096},
	/* (uid_t)-1 would tell setresuid "unchanged": never an identity. */
	{CFG_KEY(KEY_UID, CFG_U32, CFG_REQUIRED, uid), .min = 0, .max = UINT32_MAX - 1},
	{CFG_KEY(KEY_GID, CFG_U32, CFG_REQUIRED, gid), .min = 0, .max = UINT32_MAX - 1},
	{CFG_KEY(KEY_CWD, CFG_STR, 0, cwd)},
	{CFG_KEY(KEY_EXEC_WAIT, CFG_BOOL, 0, exec_wait)},
	{CFG_KEY(KEY_COMMAND_FIRST, CFG_BOOL, 0, command_first), .needs = KEY_EXEC_WAIT},
	{CFG_KEY(KEY_PID1_COMMAND, CFG_BOOL, 0, pid1_command)},
	{CFG_KEY(KEY_KEEP_UID, CFG_BOOL, 0, keep_uid)},
	{CFG_KEY(KEY_KEEP_GID, CFG_BOOL, 0, keep_gid)},
	{.key = NULL},
};

#undef CFG_STRUCT
#define CFG_STRUCT struct cfg_ids
/* ids_keys: ids and maps, nesting. */
const struct cfg_key ids_keys[] = {
	{CFG_KEY(KEY_SETUP_ROOT, CFG_BOOL, 0, setup_root)},
	{CFG_KEY(KEY_SETGROUPS, CFG_BOOL, 0, setgroups)},
	{CFG_KEY(KEY_GROUP, CFG_LIST, CFG_REPEAT, groups), .count_off = CFG_FIELD(ngroups), .needs = KEY_SETGROUPS},
	{CFG_KEY(KEY_NEST_UID_MAP, CFG_STR, 0, nest_uid_map), .with = KEY_NEST_GID_MAP},
	{CFG_KEY(KEY_NEST_GID_MAP, CFG_STR, 0, nest_gid_map), .with = KEY_NEST_UID_MAP},
	{CFG_KEY(KEY_NEST_IDENTITY, CFG_BOOL, 0, nest_identity)},
	{CFG_KEY(KEY_MAPS_LATER, CFG_BOOL, 0, maps_later)},
	{CFG_KEY(KEY_NEST_UID, CFG_LLONG, 0, nest_uid), .min = 0, .max = UINT32_MAX - 1, .with = KEY_NEST_GID},
	{CFG_KEY(KEY_NEST_GID, CFG_LLONG, 0, nest_gid), .min = 0, .max = UINT32_MAX - 1, .with = KEY_NEST_UID},
	{.key = NULL},
};

#undef CFG_STRUCT
#define CFG_STRUCT struct cfg_ns
/* ns_keys: the namespaces to make or enter. */
const struct cfg_key ns_keys[] = {
	{CFG_KEY(KEY_UNSHARE, CFG_INT, CFG_REQUIRED, unshare_flags), .min = 0, .max = INT_MAX},
	{CFG_KEY(KEY_PROC, CFG_BOOL, 0, mount_proc)},
	{CFG_KEY(KEY_LO, CFG_BOOL, 0, lo_up)},
	{CFG_KEY(KEY_HOSTNAME, CFG_STR, 0, hostname), .max = 64},
	{CFG_KEY(KEY_NET_WAIT, CFG_BOOL, 0, net_wait)},
	{CFG_KEY(KEY_ENTER_USERNS, CFG_INT, 0, enter_userns), .min = EXTRA_FD, .max = 65535},
	{CFG_KEY(KEY_ENTER_USERNS2, CFG_INT, 0, enter_userns2), .min = EXTRA_FD, .max = 65535, .needs = KEY_ENTER_USERNS},
	{CFG_KEY(KEY_ENTER_PIDNS, CFG_INT, 0, enter_pidns), .min = EXTRA_FD, .max = 65535},
	{.key = NULL},
};

#undef CFG_STRUCT
#define CFG_STRUCT struct cfg_join
/* join_keys: nsbox exec's sandbox (join.c). */
const struct cfg_key join_keys[] = {
	{CFG_KEY(KEY_JOIN_PID, CFG_INT, 0, join_pid), .min = 1, .max = INT_MAX},
	{CFG_KEY(KEY_JOIN_START, CFG_U64, 0, join_start), .max = ULLONG_MAX, .with = KEY_JOIN_PID, .needs = KEY_JOIN_PID},
	{CFG_KEY(KEY_JOIN_NESTED, CFG_BOOL, 0, join_nested), .needs = KEY_JOIN_PID},
	{CFG_KEY(KEY_JOIN_PID1_COMMAND, CFG_BOOL, 0, join_pid1_command), .needs = KEY_JOIN_PID},
	{CFG_KEY(KEY_LIVE_OP, CFG_INT, 0, live_op), .min = LIVE_MOUNT, .max = LIVE_SIGNAL, .needs = KEY_JOIN_PID},
	{CFG_KEY(KEY_LIVE_SRC, CFG_STR, 0, live_src), .max = 4096, .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_DEST, CFG_STR, 0, live_dest), .max = 4096, .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_ANCHOR, CFG_STR, 0, live_anchor), .max = 4096, .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_RO, CFG_BOOL, 0, live_ro), .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_MKDIR, CFG_BOOL, 0, live_mkdir), .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_FAMILY, CFG_INT, 0, live_family), .min = 1, .max = 64, .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_TYPE, CFG_INT, 0, live_type), .min = 1, .max = 10, .needs = KEY_LIVE_OP},
	{CFG_KEY(KEY_LIVE_SIGNAL, CFG_INT, 0, live_signal), .min = 1, .max = 64, .needs = KEY_LIVE_OP},
	{.key = NULL},
};

#undef CFG_STRUCT
#define CFG_STRUCT struct cfg_term
/* term_keys: the terminal (pty.c). */
const struct cfg_key term_keys[] = {
	{CFG_KEY(KEY_TTY, CFG_INT, CFG_REQUIRED, tty_fd), .min = -1, .max = INT_MAX},
	{CFG_KEY(KEY_PTY, CFG_BOOL, 0, pty)},
	{CFG_KEY(KEY_PTY_ROWS, CFG_INT, 0, pty_rows), .max = 65535, .with = KEY_PTY, .needs = KEY_PTY},
	{CFG_KEY(KEY_PTY_COLS, CFG_INT, 0, pty_cols), .max = 65535, .with = KEY_PTY, .needs = KEY_PTY},
	{CFG_KEY(KEY_PTY_KEEP, CFG_INT, 0, pty_keep), .max = 7, .needs = KEY_PTY},
	{.key = NULL},
};

/* set_groups sets the command's supplementary groups: the KEY_GROUP
 * records (Process.Groups), none if there are none. */
static int set_groups(const struct cfg_ids *ids)
{
	gid_t g[64];
	if (ids->ngroups > (int)(sizeof g / sizeof g[0])) {
		errno = E2BIG;
		return -1;
	}
	for (int i = 0; i < ids->ngroups; i++) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(ids->groups[i], &end, 10);
		if (errno || end == ids->groups[i] || *end || v >= UINT32_MAX) {
			errno = EINVAL;
			return -1;
		}
		g[i] = (gid_t)v;
	}
	return setgroups((size_t)ids->ngroups, ids->ngroups ? g : NULL);
}

/* --- death of the launcher ---------------------------------------------- */

/* arm_parent_death makes the kernel SIGKILL this process when the launcher
 * dies, then checks the launcher did not die before that took effect. The
 * kernel clears the setting whenever credentials change (our setresuid, or
 * newuidmap acting on us), so it is re-armed after each such step. */
static void arm_parent_death(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail("prctl(PR_SET_PDEATHSIG)");
	/* In a new PID namespace getppid() is 0, so ask the socket instead:
	 * the launcher's end closes when it dies. */
	struct pollfd p = {.fd = sync_fd, .events = POLLRDHUP};
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
		_exit(1);
	/* getppid() is 0 when the launcher is in a PID namespace above ours:
	 * PID 1, or a process of an entered PID namespace (enter.c). */
	pid_t parent = getppid();
	if (parent != launcher_pid && parent != 0)
		_exit(1);
}

/* --- PID 1 ---------------------------------------------------------------- */

static void bring_up_loopback(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		fail("create a socket to configure lo");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		fail("read the flags of lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		fail("bring lo up");
	close(s);
}

/* exec_file executes path; returns only on failure, with errno set. */
static void exec_file(const char *path, char **argv, char **envp)
{
	execve(path, argv, envp);
	if (errno != ENOEXEC)
		return;
	/* A script without "#!": run it with /bin/sh, as execvp and shells do. */
	int argc = 0;
	while (argv[argc])
		argc++;
	char **sh = calloc((size_t)argc + 2, sizeof(char *));
	if (!sh)
		return;
	sh[0] = "/bin/sh";
	sh[1] = (char *)path;
	for (int i = 1; i < argc; i++)
		sh[i + 1] = argv[i];
	execve(sh[0], sh, envp);
	errno = ENOEXEC;
}

/* exec_command executes file with argv as a shell would: a name
 * containing '/' as is, else the first match along the command's PATH.
 * Unlike execvp, a PATH directory we may not search does not turn "not
 * found" into EACCES; EACCES means a file was found that we may not
 * execute. Returns only on failure, with errno set. */
static void exec_command(const char *file, char **argv, char **envp)
{
	if (strchr(file, '/')) {
		exec_file(file, argv, envp);
		return;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	size_t flen = strlen(file);
	char buf[PATH_MAX];
	int err = ENOENT;
	for (const char *p = path;; p++) {
		const char *colon = strchrnul(p, ':');
		size_t dlen = (size_t)(colon - p);
		if (dlen + flen + 2 <= sizeof buf) {
			memcpy(buf, p, dlen);
			if (dlen)
				buf[dlen++] = '/';
			memcpy(buf + dlen, file, flen + 1);
			exec_file(buf, argv, envp);
			struct stat st;
			switch (errno) {
			case EACCES:
				if (stat(buf, &st) == 0)
					err = EACCES;
				break;
			case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ELOOP:
			case ENAMETOOLONG: case ETIMEDOUT:
				break;
			default:
				return;
			}
		}
		if (!*colon)
			break;
		p = colon;
	}
	errno = err;
}

/* exec_report is what the command's child sends PID 1 when it cannot exec. */
struct exec_report {
	enum exec_step step;
	int err;
};

/* command_gate: with command-first, [0] the command's process → PID 1
 * (ready), [1] PID 1 → the command's process (go). */
static int command_gate[2][2] = {{-1, -1}, {-1, -1}};

/* command_wait is the command's process with command-first, in its own
 * namespaces now: dumpable, so that the launcher and its caller may open
 * its /proc/PID/ns files (bubblewrap's child-pid), it tells PID 1 and
 * waits for the go-ahead, then is not dumpable again until its exec
 * decides afresh. A PID 1 gone instead is no go-ahead. */
static int command_wait(void)
{
	close(command_gate[0][0]);
	close(command_gate[1][1]);
	char b = 'r';
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 || write_all(command_gate[0][1], &b, 1) < 0)
		return -1;
	close(command_gate[0][1]);
	ssize_t n;
	while ((n = read(command_gate[1][0], &b, 1)) < 0 && errno == EINTR)
		;
	close(command_gate[1][0]);
	if (n != 1)
		_exit(1);
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* command_go is PID 1's side: once the command's process is ready (else
 * it failed, and its report says why), COMMAND_READY to the launcher,
 * then its EXEC_GO passed on. */
static void command_go(const struct config *c, pid_t cmd)
{
	if (!c->cmd.command_first)
		return;
	close(command_gate[0][1]);
	close(command_gate[1][0]);
	char b;
	ssize_t n;
	while ((n = read(command_gate[0][0], &b, 1)) < 0 && errno == EINTR)
		;
	close(command_gate[0][0]);
	if (n == 1) {
		send_msg(NSBOX_MSG_COMMAND_READY, cmd, NULL);
		struct nsbox_msg m;
		free(await_launcher(NSBOX_MSG_EXEC_GO, &m));
		b = 'g';
		(void)write_all(command_gate[1][1], &b, 1);
	}
	close(command_gate[1][1]);
}

__attribute__((noreturn)) void run_command(const struct config *c, int report_fd)
{
	struct exec_report r = {STEP_EXEC, 0};
	if (report_fd < 0) {
		/* PID 1 becoming the command reports its failures itself: keep
		 * the socket clear of the extra files moving down to 3… */
		int fd = fcntl(sync_fd, F_DUPFD_CLOEXEC, EXTRA_FD + c->cmd.extra_fds);
		if (fd < 0)
			fail("move the launcher's socket");
		sync_fd = fd;
	}
	if (c->term.tty_fd >= 0) {
		/* A process group of its own, in the terminal's foreground, so
		 * Ctrl-C and Ctrl-Z reach the command and not the launcher.
		 * SIGTTOU is still blocked here, so tcsetpgrp cannot stop us. */
		setpgid(0, 0);
		tcsetpgrp(c->term.tty_fd, getpid());
	}
	if (attach_terminal() < 0) {
		r.step = STEP_TERMINAL;
		goto failed;
	}
	if ((report_fd < 0 ? nest_enter_self(c) : nest_enter(c)) < 0 || (c->cmd.command_first && command_wait() < 0)) {
		r.step = STEP_NEST;
		goto failed;
	}
	/* keep-uid/keep-gid: the ids the process has in its user namespace
	 * now (an entered one: enter.c), whatever they are called there. */
	if (c->cmd.keep_uid)
		((struct config *)c)->cmd.uid = getuid(); /* our own copy, after fork */
	if (c->cmd.keep_gid)
		((struct config *)c)->cmd.gid = getgid();
	security_before_identity(c);
	if (c->ids.setgroups && set_groups(&c->ids) < 0) {
		r.step = STEP_IDENTITY;
		goto failed;
	}
	if (setresgid(c->cmd.gid, c->cmd.gid, c->cmd.gid) < 0 || setresuid(c->cmd.uid, c->cmd.uid, c->cmd.uid) < 0) {
		r.step = STEP_IDENTITY;
		goto failed;
	}
	/* Sharing the host's PID namespace, the command would outlive PID 1
	 * (nothing kills the namespace's processes when PID 1 dies): it dies
	 * with PID 1, which dies with the launcher. */
	if (c->ns.parent_death || c->cmd.pid1_command || !(c->ns.unshare_flags & CLONE_NEWPID)) {
		/* Re-arm: the identity change cleared it. Then make sure the
		 * launcher did not die before (its end of the socket hangs up;
		 * getppid() is 0 across the PID namespace boundary). */
		struct pollfd p = {.fd = sync_fd, .events = POLLRDHUP};
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
		    (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))))
			_exit(1); /* nobody waits for the command any more */
	}
	if (c->cmd.cwd && chdir(c->cmd.cwd) < 0) {
		r.step = STEP_CHDIR;
		goto failed;
	}
	if (c->cmd.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r.step = STEP_NO_NEW_PRIVS;
		goto failed;
	}
	/* Default dispositions for what the launcher may have ignored for
	 * itself; SIGHUP and SIGINT keep an inherited SIG_IGN (nohup, `&`). */
	signal(SIGTTOU, SIG_DFL);
	signal(SIGTTIN, SIG_DFL);
	signal(SIGTSTP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	security_before_exec(c);
	/* Only stdio and Process.ExtraFiles reach the command: the extra
	 * files move down from 4… to 3… (over the launcher's socket, which
	 * is not needed any more; in ascending order each source is read
	 * before a later step overwrites it), and whatever else is open here
	 * (the report pipe, PID 1's signalfd) closes at exec, also if
	 * something was opened without O_CLOEXEC. */
	for (int i = 0; i < c->cmd.extra_fds; i++)
		if (dup2(EXTRA_FD + i, NSBOX_STAGE_FD + i) < 0) {
			r.step = STEP_EXTRA_FDS;
			goto failed;
		}
	syscall(SYS_close_range, NSBOX_STAGE_FD + c->cmd.extra_fds, ~0U, CLOSE_RANGE_CLOEXEC);
	environ = c->cmd.envp;
	/* The program is argv[0] as given; Process.Argv0 only replaces what
	 * it sees as its name (this child's copy: PID 1 still reports the
	 * program's name if exec fails). */
	const char *file = c->cmd.argv[0];
	if (c->cmd.argv0)
		c->cmd.argv[0] = (char *)c->cmd.argv0;
	exec_command(file, c->cmd.argv, c->cmd.envp);
failed:
	r.err = errno;
	if (report_fd < 0)
		exec_failed(c, r.step, r.err);
	(void)write_all(report_fd, &r, sizeof r);
	_exit(127);
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

__attribute__((noreturn)) void exec_failed(const struct config *c, int step, int err)
{
	errno = err;
	switch (step) {
	case STEP_EXEC:
		send_msg(NSBOX_MSG_EXEC_FAILED, err, c->cmd.argv[0]);
		_exit(err == ENOENT ? 127 : 126);
	case STEP_CHDIR:
		fail_fix("pass --chdir a directory that exists in the sandbox and that the command's uid may enter",
			 "--chdir %s: enter the working directory", c->cmd.cwd ? c->cmd.cwd : "/");
	case STEP_IDENTITY:
		fail_fix("pass --uid/--gid ids the sandbox's maps contain (nsbox inspect shows them; see --map, --map-users)",
			 "switch to uid %u gid %u", (unsigned)c->cmd.uid, (unsigned)c->cmd.gid);
	case STEP_NO_NEW_PRIVS:
		fail("set no_new_privs");
	case STEP_TERMINAL:
		fail("make the pseudo-terminal the command's controlling terminal");
	case STEP_NEST:
		if (c->ns.nest_held)
			fail("enter the command's nested user namespace and make its mount namespace");
		if (c->ns.enter_userns2 >= 0)
			fail_fix("pass a child of the entered user namespace (bubblewrap's --userns2 with --userns)",
				 "enter the given command user namespace (setns) and make its mount namespace");
		fail("create the command's nested user and mount namespace");
	case STEP_EXTRA_FDS:
	default:
		fail("pass Process.ExtraFiles to the command");
	}
}

int read_exec_report(int report_fd, int *err)
{
	struct exec_report r;
	ssize_t n;
	do
		n = read(report_fd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	close(report_fd);
	if (n != sizeof r)
		return -1;
	*err = r.err;
	return r.step;
}

/* report_exit tells the launcher how the command ended, before PID 1's own
 * exit status (128+N for signal N) blurs "killed by SIGINT" and "exited
 * 130", with the resources it and every reaped orphan used. */
static void report_exit(int status)
{
	struct rusage ru;
	struct nsbox_msg m = {.kind = NSBOX_MSG_EXITED, .value = status, .len = sizeof(struct nsbox_usage)};
	struct nsbox_usage u = {0};
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		u.utime_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
		u.stime_us = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
		u.maxrss_kb = ru.ru_maxrss;
	}
	/* Header and payload packed in one write (no padding between). */
	char buf[sizeof m + sizeof u];
	memcpy(buf, &m, sizeof m);
	memcpy(buf + sizeof m, &u, sizeof u);
	(void)write_all(sync_fd, buf, sizeof buf);
}

/* supervise is PID 1's loop: reap every child (orphans are reparented to
 * us), forward signals to the command, and exit with its status. When PID 1
 * exits the kernel kills everything left in the namespace. */
__attribute__((noreturn)) static void supervise(const struct config *c, pid_t cmd, int sfd)
{
	struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = sync_fd, .events = POLLIN}};
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("wait for signals");
		}
		if (fds[1].revents & POLLIN) {
			struct nsbox_msg m;
			free(recv_msg(&m));
			if (m.kind == NSBOX_MSG_RESUME) {
				if (m.value && c->term.tty_fd >= 0)
					tcsetpgrp(c->term.tty_fd, cmd);
				if (m.value)
					resume_terminal(cmd);
				kill(-cmd, SIGCONT);
			} else if (m.kind == NSBOX_MSG_HANDOFF) {
				/* The launcher execs its small supervisor next, maybe
				 * from another thread than the one we are the child
				 * of: execve ends that thread, which would fire the
				 * parent-death signal. Until ARM, the socket alone
				 * tells us the launcher died (POLLHUP below). */
				if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) == 0)
					send_msg(NSBOX_MSG_HANDOFF_READY, 0, NULL);
			} else if (m.kind == NSBOX_MSG_ARM) {
				arm_parent_death(); /* our parent is the supervisor's thread now */
			}
		} else if (fds[1].revents & (POLLHUP | POLLERR)) {
			_exit(1); /* launcher gone; the death signal is on its way */
		}
		if (!(fds[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != sizeof si)
			continue;
		if (si.ssi_signo != SIGCHLD) {
			/* A signal from the terminal (SI_KERNEL) already reached the
			 * command's process group directly; do not send it twice. A
			 * SIGCONT after a stop is driven by RESUME instead. */
			if (si.ssi_code == SI_KERNEL || (si.ssi_signo == SIGCONT && c->term.tty_fd >= 0))
				continue;
			kill(cmd, (int)si.ssi_signo);
			continue;
		}
		int status;
		pid_t w;
		while ((w = waitpid(-1, &status, WNOHANG | WUNTRACED)) > 0) {
			if (w != cmd)
				continue;
			if (WIFSTOPPED(status)) {
				if (c->term.tty_fd >= 0 || c->term.pty)
					send_msg(NSBOX_MSG_STOPPED, WSTOPSIG(status), NULL);
				continue;
			}
			report_exit(status);
			_exit(exit_code(status));
		}
	}
}

/* join_nested: PID 1, born beside the nested namespaces, enters them
 * (nest_join) after its mounts, or before a mount whose source is on
 * procfs (mnt_open_source), whichever comes first. */
static struct config *pid1_config;

static void join_nested(void)
{
	if (nest_hold_pending())
		nest_join(pid1_config);
}

__attribute__((noreturn)) static int pid1(void *arg)
{
	const struct config *c = arg;
	/* Speak only after the stage has sent PID1: wait for its end of the
	 * gate to close (it _exits right after). Born beside the nested
	 * namespaces, PID 1 builds the view meanwhile and waits before its
	 * first message (pass_gate). */
	close(pid1_gate[1]);
	int beside = nest_hold_pending();
	if (beside) {
		gate_pending = pid1_gate[0];
	} else {
		char b;
		while (read(pid1_gate[0], &b, 1) < 0 && errno == EINTR)
			;
		close(pid1_gate[0]);
	}
	arm_parent_death();
	/* maps-later: the launcher's caller writes our maps now (we are
	 * still dumpable, so /proc/PID/uid_map is the caller's to write). */
	if (c->ids.maps_later) {
		struct nsbox_msg m;
		free(await_launcher(NSBOX_MSG_MAPS_DONE, &m));
		enter_adopt_maps((struct config *)c); /* our own copy (clone without CLONE_VM) */
	}
	/* Sharing the host's PID namespace, we are not the reaper of orphans
	 * by birth: ask to be. */
	if (!(c->ns.unshare_flags & CLONE_NEWPID) && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_CHILD_SUBREAPER)");
	/* The network first: the TAP device is opened through the host's
	 * /dev/net/tun, which the sandbox's own /dev does not have. Messages
	 * go out in this order: TAP, then PTY_MASTER, then EXEC_OK. Born
	 * beside the nested namespaces, lo after the mounts, and the TAP is
	 * their holder's, sent by the stage (nest_beside). */
	if (beside) {
		nest_join_prepare();
		pid1_config = (struct config *)c; /* our own copy */
		mnt_before_proc = join_nested;
	}
	if (c->ns.lo_up && !beside) {
		bring_up_loopback();
		allow_ping(-1);
	}
	if (c->tap.tap_name && !beside)
		setup_tap(c);
	if (c->ns.net_wait)
		wait_network();
	int host_proc = nest_prepare(c);
	setup_mounts(c);
	if (beside) {
		mnt_before_proc = NULL;
		join_nested(); /* unless a source on procfs made us already */
		if (c->ns.lo_up) {
			bring_up_loopback();
			allow_ping(nest_join_proc());
		}
		nest_join_done();
	}
	open_terminal(c);
	if (c->ns.hostname && sethostname(c->ns.hostname, strlen(c->ns.hostname)) < 0)
		fail("set the hostname to %s", c->ns.hostname);
	/* Setup is done: nothing it opened may outlive it (an O_PATH of a
	 * host directory would be a way out through /proc/1/fd), and no
	 * process of the sandbox may read or trace PID 1. The launcher never
	 * needs to: nsbox exec enters the command's namespaces (join.c). */
	pass_gate();
	int keep[] = {0, 1, 2, sync_fd, c->term.tty_fd, terminal_fd(), host_proc, c->ns.enter_userns2};
	close_fds_except(keep, (int)(sizeof keep / sizeof *keep), EXTRA_FD, EXTRA_FD + c->cmd.extra_fds);
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE)");
	/* The sandbox is built; with exec-wait the command waits for the
	 * launcher's go-ahead (Spec.BeforeExec: bubblewrap's --block-fd). */
	if (c->cmd.exec_wait && !c->cmd.command_first) {
		struct nsbox_msg m;
		free(await_launcher(NSBOX_MSG_EXEC_GO, &m));
	}
	/* --as-pid-1: no init; PID 1 becomes the command, and the launcher
	 * takes the socket's end at exec (close-on-exec) for its success. */
	if (c->cmd.pid1_command)
		run_command(c, -1);
	/* A new session with an init (bubblewrap's --new-session with
	 * --unshare-pid): the session is PID 1's, as it is bubblewrap's
	 * init's, so the command is not its leader and may start one of its
	 * own (setsid). Without a terminal either way. */
	if (c->sec.new_session && !c->term.pty && (c->ns.unshare_flags & CLONE_NEWPID)) {
		if (setsid() < 0)
			fail("start a new session (setsid)");
		((struct config *)c)->sec.new_session = 0; /* our own copy */
	}

	/* Every signal stays blocked in PID 1 and is read from a signalfd;
	 * the command unblocks them before exec. */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	int sfd = signalfd(-1, &all, SFD_CLOEXEC);
	if (sfd < 0)
		fail("create a signalfd");

	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0)
		fail("create the exec report pipe");
	nest_pipes(c);
	if (c->cmd.command_first && (pipe2(command_gate[0], O_CLOEXEC) < 0 || pipe2(command_gate[1], O_CLOEXEC) < 0))
		fail("create the command's pipes");
	pid_t cmd = fork();
	if (cmd < 0)
		fail("fork the command");
	if (cmd == 0) {
		close(report[0]);
		run_command(c, report[1]);
	}
	close(report[1]);
	nest_write_maps(c);
	/* command-first: the command's process exists before the
	 * launcher's go-ahead (Spec.CommandCreated). */
	command_go(c, cmd);

	/* The report pipe is close-on-exec: EOF means exec succeeded. */
	int err = 0, step = read_exec_report(report[0], &err);
	if (step >= 0) {
		waitpid(cmd, NULL, 0);
		exec_failed(c, step, err);
	}
	send_msg(NSBOX_MSG_EXEC_OK, cmd, NULL);
	supervise(c, cmd, sfd);
}

/* --- the stage ------------------------------------------------------------ */

/* NEST_OWNED are the namespaces the command's nested user namespace owns
 * (nest_hold), so that root inside may configure them as after
 * `unshare -rn`. Not the PID namespace: PID 1, outside that user
 * namespace, is its init, and a PID namespace cannot be handed over
 * before its init exists (/proc/PID/ns/pid_for_children is ENOENT until
 * then). LATE_UNSHARE are those created only once the sandbox's user
 * namespace has its maps: the PID namespace too, whose first process
 * would otherwise be nest_hold's short-lived one. */
#define NEST_OWNED (CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC)
#define LATE_UNSHARE (NEST_OWNED | CLONE_NEWPID)

/* nest_holdable: the command gets a nested user namespace of nsbox's own
 * (not Spec.Enter's), whose maps are known before PID 1 exists. */
static int nest_holdable(const struct config *c)
{
	return c->ids.nest_uid_map && c->ns.enter_userns < 0 && !c->ids.maps_later;
}

/* nest_beside: PID 1 needs none of the namespaces nest_hold makes before
 * its mounts are done, so they are made beside it (nest.c): no external
 * network helper (it wants PID 1's network namespace first), no entered
 * PID namespace, no mqueue mount (it is the IPC namespace's). --net
 * user's TAP device is made by their holder then, not by PID 1. */
static int nest_beside(const struct config *c)
{
	if (c->ns.net_wait || c->ns.enter_pidns >= 0)
		return 0;
	for (int i = 0; i < c->root.n_mounts; i++)
		if (c->root.mounts[i].type == MT_MQUEUE)
			return 0;
	return 1;
}

/* The namespaces a pre-forked stage created before its CONFIG came
 * (UNSHARE in stage.h, or nsbox_prefork_userns: userns_born), and how
 * each unshare went. */
static struct {
	int preforked, userns_born, done, flags, userns_errno, unshare_errno;
} early;

/* unshare_early is steps 1 and 2 of nsbox_stage ahead of time, but for
 * LATE_UNSHARE (the network namespace among them: the command's user
 * namespace owns it, and that needs our maps first): the work overlaps
 * the launcher's. Failures wait for the CONFIG, to be reported in their
 * place. */
static void unshare_early(void)
{
	early.done = 1;
	early.flags = NSBOX_PREFORK_UNSHARE;
	if (!early.userns_born && unshare(CLONE_NEWUSER) < 0)
		early.userns_errno = errno;
	else if (unshare(NSBOX_PREFORK_UNSHARE & ~LATE_UNSHARE) < 0)
		early.unshare_errno = errno;
}

/* PID 1 runs on this stack; clone without CLONE_VM gives it its own copy. */
static char pid1_stack[256 * 1024] __attribute__((aligned(16)));

void nsbox_stage(void)
{
	launcher_pid = getppid();
	/* The socket must not reach the command. */
	if (fcntl(sync_fd, F_SETFD, FD_CLOEXEC) < 0)
		_exit(125);

	struct nsbox_msg m;
	char *buf = recv_msg(&m);
	if (m.kind == NSBOX_MSG_UNSHARE && early.preforked && !early.done) {
		free(buf);
		unshare_early();
		buf = recv_msg(&m);
	}
	if (m.kind != NSBOX_MSG_CONFIG)
		_exit(125);
	static struct config c;
	char err[512];
	config_defaults(&c);
	if (config_decode(buf, m.len, &c, CFG_AREA_ALL, 1, err, sizeof err) < 0) {
		send_msg(NSBOX_MSG_ERROR, EINVAL, err); /* the line says it all */
		_exit(125);
	}
	/* Process.ExtraFiles came in at 4…, Spec.Enter's namespaces after
	 * them; nothing else above the socket may reach the command. */
	int hi = EXTRA_FD + c.cmd.extra_fds;
	if (enter_highest_fd(&c) >= hi)
		hi = enter_highest_fd(&c) + 1;
	close_fds_except(NULL, 0, 0, hi);
	if (early.done && (c.join.join_pid || c.ns.enter_userns >= 0 || c.ns.enter_pidns >= 0 || c.ns.unshare_flags != early.flags)) {
		/* The launcher checks this before it takes the stage
		 * (prefork.go); a mismatch is its bug, never a weaker sandbox. */
		send_msg(NSBOX_MSG_ERROR, EINVAL, "the pre-forked stage created other namespaces than the CONFIG asks for");
		_exit(125);
	}
	/* An entered user namespace comes first: the command's ids
	 * (keep-uid) and the nested maps are read from it. */
	if (c.ns.enter_userns >= 0 && c.ns.enter_pidns >= 0)
		enter_pidns_first(&c);
	if (c.ns.enter_userns >= 0)
		enter_userns(&c);
	/* The command's ids as this user namespace sees them: its own when
	 * it is not nested onto other ones (nested.go). */
	if (c.ids.nest_uid < 0)
		c.ids.nest_uid = c.cmd.uid;
	if (c.ids.nest_gid < 0)
		c.ids.nest_gid = c.cmd.gid;
	if (c.join.join_pid)
		nsbox_join(&c); /* nsbox exec: join.c */

	/* 1. The user namespace, alone and first: every namespace created
	 * after it is owned by it. (A pre-forked stage made it, and step 2's
	 * namespaces, while the launcher's Go runtime started: early.) */
	if (!early.done && c.ns.enter_userns < 0)
		early.userns_errno = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
	if (early.userns_errno) {
		errno = early.userns_errno;
		fail("create a user namespace (unshare CLONE_NEWUSER)");
	}
	send_msg(NSBOX_MSG_USERNS_READY, 0, NULL);

	/* 2. The other namespaces, owned by the new user namespace, while the
	 * launcher writes its maps: the creator of a user namespace holds
	 * every capability in it from the start, maps or not, so the kernel's
	 * work overlaps the map writing (newuidmap's and newgidmap's execs
	 * under --map auto). A failure is reported in its place, after
	 * MAPS_DONE. */
	int unshare_errno = early.unshare_errno, flags = c.ns.unshare_flags;
	if (c.ns.enter_pidns >= 0)
		flags &= ~CLONE_NEWPID; /* made below the entered one: enter.c */
	/* Those the command's user namespace will own wait for it (step 4),
	 * and the PID namespace with them; a pre-forked stage left them all. */
	int late = flags & (early.done || nest_holdable(&c) ? LATE_UNSHARE : 0);
	if (!early.done && (flags & ~late) && unshare(flags & ~late) < 0)
		unshare_errno = errno;

	/* 3. The launcher writes uid_map and gid_map from outside; with
	 * maps-later its caller does, once PID 1 exists, and PID 1 waits. */
	if (!c.ids.maps_later) {
		free(recv_msg(&m));
		if (m.kind != NSBOX_MSG_MAPS_DONE)
			_exit(125);
	}

	/* 4. Become root of the namespace when root is mapped. Without that
	 * we keep the full capability set the creator of a user namespace
	 * has, until the command's exec drops it. */
	if (c.ids.setup_root) {
		if (c.ids.setgroups && setgroups(0, NULL) < 0)
			fail("drop supplementary groups");
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			fail("become root in the user namespace");
	}
	arm_parent_death();
	/* A network helper (slirp4netns, pasta) opens PID 1's /proc/PID/ns
	 * files as soon as the launcher learns PID 1's pid, which needs PID 1
	 * dumpable, and becoming root cleared that: PID 1 inherits it from
	 * here, so it is dumpable from birth, not only once it reaches
	 * wait_network (slirp4netns lost that race under load: "userns path
	 * doesn't exist"). No process of the sandbox exists yet; PID 1 is
	 * made non-dumpable again once setup is done. */
	if (c.ns.net_wait && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE) for the network helper");

	if (unshare_errno) {
		errno = unshare_errno;
		fail("create the namespaces (unshare 0x%x)", (unsigned)c.ns.unshare_flags);
	}
	/* The command's user namespace, now that ours has maps (a user
	 * namespace's creator must be mapped in its parent), owning the
	 * network, UTS and IPC namespaces, which we enter (nest.c); then
	 * what is left. */
	int holdable = nest_holdable(&c), beside = holdable && nest_beside(&c);
	if (beside)
		nest_hold_begin(&c, late & NEST_OWNED);
	else if (holdable)
		nest_hold(&c, late & NEST_OWNED);
	if (holdable)
		late &= ~NEST_OWNED;
	if (late && unshare(late) < 0)
		fail("create the namespaces (unshare 0x%x)", (unsigned)late);

	/* An entered PID namespace; below it, a new one is made by an
	 * intermediate process, which goes on from here instead of us. */
	pid_t mid = c.ns.enter_pidns >= 0 ? enter_pidns(&c) : 0;

	/* 5. PID 1 of the new PID namespace, born as the launcher's own child
	 * (CLONE_PARENT) so the launcher waits for it directly. */
	if (pipe2(pid1_gate, O_CLOEXEC) < 0)
		fail("create a pipe");
	int pidfd = -1;
	pid_t pid = clone(pid1, pid1_stack + sizeof pid1_stack, CLONE_PARENT | SIGCHLD | (mid ? CLONE_PIDFD : 0), &c, &pidfd);
	if (pid < 0)
		fail("start PID 1 (clone)");
	if (mid)
		pid = enter_host_pid(pidfd); /* clone numbered it in our PID namespace */
	/* What the launcher records. After the clone: a new PID namespace
	 * has no inode to show before its first process exists. The
	 * intermediate names itself for the launcher to reap. */
	/* Born beside the nested namespaces, PID 1 goes on with its
	 * mounts while we wait for them. */
	char ns[512];
	if (beside)
		nest_hold_end(pid, ns, sizeof ns);
	else
		namespace_ids(ns, sizeof ns);
	if (mid)
		snprintf(ns + strlen(ns), sizeof ns - strlen(ns), "intermediate=%d\n", (int)mid);
	send_msg(NSBOX_MSG_PID1, pid, ns);
	/* --net user's device, made by the holder (beside): it follows PID1
	 * as PID 1's would, before PID 1 may speak (PTY_MASTER, EXEC_OK). */
	int tap = beside ? nest_hold_tap() : -1;
	if (tap >= 0) {
		send_fd(NSBOX_MSG_TAP, tap, "the TAP device");
		close(tap);
	}
	/* The holder (dumpable, with the launcher's view of the files) is
	 * gone before PID 1 may go on to the command: none of the sandbox's
	 * processes ever coexists with it. It ends once PID 1 has entered
	 * its namespaces (nest_join), or at once after nest_hold. */
	nest_reap();
	close(pid1_gate[1]); /* lets PID 1 go on */
	_exit(0);
}

/* --- the pre-forked stage ---------------------------------------------------- */

int nsbox_prefork_pid = -1;
int nsbox_prefork_fd = -1;

/* prefork forks the stage, born in a new user namespace with userns. */
static int prefork(int userns)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 1; /* the launcher re-executes instead */
	if (sv[0] <= 2 || sv[1] <= 2) {
		/* Stdio was closed and the pair took its place: leave that
		 * case to the launcher's re-exec, which sets stdio up. */
		close(sv[0]);
		close(sv[1]);
		return 1;
	}
	pid_t parent = getpid();
	/* A fork, or one born in its own user namespace: the raw clone(2)
	 * returns twice as fork(2) does, the child on a copy of this stack.
	 * libc's fork also renews the child's thread id in its thread
	 * pointer; the stage, like PID 1 (also a clone), calls nothing that
	 * reads it (raise, abort, pthread_*). */
	pid_t pid = userns ? (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) : fork();
	if (pid < 0) {
		int err = errno;
		close(sv[0]);
		close(sv[1]);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
			_exit(1);
		if (dup2(sv[1], NSBOX_STAGE_FD) < 0)
			_exit(125);
		/* Not the launcher's end, unless dup2 just closed it (it was
		 * NSBOX_STAGE_FD): held here, its close by the launcher could
		 * never end this stage's wait for a message. */
		if (sv[0] != NSBOX_STAGE_FD)
			close(sv[0]);
		early.preforked = 1;
		if (userns) {
			/* As if UNSHARE came, its user namespace made already. */
			early.userns_born = 1;
			unshare_early();
		}
		nsbox_stage(); /* closes every other descriptor; never returns */
	}
	close(sv[1]);
	nsbox_prefork_pid = pid;
	nsbox_prefork_fd = sv[0];
	return 0;
}

void nsbox_prefork(void)
{
	(void)prefork(0);
}

int nsbox_prefork_userns(void)
{
	return prefork(1);
}
