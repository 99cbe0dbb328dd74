/*
 * join.c: the stage in join mode (nsbox exec), and what a running sandbox
 * offers to be joined.
 *
 * nsbox exec re-executes nsbox as the stage, like nsbox run, but its
 * CONFIG carries "join-pid": instead of creating namespaces, the stage
 * enters those of the sandbox whose PID 1 has that pid, in the order the
 * kernel's ownership rules require (the order of runc's nsexec and of
 * OpenVZ's vzctl enter):
 *
 *   1. the user namespace, first and alone: it is what gives us the
 *      capabilities over the others (setns(2) of a mount namespace asks
 *      for CAP_SYS_ADMIN in the user namespace that owns it);
 *   2. mnt, pid, net, ipc, uts, cgroup;
 *   3. the sandbox's root directory (opened before step 1, through
 *      /proc/PID/root), then the working directory;
 *   4. a child: setns(CLONE_NEWPID) only places our *children* in the
 *      PID namespace. It is cloned with CLONE_PARENT, so it is the
 *      launcher's child and the launcher waits for it directly, as it
 *      waits for PID 1 after nsbox run. When the sandbox's PID 1 exits,
 *      the kernel kills everything in its PID namespace, this child too.
 *
 * setns(CLONE_NEWUSER) refuses a multi-threaded caller, which is why this
 * is C run before the Go runtime, like the rest of the stage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "stage.h"
#include "stagelib.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* The namespaces a sandbox may have, in the order they are joined after the
 * user namespace, with their names under /proc/PID/ns. */
static const struct {
	const char *name;
	int flag;
} join_order[] = {
	{"mnt", CLONE_NEWNS}, {"pid", CLONE_NEWPID}, {"net", CLONE_NEWNET},
	{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"cgroup", CLONE_NEWCGROUP},
};
#define NJOIN (sizeof join_order / sizeof join_order[0])

void namespace_ids(char *buf, size_t size)
{
	static const char *const names[][2] = {
		{"user", "user"}, {"mnt", "mnt"}, {"pid", "pid_for_children"}, {"net", "net"},
		{"ipc", "ipc"}, {"uts", "uts"}, {"cgroup", "cgroup"},
	};
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char path[64];
		struct stat st;
		snprintf(path, sizeof path, "/proc/self/ns/%s", names[i][1]);
		if (stat(path, &st) < 0)
			continue;
		int n = snprintf(buf + off, size - off, "%s=%" PRIu64 "\n", names[i][0], (uint64_t)st.st_ino);
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
}

void make_joinable(void)
{
	/* Becoming root of the user namespace changed our host uid when root
	 * is a subordinate id, and the kernel then marks us not dumpable:
	 * /proc/PID/ns and /proc/PID/root of PID 1 would be closed even to
	 * the user who owns the sandbox. Nothing of ours needs that
	 * protection: whoever passes the uid checks to reach PID 1 already has
	 * the same power over the sandbox's namespaces. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

/* start_time returns field 22 of /proc/PID/stat, or 0. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: count
	 * from the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static int open_ns(pid_t pid, const char *name)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_fix("check you own the sandbox (nsbox ps)", "open %s", path);
	return fd;
}

__attribute__((noreturn)) void nsbox_join(struct config *c)
{
	pid_t pid = c->join_pid;

	/* The pid is only a number until it is pinned: pidfd first, then the
	 * start time proves it is still the sandbox's PID 1, and after the
	 * namespaces are open a signal 0 through the pidfd proves they are
	 * its (a reused pid would be a different process). */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 || start_time(pid) != c->join_start) {
		errno = ESRCH;
		fail("the sandbox's PID 1 (pid %d) is gone", (int)pid);
	}
	int userfd = open_ns(pid, "user");
	int fds[NJOIN];
	for (size_t i = 0; i < NJOIN; i++)
		fds[i] = (c->unshare_flags & join_order[i].flag) ? open_ns(pid, join_order[i].name) : -1;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
	int rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail("open %s", path);
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) {
		errno = ESRCH;
		fail("the sandbox's PID 1 (pid %d) is gone", (int)pid);
	}

	/* 1. The user namespace, first. */
	if (setns(userfd, CLONE_NEWUSER) < 0)
		fail("join the sandbox's user namespace (setns)");
	/* 2. The others, now that we hold capabilities over them. */
	for (size_t i = 0; i < NJOIN; i++)
		if (fds[i] >= 0 && setns(fds[i], join_order[i].flag) < 0)
			fail("join the sandbox's %s namespace (setns)", join_order[i].name);
	/* 3. Its root; run_command enters the working directory. A command
	 * that gets a nested user namespace (as the sandbox's own does)
	 * writes its maps through our /proc, opened before. */
	if (c->nest_uid >= 0)
		keep_host_proc();
	if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		fail("enter the sandbox's root directory");
	/* --tty: the command's terminal, from the sandbox's /dev/ptmx; its
	 * master goes to the launcher before EXEC_OK. */
	open_join_terminal(c);

	/* 4. The command, in the sandbox's PID namespace, as the launcher's
	 * child. run_command re-arms the parent-death signal once it has its
	 * identity (changing it clears the setting). */
	c->parent_death = 1;
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0)
		fail("create the exec report pipe");
	pid_t cmd = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
	if (cmd < 0)
		fail("start the command (clone)");
	if (cmd == 0) {
		close(report[0]);
		run_command(c, report[1]);
	}
	close(report[1]);

	/* EOF on the close-on-exec pipe: the exec succeeded. The launcher
	 * reaps the child either way; it is its child, not ours. */
	int err = 0, step = read_exec_report(report[0], &err);
	if (step < 0) {
		send_msg(NSBOX_MSG_EXEC_OK, cmd, NULL);
		_exit(0);
	}
	errno = err;
	switch (step) {
	case 0:
		send_msg(NSBOX_MSG_EXEC_FAILED, err, c->argv[0]);
		_exit(err == ENOENT ? 127 : 126);
	case 1:
		fail_fix("pass --chdir a directory that exists in the sandbox and that the command's uid may enter",
			 "enter the working directory %s", c->cwd ? c->cwd : "/");
	case 2:
		fail_fix("pass --uid/--gid ids the sandbox's maps contain (nsbox inspect shows them)",
			 "switch to uid %u gid %u", (unsigned)c->uid, (unsigned)c->gid);
	default:
		fail("set no_new_privs");
	}
}
