/*
 * enter.c: a sandbox made in existing namespaces (Spec.Enter; bubblewrap's
 * --userns, --userns2, --pidns), given as descriptors the launcher passes
 * after the command's extra files.
 *
 *  - The user namespace replaces the one the stage would create: the
 *    stage enters it first and alone, as nsbox exec enters a sandbox's
 *    (join.c), and every namespace it then creates is owned by it. Its
 *    maps are its own: the launcher writes none, and the stage reads
 *    them back (/proc/self/uid_map) for what the launcher would have
 *    decided from its plan: the nested namespace's identity maps, whether
 *    root is mapped (devpts), whom setup's files belong to. The same
 *    holds for maps the launcher's caller writes (Spec.WriteMaps,
 *    bubblewrap's --userns-block-fd): PID 1 reads them once told they
 *    are written.
 *  - The command's user namespace (--userns2), a child of that one,
 *    replaces the nested one nest.c makes: the command's process enters
 *    it and unshares a mount namespace there (nest_enter), so the mounts
 *    are locked as they are with nsbox's own nesting.
 *  - A PID namespace owned by an ancestor of the given user namespace
 *    (bubblewrap's child-pid is the command of a sandbox of nsbox's, in
 *    its nested user namespace, while the PID namespace is the
 *    sandbox's) is entered first, from its owner (enter_pidns_first):
 *    inside the given user namespace we would hold no capability over
 *    it. The given user namespace, a descendant, is entered right after.
 *  - The PID namespace: setns(CLONE_NEWPID) places only the caller's
 *    children in it, so PID 1 is cloned into it. A new PID namespace
 *    below it can only be made by a process that is already in it
 *    (unshare and clone refuse CLONE_NEWPID while pid_for_children differs
 *    from one's own), so an intermediate process, cloned into the given
 *    namespace as the launcher's child (CLONE_PARENT), unshares it and
 *    clones PID 1, and the launcher reaps both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "stagelib.h"

int enter_highest_fd(const struct config *c)
{
	int hi = c->ns.enter_userns;
	if (c->ns.enter_userns2 > hi)
		hi = c->ns.enter_userns2;
	if (c->ns.enter_pidns > hi)
		hi = c->ns.enter_pidns;
	return hi;
}

/* identity_of reads /proc/self/FILE ("inner outer count" lines) and
 * returns the identity over its inner ids ("inner inner count"), malloc'd;
 * *zero tells whether inner 0 is mapped. */
static char *identity_of(const char *file, int *zero)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/self/%s", file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("read the %s of the sandbox's user namespace", file);
	ssize_t n = 0, r = 0;
	while ((size_t)n < sizeof buf - 1 && ((r = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0 || (r < 0 && errno == EINTR)))
		n += r > 0 ? r : 0;
	close(fd);
	if (r < 0)
		fail("read the %s of the sandbox's user namespace", file);
	buf[n] = '\0';
	char *out = malloc((size_t)n * 2 + 2);
	if (!out)
		fail("read the %s of the sandbox's user namespace", file);
	size_t off = 0;
	*zero = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long inner, outer, count;
		if (sscanf(line, "%lu %lu %lu", &inner, &outer, &count) != 3)
			continue;
		if (inner == 0 && count > 0)
			*zero = 1;
		off += (size_t)sprintf(out + off, "%lu %lu %lu\n", inner, inner, count);
	}
	out[off] = '\0';
	if (off == 0) {
		errno = EINVAL;
		fail_fix("write the user namespace's uid_map and gid_map first", "the sandbox's user namespace maps no %s",
			 strcmp(file, "uid_map") ? "group" : "user");
	}
	return out;
}

void enter_userns(struct config *c)
{
	if (setns(c->ns.enter_userns, CLONE_NEWUSER) < 0) {
		if (errno == EINVAL)
			fail_fix("pass a user namespace below yours (one your uid made, e.g. /proc/PID/ns/user of a sandbox you started)",
				 "enter the given user namespace (setns)");
		fail("enter the given user namespace (setns)");
	}
	close(c->ns.enter_userns);
	enter_adopt_maps(c);
}

void enter_adopt_maps(struct config *c)
{
	/* The launcher knows nothing of the maps: decide here what it
	 * decides from its plan. */
	int uid0, gid0;
	if (c->ids.nest_identity) {
		c->ids.nest_uid_map = identity_of("uid_map", &uid0);
		c->ids.nest_gid_map = identity_of("gid_map", &gid0);
	} else {
		free(identity_of("uid_map", &uid0));
		free(identity_of("gid_map", &gid0));
	}
	c->root.root_mapped = uid0 && gid0;
	c->root.owner_uid = getuid();
	c->root.owner_gid = getgid();
	if (c->cmd.keep_uid)
		c->cmd.uid = getuid();
	if (c->cmd.keep_gid)
		c->cmd.gid = getgid();
	c->ids.nest_uid = c->cmd.uid;
	c->ids.nest_gid = c->cmd.gid;
}

/* same_ns: a and b are descriptors of the same namespace. */
static int same_ns(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void enter_pidns_first(struct config *c)
{
	/* Only for a PID namespace whose owner is a strict ancestor of the
	 * given user namespace; one it owns itself is entered later, from
	 * inside it, as before. */
	int owner = ioctl(c->ns.enter_pidns, NS_GET_USERNS);
	if (owner < 0)
		return;
	int found = 0, cur = dup(c->ns.enter_userns);
	while (cur >= 0 && !found) {
		int parent = ioctl(cur, NS_GET_PARENT); /* EPERM above our own */
		close(cur);
		cur = parent;
		found = cur >= 0 && same_ns(cur, owner);
	}
	if (cur >= 0)
		close(cur);
	/* Its owner is the caller's (made by a sandbox of ours), or setns
	 * refuses and the later, ordinary order reports it. */
	if (found && setns(owner, CLONE_NEWUSER) == 0 && setns(c->ns.enter_pidns, CLONE_NEWPID) == 0) {
		close(c->ns.enter_pidns);
		c->ns.pidns_entered = 1;
	}
	close(owner);
}

pid_t enter_pidns(struct config *c)
{
	if (!c->ns.pidns_entered && setns(c->ns.enter_pidns, CLONE_NEWPID) < 0)
		fail_fix("pass a PID namespace owned by the entered user namespace or below it", "enter the given PID namespace (setns)");
	if (!c->ns.pidns_entered)
		close(c->ns.enter_pidns);
	if (!(c->ns.unshare_flags & CLONE_NEWPID))
		return 0;
	pid_t mid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
	if (mid < 0)
		fail("start a process in the given PID namespace (clone)");
	if (mid > 0)
		_exit(0); /* the intermediate carries on; the launcher reaps us */
	/* Its parent is the launcher, in a PID namespace above: getppid()
	 * is 0 here, so the socket tells whether the launcher is alive. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail("prctl(PR_SET_PDEATHSIG)");
	if (unshare(CLONE_NEWPID) < 0)
		fail("create a PID namespace below the given one (unshare CLONE_NEWPID)");
	/* Our pid as the launcher sees it: the host's /proc (setup has not
	 * replaced it yet) numbers processes in its PID namespace. */
	char self[32];
	ssize_t n = readlink("/proc/self", self, sizeof self - 1);
	if (n <= 0)
		fail("read the intermediate process's pid from /proc/self");
	self[n] = '\0';
	return (pid_t)atoi(self);
}

pid_t enter_host_pid(int pidfd)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		fail("read PID 1's pid from %s", path);
	buf[n] = '\0';
	/* "Pid:" numbers it in the PID namespace of this /proc: the host's. */
	char *p = strstr(buf, "\nPid:");
	int pid;
	if (!p || sscanf(p + 5, "%d", &pid) != 1 || pid <= 0) {
		errno = ESRCH;
		fail("read PID 1's pid from %s", path);
	}
	close(pidfd);
	return (pid_t)pid;
}
