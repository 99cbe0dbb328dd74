/*
 * mounts_dev.c: the kernel filesystems of the sandbox's view: /dev as
 * bubblewrap's --dev, a new /proc, mqueue. Part of PID 1's setup
 * (mounts.c runs the sequence; mounts.h lists what they share).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stagelib.h"
#include "mounts.h"

/* readonly_below binds dst/name read-only onto itself, if it exists and
 * setup could write it. As bubblewrap does, a part the sandbox cannot
 * write anyway (the usual case: in a user namespace, /proc/sys belongs to
 * the host's root) is left uncovered: a bind over it would make this
 * procfs "not fully visible", and the kernel would then refuse a new
 * procfs to a sandbox nested inside this one (mount_too_revealing). */
static void readonly_below(const char *dst, const char *name, const char *what)
{
	char path[PATH_MAX], self[64];
	snprintf(path, sizeof path, "%s/%s", strcmp(dst, "/") ? dst : "", name);
	int fd = mnt_open_in_root(path, 0);
	if (fd < 0)
		return;
	if (access(mnt_fdpath(fd, self, sizeof self), W_OK) < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
		close(fd);
		return;
	}
	int t = mnt_clone_tree(fd, "", 1, what);
	mnt_set_attr(t, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 1, what);
	int again = dup(fd);
	mnt_attach(t, fd, what);
	int top = mnt_open_in_root(path, 0);
	mnt_make_readonly(top >= 0 ? top : again, what);
	if (top >= 0)
		close(top);
	close(again);
}

void mount_proc_op(const struct mount_op *op)
{
	int m;
	if ((mnt_cfg->ns.unshare_flags & CLONE_NEWPID) || mnt_cfg->ns.enter_pidns >= 0) {
		m = mnt_new_fs("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
		if (m < 0)
			fail("%s: mount a new procfs", op->what);
	} else {
		/* A procfs shows its PID namespace: with the host's, bind it. */
		m = mnt_clone_tree(mnt_oldroot, "proc", 1, op->what);
		mnt_set_attr(m, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 1, op->what);
	}
	mnt_attach(m, mnt_open_target(op->dst, 1, op->what), op->what);
	static const char *const ro[] = {"sys", "sysrq-trigger", "irq", "bus"};
	for (size_t i = 0; i < sizeof ro / sizeof *ro; i++)
		readonly_below(op->dst, ro[i], op->what);
}

/* bind_host_node binds the host's /dev/NAME (relative to mnt_oldroot) onto
 * a new file NAME in dir. */
static void bind_host_node(int dir, const char *host, const char *name, const char *what)
{
	int f = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (f < 0)
		fail("%s: create %s", what, name);
	close(f);
	int t = open_tree(mnt_oldroot, host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (t < 0)
		fail("%s: bind the host's /%s", what, host);
	mnt_set_attr(t, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0, what);
	int target = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0)
		fail("%s: open %s", what, name);
	mnt_attach(t, target, what);
}

void mount_dev_op(const struct mount_op *op)
{
	const char *w = op->what;
	const char *tmpfs_opts[] = {"mode", "755", NULL};
	int m = mnt_new_fs("tmpfs", tmpfs_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	if (m < 0)
		fail("%s: mount a tmpfs", w);
	mnt_own_fs(m);
	mnt_attach(m, mnt_open_target(op->dst, 1, w), w);
	int dev = mnt_open_in_root(op->dst, O_DIRECTORY);
	if (dev < 0)
		fail("%s: open the new /dev", w);
	/* Device nodes cannot be made in a user namespace: bind the host's. */
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	char host[64];
	for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
		snprintf(host, sizeof host, "dev/%s", nodes[i]);
		bind_host_node(dev, host, nodes[i], w);
	}
	/* /dev/net/tun (Mount.Tun), where the host has it: a sandbox nested in this one
	 * (nsbox run --net user inside) makes its TAP device through it. The
	 * kernel only lets it create a device in a network namespace whose
	 * owner grants CAP_NET_ADMIN, so the command reaches no network but
	 * one it made itself. */
	struct stat tun;
	if ((op->flags & MOUNT_TUN) && fstatat(mnt_oldroot, "dev/net/tun", &tun, 0) == 0 && S_ISCHR(tun.st_mode)) {
		if (mkdirat(dev, "net", 0755) < 0)
			fail("%s: create net", w);
		int net = openat(dev, "net", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (net < 0)
			fail("%s: open net", w);
		bind_host_node(net, "dev/net/tun", "tun", w);
		close(net);
	}
	static const char *const links[][2] = {
		{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"}, {"core", "/proc/kcore"},
	};
	for (size_t i = 0; i < sizeof links / sizeof *links; i++)
		if (symlinkat(links[i][1], dev, links[i][0]) < 0)
			fail("%s: create %s", w, links[i][0]);
	if (mkdirat(dev, "shm", 01777) < 0 || mkdirat(dev, "pts", 0755) < 0)
		fail("%s: create shm and pts", w);
	const char *shm_opts[] = {"mode", "1777", NULL};
	if ((m = mnt_new_fs("tmpfs", shm_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
		fail("%s: mount a tmpfs on shm", w);
	mnt_own_fs(m);
	mnt_attach(m, openat(dev, "shm", O_PATH | O_NOFOLLOW | O_CLOEXEC), w);
	if (mnt_cfg->root.root_mapped) {
		/* A new devpts instance: the sandbox sees only its own ptys. */
		const char *pts_opts[] = {"newinstance", NULL, "ptmxmode", "0666", "mode", "620", NULL};
		if ((m = mnt_new_fs("devpts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)) < 0)
			fail("%s: mount devpts", w);
		mnt_attach(m, openat(dev, "pts", O_PATH | O_NOFOLLOW | O_CLOEXEC), w);
		if (symlinkat("pts/ptmx", dev, "ptmx") < 0)
			fail("%s: create ptmx", w);
		mnt_devpts_made = 1;
	} else {
		/* devpts refuses a user namespace where root is unmapped: share
		 * the host's instance. Its ptmx works where the host mounted it
		 * with ptmxmode=0666; a host /dev/ptmx node bound alone would
		 * not find this pts next to it. */
		int t = mnt_clone_tree(mnt_oldroot, "dev/pts", 0, w);
		mnt_set_attr(t, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0, w);
		mnt_attach(t, openat(dev, "pts", O_PATH | O_NOFOLLOW | O_CLOEXEC), w);
		if (symlinkat("pts/ptmx", dev, "ptmx") < 0)
			fail("%s: create ptmx", w);
	}
	if (mnt_console[0])
		bind_host_node(dev, mnt_console + 1, "console", w);
	close(dev);
}

void mount_mqueue_op(const struct mount_op *op)
{
	int m = mnt_new_fs("mqueue", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (m < 0)
		fail("%s: mount mqueue", op->what);
	mnt_attach(m, mnt_open_target(op->dst, 1, op->what), op->what);
}

