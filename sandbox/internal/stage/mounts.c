/*
 * mounts.c: the sandbox's view of the filesystem, set up by PID 1 inside
 * the new mount namespace: the sequence, path resolution, and the plain
 * ops (binds, tmpfs, dirs, symlinks, files). mounts_dev.c adds /dev,
 * /proc and mqueue; overlay.c the overlays.
 *
 * With a mount list (config new_root), the sequence is bubblewrap's:
 *
 *   1. make every mount private, so nothing done here reaches the host;
 *   2. mount a scratch tmpfs on /tmp and pivot_root into it: the host's
 *      tree is now /oldroot, and /newroot (a fresh tmpfs) is the sandbox's
 *      root to be;
 *   3. apply the ops in order. Sources are host paths, opened inside
 *      /oldroot; destinations are resolved inside /newroot with openat2
 *      RESOLVE_IN_ROOT, so a symlink planted in a bound directory cannot
 *      send a mount or a created file out of the sandbox's root;
 *   4. pivot_root into /newroot and detach the old root (scratch tmpfs and
 *      host tree) with MNT_DETACH: only what an op put in is visible.
 *
 * Mounts are made with the new mount API (open_tree, fsopen, fsmount,
 * mount_setattr, move_mount): every mount is configured while still
 * detached, then attached in one step on a file descriptor of its target.
 * Read-only binds are read-only recursively (MOUNT_ATTR_RDONLY with
 * AT_RECURSIVE); before Linux 5.12 each submount is remounted read-only
 * from /proc/self/mountinfo instead. Every bind is nosuid, and nodev
 * unless it is a --dev-bind.
 *
 * Setup runs as root of the user namespace, which with subordinate ids is
 * not the caller on the host: what it creates on a host filesystem (a
 * mount point inside a read-write bind) is chowned to the caller's ids.
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
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "stagelib.h"
#include "mounts.h"

/* --- configuration ------------------------------------------------------ */

static const char *const mount_types[] = {
	[MT_BIND] = "bind", [MT_TMPFS] = "tmpfs", [MT_DIR] = "dir", [MT_SYMLINK] = "symlink",
	[MT_CHMOD] = "chmod", [MT_REMOUNT_RO] = "remount-ro", [MT_PROC] = "proc", [MT_DEV] = "dev",
	[MT_MQUEUE] = "mqueue", [MT_FILE] = "file", [MT_OVERLAY] = "overlay",
	[MT_TMP_OVERLAY] = "tmp-overlay", [MT_COPY_UP] = "copy-up",
};
#define N_MOUNT_TYPES (sizeof mount_types / sizeof *mount_types)

/* parse_type opens a mount op (field): "mount=TYPE". */
static const char *parse_type(struct cfg_parser *p, void *field, char *v)
{
	(void)p;
	struct mount_op *op = field;
	for (size_t t = 1; t < N_MOUNT_TYPES; t++)
		if (!strcmp(v, mount_types[t]))
			op->type = (int)t;
	if (!op->type)
		return "unknown mount type";
	op->what = v;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_type(struct cfg_out *o, const char *key, const void *field)
{
	const struct mount_op *op = field;
	cfg_emit(o, key, "%s", op->type > 0 && (size_t)op->type < N_MOUNT_TYPES ? mount_types[op->type] : "?");
}
#endif

/* parse_data decodes a file's content: hex, in place (it may hold NULs). */
static const char *parse_data(struct cfg_parser *p, void *field, char *v)
{
	(void)p;
	struct mount_op *op = (struct mount_op *)((char *)field - CFG_OPFIELD(data));
	ssize_t n = hex_decode(v, v);
	if (n < 0)
		return "not lowercase hex";
	op->data = v;
	op->data_len = (size_t)n;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_data(struct cfg_out *o, const char *key, const void *field)
{
	const struct mount_op *op = (const struct mount_op *)((const char *)field - CFG_OPFIELD(data));
	cfg_emit_hex(o, key, op->data, op->data_len);
}
#endif

/* mount_keys: the new root, and each op as "mount=TYPE" followed by its
 * "mount-*" records (config.go's Mount.encode). */
#define CFG_STRUCT struct cfg_root
const struct cfg_key mount_keys[] = {
	{CFG_KEY(KEY_NEW_ROOT, CFG_BOOL, 0, new_root)},
	{CFG_KEY(KEY_ROOT_MAPPED, CFG_BOOL, 0, root_mapped)},
	{CFG_KEY(KEY_OWNER_UID, CFG_LLONG, 0, owner_uid), .min = -1, .max = UINT32_MAX - 1, .with = KEY_NEW_ROOT, .needs = KEY_NEW_ROOT},
	{CFG_KEY(KEY_OWNER_GID, CFG_LLONG, 0, owner_gid), .min = -1, .max = UINT32_MAX - 1, .with = KEY_NEW_ROOT, .needs = KEY_NEW_ROOT},
	{CFG_KEY(KEY_CWD_TRY, CFG_STR, 0, cwd_try), .needs = KEY_NEW_ROOT},
	{.key = KEY_MOUNT, .type = CFG_CUSTOM, .flags = CFG_OPENS_OP | CFG_REPEAT, .needs = KEY_NEW_ROOT, .parse = parse_type, CFG_FORMAT(format_type)},
	{CFG_OP_KEY(KEY_MOUNT_SRC, CFG_STR, 0, src)},
	{CFG_OP_KEY(KEY_MOUNT_DST, CFG_STR, CFG_REQUIRED, dst)},
	{CFG_OP_KEY(KEY_MOUNT_FLAGS, CFG_INT, CFG_REQUIRED, flags), .min = 0,
	 .max = MOUNT_ALL_FLAGS},
	{CFG_OP_KEY(KEY_MOUNT_MODE, CFG_U32, CFG_REQUIRED, mode), .min = 0, .max = 07777},
	{CFG_OP_KEY(KEY_MOUNT_SIZE, CFG_U64, 0, size), .min = 1, .max = LLONG_MAX},
	{CFG_OP_KEY(KEY_MOUNT_DATA, CFG_CUSTOM, 0, data), .parse = parse_data, CFG_FORMAT(format_data)},
	{CFG_OP_KEY(KEY_MOUNT_LOWER, CFG_LIST, CFG_REPEAT, lower), .count_off = CFG_OPFIELD(n_lower)},
	{CFG_OP_KEY(KEY_MOUNT_UPPER, CFG_STR, 0, upper)},
	{CFG_OP_KEY(KEY_MOUNT_WORK, CFG_STR, 0, work)},
	{CFG_OP_KEY(KEY_MOUNT_WHAT, CFG_STR, CFG_REQUIRED, what)},
	{.key = NULL},
};

/* --- state of the setup ----------------------------------------------- */

const struct config *mnt_cfg;
int mnt_oldroot = -1;
char mnt_console[PATH_MAX];
int mnt_devpts_made;
static dev_t own_devs[256]; /* filesystems setup made: not host-visible */
static int n_own_devs;
static int n_store;         /* names in the private /store */

int mnt_sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC), .resolve = resolve};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}


#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0 /* statfs(2) */
#endif

void (*mnt_before_proc)(void);

int mnt_open_source(const char *path, int flags)
{
	int fd = mnt_sys_openat2(mnt_oldroot, path, flags, RESOLVE_IN_ROOT);
	struct statfs sf;
	if (fd >= 0 && mnt_before_proc && (fstatfs(fd, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC)) {
		/* Looked up by us, /proc/self/net and the network and IPC
		 * sysctls are those of our namespaces, and the mount keeps
		 * what the lookup found: take the sandbox's first. */
		void (*before)(void) = mnt_before_proc;
		mnt_before_proc = NULL;
		close(fd);
		before();
		fd = mnt_sys_openat2(mnt_oldroot, path, flags, RESOLVE_IN_ROOT);
	}
	return fd;
}

/* mnt_fdpath names an open file by a path any mount option can take. */
const char *mnt_fdpath(int fd, char *buf, size_t n)
{
	snprintf(buf, n, "/oldroot/proc/self/fd/%d", fd);
	return buf;
}

void mnt_own_fs(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && n_own_devs < (int)(sizeof own_devs / sizeof *own_devs))
		own_devs[n_own_devs++] = st.st_dev;
}

/* created gives what setup just created at (dirfd, name) to the caller
 * when it lies on a host filesystem. */
static void created(int dirfd, const char *name)
{
	struct stat st;
	if (mnt_cfg->root.owner_uid < 0 || fstat(dirfd, &st) < 0)
		return;
	for (int i = 0; i < n_own_devs; i++)
		if (own_devs[i] == st.st_dev)
			return;
	(void)fchownat(dirfd, name, (uid_t)mnt_cfg->root.owner_uid, (gid_t)mnt_cfg->root.owner_gid, AT_SYMLINK_NOFOLLOW);
}

static int root_fd(void)
{
	/* Opened afresh for each op: an op may have mounted over /. */
	int fd = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail("open the sandbox root");
	return fd;
}

/* mnt_open_in_root opens path inside the new root (O_PATH), or -1. */
int mnt_open_in_root(const char *path, int flags)
{
	int root = root_fd();
	int fd = mnt_sys_openat2(root, path, O_PATH | flags, IN_ROOT);
	int err = errno;
	close(root);
	if (fd < 0 && err == ENOSYS)
		fail_fix("run nsbox on Linux 5.6 or newer", "resolve %s inside the sandbox (openat2)", path);
	errno = err;
	return fd;
}

/* split cuts path into its parent directory (in buf) and last
 * component (returned, pointing into buf). Paths come cleaned from Go. */
static const char *split(const char *path, char *buf, size_t n)
{
	if (strlen(path) + 2 > n) {
		errno = ENAMETOOLONG;
		fail("path %s", path);
	}
	/* "/a/b" → "/a" "b"; "/a" → "/" "a", kept apart by a NUL. */
	buf[0] = '/';
	strcpy(buf + 1, path);
	char *slash = strrchr(buf + 1, '/');
	if (!slash)
		return buf + 1;
	*slash = '\0';
	if (slash == buf + 1) {
		buf[1] = '\0';
		return slash + 1;
	}
	memmove(buf, buf + 1, (size_t)(slash - buf));
	return slash + 1;
}

/* parent_mode is the mode of directories an op creates on the way to its
 * destination: 0755, less group (other) read and search when the op's own
 * mode gives the group (others) nothing, as bubblewrap does, so that a
 * private file does not sit in world-readable new parents. Set per op. */
static mode_t parent_mode = 0755;

/* mkdir_p opens directory path inside the new root, creating what is
 * missing (mode for the last component, parent_mode on the way). Each
 * step is resolved inside the root, and mkdirat never follows a symlink.
 * Under a read-only directory the entry is made in the sandbox's view
 * only (mountpoint.c). */
static int mkdir_p(const char *path, mode_t mode, const char *what)
{
	int fd = mnt_open_in_root(path, O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT)
		goto out;
	char parent[PATH_MAX];
	const char *name = split(path, parent, sizeof parent);
	int pfd = mkdir_p(parent, parent_mode, what);
	if (mkdirat(pfd, name, mode) == 0)
		created(pfd, name);
	else if (errno == EROFS) {
		if (mnt_create_in_readonly(parent, name, mode, 1, what) < 0)
			fail("%s: create directory %s", what, path);
	} else if (errno != EEXIST)
		fail("%s: create directory %s", what, path);
	close(pfd);
	fd = mnt_open_in_root(path, O_DIRECTORY);
out:
	if (fd < 0)
		fail_fix("make it a directory, or choose another destination", "%s: %s is not a directory inside the sandbox", what, path);
	return fd;
}

/* mnt_open_target opens (creating if missing) the mount point dst: a
 * directory, or an empty file (0444) when dir is 0. */
int mnt_open_target(const char *dst, int dir, const char *what)
{
	if (dir)
		return mkdir_p(dst, 0755, what);
	int fd = mnt_open_in_root(dst, 0);
	if (fd >= 0 || errno != ENOENT)
		goto out;
	char parent[PATH_MAX];
	const char *name = split(dst, parent, sizeof parent);
	int pfd = mkdir_p(parent, parent_mode, what);
	int f = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (f >= 0) {
		close(f);
		created(pfd, name);
	} else if (errno == EROFS) {
		if (mnt_create_in_readonly(parent, name, 0444, 0, what) < 0)
			fail("%s: create mount point %s", what, dst);
	} else if (errno != EEXIST) {
		fail("%s: create mount point %s", what, dst);
	}
	close(pfd);
	fd = mnt_open_in_root(dst, 0);
out:
	if (fd < 0)
		fail("%s: open mount point %s", what, dst);
	return fd;
}

/* --- mounting ----------------------------------------------------------- */

/* mnt_attach moves the detached mount mfd onto target; closes both. */
void mnt_attach(int mfd, int target, const char *what)
{
	if (move_mount(mfd, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		fail("%s: mnt_attach the mount", what);
	close(mfd);
	close(target);
}

/* mnt_new_fs creates a detached mount of a new filesystem; opts are
 * key, value pairs (value NULL: a flag), ended by NULL. -1 on error. */
char mnt_fs_log[256];

/* fs_log_read keeps the last error the kernel logged on the filesystem
 * context fs ("e overlayfs: …") in mnt_fs_log, without the "e ". */
static void fs_log_read(int fs)
{
	char msg[sizeof mnt_fs_log];
	ssize_t n;
	mnt_fs_log[0] = 0;
	while ((n = read(fs, msg, sizeof msg - 1)) > 0) {
		msg[n] = 0;
		if (n > 2 && msg[0] == 'e' && msg[1] == ' ') {
			msg[strcspn(msg, "\n")] = 0;
			snprintf(mnt_fs_log, sizeof mnt_fs_log, "%s", msg + 2);
		}
	}
}

int mnt_new_fs(const char *type, const char *const *opts, unsigned attrs)
{
	mnt_fs_log[0] = 0;
	int fs = fsopen(type, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -1;
	int rc = fsconfig(fs, FSCONFIG_SET_STRING, "source", type, 0);
	for (; rc == 0 && opts && *opts; opts += 2)
		rc = opts[1] ? fsconfig(fs, FSCONFIG_SET_STRING, opts[0], opts[1], 0)
			     : fsconfig(fs, FSCONFIG_SET_FLAG, opts[0], NULL, 0);
	if (rc == 0)
		rc = fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
	int m = rc == 0 ? fsmount(fs, FSMOUNT_CLOEXEC, attrs) : -1;
	int err = errno;
	if (m < 0)
		fs_log_read(fs);
	close(fs);
	errno = err;
	return m;
}

/* mnt_clone_tree makes a detached copy of the mount tree at fd (path relative
 * to it), recursive or not. */
int mnt_clone_tree(int fd, const char *path, int recursive, const char *what)
{
	int t = open_tree(fd, path, (path[0] ? 0 : AT_EMPTY_PATH) | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
					  (recursive ? AT_RECURSIVE : 0));
	if (t < 0)
		fail("%s: copy the mount", what);
	return t;
}

static int octal(char ch)
{
	return ch >= '0' && ch <= '7' ? ch - '0' : -1;
}

void mountinfo_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		/* "\ooo", three octal digits of one byte other than NUL (the
		 * kernel writes \040, \011, \012, \134); anything else is
		 * kept as is. */
		int a, b, d;
		if (r[0] == '\\' && (a = octal(r[1])) >= 0 && a <= 3 && (b = octal(r[2])) >= 0 && (d = octal(r[3])) >= 0 &&
		    a + b + d > 0) {
			*w++ = (char)(a * 64 + b * 8 + d);
			r += 3;
		} else
			*w++ = *r;
	}
	*w = '\0';
}

/* remount_ro_fallback makes the mount at fd, and when recursive every
 * mount below it, read-only, one by one from mountinfo: the way before
 * mount_setattr. */
static void remount_ro_fallback(int fd, int recursive, const char *what)
{
	char link[64], top[PATH_MAX];
	ssize_t n = readlink(mnt_fdpath(fd, link, sizeof link), top, sizeof top - 1);
	if (n < 0)
		fail("%s: find the mount", what);
	top[n] = '\0';
	FILE *f = fopen("/oldroot/proc/self/mountinfo", "re");
	if (!f)
		fail("%s: read /proc/self/mountinfo", what);
	char *line = NULL;
	size_t cap = 0;
	size_t tlen = strcmp(top, "/") ? strlen(top) : 0;
	while (getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX], opts[512];
		if (sscanf(line, "%*s %*s %*s %*s %4095s %511s", mp, opts) != 2)
			continue;
		mountinfo_unescape(mp);
		if (strncmp(mp, top, tlen) != 0 || (mp[tlen] != '/' && mp[tlen] != '\0') ||
		    (!recursive && strcmp(mp, top) != 0))
			continue;
		/* Keep the flags the kernel locked on the mount, or it refuses. */
		unsigned long fl = MS_REMOUNT | MS_BIND | MS_RDONLY;
		if (strstr(opts, "nosuid"))
			fl |= MS_NOSUID;
		if (strstr(opts, "nodev"))
			fl |= MS_NODEV;
		if (strstr(opts, "noexec"))
			fl |= MS_NOEXEC;
		if (strstr(opts, "noatime"))
			fl |= MS_NOATIME;
		if (strstr(opts, "relatime"))
			fl |= MS_RELATIME;
		if (mount(NULL, mp, NULL, fl, NULL) < 0 && errno != EACCES)
			fail("%s: remount %s read-only", what, mp);
	}
	free(line);
	fclose(f);
}

/* mnt_set_attr sets mount attributes on the (attached or detached) mount at
 * mfd, and its submounts when recursive. */
void mnt_set_attr(int mfd, unsigned set, int recursive, const char *what)
{
	struct mount_attr a = {.attr_set = set};
	if (mount_setattr(mfd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) == 0)
		return;
	if (errno != ENOSYS)
		fail("%s: set mount attributes", what);
	/* Before Linux 5.12: nosuid/nodev are what a user namespace's mounts
	 * get anyway; read-only is done after attaching (see bind_op). */
}

static int have_setattr(void)
{
	static int known = -1;
	if (known < 0) {
		struct mount_attr a = {0};
		known = !(mount_setattr(-1, "", AT_EMPTY_PATH, &a, sizeof a) < 0 && errno == ENOSYS);
	}
	return known;
}

/* make_readonly makes the attached mount at fd read-only, and its
 * submounts when recursive. */
static void make_readonly(int fd, int recursive, const char *what)
{
	if (have_setattr())
		mnt_set_attr(fd, MOUNT_ATTR_RDONLY, recursive, what);
	else
		remount_ro_fallback(fd, recursive, what);
}

void mnt_make_readonly(int fd, const char *what)
{
	make_readonly(fd, 1, what);
}

static void bind_op(const struct mount_op *op)
{
	int src = mnt_open_source(op->src, O_PATH);
	if (src < 0) {
		if (errno == ENOENT && (op->flags & MOUNT_OPTIONAL))
			return;
		fail_fix("check the path, or use the -try form of the flag", "%s: open source %s", op->what, op->src);
	}
	struct stat st;
	if (fstat(src, &st) < 0)
		fail("%s: stat source %s", op->what, op->src);
	int tree = mnt_clone_tree(src, "", 1, op->what);
	close(src);
	unsigned set = MOUNT_ATTR_NOSUID | (op->flags & MOUNT_DEVICES ? 0 : MOUNT_ATTR_NODEV);
	if ((op->flags & MOUNT_READONLY) && have_setattr())
		set |= MOUNT_ATTR_RDONLY;
	mnt_set_attr(tree, set, 1, op->what);
	int target = mnt_open_target(op->dst, S_ISDIR(st.st_mode), op->what);
	if ((op->flags & MOUNT_READONLY) && !have_setattr()) {
		int again = dup(target);
		mnt_attach(tree, target, op->what);
		remount_ro_fallback(again, 1, op->what);
		close(again);
		return;
	}
	mnt_attach(tree, target, op->what);
}

static void tmpfs_op(const struct mount_op *op)
{
	char mode[16], size[32];
	snprintf(mode, sizeof mode, "%o", OP_MODE(op, 0755));
	snprintf(size, sizeof size, "%llu", op->size);
	const char *opts[] = {"mode", mode, op->size ? "size" : NULL, size, NULL};
	int m = mnt_new_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (m < 0 || ((op->flags & MOUNT_OWNED) && fchownat(m, "", mnt_cmd_uid(), mnt_cmd_gid(), AT_EMPTY_PATH) < 0))
		fail("%s: mount a tmpfs", op->what);
	mnt_own_fs(m);
	mnt_attach(m, mnt_open_target(op->dst, 1, op->what), op->what);
}

static void symlink_op(const struct mount_op *op)
{
	char parent[PATH_MAX];
	const char *name = split(op->dst, parent, sizeof parent);
	int pfd = mkdir_p(parent, 0755, op->what);
	if (symlinkat(op->src, pfd, name) == 0) {
		created(pfd, name);
	} else {
		char have[PATH_MAX];
		int exists = errno == EEXIST;
		ssize_t n = exists ? readlinkat(pfd, name, have, sizeof have - 1) : -1;
		if (n >= 0 && (have[n] = '\0', strcmp(have, op->src) != 0)) {
			errno = EEXIST; /* (bubblewrap's words, which its callers match) */
			fail("%s: Can't make symlink at %s: existing destination is %s", op->what, op->dst, have);
		}
		if (n < 0 && exists && errno == EINVAL) {
			errno = EEXIST;
			fail("%s: Can't make symlink at %s: destination exists and is not a symlink", op->what, op->dst);
		}
		if (n < 0)
			fail("%s: create symlink %s", op->what, op->dst);
	}
	close(pfd);
}

static void chmod_op(const struct mount_op *op)
{
	int fd = mnt_open_in_root(op->dst, 0);
	char p[64];
	if (fd < 0 || fchmodat(AT_FDCWD, mnt_fdpath(fd, p, sizeof p), op->mode, 0) < 0)
		fail("%s: chmod %s", op->what, op->dst);
	close(fd);
}

/* mnt_show_entries makes the tmpfs m stand in for the directory listed by
 * d (list is its fd, dir its name in messages): every entry gets a stand-in
 * of its kind on m (a symlink with the same target, a directory, an empty
 * file), and every entry but a symlink gets a mount on its stand-in: what
 * layer returns for it (the entry as an O_PATH fd, and its mode), or, when
 * layer is NULL or returns -1, a recursive clone of what the sandbox sees
 * there (openat crosses a mount on the entry, so submounts come along).
 * Closes d. overlay.c's per-directory --tmp-overlay and mountpoint.c's
 * mount points under read-only directories both build on it. */
void mnt_show_entries(DIR *d, int list, int m, const char *dir, const char *what,
		      int (*layer)(int sub, mode_t mode, const char *what))
{
	struct dirent *e;
	struct stat st;
	char link[PATH_MAX];
	while ((e = readdir(d))) {
		const char *n = e->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (fstatat(list, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			fail("%s: stat %s/%s", what, dir, n);
		int rc;
		if (S_ISLNK(st.st_mode)) {
			ssize_t len = readlinkat(list, n, link, sizeof link - 1);
			rc = len < 0 ? -1 : (link[len] = '\0', symlinkat(link, m, n));
		} else if (S_ISDIR(st.st_mode)) {
			rc = mkdirat(m, n, st.st_mode & 07777);
		} else {
			int f = openat(m, n, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
			rc = f < 0 ? -1 : close(f);
		}
		if (rc < 0)
			fail("%s: show %s/%s again over its tmpfs", what, dir, n);
		if (S_ISLNK(st.st_mode))
			continue;
		int sub = openat(list, n, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		int target = openat(m, n, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 || target < 0)
			fail("%s: open %s/%s", what, dir, n);
		int t = layer ? layer(sub, st.st_mode, what) : -1;
		if (t < 0)
			t = mnt_clone_tree(sub, "", 1, what);
		close(sub);
		mnt_attach(t, target, what);
	}
	closedir(d);
}

/* mnt_store_path names a new entry in the private /store. */
const char *mnt_store_path(char *buf, size_t n, const char *kind)
{
	snprintf(buf, n, "/store/%s%d", kind, n_store++);
	return buf;
}

static void file_op(const struct mount_op *op)
{
	char path[64];
	mnt_store_path(path, sizeof path, "f");
	int f = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, OP_MODE(op, 0644));
	if (f < 0 || write_all(f, op->data, op->data_len) < 0 ||
	    fchown(f, mnt_cmd_uid(), mnt_cmd_gid()) < 0 || fchmod(f, OP_MODE(op, 0644)) < 0)
		fail("%s: write the file's content", op->what);
	close(f);
	int t = mnt_clone_tree(AT_FDCWD, path, 0, op->what);
	mnt_set_attr(t, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (op->flags & MOUNT_READONLY ? MOUNT_ATTR_RDONLY : 0), 0, op->what);
	mnt_attach(t, mnt_open_target(op->dst, 0, op->what), op->what);
}

static void remount_ro_op(const struct mount_op *op)
{
	int fd = mnt_open_in_root(op->dst, 0);
	if (fd < 0)
		fail("%s: open %s", op->what, op->dst);
	/* Non-recursive: bubblewrap's --remount-ro (its remount_ro is a
	 * MS_REMOUNT of the one mount); submounts keep their own flags. */
	make_readonly(fd, !(op->flags & MOUNT_NONRECURSIVE), op->what);
	close(fd);
}

static void dir_op(const struct mount_op *op)
{
	close(mkdir_p(op->dst, OP_MODE(op, 0755), op->what));
}

static void (*const handlers[])(const struct mount_op *) = {
	[MT_BIND] = bind_op, [MT_TMPFS] = tmpfs_op, [MT_DIR] = dir_op, [MT_SYMLINK] = symlink_op,
	[MT_CHMOD] = chmod_op, [MT_REMOUNT_RO] = remount_ro_op, [MT_PROC] = mount_proc_op, [MT_DEV] = mount_dev_op,
	[MT_MQUEUE] = mount_mqueue_op, [MT_FILE] = file_op, [MT_OVERLAY] = mount_overlay_op,
	[MT_TMP_OVERLAY] = mount_tmp_overlay_op, [MT_COPY_UP] = mount_copy_up_op,
};

/* --- the sequence --------------------------------------------------------- */

static void build_root(const struct config *c)
{
	mnt_cfg = c;
	if (isatty(STDOUT_FILENO) && ttyname_r(STDOUT_FILENO, mnt_console, sizeof mnt_console) != 0)
		mnt_console[0] = '\0';
	mode_t old_umask = umask(0);

	/* 2. A scratch tmpfs to stand on; the host's tree goes to /oldroot. */
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
		fail_fix("make sure /tmp is a directory on the host", "mount the scratch tmpfs for the sandbox root on /tmp");
	if (chdir("/tmp") < 0 || mkdir("newroot", 0755) < 0 || mkdir("oldroot", 0755) < 0 || mkdir("store", 0700) < 0)
		fail("prepare the scratch tmpfs");
	if (syscall(SYS_pivot_root, ".", "oldroot") < 0)
		fail("pivot_root into the scratch tmpfs");
	if (chdir("/") < 0 || (mnt_oldroot = open("/oldroot", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		fail("open the host's root");
	if (mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		fail("mount the sandbox's root tmpfs");
	int fd = root_fd();
	mnt_own_fs(fd);
	close(fd);
	fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	mnt_own_fs(fd); /* the scratch tmpfs: /store */
	close(fd);

	/* 3. The ops, in order. */
	for (int i = 0; i < c->root.n_mounts; i++) {
		mode_t m = c->root.mounts[i].mode;
		int given = m || (c->root.mounts[i].flags & MOUNT_MODE_SET);
		parent_mode = 0755;
		if (given && !(m & 0070))
			parent_mode &= ~0050U;
		if (given && !(m & 0007))
			parent_mode &= ~0005U;
		handlers[c->root.mounts[i].type](&c->root.mounts[i]);
	}

	/* 4. Into the new root; the old one (scratch and host) is detached.
	 * pivot_root(".", ".") stacks the old root on the new one, and the
	 * lazy unmount takes it off. */
	close(mnt_oldroot);
	if (chdir("/newroot") < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		fail("pivot_root into the sandbox root");
	if (umount2(".", MNT_DETACH) < 0)
		fail("detach the host's root");
	if (chdir("/") < 0)
		fail("enter the sandbox root");
	if (c->root.cwd_try && chdir(c->root.cwd_try) < 0 && chdir("/") < 0)
		fail("enter /");
	umask(old_umask);
}

/* setup_mounts makes every mount private first, so nothing done in the
 * sandbox propagates back to the host; then either builds the new root
 * from the op list, or (no list) gives the new PID namespace its own
 * /proc over the host's tree. */
void setup_mounts(const struct config *c)
{
	if (!(c->ns.unshare_flags & CLONE_NEWNS))
		return;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make mounts private (mount --make-rprivate /)");
	if (c->root.new_root) {
		build_root(c);
		return;
	}
	if (c->ns.mount_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fail("mount a new /proc");
}
