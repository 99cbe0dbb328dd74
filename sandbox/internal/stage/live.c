/*
 * live.c: the stage's live operations on a running sandbox (live-op):
 * nsbox mount and umount (Sandbox.Mount/Unmount), the sockets of
 * Sandbox.Dial/Listen, and the signal of nsbox pause and resume
 * (Sandbox.Pause/Resume without a cgroup of the sandbox's own). join.c pins the sandbox and opens the command's
 * namespaces as for nsbox exec, then calls live_run instead of starting a
 * command; the stage answers LIVE_DONE (with the socket, for LIVE_SOCKET)
 * or ERROR, and exits. Nothing of the sandbox runs in this process: it
 * execs nothing, stays non-dumpable (join.c), and holds only the
 * namespace and root descriptors join.c opened.
 *
 * Mount. The command's mounts are locked (sandbox/nested.go): its mount
 * namespace N2 is owned by the nested user namespace U2 and was copied
 * from PID 1's, owned by the sandbox's user namespace U1. A mount made
 * straight in N2 would not be: root inside could remount it writable or
 * unmount it. The kernel locks what *propagates* into a mount namespace
 * owned by another user namespace than the one of the namespace it was
 * made in (fs/pnode.c, CL_UNPRIVILEGED; lock_mnt_tree), except the root
 * of the propagated tree. So a two-level tree propagates: W, a bind of
 * the empty host directory (or file) ANCHOR the launcher made for this
 * DEST, with SRC's clone on W's root. In N2, W is the unlocked root of
 * the copy, fully covered by SRC, which is locked:
 *
 *   1. join U1 (we own it: every capability there and in U2 below);
 *   2. unshare a private mount namespace M, owned by U1, and clone there
 *      the host paths SRC (recursively, nosuid, nodev and, asked,
 *      read-only) and ANCHOR (W);
 *   3. enter N2 and resolve DEST in the command's root (openat2
 *      RESOLVE_IN_ROOT, no magic links, the last component no symlink):
 *      a symlink planted inside cannot lead it out of the sandbox's view;
 *      make the mount holding DEST private, then shared, clone it at DEST
 *      (X, its only peer), and make it X's slave;
 *   4. back in M: attach X, mount SRC on W, W on X: the kernel
 *      propagates W and SRC to DEST in N2 as slave copies, SRC locked.
 *
 * M, X, W and SRC's clones in M go away with this process; the copies in
 * N2 stay, private (their masters are gone), so root inside holds no peer
 * of them: umount(DEST) meets the locked SRC, and unmounting W by
 * propagation from a clone of its own leaves SRC at DEST (the kernel
 * slides an overmount into the place of what goes).
 *
 * Umount removes ANCHOR in the caller's view, where it is no mount point:
 * the kernel then detaches every mount on it in every namespace, locked
 * or not (__detach_mounts), i.e. SRC's copy; W, uncovered and unlocked,
 * is then unmounted in N2 from U1, if DEST shows ANCHOR's inode.
 * The launcher keeps ANCHOR where no sandbox sees it (docs/live.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdint.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mounts.h"
#include "stage.h"
#include "stagelib.h"

/* split_dest cuts the absolute, clean path dest (the launcher checks it)
 * into its parent, in buf, and its last component. */
static const char *split_dest(const char *dest, char *buf, size_t n)
{
	size_t len = strlen(dest);
	if (len == 0 || len >= n || dest[0] != '/')
		fail("the destination %s is not an absolute path", dest);
	memcpy(buf, dest, len + 1);
	char *slash = strrchr(buf, '/');
	const char *base = dest + (slash - buf) + 1;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		fail("the destination %s names no file", dest);
	if (slash == buf)
		slash[1] = '\0';
	else
		*slash = '\0';
	return base;
}

/* open_dest opens the sandbox's dest, as root sees it, as an O_PATH
 * descriptor: the parent resolved in the root, the last component
 * neither a symlink nor a magic link. With mkdir, a missing dest is
 * created, a directory or an empty file as dir says. *parentfd gets the
 * parent, opened as the walk went. */
static int open_dest(const struct config *c, int rootfd, int dir, int *parentfd)
{
	char parent[4096];
	const char *base = split_dest(c->join.live_dest, parent, sizeof parent);
	int pfd = mnt_sys_openat2(rootfd, parent, O_PATH | O_DIRECTORY, IN_ROOT);
	if (pfd < 0)
		fail_fix(errno == ENOENT ? "create it inside first (nsbox exec NAME -- mkdir -p DIR)" : "check the path inside the sandbox",
			 "open the parent %s of %s inside the sandbox", parent, c->join.live_dest);
	int fd = mnt_sys_openat2(pfd, base, O_PATH | O_NOFOLLOW, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	if (fd < 0 && errno == ENOENT && c->join.live_mkdir) {
		int made = dir ? mkdirat(pfd, base, 0755) : -1;
		if (!dir) {
			made = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (made >= 0)
				made = close(made);
		}
		if (made < 0 && errno != EEXIST)
			fail_fix(errno == EROFS ? "mount on a writable directory, or make DEST's parent writable inside" : "check the path inside the sandbox",
				 "create %s inside the sandbox", c->join.live_dest);
		fd = mnt_sys_openat2(pfd, base, O_PATH | O_NOFOLLOW, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	}
	if (fd < 0)
		fail_fix(errno == ENOENT ? "create it first, or pass --mkdir" : errno == ELOOP ? "it is a symlink inside the sandbox: name the real path" : "check the path inside the sandbox",
			 "open %s inside the sandbox", c->join.live_dest);
	*parentfd = pfd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail("stat %s inside the sandbox", c->join.live_dest);
	if (S_ISLNK(st.st_mode)) {
		errno = ELOOP;
		fail_fix("it is a symlink inside the sandbox: name the real path", "open %s inside the sandbox", c->join.live_dest);
	}
	if (!!S_ISDIR(st.st_mode) != !!dir) {
		errno = dir ? ENOTDIR : EISDIR;
		fail_fix("mount a directory on a directory and a file on a file", "%s inside the sandbox", c->join.live_dest);
	}
	return fd;
}

/* mount_id is the id of the mount fd is on (statx STATX_MNT_ID; musl
 * has no statx(), so the raw call and the field's offset in struct statx),
 * or 0. */
static uint64_t mount_id(int fd)
{
	unsigned char buf[256];
	uint64_t id = 0;
	if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0x1000 /* STATX_MNT_ID */, buf) < 0)
		return 0;
	memcpy(&id, buf + 144, sizeof id);
	return id;
}

/* mount_root opens the root of the mount that holds fd, walking ".." up
 * while it stays on that mount. The walk cannot leave the command's view:
 * ".." stops at the root of the mount namespace we are in. */
static int mount_root(int fd, const char *what)
{
	uint64_t id = mount_id(fd);
	int cur = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	for (int depth = 0; id && cur >= 0 && depth < 4096; depth++) {
		int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		struct stat a, b;
		if (up < 0 || fstat(cur, &a) < 0 || fstat(up, &b) < 0)
			break;
		if (mount_id(up) != id || (a.st_dev == b.st_dev && a.st_ino == b.st_ino)) {
			close(up);
			return cur;
		}
		close(cur);
		cur = up;
	}
	fail("find the mount that holds %s inside the sandbox", what);
}

/* live_scratch makes a place in M to attach X on: a directory, or a file
 * for a file's mount, in a tmpfs of M's own over its /. */
static int live_scratch(int dir)
{
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0 || fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		fail("create a scratch tmpfs");
	int m = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (m < 0 || root < 0 || move_mount(m, "", root, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		fail("mount a scratch tmpfs");
	int made = dir ? mkdirat(m, "x", 0700) : openat(m, "x", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int fd = made < 0 ? -1 : openat(m, "x", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fail("create a place in the scratch tmpfs");
	return fd;
}

/* live_peer makes the mount holding dest (holder, its root) the slave of
 * X, a clone of it at dest, which it returns: private first, so that no
 * peer root inside may have made of it becomes X's; shared, so that X is
 * its peer; then X's slave, so that the copies X propagates to it are
 * slaves, left private when X goes. */
static int live_peer(int holder, int dest, const char *what)
{
	struct mount_attr p[3] = {{.propagation = MS_PRIVATE}, {.propagation = MS_SHARED}, {.propagation = MS_SLAVE}};
	int x = -1;
	if (mount_setattr(holder, "", AT_EMPTY_PATH, &p[0], sizeof p[0]) == 0 && mount_setattr(holder, "", AT_EMPTY_PATH, &p[1], sizeof p[1]) == 0)
		x = open_tree(dest, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (x < 0 || mount_setattr(holder, "", AT_EMPTY_PATH, &p[2], sizeof p[2]) < 0)
		fail("make the mount holding %s receive mounts from a clone of it", what);
	close(holder);
	return x;
}

/* live_clones opens, in M, the clones of SRC (recursive, nosuid, nodev,
 * read-only as asked) and of ANCHOR (*w); SRC's *st. */
static int live_clones(const struct config *c, int *w, struct stat *st)
{
	int src = open_tree(AT_FDCWD, c->join.live_src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (src < 0)
		fail_fix("check the host path exists and you may read it", "clone %s", c->join.live_src);
	struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (c->join.live_ro ? MOUNT_ATTR_RDONLY : 0)};
	*w = open_tree(AT_FDCWD, c->join.live_anchor, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (*w < 0 || fstat(src, st) < 0 || mount_setattr(src, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0 ||
	    mount_setattr(*w, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
		fail("clone %s and its anchor %s nosuid,nodev%s", c->join.live_src, c->join.live_anchor, c->join.live_ro ? ",ro" : "");
	return src;
}

/* live_mount: steps 1-4 of the comment at the top. */
static void live_mount(const struct config *c, int outer, int mntfd, int rootfd)
{
	if (setns(outer, CLONE_NEWUSER) < 0)
		fail("join the sandbox's user namespace (setns)");
	/* 2. M, where the host's mounts are ours to clone. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("create a mount namespace to clone %s in", c->join.live_src);
	int mfd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (mfd < 0)
		fail("open the new mount namespace");
	int w;
	struct stat st;
	int src = live_clones(c, &w, &st);
	/* 3. The command's view. */
	if (setns(mntfd, CLONE_NEWNS) < 0)
		fail("join the command's mount namespace (setns)");
	/* What --mkdir creates belongs to root inside, where 0 is mapped. */
	if (c->join.live_mkdir) {
		(void)!setresgid(0, 0, 0);
		(void)!setresuid(0, 0, 0);
	}
	int parent;
	int dest = open_dest(c, rootfd, S_ISDIR(st.st_mode), &parent);
	/* A file is no mount root and has no "..": its directory's mount. */
	int holder = mount_root(S_ISDIR(st.st_mode) ? dest : parent, c->join.live_dest);
	close(parent);
	int x = live_peer(holder, dest, c->join.live_dest);
	/* 4. Back in M: X, then W with SRC on it onto X, which propagates. */
	if (setns(mfd, CLONE_NEWNS) < 0)
		fail("return to the clone's mount namespace (setns)");
	int spot = live_scratch(S_ISDIR(st.st_mode));
	if (move_mount(x, "", spot, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		fail("attach the clone of %s", c->join.live_dest);
	if (move_mount(src, "", w, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0 ||
	    move_mount(w, "", x, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		fail("mount %s on %s inside the sandbox", c->join.live_src, c->join.live_dest);
}

/* live_umount removes what live_mount put at dest: ANCHOR first, in the
 * caller's view (SRC's copy goes with it), then W, if dest shows it. */
static void live_umount(const struct config *c, int outer, int mntfd, int rootfd)
{
	struct stat a, d;
	const char *fix = "only what nsbox mount added can be removed (nsbox inspect NAME lists it)";
	if (lstat(c->join.live_anchor, &a) < 0 || unlinkat(AT_FDCWD, c->join.live_anchor, S_ISDIR(a.st_mode) ? AT_REMOVEDIR : 0) < 0)
		fail_fix(fix, "unmount %s inside the sandbox", c->join.live_dest);
	if (setns(outer, CLONE_NEWUSER) < 0 || setns(mntfd, CLONE_NEWNS) < 0)
		fail("join the command's mount namespace (setns)");
	char parent[4096];
	const char *base = split_dest(c->join.live_dest, parent, sizeof parent);
	int pfd = mnt_sys_openat2(rootfd, parent, O_PATH | O_DIRECTORY, IN_ROOT);
	if (pfd < 0 || fchdir(pfd) < 0 || fstatat(pfd, base, &d, AT_SYMLINK_NOFOLLOW) < 0)
		fail_fix("check the path inside the sandbox", "open the parent %s of %s inside the sandbox", parent, c->join.live_dest);
	if (d.st_dev != a.st_dev || d.st_ino != a.st_ino)
		errno = EBUSY;
	else if (umount2(base, UMOUNT_NOFOLLOW | MNT_DETACH) == 0)
		return;
	fail_fix("root inside moved what nsbox mount added, which the kernel keeps locked: it stays until the sandbox ends",
		 "unmount %s inside the sandbox", c->join.live_dest);
}

/* live_socket makes the socket in the command's network namespace, owned
 * by the nested user namespace, entered from U1 above it. */
static void live_socket(const struct config *c, int outer, int netfd)
{
	if (netfd < 0) {
		errno = EINVAL;
		fail("the sandbox has no network namespace of its own");
	}
	if (setns(outer, CLONE_NEWUSER) < 0 || setns(netfd, CLONE_NEWNET) < 0)
		fail("join the sandbox's network namespace (setns)");
	int s = socket(c->join.live_family, c->join.live_type | SOCK_CLOEXEC, 0);
	if (s < 0)
		fail("create a socket in the sandbox");
	send_fd(NSBOX_MSG_LIVE_DONE, s, "the socket");
	_exit(0);
}

/* live_signal sends live_signal to every process of the sandbox's PID
 * namespace but its PID 1 (nsbox pause and resume of a sandbox without a
 * cgroup of its own): kill(-1, sig) from a child in that namespace. The
 * kernel (kill_something_info) signals, under the task list's lock, each
 * process the sender can see with a pid above 1 in its own namespace,
 * i.e. this namespace's and those nested in it, whichever process of the
 * sandbox forked them (nsbox exec's too), and nothing else: the host's
 * processes have no pid there. A signal sent this way to many processes
 * also reaches a child being forked meanwhile (the kernel's copy_process
 * collects it in "delayed" and makes it the child's pending signal:
 * kernel commit c3ad2c3b02e9, 2018), so no fork slips through it, as one
 * may between signals sent a process at a time. We join the user namespace that owns
 * the PID namespace, the sandbox's (ours: we hold every capability there),
 * and so hold CAP_KILL over every process in it and in the user
 * namespaces nested in it (the command's, and any it made).
 *
 * The child is in the sandbox's PID namespace, where a process of the
 * sandbox could stop it before it gets to kill: it is given 1 s, then
 * killed, and the operation fails (the caller then stops the processes
 * one by one). It holds nothing of ours: no descriptor but those join.c
 * opened, not dumpable. */
static void live_signal(const struct config *c, int pidns)
{
	if (pidns < 0) {
		errno = EINVAL;
		fail("the sandbox has no PID namespace of its own");
	}
	/* The user namespace that owns the PID namespace: the sandbox's,
	 * also when the command made one of its own (unshare -r), whose
	 * capabilities would not reach the PID namespace above it. */
	int owner = ioctl(pidns, NS_GET_USERNS);
	if (owner < 0 || setns(owner, CLONE_NEWUSER) < 0 || setns(pidns, CLONE_NEWPID) < 0)
		fail("join the sandbox's PID namespace (setns)");
	close(owner);
	int sig = c->join.live_signal;
	pid_t child = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
	if (child < 0)
		fail("start a process in the sandbox's PID namespace (clone)");
	if (child == 0)
		/* ESRCH: nothing to signal but PID 1. */
		_exit(kill(-1, sig) == 0 || errno == ESRCH ? 0 : errno);
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	int ready = pfd < 0 ? 1 : poll(&p, 1, 1000);
	if (ready <= 0)
		kill(child, SIGKILL);
	int status = 0;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (ready <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errno = ready <= 0 || !WIFEXITED(status) ? ETIMEDOUT : WEXITSTATUS(status);
		fail("send signal %d to the sandbox's processes (kill -1)", sig);
	}
}

__attribute__((noreturn)) void live_run(const struct config *c, int outer, int mntfd, int pidfd, int netfd, int rootfd)
{
	switch (c->join.live_op) {
	case LIVE_MOUNT:
		live_mount(c, outer, mntfd, rootfd);
		break;
	case LIVE_UMOUNT:
		live_umount(c, outer, mntfd, rootfd);
		break;
	case LIVE_SOCKET:
		live_socket(c, outer, netfd);
		break;
	case LIVE_SIGNAL:
		live_signal(c, pidfd);
		break;
	}
	send_msg(NSBOX_MSG_LIVE_DONE, 0, NULL);
	_exit(0);
}
