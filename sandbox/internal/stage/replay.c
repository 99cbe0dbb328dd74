/*
 * replay.c: `nsbox run` without the Go runtime, for an invocation the Go
 * launcher has run before (internal/replay is the Go half and says what
 * a plan is; cmd/nsbox/replay.go decides which runs get one).
 *
 * The ELF constructor calls nsbox_replay for `nsbox run`, before any
 * stage is forked. It finds the plan of this command line and working
 * directory in the store, checks its HMAC, then checks every input the
 * plan was derived from, byte for byte: the command line, the whole
 * environment, the working directory, the ids, groups and umask, and what
 * each file and directory the planner looked at looks like now. As soon
 * as the plan's file is found, the stage is forked in a user namespace of
 * its own (nsbox_prefork_userns), which makes its early namespaces while
 * the plan is read; it waits for a CONFIG that only a plan that checks
 * gets. Once the plan is authentic and the command line, environment and
 * ids match, the maps' steps start (newuidmap and newgidmap on the other
 * core while the files are checked: struct maps). Only when every input
 * matches does it run the plan: the state entry reserved, the stage sent
 * the recorded CONFIG, the maps' helpers reaped and MAPS_DONE sent, then
 * once the command runs the state record written from its template, and
 * from there on handoff.c's supervisor loop, which relays signals and
 * exits with the command's status.
 *
 * Anything else returns 0 before the stage was sent anything, with the
 * stage the Go launcher expects pre-forked (a stage born in a user
 * namespace, and the helpers working on it, are killed first), and the Go
 * launcher runs as if there were no plan. After the CONFIG, a failure the
 * stage or PID 1 reports (ERROR, EXEC_FAILED: the command did not run)
 * also returns: what was started is killed and reaped, the state entry
 * removed, a fresh stage forked, and Go starts the same invocation over,
 * meets the same failure and reports it in its own words. This file
 * prints nothing of its own but the plan's notice, which the Go launcher
 * printed at the same point of the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "replay.h"
#include "stage.h"

extern char **environ;

/* nsbox_replay_why says why the last nsbox_replay returned (the Go side
 * reads it for NSBOX_FASTPATH=replay's diagnostics); "" when it was not
 * tried. */
char nsbox_replay_why[512];
/* nsbox_replay_noticed is set once the plan's notice is printed: a Go
 * launcher that runs after all does not print it again. */
int nsbox_replay_noticed;
/* nsbox_replay_sent is set once the stage got the plan's CONFIG: a
 * fall-through after that is the sandbox's own failure (the command did
 * not run), which the Go launcher meets again and reports. */
int nsbox_replay_sent;

static int why(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(nsbox_replay_why, sizeof nsbox_replay_why, fmt, ap);
	va_end(ap);
	return 0;
}

/* --- the inputs, as internal/replay's Look, Identity and Creds ---------------- */

/* read_fd reads fd to its end, or cap bytes; -1 on error. */
static ssize_t read_fd(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

/* Number formatting for the checks, without printf: a check formats up to
 * ten numbers, a plan has tens of checks, and musl's snprintf took two
 * thirds of the replay's instructions (single-stepped: 245 000 of 716 000
 * in the checks' formatting alone). */

static const char hexdigits[] = "0123456789abcdef";

/* dec writes v in decimal at p and returns the end. */
static char *dec(char *p, unsigned long long v)
{
	char t[20];
	int n = 0;
	do
		t[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = t[--n];
	return p;
}

/* sdec is dec for a signed number. */
static char *sdec(char *p, long long v)
{
	if (v < 0) {
		*p++ = '-';
		return dec(p, 0ULL - (unsigned long long)v);
	}
	return dec(p, (unsigned long long)v);
}

/* oct writes v in octal at p and returns the end. */
static char *oct(char *p, unsigned v)
{
	char t[12];
	int n = 0;
	do
		t[n++] = (char)('0' + (v & 7));
	while (v >>= 3);
	while (n)
		*p++ = t[--n];
	return p;
}

/* stamp writes a time as "SEC.NNNNNNNNN" at p and returns the end. */
static char *stamp(char *p, const struct timespec *t)
{
	p = sdec(p, (long long)t->tv_sec);
	*p++ = '.';
	long ns = t->tv_nsec;
	for (int i = 8; i >= 0; i--, ns /= 10)
		p[i] = (char)('0' + ns % 10);
	return p + 9;
}

/* give copies the n bytes at t to out as snprintf would (at most cap - 1
 * and a NUL) and returns n. */
static int give(char *out, size_t cap, const char *t, size_t n)
{
	if (cap > 0) {
		size_t k = n < cap ? n : cap - 1;
		memcpy(out, t, k);
		out[k] = 0;
	}
	return (int)n;
}

/* identity is a file's look for an 'S' or 'L' check (internal/replay
 * Look): "DEV INO MODE(octal) UID GID", and for other than directories
 * " SIZE MTIME CTIME" after it. */
static int identity(const struct stat *st, char *out, size_t cap)
{
	char t[160], *p = t;
	p = dec(p, (unsigned long long)st->st_dev);
	*p++ = ' ';
	p = dec(p, (unsigned long long)st->st_ino);
	*p++ = ' ';
	p = oct(p, (unsigned)st->st_mode);
	*p++ = ' ';
	p = dec(p, (unsigned)st->st_uid);
	*p++ = ' ';
	p = dec(p, (unsigned)st->st_gid);
	if (!S_ISDIR(st->st_mode)) {
		*p++ = ' ';
		p = sdec(p, (long long)st->st_size);
		*p++ = ' ';
		p = stamp(p, &st->st_mtim);
		*p++ = ' ';
		p = stamp(p, &st->st_ctim);
	}
	return give(out, cap, t, (size_t)(p - t));
}

/* failed is the look of a check whose call failed: "E" and the errno. */
static int failed(int err, char *out, size_t cap)
{
	char t[24], *p = t;
	*p++ = 'E';
	p = sdec(p, err);
	return give(out, cap, t, (size_t)(p - t));
}

int nsbox_replay_look(char kind, const char *path, char *out, size_t cap)
{
	switch (kind) {
	case 'S':
	case 'L': {
		struct stat st;
		if ((kind == 'S' ? stat(path, &st) : lstat(path, &st)) < 0)
			return failed(errno, out, cap);
		return identity(&st, out, cap);
	}
	case 'R': {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return failed(errno, out, cap);
		if (cap < 4097) {
			close(fd);
			return -1;
		}
		out[0] = '=';
		ssize_t r = read_fd(fd, out + 1, 4096);
		int err = errno;
		close(fd);
		if (r < 0)
			return failed(err, out, cap);
		return (int)r + 1;
	}
	case 'Y': {
		if (cap < 4097)
			return -1;
		out[0] = '=';
		ssize_t r = readlink(path, out + 1, 4096);
		if (r < 0)
			return failed(errno, out, cap);
		return (int)r + 1;
	}
	case 'F': {
		struct statfs st;
		if (statfs(path, &st) < 0)
			return failed(errno, out, cap);
		char t[48], *p = dec(t, (unsigned long long)st.f_type);
		*p++ = ' ';
		p = dec(p, (unsigned long long)st.f_flags);
		return give(out, cap, t, (size_t)(p - t));
	}
	}
	return snprintf(out, cap, "?");
}

int nsbox_replay_creds(char *out, size_t cap)
{
	char buf[8192];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read_fd(fd, buf, sizeof buf - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = 0;
	size_t n = 0;
	static const char *const keys[] = {"Umask:", "Uid:", "Gid:", "Groups:"};
	for (char *line = buf; *line;) {
		char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
		for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
			if (!strncmp(line, keys[k], strlen(keys[k]))) {
				if (n + len >= cap)
					return -1;
				memcpy(out + n, line, len);
				n += len;
			}
		}
		line += len;
	}
	return (int)n;
}

/* --- the plan ------------------------------------------------------------- */

#define MAGIC "NSBOXRP1"
#define MAX_PLAN (16u << 20)
#define MAX_CHECKS 1024

struct blob {
	const char *p;
	size_t len;
};

struct plan {
	struct blob argv, env, creds, cwd, config, uidmap, gidmap, record, statedir, notice, name, sweep;
	struct blob checks[MAX_CHECKS];
	int nchecks;
};

/* parse_plan splits b (authenticated already) into its sections. */
static int parse_plan(const char *b, size_t len, struct plan *p)
{
	memset(p, 0, sizeof *p);
	size_t off = sizeof MAGIC - 1;
	while (off < len) {
		if (len - off < 5)
			return -1;
		char tag = b[off];
		uint32_t n = (uint32_t)(uint8_t)b[off + 1] | (uint32_t)(uint8_t)b[off + 2] << 8 |
			     (uint32_t)(uint8_t)b[off + 3] << 16 | (uint32_t)(uint8_t)b[off + 4] << 24;
		off += 5;
		if (n > len - off)
			return -1;
		struct blob v = {b + off, n};
		off += n;
		switch (tag) {
		case 'A': p->argv = v; break;
		case 'E': p->env = v; break;
		case 'I': p->creds = v; break;
		case 'W': p->cwd = v; break;
		case 'K': p->config = v; break;
		case 'U': p->uidmap = v; break;
		case 'G': p->gidmap = v; break;
		case 'R': p->record = v; break;
		case 'D': p->statedir = v; break;
		case 'N': p->notice = v; break;
		case 'M': p->name = v; break;
		case 'T': p->sweep = v; break;
		case 'C':
			if (p->nchecks == MAX_CHECKS)
				return -1;
			p->checks[p->nchecks++] = v;
			break;
		case 'H':
			return off == len ? 0 : -1;
		default:
			return -1;
		}
	}
	return -1;
}

static int blob_is(struct blob b, const char *s, size_t len)
{
	return b.len == len && (len == 0 || !memcmp(b.p, s, len));
}

/* --- the run's inputs ------------------------------------------------------ */

/* The marker the Go launcher adds when it re-executes itself so that this
 * file replays what it just recorded (NSBOX_FASTPATH=replay): not part of
 * the environment the plan was made with. */
#define REPLAYED_ENV "_NSBOX_REPLAYED="

static int env_matches(struct blob want)
{
	size_t off = 0;
	for (char **e = environ; *e; e++) {
		size_t n = strlen(*e);
		if (n == 0 || !strncmp(*e, REPLAYED_ENV, sizeof REPLAYED_ENV - 1))
			continue; /* Go's os.Environ leaves out empty entries */
		if (want.len - off < n + 1 || memcmp(want.p + off, *e, n) || want.p[off + n] != 0)
			return 0;
		off += n + 1;
	}
	return off == want.len;
}

static int checks_match(const struct plan *p)
{
	static char got[8192];
	for (int i = 0; i < p->nchecks; i++) {
		struct blob c = p->checks[i];
		const char *nul = c.len > 1 ? memchr(c.p + 1, 0, c.len - 1) : NULL;
		if (!nul)
			return why("a check of the plan is malformed");
		char path[4096];
		size_t plen = (size_t)(nul - (c.p + 1));
		if (plen >= sizeof path)
			return why("a check's path is too long");
		memcpy(path, c.p + 1, plen);
		path[plen] = 0;
		struct blob want = {nul + 1, c.len - plen - 2};
		int n = nsbox_replay_look(c.p[0], path, got, sizeof got);
		if (n < 0 || (size_t)n >= sizeof got || !blob_is(want, got, (size_t)n))
			return why("%s changed (%c)", path, c.p[0]);
	}
	return 1;
}

/* sweep_due tells whether state.MaybeClean would sweep the state directory
 * now: the plan's stamp (Plan.SweepStamp) missing, or older than
 * Plan.SweepEvery. Such a start is left to the Go launcher, which sweeps
 * after its command started; the replays of the next SweepEvery then
 * find the stamp fresh. One stat(2) a start. */
static int sweep_due(struct blob s)
{
	if (s.len == 0)
		return 0;
	const char *nul = memchr(s.p, 0, s.len);
	char path[4096], every[24];
	size_t plen = nul ? (size_t)(nul - s.p) : 0, elen = s.len - plen - 1;
	if (!nul || plen >= sizeof path || elen >= sizeof every)
		return 1;
	memcpy(path, s.p, plen);
	path[plen] = 0;
	memcpy(every, nul + 1, elen);
	every[elen] = 0;
	struct stat st;
	struct timespec now;
	if (stat(path, &st) < 0 || clock_gettime(CLOCK_REALTIME, &now) < 0)
		return 1;
	long long since = (long long)(now.tv_sec - st.st_mtim.tv_sec) * 1000000000LL + (now.tv_nsec - st.st_mtim.tv_nsec);
	return since >= strtoll(every, NULL, 10);
}

/* --- the state directory, the store, the entry --------------------------------- */

/* open_private opens path (relative to dirfd) without following a symlink
 * and checks by fstat that it is of type typ, ours, closed to others. */
static int open_private(int dirfd, const char *path, int flags, mode_t typ, struct stat *st)
{
	int fd = openat(dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || (st->st_mode & S_IFMT) != typ || st->st_uid != getuid() || (st->st_mode & 077)) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* state_dir is state.Candidates' first choice, where Dir would look first:
 * $XDG_RUNTIME_DIR/nsbox when XDG_RUNTIME_DIR is an absolute path to a
 * directory, else $TMPDIR/nsbox-UID (/tmp by default); with
 * ".userns-INODE" outside the initial user namespace. */
static int state_dir(char *out, size_t cap)
{
	char suffix[64] = "";
	struct stat st;
	if (stat("/proc/self/ns/user", &st) == 0 && st.st_ino != 0xEFFFFFFDu)
		snprintf(suffix, sizeof suffix, ".userns-%llu", (unsigned long long)st.st_ino);
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode))
		return snprintf(out, cap, "%s/nsbox%s", x, suffix) < (int)cap ? 0 : -1;
	const char *t = getenv("TMPDIR");
	if (!t || !*t)
		t = "/tmp";
	return snprintf(out, cap, "%s/nsbox-%u%s", t, (unsigned)getuid(), suffix) < (int)cap ? 0 : -1;
}

/* An entry in the state directory, reserved as state.Reserve does. */
struct entry {
	char name[72];
	char path[4200];
	int lock;
};

/* valid_name is state.ValidName. */
static int valid_name(struct blob n)
{
	if (n.len == 0 || n.len > 64)
		return 0;
	for (size_t i = 0; i < n.len; i++) {
		char c = n.p[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(i > 0 && (c == '_' || c == '.' || c == '-')))
			return 0;
	}
	return 1;
}

/* reserve reserves the entry name (the plan's --name), or a random one
 * when name is empty. A name in use fails with EEXIST: the Go launcher
 * then removes a stale entry of that name, or says who holds it. */
static int reserve(const char *dir, struct entry *e, struct blob name)
{
	if (name.len && !valid_name(name)) {
		errno = EINVAL;
		return -1;
	}
	for (int attempt = 0; attempt < 5; attempt++) {
		unsigned char r[8];
		if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
			return -1;
		if (name.len)
			snprintf(e->name, sizeof e->name, "%.*s", (int)name.len, name.p);
		else
			snprintf(e->name, sizeof e->name, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s/.%s.new-%u", dir, e->name, (unsigned)(r[4] | r[5] << 8 | r[6] << 16 | (unsigned)r[7] << 24));
		snprintf(e->path, sizeof e->path, "%s/%s", dir, e->name);
		if (mkdir(tmp, 0700) < 0)
			return -1;
		e->lock = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (e->lock < 0 || flock(e->lock, LOCK_EX | LOCK_NB) < 0) {
			if (e->lock >= 0)
				close(e->lock);
			rmdir(tmp);
			continue;
		}
		if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, e->path, 1 /* RENAME_NOREPLACE */) == 0)
			return 0;
		int err = errno == ENOTEMPTY ? EEXIST : errno;
		rmdir(tmp);
		close(e->lock);
		errno = err;
		if (err != EEXIST || name.len)
			return -1;
	}
	return -1;
}

static void release(struct entry *e)
{
	char p[4300];
	snprintf(p, sizeof p, "%s/state.json", e->path);
	unlink(p);
	snprintf(p, sizeof p, "%s/log", e->path);
	unlink(p);
	rmdir(e->path);
	close(e->lock);
}

/* --- the record ----------------------------------------------------------- */

struct out {
	char *b;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = (o->len + n + 1) * 2;
		char *b = realloc(o->b, cap);
		if (!b)
			_exit(125);
		o->b = b;
		o->cap = cap;
	}
	memcpy(o->b + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* put_json puts s as the contents of a JSON string, escaped as Go's
 * encoder escapes it. */
static void put_json(struct out *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char buf[8];
		if (c == '"' || c == '\\') {
			buf[0] = '\\', buf[1] = (char)c;
			put(o, buf, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c == '\r') {
			put(o, "\\r", 2);
		} else if (c == '\t') {
			put(o, "\\t", 2);
		} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
			snprintf(buf, sizeof buf, "\\u%04x", c);
			put(o, buf, 6);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
}

/* rfc3339nano formats t as Go's time.RFC3339Nano does in the local zone. */
static void rfc3339nano(const struct timespec *t, char *out, size_t cap)
{
	struct tm tm;
	localtime_r(&t->tv_sec, &tm);
	int n = (int)strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	if (t->tv_nsec) {
		char frac[16];
		snprintf(frac, sizeof frac, ".%09ld", t->tv_nsec);
		for (size_t i = strlen(frac) - 1; frac[i] == '0'; i--)
			frac[i] = 0;
		n += snprintf(out + n, cap - (size_t)n, "%s", frac);
	}
	long off = tm.tm_gmtoff;
	if (off == 0)
		snprintf(out + n, cap - (size_t)n, "Z");
	else
		snprintf(out + n, cap - (size_t)n, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 3600, labs(off) % 3600 / 60);
}

/* nsbox_record_values are the holes' values (state.Template). */
int nsbox_record_fill(const char *tmpl, size_t len, const struct nsbox_record_values *v, char **out, size_t *outlen)
{
	struct out o = {0};
	static const char ns_holes[] = "umpnitc";
	for (size_t i = 0; i < len; i++) {
		if (tmpl[i]) {
			/* The text up to the next hole, in one piece. */
			const char *hole = memchr(tmpl + i, 0, len - i);
			size_t run = hole ? (size_t)(hole - (tmpl + i)) : len - i;
			put(&o, tmpl + i, run);
			i += run - 1;
			continue;
		}
		if (++i == len)
			return -1;
		char num[64];
		const char *h = strchr(ns_holes, tmpl[i]);
		switch (tmpl[i]) {
		case 'N': puts_(&o, v->name); break;
		case 'P': snprintf(num, sizeof num, "%d", (int)v->pid); puts_(&o, num); break;
		case 'S': snprintf(num, sizeof num, "%llu", v->start_time); puts_(&o, num); break;
		case 'L': snprintf(num, sizeof num, "%d", (int)v->launcher); puts_(&o, num); break;
		case 'F': snprintf(num, sizeof num, "%d", v->record_fd); puts_(&o, num); break;
		case 'T': puts_(&o, v->created); break;
		case 'U': put_json(&o, v->uid_map); break;
		case 'G': put_json(&o, v->gid_map); break;
		default:
			if (!h || !tmpl[i] || !v->ns[h - ns_holes])
				return -1;
			snprintf(num, sizeof num, "%llu", v->ns[h - ns_holes]);
			puts_(&o, num);
		}
	}
	*out = o.b;
	*outlen = o.len;
	return 0;
}

/* read_small reads a /proc file into a NUL-terminated buffer. */
static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read_fd(fd, buf, cap - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = 0;
	return 0;
}

/* start_time is field 22 of /proc/PID/stat. */
static int start_time(pid_t pid, unsigned long long *t)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof buf) < 0)
		return -1;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++; /* now at field 3's leading space */
	for (int field = 2; field < 21; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	return sscanf(p + 1, "%llu", t) == 1 ? 0 : -1;
}

/* write_record writes the state record for e, as Handle.Write: the sealed
 * memfd first (its number is in the record), then state.json through a
 * rename. On failure errno is set and the memfd closed. */
static int write_record(struct entry *e, const struct plan *p, struct nsbox_record_values *v, int *memfd)
{
	int fd = (int)syscall(SYS_memfd_create, "nsbox-record", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0008U /* MFD_NOEXEC_SEAL */);
	if (fd < 0 && errno == EINVAL)
		fd = (int)syscall(SYS_memfd_create, "nsbox-record", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	v->record_fd = fd;
	char *rec;
	size_t len;
	if (nsbox_record_fill(p->record.p, p->record.len, v, &rec, &len) < 0) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	int err = 0;
	if (write(fd, rec, len) != (ssize_t)len || fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		err = errno ? errno : EIO;
	char tmp[4300], fin[4300];
	snprintf(tmp, sizeof tmp, "%s/.state.json.new", e->path);
	snprintf(fin, sizeof fin, "%s/state.json", e->path);
	if (!err) {
		int w = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w < 0 || write(w, rec, len) != (ssize_t)len)
			err = errno ? errno : EIO;
		if (w >= 0)
			close(w);
		if (!err && rename(tmp, fin) < 0)
			err = errno;
	}
	free(rec);
	if (err) {
		close(fd);
		errno = err;
		return -1;
	}
	*memfd = fd;
	return 0;
}

/* --- the maps ------------------------------------------------------------- */

/* spawn_helper starts newuidmap or newgidmap as the Go launcher does
 * (mapping.startHelper): argv[0] with argv and this process's
 * environment, /dev/null as stdin and stdout, and mask as its signal mask
 * (the one this process had before the replay blocked every signal, as
 * the Go launcher's children start). Its stderr is /dev/null too: its
 * messages are for the Go launcher, which runs it again and prints them
 * if the replay falls through. Nothing above 2 reaches the setuid
 * program, not even what nsbox's caller left open without close-on-exec.
 * Its pid, or -1.
 *
 * fork, not posix_spawn: posix_spawn's vfork holds this process until
 * the child's execve is done, and a setuid execve is much of a helper's
 * time: with fork both helpers run at once and the replay goes on
 * checking its plan meanwhile. Before the Go runtime starts this
 * process's memory is small and a fork costs about 0.08 ms. (An empty
 * environment made no difference: newuidmap took 1.33-1.39 ms of CPU
 * either way, 100 runs each.) */
static pid_t spawn_helper(char *const argv[], const sigset_t *mask)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(127);
	(void)syscall(SYS_close_range, 3, ~0U, 0);
	sigprocmask(SIG_SETMASK, mask, NULL);
	execve(argv[0], argv, environ);
	_exit(127);
}

/* map_step starts or does one map's step (internal/replay encodeStep):
 * returns the helper's pid, 0 when written directly, -1 on failure. */
static pid_t map_step(struct blob step, pid_t stage, int gid, const sigset_t *mask)
{
	char path[64], pidtext[16];
	snprintf(pidtext, sizeof pidtext, "%d", (int)stage);
	if (step.len == 0)
		return -1;
	if (step.p[0] == 'H') {
		char *argv[256];
		int n = 0;
		const char *p = step.p + 1, *end = step.p + step.len;
		while (p < end && n < 250) {
			const char *nul = memchr(p, 0, (size_t)(end - p));
			if (!nul)
				return -1;
			argv[n++] = (char *)p;
			if (n == 1)
				argv[n++] = pidtext;
			p = nul + 1;
		}
		if (n < 2)
			return -1;
		argv[n] = NULL;
		return spawn_helper(argv, mask);
	}
	if (step.p[0] == 'S') {
		char buf[16] = "";
		snprintf(path, sizeof path, "/proc/%d/setgroups", (int)stage);
		if (read_small(path, buf, sizeof buf) < 0 || strncmp(buf, "deny", 4)) {
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			int ok = fd >= 0 && write(fd, "deny", 4) == 4;
			if (fd >= 0)
				close(fd);
			if (!ok)
				return -1;
		}
	} else if (step.p[0] != 'D') {
		return -1;
	}
	snprintf(path, sizeof path, "/proc/%d/%s", (int)stage, gid ? "gid_map" : "uid_map");
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, step.p + 1, step.len - 1);
	close(fd);
	return w == (ssize_t)(step.len - 1) ? 0 : -1;
}

static int reap_ok(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The maps of one replay. The stage is born in its user namespace
 * (nsbox_prefork_userns) once the plan is authenticated and the command
 * line, environment and ids match, and both steps start at once, so
 * newuidmap and newgidmap run while the files are checked, the state
 * entry reserved and the CONFIG sent. They are reaped before MAPS_DONE:
 * the stage becomes root of its namespace, and makes the namespaces the
 * command's own user namespace owns, only after that. If a file turns out
 * not to match, maps_abandon kills them and the stage is thrown away with
 * whatever maps it got: newuidmap and newgidmap grant only what
 * /etc/subuid and /etc/subgid give the user, and the plan's HMAC says the
 * steps are the ones the Go launcher chose. */
struct maps {
	int failed;      /* a step failed, or could not start */
	pid_t helper[2]; /* newuidmap, newgidmap still to be reaped, else 0 */
};

/* maps_start starts (or, written directly, does) the uid and gid steps
 * for stage, the helpers with mask as their signal mask. */
static void maps_start(struct maps *mp, struct blob uid, struct blob gid, pid_t stage, const sigset_t *mask)
{
	*mp = (struct maps){0};
	struct blob step[2] = {uid, gid};
	for (int i = 0; i < 2 && !mp->failed; i++) {
		pid_t h = map_step(step[i], stage, i, mask);
		if (h < 0)
			mp->failed = 1;
		else
			mp->helper[i] = h;
	}
}

/* maps_done reaps the helpers and reports whether both maps are written. */
static int maps_done(struct maps *mp)
{
	int ok = !mp->failed;
	for (int i = 0; i < 2; i++) {
		if (mp->helper[i] > 0)
			ok &= reap_ok(mp->helper[i]);
		mp->helper[i] = 0;
	}
	return ok;
}

/* maps_abandon ends the helpers of a replay that will not go on. */
static void maps_abandon(struct maps *mp)
{
	for (int i = 0; i < 2; i++) {
		if (mp->helper[i] > 0) {
			kill(mp->helper[i], SIGKILL);
			waitpid(mp->helper[i], NULL, 0);
		}
		mp->helper[i] = 0;
	}
}

/* --- messages ------------------------------------------------------------- */

static int send_to(int fd, uint32_t kind, int32_t value, const void *payload, uint32_t len)
{
	struct nsbox_msg m = {.kind = kind, .value = value, .len = len};
	struct iovec iov[2] = {{.iov_base = &m, .iov_len = sizeof m}, {.iov_base = (void *)payload, .iov_len = len}};
	size_t want = sizeof m + len;
	ssize_t n;
	do
		n = writev(fd, iov, len ? 2 : 1);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)want ? 0 : -1; /* a socket this small takes it whole */
}

/* recv_from reads one message; its payload (up to cap-1 bytes, the rest
 * dropped) NUL-terminated in buf. */
static int recv_from(int fd, struct nsbox_msg *m, char *buf, size_t cap)
{
	if (read_fd(fd, (char *)m, sizeof *m) != (ssize_t)sizeof *m)
		return -1;
	size_t keep = m->len < cap - 1 ? m->len : cap - 1;
	if (read_fd(fd, buf, keep) != (ssize_t)keep)
		return -1;
	buf[keep] = 0;
	for (size_t left = m->len - keep; left > 0;) {
		char drop[256];
		ssize_t r = read_fd(fd, drop, left < sizeof drop ? left : sizeof drop);
		if (r <= 0)
			return -1;
		left -= (size_t)r;
	}
	return 0;
}

/* hex appends s hex-encoded (handoff.c's cleanup steps). */
static void hex(struct out *o, const char *s)
{
	for (; *s; s++) {
		char b[2] = {hexdigits[(unsigned char)*s >> 4], hexdigits[*s & 15]};
		put(o, b, 2);
	}
}

/* --- the run --------------------------------------------------------------- */

static int fork_errno; /* nsbox_prefork_userns's, for its failure's report */

/* unfork ends the stage read_plan forked for a replay that is not going
 * to happen (before it got anything), for nsbox_replay to fork the Go
 * launcher's instead. */
static void unfork(void)
{
	if (nsbox_prefork_pid <= 0)
		return;
	close(nsbox_prefork_fd); /* the stage exits on its socket's end */
	kill(nsbox_prefork_pid, SIGKILL);
	while (waitpid(nsbox_prefork_pid, NULL, 0) < 0 && errno == EINTR)
		;
	nsbox_prefork_pid = nsbox_prefork_fd = -1;
}

/* read_plan finds, reads and authenticates the plan of this invocation;
 * NULL (with why set) when there is none to use. Once it finds the plan's
 * file it forks the stage (*forked: nsbox_prefork_userns's result). */
static char *read_plan(const char *cmdline, size_t cmdlen, const char *cwd, const char *dir, size_t *len, int *forked)
{
	struct stat st;
	int dfd = open_private(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, S_IFDIR, &st);
	if (dfd < 0) {
		why("no private state directory %s", dir);
		return NULL;
	}
	int sfd = open_private(dfd, ".replay", O_RDONLY | O_DIRECTORY, S_IFDIR, &st);
	int kfd = open_private(dfd, ".replay-key", O_RDONLY, S_IFREG, &st);
	close(dfd);
	uint8_t key[32];
	if (sfd < 0 || kfd < 0 || read_fd(kfd, (char *)key, sizeof key) != (ssize_t)sizeof key) {
		if (sfd >= 0)
			close(sfd);
		if (kfd >= 0)
			close(kfd);
		why("no plan store");
		return NULL;
	}
	close(kfd);
	struct nsbox_sha256 h;
	uint8_t sum[32];
	nsbox_sha256_init(&h);
	nsbox_sha256_update(&h, cmdline, cmdlen);
	nsbox_sha256_update(&h, "", 1);
	nsbox_sha256_update(&h, cwd, strlen(cwd));
	nsbox_sha256_final(&h, sum);
	char name[64];
	for (int i = 0; i < 16; i++)
		name[2 * i] = hexdigits[sum[i] >> 4], name[2 * i + 1] = hexdigits[sum[i] & 15];
	memcpy(name + 32, ".plan", sizeof ".plan");
	int pfd = open_private(sfd, name, O_RDONLY, S_IFREG, &st);
	if (pfd < 0 || st.st_size > (off_t)MAX_PLAN || st.st_size < (off_t)(sizeof MAGIC + 37)) {
		if (pfd >= 0)
			close(pfd);
		close(sfd);
		why(pfd < 0 && errno == ENOENT ? "no plan" : "the plan is not a private file of ours");
		return NULL;
	}
	/* A plan is there: the stage is born in its user namespace now and
	 * makes its early namespaces while the plan is read and checked. It
	 * waits for a CONFIG, which only a plan that checks sends; any other
	 * end of the replay lets it go (unfork). */
	*forked = nsbox_prefork_userns();
	fork_errno = errno;
	char *b = malloc((size_t)st.st_size);
	ssize_t r = b ? read_fd(pfd, b, (size_t)st.st_size) : -1;
	close(pfd);
	uint8_t mac[32];
	size_t body = (size_t)st.st_size - 37;
	if (r == st.st_size)
		nsbox_hmac_sha256(key, sizeof key, b, body, mac);
	/* Compared in constant time; a plan that fails is removed. */
	unsigned diff = r != st.st_size || memcmp(b, MAGIC, sizeof MAGIC - 1) || b[body] != 'H' ||
			memcmp(b + body + 1, "\x20\0\0\0", 4);
	for (int i = 0; i < 32 && !diff; i++)
		diff |= mac[i] ^ (uint8_t)b[body + 5 + i];
	if (diff) {
		unlinkat(sfd, name, 0);
		close(sfd);
		free(b);
		why("the plan's HMAC does not check: removed");
		return NULL;
	}
	close(sfd);
	*len = (size_t)st.st_size;
	return b;
}

/* fall_back ends what a replay started (the command has not run): the
 * map helpers, the stage, PID 1 and the state entry, whichever exist
 * (e NULL: none reserved yet), and gives the Go launcher a fresh stage. */
static int fall_back(int sock, pid_t pid1, struct entry *e, struct maps *mp, const sigset_t *old, char *plan)
{
	free(plan);
	maps_abandon(mp);
	kill(nsbox_prefork_pid, SIGKILL);
	waitpid(nsbox_prefork_pid, NULL, 0);
	if (pid1 > 0) {
		kill(pid1, SIGKILL);
		waitpid(pid1, NULL, 0);
	}
	close(sock);
	if (e)
		release(e);
	nsbox_prefork_pid = nsbox_prefork_fd = -1;
	sigprocmask(SIG_SETMASK, old, NULL);
	nsbox_prefork();
	return 0;
}

/* replay is nsbox_replay but for the ordinary pre-forked stage: it makes
 * the stage itself once it has a plan to run, and returns without one
 * when it has none (or left the run to Go without one). */
static int replay(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (isatty(fd))
			return why("a terminal on fd %d", fd);
	static char cmdline[256 * 1024];
	int cfd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t cmdlen = cfd < 0 ? -1 : read_fd(cfd, cmdline, sizeof cmdline);
	if (cfd >= 0)
		close(cfd);
	if (cmdlen <= 0 || (size_t)cmdlen == sizeof cmdline)
		return why("cannot read the command line");
	static char cwd[4096], dir[4096];
	if (!getcwd(cwd, sizeof cwd) || state_dir(dir, sizeof dir) < 0)
		return why("no working directory or state directory");
	size_t len;
	int forked = 1; /* nsbox_prefork_userns's: not tried yet */
	char *b = read_plan(cmdline, (size_t)cmdlen, cwd, dir, &len, &forked);
	if (!b) {
		unfork();
		return 0;
	}
	static struct plan p;
	static char creds[4096];
	int ncreds = nsbox_replay_creds(creds, sizeof creds);
	const char *mismatch = NULL;
	if (parse_plan(b, len, &p) < 0)
		mismatch = "the plan is malformed";
	else if (!blob_is(p.argv, cmdline, (size_t)cmdlen) || !blob_is(p.cwd, cwd, strlen(cwd)) || !blob_is(p.statedir, dir, strlen(dir)))
		mismatch = "another command line, working directory or state directory";
	else if (!env_matches(p.env))
		mismatch = "the environment changed";
	else if (ncreds < 0 || !blob_is(p.creds, creds, (size_t)ncreds))
		mismatch = "the ids, groups or umask changed";
	else if (sweep_due(p.sweep))
		mismatch = "a sweep for stale entries is due";
	if (mismatch) {
		why("%s", mismatch);
		free(b);
		unfork();
		return 0;
	}

	/* The plan is ours and was made for this command line, environment
	 * and ids. The stage is born in its user namespace, and the map
	 * helpers start at once, while the files are checked (struct maps).
	 * Every signal is held from here on, as the Go launcher holds them,
	 * until the supervisor reads them. */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if (forked != 0) {
		int err = fork_errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		free(b);
		/* No user namespace: the sandbox's own failure, which the Go
		 * launcher meets again and reports. */
		nsbox_replay_sent = forked < 0;
		return why("cannot fork the stage in a user namespace: %s", forked < 0 ? strerror(err) : "no socket");
	}
	int sock = nsbox_prefork_fd;
	pid_t stage = nsbox_prefork_pid;
	static struct maps mp;
	maps_start(&mp, p.uidmap, p.gidmap, stage, &old);
	if (!checks_match(&p))
		return fall_back(sock, -1, NULL, &mp, &old, b);

	/* Everything matches: the plan is what Go would make now. From here
	 * on, as the Go launcher, in its order. */
	struct entry e;
	if (reserve(dir, &e, p.name) < 0) {
		char reason[256];
		snprintf(reason, sizeof reason, "%s", strerror(errno));
		fall_back(sock, -1, NULL, &mp, &old, b);
		return why("cannot reserve a state entry: %s", reason);
	}
	struct timespec created;
	clock_gettime(CLOCK_REALTIME, &created);
	if (p.notice.len) {
		(void)!write(2, p.notice.p, p.notice.len);
		nsbox_replay_noticed = 1;
	}
	struct nsbox_msg m;
	static char msg[4096];
	nsbox_replay_sent = 1;
	if (send_to(sock, NSBOX_MSG_CONFIG, 0, p.config.p, (uint32_t)p.config.len) < 0) {
		why("the stage did not take its CONFIG");
		return fall_back(sock, -1, &e, &mp, &old, b);
	}
	if (recv_from(sock, &m, msg, sizeof msg) < 0 || m.kind != NSBOX_MSG_USERNS_READY) {
		why("the stage did not make its user namespace");
		return fall_back(sock, -1, &e, &mp, &old, b);
	}
	if (!maps_done(&mp)) {
		why("writing the maps failed");
		return fall_back(sock, -1, &e, &mp, &old, b);
	}
	if (send_to(sock, NSBOX_MSG_MAPS_DONE, 0, NULL, 0) < 0 || recv_from(sock, &m, msg, sizeof msg) < 0 || m.kind != NSBOX_MSG_PID1 || m.value <= 0) {
		why("the stage did not start PID 1");
		return fall_back(sock, -1, &e, &mp, &old, b);
	}
	pid_t pid1 = m.value;
	waitpid(stage, NULL, 0);
	/* What Spec.Started records: PID 1's start time, maps, namespaces. */
	static struct nsbox_record_values v;
	static char uid_map[4096], gid_map[4096], path[64], created_text[64];
	v.name = e.name;
	v.pid = pid1;
	v.launcher = getpid();
	rfc3339nano(&created, created_text, sizeof created_text);
	v.created = created_text;
	static const char *const ns_names[] = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"};
	for (char *line = msg; *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		char *eq = strchr(line, '=');
		for (int i = 0; eq && i < 7; i++)
			if ((size_t)(eq - line) == strlen(ns_names[i]) && !strncmp(line, ns_names[i], (size_t)(eq - line)))
				v.ns[i] = strtoull(eq + 1, NULL, 10);
		if (!end)
			break;
		line = end + 1;
	}
	snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid1);
	int started = start_time(pid1, &v.start_time) == 0 && read_small(path, uid_map, sizeof uid_map) == 0;
	snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid1);
	started = started && read_small(path, gid_map, sizeof gid_map) == 0;
	v.uid_map = uid_map;
	v.gid_map = gid_map;
	if (recv_from(sock, &m, msg, sizeof msg) < 0 || m.kind != NSBOX_MSG_EXEC_OK) {
		why("the command did not start (message %u)", m.kind);
		return fall_back(sock, pid1, &e, &mp, &old, b);
	}
	/* The command runs: from here on there is no going back to Go. */
	int memfd = -1;
	if (!started || write_record(&e, &p, &v, &memfd) < 0) {
		int err = errno;
		char *msgtext = strerror(err);
		char lower = msgtext[0] >= 'A' && msgtext[0] <= 'Z' ? msgtext[0] - 'A' + 'a' : msgtext[0];
		if (p.name.len) {
			/* A named sandbox nobody could find by its name: the Go
			 * launcher ends it and fails (session.required). */
			kill(pid1, SIGKILL);
			waitpid(pid1, NULL, 0);
			release(&e);
			fprintf(stderr, "nsbox: write the state of sandbox %s: %c%s\n", e.name, lower, msgtext + 1);
			_exit(125);
		}
		fprintf(stderr, "nsbox: notice: write the state of sandbox %s: %c%s; running without a state entry (nsbox ps will not list this sandbox)\n",
			e.name, lower, msgtext + 1);
		release(&e);
		e.path[0] = 0;
	}
	struct out after = {0};
	if (e.path[0]) {
		char fp[4300];
		puts_(&after, "unlink:");
		snprintf(fp, sizeof fp, "%s/state.json", e.path);
		hex(&after, fp);
		puts_(&after, ";unlink:");
		snprintf(fp, sizeof fp, "%s/log", e.path);
		hex(&after, fp);
		puts_(&after, ";rmdir:");
		hex(&after, e.path);
		/* The removed entry's lock and record, closed at once (as
		 * state.Handle.HandOff's steps): the lock's close frees the
		 * directory, off the path to our exit. */
		char fd[16];
		puts_(&after, ";close:");
		snprintf(fd, sizeof fd, "%d", e.lock);
		hex(&after, fd);
		if (memfd >= 0) {
			puts_(&after, ";close:");
			snprintf(fd, sizeof fd, "%d", memfd);
			hex(&after, fd);
		}
	}
	put(&after, "", 1);
	after.len--;
	free(b);
	nsbox_supervise(pid1, sock, -1, -1, getpgrp(), after.b);
}

int nsbox_replay(void)
{
	nsbox_replay_why[0] = 0;
	replay();
	/* No plan run: the Go launcher's stage, as without a replay. */
	if (nsbox_prefork_pid <= 0)
		nsbox_prefork();
	return 0;
}
