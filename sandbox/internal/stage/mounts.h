/*
 * mounts.h: what mounts.c shares with mounts_dev.c and overlay.c, the
 * parts of PID 1's filesystem setup. Private to those files.
 */
#ifndef NSBOX_MOUNTS_H
#define NSBOX_MOUNTS_H

#include <limits.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/types.h>

#include "stagelib.h"

#ifndef __GLIBC__
/* The new mount API (Linux 5.2, mount_setattr 5.12): glibc 2.36 declares
 * it in <sys/mount.h>; with another C library (musl: make build's static
 * binary, whose start does not pay glibc's CPU-feature probing) it comes
 * from the kernel's header and syscall(2). */
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dfd, path, flags);
}
static inline int move_mount(int from_dfd, const char *from, int to_dfd, const char *to, unsigned int flags)
{
	return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}
static inline int fsopen(const char *fsname, unsigned int flags)
{
	return (int)syscall(SYS_fsopen, fsname, flags);
}
static inline int fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux)
{
	return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
static inline int fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
	return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}
static inline int mount_setattr(int dfd, const char *path, unsigned int flags, struct mount_attr *attr, size_t size)
{
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, size);
}
#endif

/* IN_ROOT resolves a destination as if /newroot were /: "..", absolute
 * symlinks and magic links cannot leave it. */
#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

extern const struct config *mnt_cfg; /* the config being applied */
extern int mnt_oldroot;              /* the host's / (at /oldroot) */
extern char mnt_console[PATH_MAX];   /* the terminal on stdout, or "" */
extern int mnt_devpts_made;          /* a --dev op mounted a devpts instance of ours */

/* mnt_cmd_uid/gid are the command's ids as setup's namespace sees them
 * (config nest_uid/nest_gid, see sandbox/nested.go): what setup gives the
 * command's files. */
static inline uid_t mnt_cmd_uid(void) { return (uid_t)mnt_cfg->ids.nest_uid; }
static inline gid_t mnt_cmd_gid(void) { return (gid_t)mnt_cfg->ids.nest_gid; }

int mnt_sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve);
/* mnt_open_source opens a mount's source, a path of the host's (under
 * mnt_oldroot, symlinks resolved as if it were /). Before one on procfs
 * (or whose filesystem it cannot tell) it runs mnt_before_proc once, if
 * set (stagelib.h). */
int mnt_open_source(const char *path, int flags);
/* mnt_fdpath names an open file by a path any mount option can take. */
const char *mnt_fdpath(int fd, char *buf, size_t n);
/* mnt_own_fs records the filesystem of fd as made by setup. */
void mnt_own_fs(int fd);
/* mnt_open_in_root opens path inside the new root (O_PATH), or -1. */
int mnt_open_in_root(const char *path, int flags);
/* mnt_open_target opens (creating if missing) a mount point. */
int mnt_open_target(const char *dst, int dir, const char *what);
/* mnt_create_in_readonly (mountpoint.c) creates name, a directory of mode
 * or an empty file, in the read-only directory parent of the new root,
 * in the sandbox's view only; -1 with errno, 0 also if it exists. */
int mnt_create_in_readonly(const char *parent, const char *name, mode_t mode, int dir, const char *what);
/* mnt_attach moves the detached mount mfd onto target; closes both. */
void mnt_attach(int mfd, int target, const char *what);
/* mnt_new_fs creates a detached mount of a new filesystem; -1 on error,
 * with the kernel's own words for it (the filesystem context's log, e.g.
 * "overlayfs: maximum fs stacking depth exceeded") in mnt_fs_log, or
 * mnt_fs_log empty when the kernel gave none. */
int mnt_new_fs(const char *type, const char *const *opts, unsigned attrs);
extern char mnt_fs_log[256];
/* mnt_clone_tree makes a detached copy of the mount tree at fd/path. */
int mnt_clone_tree(int fd, const char *path, int recursive, const char *what);
/* mnt_set_attr sets mount attributes on a mount (and its submounts). */
void mnt_set_attr(int mfd, unsigned set, int recursive, const char *what);
/* mnt_make_readonly makes the attached mount at fd read-only, recursively. */
void mnt_make_readonly(int fd, const char *what);
/* mnt_show_entries fills the tmpfs m with stand-ins for the entries of
 * the directory d lists and mounts each (layer's mount, or a clone of the
 * original); closes d. See mounts.c. */
#include <dirent.h>
#include <sys/types.h>
void mnt_show_entries(DIR *d, int list, int m, const char *dir, const char *what,
		      int (*layer)(int sub, mode_t mode, const char *what));
/* mnt_store_path names a new entry in the private /store. */
const char *mnt_store_path(char *buf, size_t n, const char *kind);

/* The op handlers in mounts_dev.c and overlay.c. */
void mount_proc_op(const struct mount_op *op);
void mount_dev_op(const struct mount_op *op);
void mount_mqueue_op(const struct mount_op *op);
void mount_overlay_op(const struct mount_op *op);
void mount_tmp_overlay_op(const struct mount_op *op);
void mount_copy_up_op(const struct mount_op *op);

#endif
