/*
 * handoff.c: the small supervisor a launcher becomes once its sandbox runs
 * (Sandbox.HandOff, handoff.go).
 *
 * While a sandbox idles, its Go launcher only waits: for PID 1 to end, for
 * signals to pass on, for job-control stops to mirror. A Go process costs
 * megabytes of resident memory for that (runtime, heap, threads, touched
 * text); this code costs a few pages. The launcher execs its own binary
 * (same pid, same argv) with NSBOX_HANDOFF_ENV set; the ELF constructor
 * calls nsbox_handoff before the Go runtime starts, and it never returns.
 *
 * It keeps the launcher's duties and nothing else: PID 1 stays its child
 * (exec keeps the pid; PID 1 disarmed its parent-death signal for the
 * exec, which ends every thread but one, and is told to arm it again
 * here), the signals nsbox run forwards still reach the command, a stopped
 * command still hands the terminal back, and at the end the cleanup steps
 * the launcher listed run and the process exits with the command's status,
 * as the launcher would have. Descriptors the launcher left open (the
 * state entry's lock, the sealed record) stay open until then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "stage.h"

/* handoff_state is the launcher's part of the sandbox, from the variable. */
struct handoff_state {
	pid_t pid1;
	int sync;      /* the launcher's end of the stage socket */
	int status_fd; /* --json-status-fd, or -1 */
	int tty;       /* the terminal the command was given (a host fd), or -1 */
	pid_t pgrp;    /* the launcher's process group, to give the terminal back */
};

/* nibble is the value of the hex digit c, or -1. (Not sscanf's "%2x": its
 * scanning took more instructions than the rest of the hand-off's
 * cleanup.) */
static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* hex_path decodes the hex text at s (up to the next ':', ';' or the end) into
 * a malloc'd string, and sets *end past it. NULL if it is not hex. */
static char *hex_path(const char *s, const char **end)
{
	size_t n = strcspn(s, ":;");
	if (n == 0 || n % 2)
		return NULL;
	char *p = malloc(n / 2 + 1);
	if (!p)
		return NULL;
	for (size_t i = 0; i < n; i += 2) {
		int hi = nibble(s[i]), lo = nibble(s[i + 1]);
		if (hi < 0 || lo < 0 || (hi | lo) == 0) {
			free(p);
			return NULL;
		}
		p[i / 2] = (char)(hi << 4 | lo);
	}
	p[n / 2] = '\0';
	*end = s + n;
	return p;
}

/* nsbox_run_after runs the cleanup steps, "VERB:HEXPATH[:HEXPATH]"
 * separated by ';' (handoff.go encodes them; a close step's "path" is a
 * descriptor's number). Failures are ignored, as the launcher's
 * own cleanup ignores them: the state directory's sweep removes leftovers. */
void nsbox_run_after(const char *ops)
{
	while (ops && *ops) {
		const char *verb = ops, *p = strchr(ops, ':');
		if (!p)
			return;
		char *a = hex_path(p + 1, &p), *b = NULL;
		if (!a)
			return;
		if (*p == ':')
			b = hex_path(p + 1, &p);
		if (!strncmp(verb, "unlink:", 7))
			unlink(a);
		else if (!strncmp(verb, "rmdir:", 6))
			rmdir(a);
		else if (!strncmp(verb, "mkdir:", 6))
			mkdir(a, 0700);
		else if (!strncmp(verb, "rename:", 7) && b)
			rename(a, b);
		else if (!strncmp(verb, "close:", 6)) {
			/* A kept descriptor, once the steps before it are done
			 * (handoff.Close): its number in decimal. */
			char *e;
			long fd = strtol(a, &e, 10);
			if (*e == '\0' && fd > 2 && fd <= INT_MAX)
				close((int)fd);
		}
		free(a);
		free(b);
		ops = *p == ';' ? p + 1 : NULL;
	}
}

/* give_back_terminal puts the launcher's process group back in the
 * terminal's foreground (SIGTTOU is blocked, as every signal here). */
static void give_back_terminal(const struct handoff_state *s)
{
	if (s->tty >= 0)
		tcsetpgrp(s->tty, s->pgrp);
}

/* suspend mirrors a stopped command to the shell, as the Go launcher's
 * tty.Foreground.Suspend (sandbox/internal/tty/foreground.go): take the terminal back, stop our process group, and once the
 * shell continues us tell PID 1 whether the command gets the terminal. */
static void suspend(const struct handoff_state *s)
{
	give_back_terminal(s);
	/* Stop ourselves, as the command's Ctrl-Z stops a plain child; the
	 * whole process group only when we lead it (it is then our job, a
	 * shell's pipeline): a caller's group (a script, its other jobs) is
	 * not ours to stop. Returns once we are continued. */
	if (s->tty >= 0)
		kill(getpgrp() == getpid() ? 0 : getpid(), SIGSTOP);
	int fg = s->tty >= 0 && tcgetpgrp(s->tty) == s->pgrp;
	struct nsbox_msg m = {.kind = NSBOX_MSG_RESUME, .value = fg, .len = 0};
	(void)!write(s->sync, &m, sizeof m);
}

/* read_message reads one message from PID 1 and drops its payload;
 * -1 once the socket is closed. */
static int read_message(int fd, struct nsbox_msg *m)
{
	size_t got = 0;
	while (got < sizeof *m) {
		ssize_t n = read(fd, (char *)m + got, sizeof *m - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	char buf[256];
	for (uint32_t left = m->len; left > 0;) {
		ssize_t n = read(fd, buf, left < sizeof buf ? left : sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		left -= (uint32_t)n;
	}
	return 0;
}

__attribute__((noreturn)) static void finish(const struct handoff_state *s, int status, const char *after)
{
	int code = 125;
	if (WIFEXITED(status))
		code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		code = 128 + WTERMSIG(status);
	give_back_terminal(s);
	if (s->status_fd >= 0)
		dprintf(s->status_fd, "{ \"exit-code\": %d }\n", code);
	nsbox_run_after(after);
	_exit(code);
}

/* die_from ends the process as the signal's default action would have
 * ended the Go launcher (its runtime does the same for a signal nobody
 * asked for); PID 1 follows through its parent-death signal. */
__attribute__((noreturn)) static void die_from(int sig)
{
	signal(sig, SIG_DFL);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	raise(sig);
	_exit(128 + sig);
}

void nsbox_handoff(void)
{
	struct handoff_state s;
	const char *v = getenv(NSBOX_HANDOFF_ENV);
	int consumed = 0;
	if (!v || sscanf(v, "%d,%d,%d,%d,%d%n", &s.pid1, &s.sync, &s.status_fd, &s.tty, &s.pgrp, &consumed) != 5 || s.pid1 <= 0) {
		fprintf(stderr, "nsbox: %s=%s: not a hand-off from the launcher; fix: do not set %s yourself\n",
			NSBOX_HANDOFF_ENV, v ? v : "", NSBOX_HANDOFF_ENV);
		_exit(125);
	}
	const char *after = v[consumed] == ';' ? v + consumed + 1 : "";
	nsbox_supervise(s.pid1, s.sync, s.status_fd, s.tty, s.pgrp, after);
}

void nsbox_supervise(pid_t pid1, int sync, int status_fd, int tty, pid_t pgrp, const char *after)
{
	struct handoff_state s = {.pid1 = pid1, .sync = sync, .status_fd = status_fd, .tty = tty, .pgrp = pgrp};

	/* Every signal stays blocked (the launcher blocked them before its
	 * exec, so none got lost in between) and is read from a signalfd. */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	int sfd = signalfd(-1, &all, SFD_CLOEXEC);
	if (sfd < 0) {
		/* Cannot supervise: end the sandbox rather than leave it to
		 * nobody (PID 1 dies with us). */
		perror("nsbox: hand-off: create a signalfd");
		_exit(125);
	}
	/* The launcher's end was non-blocking (its poller's). */
	fcntl(s.sync, F_SETFL, fcntl(s.sync, F_GETFL) & ~O_NONBLOCK);
	/* PID 1 disarmed its parent-death signal for the exec; we are its
	 * parent now, whatever thread of the launcher it had: arm it again. */
	struct nsbox_msg arm = {.kind = NSBOX_MSG_ARM, .value = 0, .len = 0};
	(void)!write(s.sync, &arm, sizeof arm);
	struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = s.sync, .events = POLLIN}};
	for (;;) {
		/* First, and after every wake-up: PID 1 may have ended before
		 * the signalfd existed. */
		int status;
		pid_t w = waitpid(s.pid1, &status, WNOHANG);
		if (w == s.pid1)
			finish(&s, status, after);
		if (w < 0 && errno == ECHILD) {
			fprintf(stderr, "nsbox: hand-off: PID 1 (pid %d) is not our child; fix: report this as a bug\n", (int)s.pid1);
			_exit(125);
		}
		if (poll(fds, fds[1].fd >= 0 ? 2 : 1, -1) < 0)
			continue;
		if (fds[1].revents) {
			struct nsbox_msg m;
			if (read_message(s.sync, &m) < 0)
				fds[1].fd = -1; /* PID 1 is gone: its SIGCHLD follows */
			else if (m.kind == NSBOX_MSG_STOPPED)
				suspend(&s);
			else if (m.kind == NSBOX_MSG_EXITED && after) {
				/* The command ended and PID 1 exits next: the
				 * cleanup runs while the kernel tears PID 1 and
				 * its namespaces down, not after. */
				nsbox_run_after(after);
				after = NULL;
			}
		}
		if (!(fds[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != sizeof si)
			continue;
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
		case SIGHUP:
		case SIGQUIT:
		case SIGUSR1:
		case SIGUSR2:
		case SIGWINCH:
			/* What nsbox run forwards (cmd/nsbox catchSignals). */
			kill(s.pid1, (int)si.ssi_signo);
			break;
		case SIGCHLD:
		case SIGCONT:
		case SIGURG:
		case SIGPIPE:
			break;
		case SIGTSTP:
		case SIGTTIN:
		case SIGTTOU:
			kill(getpid(), SIGSTOP); /* their default, as in the launcher */
			break;
		default:
			die_from((int)si.ssi_signo);
		}
	}
}
