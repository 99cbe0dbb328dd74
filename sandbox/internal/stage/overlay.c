/*
 * overlay.c: overlayfs in the sandbox's view: --overlay with a host upper,
 * --tmp-overlay and --copy-up with a private one. Part of PID 1's setup
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
#include <sys/statfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "stagelib.h"
#include "mounts.h"

/* overlay mounts overlayfs from the given layer paths; without upper (and
 * work) it is read-only. -1 on error. */
static int overlay(const char *lowers, const char *upper, const char *work)
{
	const char *opts[] = {"lowerdir", lowers, upper ? "upperdir" : NULL, upper, "workdir", work, NULL};
	return mnt_new_fs("overlay", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

/* tmp_overlay_of puts a writable layer on a private tmpfs over the layers
 * lowers (lowerdir's form), the top directory getting top's mode; with own
 * it becomes the command's. -1 if the kernel refuses (errno set). */
static int tmp_overlay_of(const char *lowers, int top, int own, const char *what)
{
	char dir[64], up[96], wk[96];
	mnt_store_path(dir, sizeof dir, "o");
	snprintf(up, sizeof up, "%s/upper", dir);
	snprintf(wk, sizeof wk, "%s/work", dir);
	struct stat st;
	if (fstat(top, &st) < 0)
		fail("%s: stat the overlay's lower directory", what);
	/* The command's own, and writable by it: that is the point. */
	mode_t mode = (st.st_mode & 07777) | (own ? 0200 : 0);
	if (mkdir(dir, 0700) < 0 || mkdir(up, 0700) < 0 || mkdir(wk, 0700) < 0 ||
	    (own && chown(up, mnt_cmd_uid(), mnt_cmd_gid()) < 0) || chmod(up, mode) < 0)
		fail("%s: create the overlay's upper directory", what);
	int m = overlay(lowers, up, wk);
	if (m >= 0)
		mnt_own_fs(m);
	return m;
}

/* tmp_overlay is tmp_overlay_of the one directory lower. */
static int tmp_overlay(int lower, int own, const char *what)
{
	char lp[64];
	return tmp_overlay_of(mnt_fdpath(lower, lp, sizeof lp), lower, own, what);
}

/* open_lowers opens the op's host layers inside /oldroot into fds (which
 * the caller closes once the overlay exists: none may stay open) and
 * returns their /proc/self/fd names as lowerdir wants them, free of ':'
 * and ','. */
static char *open_lowers(const struct mount_op *op, int **fds)
{
	size_t n = (size_t)op->n_lower * 40 + 1;
	char *lowers = calloc(1, n);
	*fds = calloc((size_t)op->n_lower + 1, sizeof **fds);
	char p[64];
	if (!lowers || !*fds)
		fail("%s: allocate", op->what);
	for (int i = 0; i < op->n_lower; i++) {
		int fd = (*fds)[i] = mnt_open_source(op->lower[i], O_PATH | O_DIRECTORY);
		if (fd < 0)
			fail("%s: open lower directory %s", op->what, op->lower[i]);
		if (i)
			strcat(lowers, ":");
		strcat(lowers, mnt_fdpath(fd, p, sizeof p));
	}
	return lowers;
}

static void close_lowers(const struct mount_op *op, char *lowers, int *fds)
{
	for (int i = 0; i < op->n_lower; i++)
		close(fds[i]);
	free(fds);
	free(lowers);
}

/* dir_overlay is overlay_each's layer: a tmp_overlay on a directory,
 * nothing (-1: a clone) for anything else. */
static int dir_overlay(int sub, mode_t mode, const char *what)
{
	return S_ISDIR(mode) ? tmp_overlay(sub, 1, what) : -1;
}

/* overlay_each covers directory dst with a tmpfs and puts a tmp_overlay
 * on each subdirectory of the original, so writes anywhere below land on
 * private tmpfs. It is what --tmp-overlay does where the kernel refuses
 * one overlay for the whole tree: a lower with mounts below it that came
 * from a more privileged namespace (the host's /, with /proc, /sys …)
 * would reveal what those mounts hide. A subdirectory that cannot be
 * overlaid either is bound as it was, with its mounts. */
static void overlay_each(int orig, const char *dst, const char *w)
{
	struct stat st;
	int list = openat(orig, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = list >= 0 ? fdopendir(list) : NULL;
	if (!d || fstat(list, &st) < 0)
		fail("%s: list %s", w, dst);
	char mode[16];
	snprintf(mode, sizeof mode, "%o", st.st_mode & 07777);
	const char *opts[] = {"mode", mode, NULL};
	int m = mnt_new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (m < 0 || fchownat(m, "", mnt_cmd_uid(), mnt_cmd_gid(), AT_EMPTY_PATH) < 0)
		fail("%s: mount a tmpfs", w);
	mnt_own_fs(m);
	mnt_show_entries(d, list, m, dst, w, dir_overlay);
	mnt_attach(m, orig, w);
}

/* layers_refused fails with why the kernel refused overlayfs over op's
 * host layers (an image's, or --overlay-src's; fds open on them) and what
 * fixes it. errno alone is ambiguous (EINVAL is any of a dozen refusals)
 * and the kernel writes most reasons only to its log (pr_err, not the
 * mount context), so the line also names what the stage can see: the
 * filesystem the layers are on, and how many there are.
 *   ENODEV          no overlayfs in this kernel (module not loaded)
 *   EPERM, EACCES   unprivileged overlayfs refused: Linux before 5.11, or
 *                   an AppArmor/SELinux policy denying the mount
 *   EINVAL, others  layers the kernel will not stack: on an overlay that
 *                   is itself an overlay of an overlay (the kernel stacks
 *                   two: a store inside nested sandboxes or containers),
 *                   on a filesystem overlayfs cannot use as a lower layer,
 *                   or more than 500 of them */
static void layers_refused(const struct mount_op *op, const int *fds)
{
	int err = errno;
	int image = !strncmp(op->what, "--image ", 8);
	const char *store = image ? "set XDG_DATA_HOME to a directory on ext4, xfs, btrfs or tmpfs (nsbox keeps images in $XDG_DATA_HOME/nsbox/images) and pull again"
				  : "put the --overlay-src directories on ext4, xfs, btrfs or tmpfs";
	struct statfs sf;
	long type = fstatfs(fds[0], &sf) == 0 ? (long)sf.f_type : 0;
	char fsname[32];
	switch (type) {
	case OVERLAYFS_SUPER_MAGIC:
		snprintf(fsname, sizeof fsname, "overlayfs");
		break;
	case FUSE_SUPER_MAGIC:
		snprintf(fsname, sizeof fsname, "FUSE");
		break;
	default:
		snprintf(fsname, sizeof fsname, "a filesystem of type 0x%lx", type);
	}
	const char *fix;
	char buf[640];
	switch (err) {
	case ENODEV:
		fix = "this kernel has no overlayfs: load it as root (modprobe overlay) or use a kernel built with CONFIG_OVERLAY_FS";
		break;
	case EPERM:
	case EACCES:
		fix = "the kernel refuses overlayfs in a user namespace: Linux before 5.11 allows it only to real root, and an AppArmor or SELinux "
		      "policy may deny it (look for apparmor=\"DENIED\" and fstype=\"overlay\" in the kernel log); run on Linux 5.11 or later without that policy";
		break;
	default:
		if (op->n_lower > 500) {
			fix = "the kernel stacks at most 500 layers: squash the image (a multi-stage build, or docker build --squash) and use the result";
		} else if (type == OVERLAYFS_SUPER_MAGIC) {
			snprintf(buf, sizeof buf, "the layers are on overlayfs, most likely itself on an overlay, and the kernel stacks at most two "
				 "(its log says \"maximum fs stacking depth exceeded\"; a store inside nested sandboxes or containers): %s", store);
			fix = buf;
		} else {
			snprintf(buf, sizeof buf, "the kernel will not use %s, where the layers are, as an overlay lower layer (its log says why): %s", fsname, store);
			fix = buf;
		}
	}
	errno = err;
	fail_fix(fix, "%s: mount overlayfs over %d layer%s on %s%s%s%s", op->what, op->n_lower, op->n_lower == 1 ? "" : "s", fsname,
		 mnt_fs_log[0] ? " (kernel: " : "", mnt_fs_log, mnt_fs_log[0] ? ")" : "");
}

void mount_tmp_overlay_op(const struct mount_op *op)
{
	if (op->n_lower) {
		/* Over host layers, not DST's own contents (bubblewrap's
		 * --overlay-src … --tmp-overlay DST). */
		int *fds;
		char *lowers = open_lowers(op, &fds);
		int m = tmp_overlay_of(lowers, fds[0], 1, op->what);
		if (m < 0)
			layers_refused(op, fds);
		mnt_attach(m, mnt_open_target(op->dst, 1, op->what), op->what);
		close_lowers(op, lowers, fds);
		return;
	}
	int lower = mnt_open_in_root(op->dst, O_DIRECTORY);
	if (lower < 0)
		fail_fix("overlay an existing directory", "%s: open %s", op->what, op->dst);
	int m = tmp_overlay(lower, 1, op->what);
	if (m >= 0)
		mnt_attach(m, lower, op->what);
	else if (errno == EINVAL)
		overlay_each(lower, op->dst, op->what);
	else
		fail("%s: mount overlayfs", op->what);
}

/* mount_copy_up_op: an overlay where the kernel allows; else a tmpfs holding
 * symlinks to the original entries, kept read-only under .nsbox-ro. */
void mount_copy_up_op(const struct mount_op *op)
{
	const char *w = op->what;
	int orig = mnt_open_in_root(op->dst, O_DIRECTORY);
	if (orig < 0)
		fail_fix("copy up an existing directory", "%s: open %s", w, op->dst);
	int m = tmp_overlay(orig, 1, w);
	if (m >= 0) {
		mnt_attach(m, orig, w);
		return;
	}
	struct stat st;
	if (fstat(orig, &st) < 0)
		fail("%s: stat %s", w, op->dst);
	int tree = mnt_clone_tree(orig, "", 1, w);
	mnt_set_attr(tree, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY, 1, w);
	char mode[16];
	snprintf(mode, sizeof mode, "%o", (st.st_mode & 07777) | 0200);
	const char *opts[] = {"mode", mode, NULL};
	if ((m = mnt_new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
		fail("%s: mount a tmpfs", w);
	mnt_own_fs(m);
	if (fchownat(m, "", mnt_cmd_uid(), mnt_cmd_gid(), AT_EMPTY_PATH) < 0 || mkdirat(m, ".nsbox-ro", 0755) < 0)
		fail("%s: prepare the tmpfs", w);
	int ro = openat(m, ".nsbox-ro", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int list = openat(orig, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = list >= 0 ? fdopendir(list) : NULL;
	if (ro < 0 || !d)
		fail("%s: list %s", w, op->dst);
	struct dirent *e;
	char target[PATH_MAX];
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(target, sizeof target, ".nsbox-ro/%s", e->d_name);
		if (symlinkat(target, m, e->d_name) < 0 || fchownat(m, e->d_name, mnt_cmd_uid(), mnt_cmd_gid(), AT_SYMLINK_NOFOLLOW) < 0)
			fail("%s: link %s", w, e->d_name);
	}
	closedir(d);
	mnt_attach(tree, ro, w);
	mnt_attach(m, orig, w);
}

void mount_overlay_op(const struct mount_op *op)
{
	int *fds;
	char *lowers = open_lowers(op, &fds);
	if (!op->upper) {
		/* No upper: read-only (bubblewrap's --ro-overlay). */
		int m = overlay(lowers, NULL, NULL);
		if (m < 0)
			fail("%s: mount overlayfs", op->what);
		mnt_attach(m, mnt_open_target(op->dst, 1, op->what), op->what);
		close_lowers(op, lowers, fds);
		return;
	}
	int up = mnt_open_source(op->upper, O_PATH | O_DIRECTORY);
	int wk = mnt_open_source(op->work, O_PATH | O_DIRECTORY);
	if (up < 0 || wk < 0)
		fail("%s: open the upper and work directories", op->what);
	char upath[64], wpath[64];
	int m = overlay(lowers, mnt_fdpath(up, upath, sizeof upath), mnt_fdpath(wk, wpath, sizeof wpath));
	if (m < 0)
		fail_fix("put UPPER and WORK on one filesystem that supports overlayfs upper layers (not tmpfs before Linux 6.6, not another overlay)",
			 "%s: mount overlayfs", op->what);
	mnt_attach(m, mnt_open_target(op->dst, 1, op->what), op->what);
	/* The layers are host directories: none of them may stay open. */
	close_lowers(op, lowers, fds);
	close(up);
	close(wk);
}
