/*
 * pty.c: the command's pseudo-terminal (nsbox run --tty, nsbox shell).
 *
 * PID 1 mounts a new devpts instance of the sandbox's own on /dev/pts,
 * opens a pseudo-terminal pair from it and sends the master to the
 * launcher over the sync socket (SCM_RIGHTS); the launcher copies between
 * the master and the user's terminal. PID 1 leads the terminal's session;
 * the command gets the slave as fds 0, 1 and 2 and runs in the terminal's
 * foreground process group, so job control, Ctrl-C and Ctrl-Z work inside
 * exactly as on a host terminal.
 *
 * Why a devpts of our own: the pty then belongs to the sandbox (the
 * command sees only its own terminals in /dev/pts, and its slave's owner
 * is an id of the sandbox), and the host's terminal is never handed in,
 * so nothing inside can push input into it (TIOCSTI) or read its buffers.
 * A devpts instance may be mounted in a user namespace that owns the mount
 * namespace (devpts is FS_USERNS_MOUNT) and maps root; "newinstance" is
 * the default since Linux 4.7 and is asked for explicitly for older
 * kernels. Without root mapped (--map single, not --root) the kernel
 * refuses the mount and the pty comes from the host's devpts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "stage.h"
#include "stagelib.h"
#include "mounts.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* pty_slave is the slave end: PID 1's controlling terminal, and the
 * command's fds 0-2. */
static int pty_slave = -1;

int terminal_fd(void)
{
	return pty_slave;
}

/* mount_devpts gives the sandbox its own /dev/pts and points /dev/ptmx at
 * its multiplexer, so programs inside (script, tmux, ssh) that open
 * /dev/ptmx get terminals of this instance too. The --dev op (mounts_dev.c)
 * has done it already where it ran; otherwise it is done here as every
 * mount is: targets opened inside the root with RESOLVE_IN_ROOT and no
 * symlinks followed, the mount attached to the descriptor, so a --rootfs
 * the user controls cannot redirect it. */
static void mount_devpts(void)
{
	if (mnt_devpts_made)
		return;
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int pts = root < 0 ? -1 : mnt_sys_openat2(root, "dev/pts", O_PATH | O_DIRECTORY, IN_ROOT | RESOLVE_NO_SYMLINKS);
	if (pts < 0)
		fail_fix("give the sandbox a /dev (--dev /dev), or drop --tty", "open /dev/pts in the sandbox");
	const char *opts[] = {"newinstance", NULL, "ptmxmode", "0666", "mode", "620", NULL};
	int m = mnt_new_fs("devpts", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	if (m < 0)
		fail_fix("run nsbox on a kernel that allows devpts in user namespaces (Linux 4.7+), or drop --tty",
			 "mount a new devpts instance on /dev/pts");
	mnt_attach(m, pts, "--tty");
	/* /dev/ptmx may be a symlink to pts/ptmx already; else bind the new
	 * instance's multiplexer over it (a bind over a symlink would follow
	 * it, so it is opened without following). */
	struct stat st;
	int ptmx = mnt_sys_openat2(root, "dev/ptmx", O_PATH | O_NOFOLLOW, IN_ROOT | RESOLVE_NO_SYMLINKS);
	if (ptmx < 0 || fstat(ptmx, &st) < 0)
		fail("open /dev/ptmx in the sandbox");
	if (S_ISLNK(st.st_mode)) {
		close(ptmx);
		close(root);
		return;
	}
	int t = open_tree(root, "dev/pts/ptmx", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	if (t < 0)
		fail("bind /dev/pts/ptmx over /dev/ptmx");
	mnt_attach(t, ptmx, "--tty");
	close(root);
}

/* pty_keep: the bits of fds 0-2 that stay the launcher's files (a pipe,
 * a file) instead of becoming the slave: only the caller's terminal ends
 * are replaced by the sandbox's own terminal. */
static int pty_keep = 0;

/* pty_lead: the command leads the terminal's session itself (nsbox exec
 * --tty, where no PID 1 of ours stands between), instead of joining the
 * foreground group of PID 1's session. */
static int pty_lead = 0;

/* open_pair opens a pseudo-terminal from the multiplexer at ptmx, gives the
 * slave to uid:gid, sets the window size, sends the master to the launcher
 * and keeps the slave in pty_slave. */
static void open_pair(const char *ptmx, uid_t uid, gid_t gid, const struct config *c)
{
	int master = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail("open a pseudo-terminal (%s)", ptmx);
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		fail("unlock the pseudo-terminal");
	/* TIOCGPTPEER opens the slave through the master, not by path, so no
	 * name in /dev/pts can be swapped in between (Linux 4.13+). */
	pty_slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (pty_slave < 0)
		fail("open the pseudo-terminal's slave (TIOCGPTPEER)");
	/* The terminal belongs to the user of the session, as login(1)
	 * arranges on a host: the command may then change its mode. */
	if (fchown(pty_slave, uid, gid) < 0)
		fail("give the pseudo-terminal to uid %u gid %u", (unsigned)uid, (unsigned)gid);
	if (c->term.pty_rows > 0 && c->term.pty_cols > 0) {
		struct winsize ws = {.ws_row = (unsigned short)c->term.pty_rows, .ws_col = (unsigned short)c->term.pty_cols};
		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			fail("set the terminal's window size");
	}
	send_fd(NSBOX_MSG_PTY_MASTER, master, "the terminal");
	close(master);
	pty_keep = c->term.pty_keep;
}

void open_terminal(const struct config *c)
{
	if (!c->term.pty)
		return;
	/* devpts refuses to be mounted in a user namespace that does not map
	 * root (its files need an owner for 0): there the pty comes from the
	 * host's instance, as bubblewrap's --dev does. */
	const char *ptmx = "/dev/ptmx";
	if (c->ids.setup_root) {
		mount_devpts();
		ptmx = "/dev/pts/ptmx";
	}
	/* The command's ids as this user namespace sees them (nested.go). */
	open_pair(ptmx, (uid_t)c->ids.nest_uid, (gid_t)c->ids.nest_gid, c);
	/* PID 1 leads the terminal's session, as getty or sshd's session
	 * process would: the command's group then has a parent in the same
	 * session but another group, so the kernel lets Ctrl-Z stop it (it
	 * ignores terminal stop signals sent to an orphaned group, which a
	 * session leader's own group always is). PID 1 keeps the slave open
	 * to hand the foreground back when the command is continued. */
	if (setsid() < 0 || ioctl(pty_slave, TIOCSCTTY, 0) < 0)
		fail("make the pseudo-terminal PID 1's controlling terminal");
}

void open_join_terminal(const struct config *c)
{
	if (!c->term.pty)
		return;
	/* Inside the sandbox's root: /dev/ptmx is its own devpts's (or the
	 * host's, where the sandbox could not mount one), never the caller's
	 * terminal. */
	open_pair("/dev/ptmx", c->cmd.uid, c->cmd.gid, c);
	pty_lead = 1;
}

int attach_terminal(void)
{
	if (pty_slave < 0)
		return 0;
	if (pty_lead) {
		/* A session of its own with the terminal as its controlling
		 * one, as a login shell gets. */
		if (setsid() < 0 || ioctl(pty_slave, TIOCSCTTY, 0) < 0)
			return -1;
	} else if (setpgid(0, 0) < 0 || tcsetpgrp(pty_slave, getpid()) < 0) {
		/* A process group of its own, in the terminal's foreground:
		 * Ctrl-C and Ctrl-Z reach the command (and a shell's jobs,
		 * which it moves into groups of their own), never PID 1.
		 * Signals are still blocked here, so tcsetpgrp from a
		 * background group cannot stop us. */
		return -1;
	}
	for (int fd = 0; fd < 3; fd++)
		if (!(pty_keep & (1 << fd)) && dup2(pty_slave, fd) < 0)
			return -1;
	if (pty_slave > 2)
		close(pty_slave);
	return 0;
}

void resume_terminal(pid_t cmd)
{
	if (pty_slave >= 0)
		tcsetpgrp(pty_slave, cmd);
}
