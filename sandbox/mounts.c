/*
 * mounts.c: the sandbox's view of the filesystem, set up by PID 1 inside
 * the new mount namespace.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mount.h>

#include "stagelib.h"

/* setup_mounts makes every mount private first, so nothing done in the
 * sandbox propagates back to the host, then gives the new PID namespace
 * its own /proc. */
void setup_mounts(const struct config *c)
{
	if (!(c->unshare_flags & CLONE_NEWNS))
		return;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make mounts private (mount --make-rprivate /)");
	if (c->mount_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fail("mount a new /proc");
}
