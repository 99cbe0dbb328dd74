/*
 * mountpoint.c: mount points under a read-only directory. A bind, tmpfs
 * or file op whose destination does not exist needs a directory entry to
 * mount on; in the default view its parent is usually the host's tree,
 * bound read-only, and mkdirat fails with EROFS. Writing to the host is
 * not an option (and not possible: the bind is read-only), so the parent
 * is replaced, in the sandbox's view only, by a tmpfs that shows every
 * entry it had: directories and files are bound from the original (their
 * submounts too), symlinks copied. The mount point is then made on the
 * tmpfs, and the tmpfs is made read-only again, as its parent was.
 *
 * Each replacement is remembered (its device and path): a later op that
 * needs another entry in the same directory reopens it for writing for a
 * moment instead of stacking a second tmpfs. Part of PID 1's setup
 * (mounts.c runs the sequence; mounts.h lists what they share).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stagelib.h"
#include "mounts.h"

/* exposed lists the tmpfs made by reexpose, by device and path. */
static struct {
	dev_t dev;
	char path[PATH_MAX];
} exposed[32];
static int n_exposed;

/* set_readonly turns the read-only flag of the mount whose root is fd on
 * or off; kernels before 5.12 (no mount_setattr) keep it writable. */
static void set_readonly(int fd, int on, const char *what)
{
	struct mount_attr a = {0};
	if (on)
		a.attr_set = MOUNT_ATTR_RDONLY;
	else
		a.attr_clr = MOUNT_ATTR_RDONLY;
	if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof a) < 0 && errno != ENOSYS)
		fail("%s: make the view of a read-only directory %s", what, on ? "read-only again" : "writable");
}

/* reexpose covers the directory dir of the new root with a tmpfs showing
 * the same entries, and returns an O_PATH fd of the tmpfs's root. */
static int reexpose(const char *dir, const char *what)
{
	int orig = mnt_open_in_root(dir, O_DIRECTORY);
	int list = orig < 0 ? -1 : openat(orig, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = list >= 0 ? fdopendir(list) : NULL;
	struct stat st;
	if (!d || fstat(list, &st) < 0)
		fail_fix("make the directory readable, or choose a destination under a writable one",
			 "%s: list %s to make a mount point in it", what, dir);
	char mode[16];
	snprintf(mode, sizeof mode, "%o", st.st_mode & 07777);
	const char *opts[] = {"mode", mode, NULL};
	int m = mnt_new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (m < 0)
		fail("%s: mount a tmpfs over %s", what, dir);
	mnt_own_fs(m);
	/* The original's owner, where it is mapped; root of the namespace
	 * (the overflow id's stand-in) otherwise. */
	(void)fchownat(m, "", st.st_uid, st.st_gid, AT_EMPTY_PATH);
	mnt_show_entries(d, list, m, dir, what, NULL);
	mnt_attach(m, orig, what);
	int fd = mnt_open_in_root(dir, O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) < 0)
		fail("%s: open %s", what, dir);
	if (n_exposed < (int)(sizeof exposed / sizeof *exposed) && strlen(dir) < PATH_MAX) {
		exposed[n_exposed].dev = st.st_dev;
		strcpy(exposed[n_exposed++].path, dir);
	}
	return fd;
}

/* writable_root finds the tmpfs reexpose made that holds parent (an open
 * directory) and makes it writable: its root's fd, or -1 if parent is on
 * none of them. */
static int writable_root(int parent, const char *what)
{
	struct stat st, rst;
	if (fstat(parent, &st) < 0)
		return -1;
	for (int i = 0; i < n_exposed; i++) {
		if (exposed[i].dev != st.st_dev)
			continue;
		int fd = mnt_open_in_root(exposed[i].path, O_DIRECTORY);
		if (fd >= 0 && fstat(fd, &rst) == 0 && rst.st_dev == st.st_dev) {
			set_readonly(fd, 0, what);
			return fd;
		}
		if (fd >= 0)
			close(fd);
	}
	return -1;
}

int mnt_create_in_readonly(const char *parent, const char *name, mode_t mode, int dir, const char *what)
{
	int pfd = mnt_open_in_root(parent, O_DIRECTORY);
	if (pfd < 0)
		fail("%s: open %s", what, parent);
	int root = writable_root(pfd, what);
	if (root < 0) {
		close(pfd);
		root = reexpose(parent, what);
		pfd = dup(root);
		if (pfd < 0)
			fail("%s: dup", what);
	}
	int rc;
	if (dir) {
		rc = mkdirat(pfd, name, mode);
	} else {
		int f = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
		rc = f < 0 ? -1 : close(f);
	}
	int err = errno;
	set_readonly(root, 1, what);
	close(root);
	close(pfd);
	errno = err;
	return rc < 0 && err != EEXIST ? -1 : 0;
}
