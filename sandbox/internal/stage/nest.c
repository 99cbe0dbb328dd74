/*
 * nest.c: the command's nested user and mount namespace (the why is in
 * sandbox/nested.go), and closing what PID 1 does not need.
 *
 * Usually the stage makes the nested user namespace before PID 1 exists
 * (nest_hold): a short-lived clone of it creates the namespace with the
 * network, UTS and IPC namespaces inside, the stage writes its maps,
 * keeps a descriptor of it and enters the three others; the command's
 * process later enters it and unshares the mount namespace (nest_enter,
 * as for a given --userns2). Where the sandbox's maps come only after
 * PID 1 exists (maps-later) or its user namespace is given
 * (enter-userns), the command's process makes the nested namespace
 * itself after setup, by the handshake below.
 *
 * The handshake, between PID 1 (in the sandbox's user namespace, with
 * CAP_SETUID/CAP_SETGID there) and the command's child:
 *
 *   PID 1                                  child
 *   nest_prepare: keep the launcher's /proc
 *   mounts …; fork ───────────────────────▶ nest_enter:
 *                                            unshare(CLONE_NEWUSER | CLONE_NEWNS)
 *                      ◀──────────────────── its pid in that /proc
 *   nest_write_maps: uid_map, gid_map of it
 *                      ───────────────────▶ (EOF) goes on: identity, exec
 *
 * Why PID 1 writes: a map with more than the writer's own id needs
 * CAP_SETUID in the *parent* user namespace (user_namespaces(7)), which
 * the child loses the moment it unshares. Why through the launcher's
 * /proc: the sandbox may have no /proc, and its /proc numbers processes
 * in the sandbox's PID namespace, where the child's pid means nothing to
 * a procfs of the host's. The kept descriptor is O_PATH, close-on-exec,
 * and closed as soon as the maps are written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stagelib.h"

static int host_proc = -1;      /* the launcher's /proc, for the maps */
static pid_t nest_holder;       /* nest_hold's process, until nest_reap */
static int nest_pipe[2][2] = {{-1, -1}, {-1, -1}}; /* [0] child→PID 1, [1] PID 1→child */

int nest_prepare(const struct config *c)
{
	if (!c->ids.nest_uid_map)
		return -1;
	host_proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (host_proc < 0)
		fail("open /proc to write the command's nested id maps");
	return host_proc;
}

void nest_pipes(const struct config *c)
{
	if (c->ids.nest_uid_map && (pipe2(nest_pipe[0], O_CLOEXEC) < 0 || pipe2(nest_pipe[1], O_CLOEXEC) < 0))
		fail("create the nesting pipes");
}

int nest_enter(const struct config *c)
{
	if (c->ns.enter_userns2 >= 0) {
		/* The command's user namespace is given (enter.c): enter it,
		 * with every capability there, and copy the mounts into a new
		 * mount namespace it owns, which locks them as below. */
		if (setns(c->ns.enter_userns2, CLONE_NEWUSER) < 0)
			return -1;
		close(c->ns.enter_userns2);
		return unshare(CLONE_NEWNS);
	}
	if (!c->ids.nest_uid_map)
		return 0;
	close(nest_pipe[0][0]);
	close(nest_pipe[1][1]);
	/* PID 1 is not dumpable, and neither are we, its fork: then
	 * /proc/OUR-PID belongs to the host's root and PID 1 could not open
	 * our map files. Nothing of the sandbox runs yet that could use
	 * this, and exec decides dumpability afresh. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 || unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return -1;
	/* Our pid as the launcher's /proc numbers it. */
	char self[32];
	ssize_t n = readlinkat(host_proc, "self", self, sizeof self - 1);
	if (n <= 0)
		return -1;
	if (write_all(nest_pipe[0][1], self, (size_t)n) < 0)
		return -1;
	close(nest_pipe[0][1]);
	close(host_proc);
	/* PID 1 closes its end once the maps are written (or it failed). */
	char b;
	while ((n = read(nest_pipe[1][0], &b, 1)) < 0 && errno == EINTR)
		;
	close(nest_pipe[1][0]);
	if (n != 0) {
		errno = EPROTO;
		return -1;
	}
	/* The maps are written: not dumpable again until exec, so that no
	 * process of the sandbox (an entered PID namespace may have some)
	 * can trace or open the descriptors of a process that still holds
	 * the caller's files and no seccomp filter. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -1;
	return 0;
}

/* write_map writes text to PID/FILE under proc (a procfs of the host's
 * numbering) in one write. */
static void write_map(int proc, const char *pid, const char *file, const char *text)
{
	char path[64];
	snprintf(path, sizeof path, "%s/%s", pid, file);
	int fd = openat(proc, path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open the command's %s", file);
	/* One write(2): the kernel takes a map file's content only whole. */
	ssize_t n = write(fd, text, strlen(text));
	if (n != (ssize_t)strlen(text))
		fail("write the command's nested %s (%s)", file, text);
	close(fd);
}

void nest_write_maps(const struct config *c)
{
	if (!c->ids.nest_uid_map)
		return;
	close(nest_pipe[0][1]);
	close(nest_pipe[1][0]);
	char pid[32];
	ssize_t n;
	while ((n = read(nest_pipe[0][0], pid, sizeof pid - 1)) < 0 && errno == EINTR)
		;
	close(nest_pipe[0][0]);
	if (n > 0) {
		pid[n] = '\0';
		/* gid_map needs setgroups "deny" first only for an unprivileged
		 * writer; the nested namespace inherits the outer one's choice. */
		write_map(host_proc, pid, "uid_map", c->ids.nest_uid_map);
		write_map(host_proc, pid, "gid_map", c->ids.nest_gid_map ? c->ids.nest_gid_map : "");
	}
	/* n <= 0: the child failed before it unshared; it reports that
	 * itself. Closing lets it go on either way. */
	close(nest_pipe[1][1]);
	close(host_proc);
	host_proc = -1;
}

/* The namespaces nest_hold makes the command's user namespace own, with
 * their names under /proc/PID/ns. */
static const struct {
	const char *name;
	int flag;
} held[] = {{"net", CLONE_NEWNET}, {"uts", CLONE_NEWUTS}, {"ipc", CLONE_NEWIPC}};

/* join_held enters the namespaces of owned (held[]'s flags) that the
 * holder made, through /proc/HOLDER/ns in the procfs at proc, and returns
 * a descriptor of the holder's user namespace, the command's. */
static int join_held(int proc, pid_t holder, int owned)
{
	char path[64];
	snprintf(path, sizeof path, "%d/ns/user", (int)holder);
	int userns = openat(proc, path, O_RDONLY | O_CLOEXEC);
	if (userns < 0)
		fail("open the command's user namespace");
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
		if (!(owned & held[i].flag))
			continue;
		snprintf(path, sizeof path, "%d/ns/%s", (int)holder, held[i].name);
		int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, held[i].flag) < 0)
			fail("enter the %s namespace the command's user namespace owns", held[i].name);
		close(fd);
	}
	return userns;
}

void nest_hold(struct config *c, int owned)
{
	/* The holder is our clone: we write its maps and open its
	 * namespaces through /proc/HOLDER, which needs it dumpable, and it
	 * inherits that from us. Nothing of the sandbox exists yet. */
	int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	int gate[2];
	if (pipe2(gate, O_CLOEXEC) < 0)
		fail("create a pipe");
	if (dumpable != 1 && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE) for the command's user namespace");
	/* One clone makes the user namespace first, then the others owned
	 * by it (clone(2)). The holder only waits: the namespaces outlive it
	 * through our descriptors, and it ends when we close the gate or
	 * die. */
	pid_t holder = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | owned | SIGCHLD, NULL, NULL, NULL, 0);
	if (holder < 0)
		fail("create the command's user namespace with the namespaces it owns (clone 0x%x)",
		     (unsigned)(CLONE_NEWUSER | owned));
	if (holder == 0) {
		close(gate[1]);
		char b;
		while (read(gate[0], &b, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(gate[0]);
	/* Our /proc is still the launcher's (no mount is made yet), and the
	 * holder is numbered there as clone returned it. */
	int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (proc < 0)
		fail("open /proc to write the command's nested id maps");
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)holder);
	write_map(proc, pid, "uid_map", c->ids.nest_uid_map);
	write_map(proc, pid, "gid_map", c->ids.nest_gid_map ? c->ids.nest_gid_map : "");
	/* Ours from now on, and PID 1's: PID 1 keeps every capability
	 * over them from the sandbox's user namespace, their parent's. */
	int userns = join_held(proc, holder, owned);
	close(proc);
	/* The holder ends on its own now; nest_reap collects it once PID 1
	 * is cloned, before PID 1 may go on (nsbox_stage). */
	close(gate[1]);
	nest_holder = holder;
	if (dumpable != 1 && prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE)");
	/* From here on it is as if the command's user namespace were given
	 * (bubblewrap's --userns2): the command's process enters it and
	 * unshares its mount namespace there (nest_enter); PID 1 has no maps
	 * to write. */
	c->ns.enter_userns2 = userns;
	c->ns.nest_held = 1;
	c->ids.nest_uid_map = c->ids.nest_gid_map = NULL;
}

/* --- the nested namespaces made beside PID 1 --------------------------------
 *
 * Making the command's user namespace with a network namespace inside it
 * costs the kernel more than half a millisecond (the network namespace
 * most of it), which nest_hold spends before PID 1 exists. Where PID 1
 * needs none of them for its mounts (nest_beside says when), the stage
 * forks the holder instead, clones PID 1 at once, and the holder
 * unshares while PID 1 builds the filesystem view:
 *
 *   stage                       holder                   PID 1
 *   nest_hold_begin: fork ────▶ unshare(USER|NET|UTS|IPC),
 *                               the TAP (--net user: make_tap)
 *   clone ─────────────────────────────────────────────▶ nest_join_prepare:
 *                                                          the launcher's /proc
 *   nest_hold_end:    ◀──────── made (its errno, or 0;     mounts …
 *   writes its maps,             and the TAP's fd)
 *   PID1 (its namespaces' ids),
 *   TAP (to the launcher) ───────────────────────────────▶ nest_join: opens the
 *                                                          holder's namespaces,
 *                                                          enters net, uts, ipc,
 *                               ◀───────────────────────── closes the gate
 *   nest_reap ◀──────────────── _exit                      lo, hostname, …
 *   _exit (PID 1's gate) ────────────────────────────────▶ pass_gate: …, the
 *                                                          command
 *
 * PID 1 runs nothing of the sandbox's before nest_join: a failure there
 * fails it, so the command never starts in the namespaces it was born in
 * (the launcher's network, UTS and IPC namespaces, over which it holds no
 * capability). The stage lets PID 1 go on to its first message (and the
 * command) only once the holder is reaped, and the holder ends
 * only once PID 1 has entered its namespaces: whoever waits for the
 * stage (the launcher, before it reads PID 1's namespaces) sees PID 1 in
 * them. */
static int hold_ready[2] = {-1, -1}; /* holder → stage: its errno, 0 once made, with the TAP */
static int hold_gate[2] = {-1, -1};  /* [1] held by PID 1 until it joined */
static int hold_maps[2] = {-1, -1};  /* stage → PID 1: one byte once the maps are written */
static int hold_proc = -1;           /* the launcher's /proc (the stage's, then PID 1's) */
static int hold_owned;
static int hold_tap = -1; /* the TAP device the holder made, at the stage */
static const char *hold_uid_map, *hold_gid_map;

/* send_ready sends the holder's errno (0: made) and, if not -1, the TAP
 * device's descriptor with it. */
static void send_ready(int sock, int err, int tap)
{
	(void)send_with_fd(sock, &err, sizeof err, tap);
}

/* recv_ready reads send_ready's message: the holder's errno (EPROTO when
 * it sent none: it failed and said why itself, or was killed), and its
 * TAP device into *tap (-1 for none). */
static int recv_ready(int sock, int *tap)
{
	int err = EPROTO;
	struct iovec iov = {.iov_base = &err, .iov_len = sizeof err};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t n;
	while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	*tap = -1;
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(tap, CMSG_DATA(cm), sizeof *tap);
	if (n != (ssize_t)sizeof err)
		err = EPROTO;
	return err;
}

void nest_hold_begin(struct config *c, int owned)
{
	int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	/* Opened before PID 1 exists: it pivots the root we share away. */
	hold_proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (hold_proc < 0)
		fail("open /proc to write the command's nested id maps");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hold_ready) < 0 || pipe2(hold_gate, O_CLOEXEC) < 0 ||
	    pipe2(hold_maps, O_CLOEXEC) < 0)
		fail("create a pipe");
	/* Dumpable, as for nest_hold: the stage writes the holder's maps
	 * and PID 1 opens its namespaces through /proc/HOLDER. */
	if (dumpable != 1 && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE) for the command's user namespace");
	/* In a mount namespace of its own: PID 1 pivots the root of the one
	 * we share away, and unshare(CLONE_NEWUSER) refuses a process whose
	 * root is not its mount namespace's (a chroot, to the kernel). */
	pid_t holder = (pid_t)syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
	if (holder < 0)
		fail("start the holder of the command's user namespace (clone CLONE_NEWNS)");
	if (holder == 0) {
		close(hold_ready[0]);
		close(hold_gate[1]);
		close(hold_maps[0]);
		close(hold_maps[1]);
		close(hold_proc);
		/* Still dumpable after: the new credentials are the old ones'
		 * in a user namespace they own, which commit_creds does not
		 * count as gaining capabilities. */
		int err = unshare(CLONE_NEWUSER | owned) < 0 ? errno : 0;
		/* --net user's device, made here while PID 1 mounts: we are
		 * root of the namespace that owns the network namespace, and
		 * still see the launcher's /dev. A failure is the sandbox's
		 * (ERROR to the launcher, as PID 1 would send it). */
		int tap = !err && c->tap.tap_name ? make_tap(c) : -1;
		send_ready(hold_ready[1], err, tap);
		close(hold_ready[1]);
		if (tap >= 0)
			close(tap);
		if (err)
			_exit(1);
		char b;
		while (read(hold_gate[0], &b, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(hold_ready[1]);
	close(hold_gate[0]);
	hold_ready[1] = hold_gate[0] = -1;
	nest_holder = holder;
	hold_owned = owned;
	if (dumpable != 1 && prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE)");
	/* As after nest_hold, but for the descriptor, which PID 1 opens
	 * (nest_join): no maps for PID 1 to write. */
	hold_uid_map = c->ids.nest_uid_map;
	hold_gid_map = c->ids.nest_gid_map ? c->ids.nest_gid_map : "";
	c->ns.nest_held = 1;
	c->ids.nest_uid_map = c->ids.nest_gid_map = NULL;
}

void nest_hold_end(pid_t pid1, char *ids, size_t size)
{
	close(hold_gate[1]);
	close(hold_maps[0]);
	hold_gate[1] = hold_maps[0] = -1;
	int err = recv_ready(hold_ready[0], &hold_tap);
	close(hold_ready[0]);
	if (err) {
		kill(pid1, SIGKILL); /* it would wait for the maps in vain */
		errno = err;
		fail("create the command's user namespace with the namespaces it owns (unshare 0x%x)",
		     (unsigned)(CLONE_NEWUSER | hold_owned));
	}
	/* Everything of the holder's before PID 1 hears from us: a PID 1
	 * that fails meanwhile lets the holder go only then
	 * (nest_hold_release), and a holder gone has no maps to write (its
	 * /proc files are root's once its memory is). */
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)nest_holder);
	write_map(hold_proc, pid, "uid_map", hold_uid_map);
	write_map(hold_proc, pid, "gid_map", hold_gid_map);
	namespace_ids_held(ids, size, hold_proc, nest_holder);
	char b = 'm';
	if (write_all(hold_maps[1], &b, 1) < 0)
		fail("tell PID 1 the command's user namespace is ready");
	close(hold_maps[1]);
	hold_maps[1] = -1;
	close(hold_proc);
	hold_proc = -1;
}

int nest_hold_tap(void)
{
	int tap = hold_tap;
	hold_tap = -1;
	return tap;
}

int nest_hold_pending(void)
{
	return hold_maps[0] >= 0;
}

void nest_join_prepare(void)
{
	close(hold_ready[0]);
	close(hold_maps[1]);
	hold_ready[0] = hold_maps[1] = -1;
	/* hold_proc, our copy of the stage's: the launcher's /proc, which
	 * outlives the pivot into the sandbox's root; nest_join_done closes
	 * it. */
}

void nest_join(struct config *c)
{
	char b;
	ssize_t n;
	while ((n = read(hold_maps[0], &b, 1)) < 0 && errno == EINTR)
		;
	close(hold_maps[0]);
	hold_maps[0] = -1;
	if (n != 1)
		_exit(1); /* the stage failed, reported it and kills us */
	c->ns.enter_userns2 = join_held(hold_proc, nest_holder, hold_owned);
	nest_hold_release();
}

int nest_join_proc(void)
{
	return hold_proc;
}

void nest_hold_release(void)
{
	/* Failing before nest_join, PID 1 waits for the stage to be done
	 * with the holder (its maps written, or the stage gone): released
	 * earlier, the holder could end before the stage writes its maps,
	 * and the stage would report that instead of PID 1's failure. */
	if (hold_maps[0] >= 0) {
		if (hold_maps[1] >= 0)
			close(hold_maps[1]); /* our copy, before nest_join_prepare */
		hold_maps[1] = -1;
		char b;
		while (read(hold_maps[0], &b, 1) < 0 && errno == EINTR)
			;
		close(hold_maps[0]);
		hold_maps[0] = -1;
	}
	if (hold_gate[1] >= 0)
		close(hold_gate[1]);
	hold_gate[1] = -1;
}

void nest_join_done(void)
{
	if (hold_proc >= 0)
		close(hold_proc);
	hold_proc = -1;
}

void nest_reap(void)
{
	while (nest_holder > 0 && waitpid(nest_holder, NULL, 0) < 0 && errno == EINTR)
		;
	nest_holder = 0;
}

int nest_enter_self(const struct config *c)
{
	if (!c->ids.nest_uid_map)
		return nest_enter(c); /* no maps to write: nothing to fork */
	nest_pipes(c);
	pid_t writer = fork();
	if (writer < 0)
		fail("fork the writer of the command's nested id maps");
	if (writer == 0) {
		/* Still in the sandbox's user namespace, with its capabilities:
		 * what PID 1 does for a forked command. It ends before the
		 * command runs, so the command has no child it did not make. */
		nest_write_maps(c);
		_exit(0);
	}
	int r = nest_enter(c), err = errno, status;
	while (waitpid(writer, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		_exit(125); /* the writer sent the ERROR */
	errno = err;
	return r;
}

void close_fds_except(const int *keep, int n, int lo, int hi)
{
	int sorted[16], m = 0;
	for (int i = 0; i < n && m < 16; i++)
		if (keep[i] >= 0 && (keep[i] < lo || keep[i] >= hi))
			sorted[m++] = keep[i];
	for (int i = 1; i < m; i++)
		for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			int t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	/* The range counts as one more kept stretch: close around it. */
	unsigned from = 0;
	int range_done = lo >= hi;
	for (int i = 0; i <= m; i++) {
		unsigned to = i < m ? (unsigned)sorted[i] : ~0U;
		if (!range_done && (unsigned)lo < to) {
			if ((unsigned)lo > from && syscall(SYS_close_range, from, (unsigned)lo - 1, 0) < 0)
				for (unsigned fd = from; fd < (unsigned)lo; fd++)
					close((int)fd);
			from = (unsigned)hi;
			range_done = 1;
		}
		if (to > from && syscall(SYS_close_range, from, to - 1, 0) < 0)
			for (unsigned fd = from; fd < to && fd < 4096; fd++)
				close((int)fd);
		if (i < m && (unsigned)sorted[i] + 1 > from)
			from = (unsigned)sorted[i] + 1;
	}
}
