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
 *
 * With live-op (nsbox mount, umount, Sandbox.Dial/Listen, and pause and
 * resume without a cgroup of the sandbox's own) the stage stops
 * after opening the namespaces and root: live.c does the operation from
 * there and no command is started.
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
#include <dirent.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
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
	namespace_ids_held(buf, size, -1, 0);
}

void namespace_ids_held(char *buf, size_t size, int proc, pid_t held)
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
		int of_held = held > 0 && (!strcmp(names[i][0], "net") || !strcmp(names[i][0], "ipc") || !strcmp(names[i][0], "uts"));
		if (of_held)
			snprintf(path, sizeof path, "%s%d/ns/%s", proc < 0 ? "/proc/" : "", (int)held, names[i][1]);
		else
			snprintf(path, sizeof path, "%sself/ns/%s", proc < 0 ? "/proc/" : "", names[i][1]);
		if (fstatat(proc < 0 ? AT_FDCWD : proc, path, &st, 0) < 0)
			continue;
		int n = snprintf(buf + off, size - off, "%s=%" PRIu64 "\n", names[i][0], (uint64_t)st.st_ino);
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
}

/* proc_stat reads the parent pid (field 4) and start time (field 22) of
 * /proc/PID/stat; -1 if the process is gone or the file is malformed. */
static int proc_stat(pid_t pid, pid_t *ppid, unsigned long long *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: count
	 * from the last ')'. Then " S ppid …": field 3 is the state. */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", ppid) != 1)
		return -1;
	p++; /* the space before field 3 */
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	char *end;
	errno = 0;
	*start = strtoull(p + 1, &end, 10);
	return errno || end == p + 1 ? -1 : 0;
}

/* command_by_scan is find_command on a kernel without the children file
 * (CONFIG_PROC_CHILDREN): the child of PID 1 with the earliest start
 * time, the lowest pid among equals, from every process's stat
 * (world-readable). 0 if there is none. */
static pid_t command_by_scan(pid_t pid1)
{
	DIR *d = opendir("/proc");
	if (!d)
		fail("list /proc");
	pid_t best = 0;
	unsigned long long best_start = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		pid_t ppid;
		unsigned long long start;
		if (proc_stat((pid_t)pid, &ppid, &start) < 0 || ppid != pid1)
			continue;
		if (!best || start < best_start || (start == best_start && pid < best)) {
			best = (pid_t)pid;
			best_start = start;
		}
	}
	closedir(d);
	return best;
}

/* find_command returns the sandbox's command: PID 1's oldest child. The
 * others are orphans reparented to PID 1, born later from the command's
 * own descendants. The kernel lists PID 1's children in
 * /proc/PID/task/PID/children (world-readable, even though PID 1 is not
 * dumpable) in the order they became its children, forked or reparented
 * (both append), so the first one listed that is still PID 1's child is
 * the oldest: one read and one stat, not a scan of /proc (Go's
 * procfs.OldestChild reads it the same way). PID 1 is single-threaded,
 * so its main thread's list is all of them. */
static pid_t find_command(pid_t pid1)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid1, (int)pid1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	pid_t found = 0;
	if (fd < 0 && errno == ENOENT) {
		snprintf(path, sizeof path, "/proc/%d", (int)pid1);
		if (access(path, F_OK) == 0)
			found = command_by_scan(pid1);
	} else if (fd >= 0) {
		/* Read in pieces, a pid at a time: the list is as long as PID 1
		 * has orphans. */
		char buf[512];
		long pid = 0;
		int digits = 0;
		ssize_t n;
		/* Each pid is followed by a space; a NUL stands for the end. */
		while (!found && (n = read(fd, buf, sizeof buf)) >= 0) {
			if (n == 0)
				buf[n++] = '\0';
			for (ssize_t i = 0; i < n && !found; i++) {
				if (buf[i] >= '0' && buf[i] <= '9') {
					if (digits++ < 10)
						pid = pid * 10 + (buf[i] - '0');
					continue;
				}
				pid_t ppid;
				unsigned long long start;
				if (digits && digits <= 10 && pid > 0 && pid <= INT32_MAX &&
				    proc_stat((pid_t)pid, &ppid, &start) == 0 && ppid == pid1)
					found = (pid_t)pid;
				pid = 0;
				digits = 0;
			}
			if (buf[n - 1] == '\0')
				break;
		}
		close(fd);
	}
	if (!found) {
		errno = ESRCH;
		fail("the sandbox's command (a child of PID 1, pid %d) is gone", (int)pid1);
	}
	return found;
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
	pid_t pid = c->join.join_pid;

	/* Not dumpable, from here to the command's exec (the clone below
	 * inherits it; exec decides afresh, after it has closed what is
	 * close-on-exec): the child enters the sandbox's PID namespace
	 * holding the caller's files, with the setup's capabilities and no
	 * seccomp filter yet, and a process of the sandbox with the same uid
	 * (root inside, or anyone under --map single once the capabilities
	 * are dropped) could otherwise ptrace it, or open its /proc/PID/fd.
	 * The ptrace and /proc rules (ptrace(2), "Ptrace access mode
	 * checking") then ask for CAP_SYS_PTRACE in the user namespace the
	 * stage was executed in, which no process of the sandbox has. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("prctl(PR_SET_DUMPABLE)");
	/* A live operation runs nothing and needs no stdio; a pre-forked
	 * stage came with the launcher's own (its terminal, say), which has
	 * no business in the sandbox's namespaces: the host's /dev/null on
	 * 0, 1 and 2, before anything is joined. */
	if (c->join.live_op) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			fail("put /dev/null on the live operation's stdio");
		if (null > 2)
			close(null);
	}

	/* The pid is only a number until it is pinned: pidfd first, then the
	 * start time proves it is still the sandbox's PID 1; after the
	 * command's namespaces are open, a signal 0 through the pidfd proves
	 * PID 1 did not end in between (its end kills the command too, so a
	 * reused pid would have been found without a parent of that pid). */
	pid_t ppid;
	unsigned long long start = 0;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 || proc_stat(pid, &ppid, &start) < 0 || start != c->join.join_start) {
		errno = ESRCH;
		fail("the sandbox's PID 1 (pid %d) is gone", (int)pid);
	}
	/* PID 1 is not dumpable (nobody may read its descriptors), so the
	 * namespaces are the command's: the sandbox's own, and with a nested
	 * user and mount namespace (sandbox/nested.go) those of the nesting,
	 * so a joined command shares the command's view and is as locked in.
	 * A command that is PID 1 itself (pid1-command) is dumpable, and
	 * its namespaces are read from it. */
	pid_t cmd = c->join.join_pid1_command ? pid : find_command(pid);
	int userfd = open_ns(cmd, "user");
	int outer = userfd;
	if (c->join.join_nested) {
		/* The sandbox's user namespace is the nested one's parent: the
		 * others (pid, net, …) belong to it and are joined from there. */
		outer = ioctl(userfd, NS_GET_PARENT);
		if (outer < 0)
			fail("find the sandbox's user namespace (NS_GET_PARENT)");
	}
	int fds[NJOIN];
	for (size_t i = 0; i < NJOIN; i++)
		fds[i] = (c->ns.unshare_flags & join_order[i].flag) ? open_ns(cmd, join_order[i].name) : -1;
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/root", (int)cmd);
	int rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail("open %s", path);
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 ||
	    proc_stat(cmd, &ppid, &start) < 0 || ppid != pid) {
		errno = ESRCH;
		fail("the sandbox's PID 1 (pid %d) is gone", (int)pid);
	}
	close(pidfd);
	/* nsbox mount, umount, pause, Sandbox.Dial: live.c, instead of a command. */
	if (c->join.live_op)
		live_run(c, outer, fds[0], fds[1], fds[2], rootfd);

	/* 1. The sandbox's user namespace, first. */
	if (setns(outer, CLONE_NEWUSER) < 0)
		fail("join the sandbox's user namespace (setns)");
	/* 2. The others, now that we hold capabilities over them; the mount
	 * namespace of a nested command last, from inside its user
	 * namespace, which owns it. */
	for (size_t i = 0; i < NJOIN; i++) {
		if (fds[i] < 0 || (c->join.join_nested && join_order[i].flag == CLONE_NEWNS))
			continue;
		if (setns(fds[i], join_order[i].flag) < 0)
			fail("join the sandbox's %s namespace (setns)", join_order[i].name);
		close(fds[i]);
	}
	if (c->join.join_nested) {
		if (setns(userfd, CLONE_NEWUSER) < 0)
			fail("join the command's nested user namespace (setns)");
		if (setns(fds[0], CLONE_NEWNS) < 0)
			fail("join the command's mount namespace (setns)");
		close(fds[0]);
		close(outer);
	}
	close(userfd);
	/* 3. Its root; run_command enters the working directory. */
	if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		fail("enter the sandbox's root directory");
	close(rootfd);
	/* --tty: the command's terminal, from the sandbox's /dev/ptmx; its
	 * master goes to the launcher before EXEC_OK. */
	open_join_terminal(c);

	/* 4. The command, in the sandbox's PID namespace, as the launcher's
	 * child. run_command re-arms the parent-death signal once it has its
	 * identity (changing it clears the setting). */
	c->ns.parent_death = 1;
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0)
		fail("create the exec report pipe");
	pid_t joined = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
	if (joined < 0)
		fail("start the command (clone)");
	if (joined == 0) {
		close(report[0]);
		run_command(c, report[1]);
	}
	close(report[1]);

	/* EOF on the close-on-exec pipe: the exec succeeded. The launcher
	 * reaps the child either way; it is its child, not ours. */
	int err = 0, step = read_exec_report(report[0], &err);
	if (step < 0) {
		send_msg(NSBOX_MSG_EXEC_OK, joined, NULL);
		_exit(0);
	}
	exec_failed(c, step, err);
}
