//go:build nsbox_helper && amd64 && cgo

/*
 * early.c starts --net user's helper from the ELF constructor, before the
 * Go runtime: for an `nsbox run` whose flags ask for --net user, the
 * stage's constructor (sandbox/internal/stage/stage.go) calls
 * nsbox_early_helper once the pre-forked stage exists, and the helper's
 * exec, Go runtime and package inits (about 2 ms of CPU) then run while
 * the launcher's own Go runtime starts, on a core that is idle then,
 * instead of beside the stage and PID 1 after CONFIG (docs/startup.md,
 * "--net user's start"). The Go side (early.go: Early) hands the started
 * helper to package nethelper, which adopts it or, when the flags say
 * otherwise, kills and reaps it.
 *
 * It takes the loader's path only (helper.go's viaLoader): nsbox's file
 * must be a regular file of root's that no group or other can write, and
 * make build must have written where the helper and its loader are in
 * that file into where below (cmd/internal/helper/align, "mark"). Anything
 * else returns with nothing started, and the Go launcher starts the
 * helper as before (an installed copy, the loader, or a sealed memfd). The
 * helper gets what the Go side gives it: argv "nsbox-helper net", stdin
 * a pipe whose write end the launcher keeps, stdout /dev/null, stderr
 * nsbox's, fd 3 nsbox's file (the loader's), fd 4 its end of a
 * SOCK_SEQPACKET pair, the environment with GOMAXPROCS (network.Procs)
 * unless set, and no other descriptor.
 *
 * The flags are read as far as "--": the last --net (or --net=) names the
 * mode. A word of the command that looks like the flag starts a helper
 * the launcher then kills; a mode given another way (--spec) finds none,
 * and the launcher starts one: a wrong guess costs time, never a process
 * left behind or a different network.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* where is found by its magic and filled in by make build after the link
 * (align's mark): the helper's offset in nsbox's file (page-aligned),
 * and the loader's offset and length. Zero: not marked, nothing starts. */
static volatile const struct {
	char magic[8];
	uint64_t helper, loader, loader_len;
} where __attribute__((used)) = {{'N', 'S', 'B', 'X', 'H', 'W', 'R', '1'}, 0, 0, 0};

/* The started helper, for early.go; -1 when none. */
int nsbox_early_helper_pid = -1;
int nsbox_early_helper_stdin = -1; /* the write end of its stdin */
int nsbox_early_helper_sock = -1;  /* the launcher's end of its socket */

/* The child's descriptors, as helper.Command and nethelper's start give
 * them; LOADER_FD is helper.go's loaderFD. */
#define EXE_FD 3
#define SOCK_FD 4
#define LOADER_FD 64
#define MAX_LOADER (1 << 20)
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* wants_net_user reads `nsbox run`'s flags from /proc/self/cmdline up to
 * "--": the last --net says. --help, -h, --print-spec and --detach start
 * no sandbox in this process. */
static int wants_net_user(void)
{
	static char buf[64 * 1024];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t len = 0, r;
	while (len < (ssize_t)sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += r;
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = 0;
	int user = 0, n = 0;
	const char *prev = "";
	for (const char *p = buf; p < buf + len; prev = p, p += strlen(p) + 1, n++) {
		if (n < 2) /* nsbox, run */
			continue;
		if (!strcmp(p, "--"))
			break;
		if (!strcmp(p, "--help") || !strcmp(p, "-h") || !strcmp(p, "--print-spec") || !strcmp(p, "--detach"))
			return 0;
		if (!strncmp(p, "--net=", 6))
			user = !strcmp(p + 6, "user");
		else if (!strcmp(prev, "--net"))
			user = !strcmp(p, "user");
	}
	return user;
}

/* loader_memfd is the loader, read from nsbox's file with the helper's
 * offset written into its cfg (loader.c), in a sealed memfd. */
static int loader_memfd(int exe)
{
	uint64_t off = where.loader, len = where.loader_len, helper = where.helper;
	if (len < 64 || len > MAX_LOADER || helper == 0 || helper % 4096 != 0)
		return -1;
	char *b = malloc(len);
	if (!b)
		return -1;
	int fd = -1;
	if (pread(exe, b, len, (off_t)off) != (ssize_t)len || memcmp(b, "\177ELF", 4))
		goto out;
	char *cfg = memmem(b, len, "NSBXLDR1", 8);
	if (!cfg || cfg + 16 > b + len)
		goto out;
	memcpy(cfg + 8, &helper, 8); /* little-endian, as the loader reads it */
	fd = memfd_create("nsbox-helper-loader", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		goto out;
	if (write(fd, b, len) != (ssize_t)len ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		close(fd);
		fd = -1;
	}
out:
	free(b);
	return fd;
}

/* high moves fd above the numbers the child's descriptors take
 * (close-on-exec); -1 stays -1. */
static int high(int fd)
{
	if (fd < 0)
		return -1;
	int h = fcntl(fd, F_DUPFD_CLOEXEC, LOADER_FD + 1);
	close(fd);
	return h;
}

/* environment is environ with GOMAXPROCS=network.Procs() (half the CPUs
 * this process may run on, at least 1) unless it is set. */
static char **environment(void)
{
	size_t n = 0;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "GOMAXPROCS=", 11))
			return environ;
		n++;
	}
	char **env = malloc((n + 2) * sizeof *env);
	static char procs[32];
	if (!env)
		return NULL;
	cpu_set_t set;
	int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
	snprintf(procs, sizeof procs, "GOMAXPROCS=%d", cpus / 2 > 1 ? cpus / 2 : 1);
	memcpy(env, environ, n * sizeof *env);
	env[n] = procs;
	env[n + 1] = NULL;
	return env;
}

void nsbox_early_helper(void)
{
	if (where.helper == 0 || fcntl(2, F_GETFD) < 0 || !wants_net_user())
		return;
	int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (exe < 0)
		return;
	/* helper.go's onlyRootWrites: the loader's path only. */
	if (fstat(exe, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
		close(exe);
		return;
	}
	int in[2] = {-1, -1}, sv[2] = {-1, -1};
	int ldr = high(loader_memfd(exe)), null = high(open("/dev/null", O_WRONLY | O_CLOEXEC));
	exe = high(exe);
	if (pipe2(in, O_CLOEXEC) == 0) {
		in[0] = high(in[0]);
		in[1] = high(in[1]);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
		sv[0] = high(sv[0]);
		sv[1] = high(sv[1]);
	}
	char **env = environment();
	char *argv[] = {"nsbox-helper", "net", NULL};
	pid_t pid = -1;
	static volatile int exec_failed;
	if (ldr >= 0 && null >= 0 && exe >= 0 && in[0] >= 0 && in[1] >= 0 && sv[0] >= 0 && sv[1] >= 0 && env)
		pid = vfork();
	if (pid == 0) {
		/* Only system calls here: the parent waits, on this memory,
		 * for the exec. */
		if (dup2(in[0], 0) >= 0 && dup2(null, 1) >= 0 && dup2(exe, EXE_FD) >= 0 && dup2(sv[1], SOCK_FD) >= 0 &&
		    dup2(ldr, LOADER_FD) >= 0) {
			syscall(SYS_close_range, SOCK_FD + 1, LOADER_FD - 1, 0);
			syscall(SYS_close_range, LOADER_FD + 1, ~0U, 0);
			/* Close-on-exec: exec opens the program first. Through
			 * /proc, as helper.Command runs it: named "64" until it
			 * names itself (execveat's AT_EMPTY_PATH names it after
			 * the memfd on recent kernels). */
			fcntl(LOADER_FD, F_SETFD, FD_CLOEXEC);
			execve("/proc/self/fd/64", argv, env);
			syscall(SYS_execveat, LOADER_FD, "", argv, env, AT_EMPTY_PATH);
		}
		exec_failed = 1; /* the parent's memory: it reads it once we exit */
		_exit(127);
	}
	if (env != environ)
		free(env);
	int done[] = {ldr, null, exe, in[0], sv[1]};
	for (size_t i = 0; i < sizeof done / sizeof done[0]; i++)
		if (done[i] >= 0)
			close(done[i]);
	if (pid > 0 && exec_failed) {
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	if (pid < 0) {
		if (in[1] >= 0)
			close(in[1]);
		if (sv[0] >= 0)
			close(sv[0]);
		return;
	}
	nsbox_early_helper_pid = pid;
	nsbox_early_helper_stdin = in[1];
	nsbox_early_helper_sock = sv[0];
}
