/*
 * security.c: the command's last steps before exec, in the order runc and
 * bubblewrap use and for the same reasons.
 *
 *   security_before_identity (still the setup identity, root inside):
 *     resource limits (raising a hard limit needs privilege), a new
 *     session, the capability bounding set (dropping needs CAP_SETPCAP),
 *     and PR_SET_KEEPCAPS when a non-root command keeps capabilities;
 *   run_command switches uid/gid, chdir, sets no_new_privs;
 *   security_before_exec:
 *     the command's capability sets (ambient for a non-root command),
 *     Landlock, and seccomp last, so no setup syscall meets the filter;
 *     then, if asked, the check that user namespaces are disabled.
 *
 * Everything here was decided by the launcher (sandbox/security.go) and
 * arrives as CONFIG records; this file only applies them. Failures end the
 * command's child with an ERROR line sent straight to the launcher: the
 * ERROR is on the socket before PID 1 sees the child exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "stagelib.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Landlock's UAPI, spelled out so that older kernel headers still build:
 * the syscall numbers are the same on every architecture. */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
struct nsbox_landlock_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};
struct nsbox_landlock_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));
struct nsbox_landlock_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};
#define NSBOX_LANDLOCK_RULE_PATH_BENEATH 1
#define NSBOX_LANDLOCK_RULE_NET_PORT 2
/* The rights that make sense on a file (not a directory): execute,
 * write, read, truncate (ABI 3), ioctl on devices (ABI 5). */
#define NSBOX_LANDLOCK_FILE_ACCESS ((1ull << 0) | (1ull << 1) | (1ull << 2) | (1ull << 14) | (1ull << 15))

/* --- configuration ------------------------------------------------------ */

/* config_of is the struct config a field of it belongs to. */
#define config_of(field, member) ((struct config *)((char *)(field) - offsetof(struct config, member)))

static const char *parse_caps(struct cfg_parser *p, void *field, char *v)
{
	(void)p;
	unsigned long long caps;
	if (cfg_number(v, 0, ULLONG_MAX, &caps) < 0)
		return "want a decimal capability mask";
	struct config *c = config_of(field, sec.caps);
	c->sec.caps = caps;
	c->sec.caps_set = 1;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_caps(struct cfg_out *o, const char *key, const void *field)
{
	cfg_emit(o, key, "%llu", (unsigned long long)*(const uint64_t *)field);
}
#endif

/* parse_seccomp decodes a program (hex of struct sock_filter[]) in place. */
static const char *parse_seccomp(struct cfg_parser *p, void *field, char *v)
{
	ssize_t n = hex_decode(v, v);
	if (n < 0)
		return "not lowercase hex";
	if (n == 0 || n % (ssize_t)sizeof(struct sock_filter) || n / (ssize_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return "not 1 to 4096 struct sock_filter instructions";
	struct config *c = config_of(field, sec.seccomp);
	struct seccomp_prog *prog = cfg_append(p, &c->sec.seccomp, &c->sec.nseccomp, sizeof *prog);
	prog->filter = v;
	prog->len = (unsigned short)((size_t)n / sizeof(struct sock_filter));
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_seccomp(struct cfg_out *o, const char *key, const void *field)
{
	const struct config *c = config_of(field, sec.seccomp);
	for (int i = 0; i < c->sec.nseccomp; i++)
		cfg_emit_hex(o, key, c->sec.seccomp[i].filter, c->sec.seccomp[i].len * sizeof(struct sock_filter));
}
#endif

/* parse_rlimit reads "RESOURCE:SOFT:HARD", decimal (RLIM_INFINITY is all ones). */
static const char *parse_rlimit(struct cfg_parser *p, void *field, char *v)
{
	char *res = cfg_next(&v), *soft = cfg_next(&v);
	unsigned long long r, s, h;
	if (!res || !soft || cfg_number(res, 0, RLIM_NLIMITS - 1, &r) < 0 || cfg_number(soft, 0, ULLONG_MAX, &s) < 0 ||
	    cfg_number(v, 0, ULLONG_MAX, &h) < 0)
		return "want RESOURCE:SOFT:HARD, decimal";
	if (s > h)
		return "soft limit above the hard one";
	struct config *c = config_of(field, lim.rlimits);
	struct rlimit_rec *rl = cfg_append(p, &c->lim.rlimits, &c->lim.nrlimits, sizeof *rl);
	rl->resource = (int)r;
	rl->soft = s;
	rl->hard = h;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_rlimit(struct cfg_out *o, const char *key, const void *field)
{
	const struct config *c = config_of(field, lim.rlimits);
	for (int i = 0; i < c->lim.nrlimits; i++)
		cfg_emit(o, key, "%d:%llu:%llu", c->lim.rlimits[i].resource, c->lim.rlimits[i].soft, c->lim.rlimits[i].hard);
}
#endif

/* parse_landlock reads the handled rights: "FS:NET:SCOPED", decimal. */
static const char *parse_landlock(struct cfg_parser *p, void *field, char *v)
{
	(void)p;
	char *fs = cfg_next(&v), *net = cfg_next(&v);
	unsigned long long f, n, s;
	if (!fs || !net || cfg_number(fs, 0, ULLONG_MAX, &f) < 0 || cfg_number(net, 0, ULLONG_MAX, &n) < 0 ||
	    cfg_number(v, 0, ULLONG_MAX, &s) < 0)
		return "want FS:NET:SCOPED, decimal";
	struct config *c = config_of(field, sec.landlock);
	c->sec.landlock = 1;
	c->sec.ll_fs = f;
	c->sec.ll_net = n;
	c->sec.ll_scoped = s;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_landlock(struct cfg_out *o, const char *key, const void *field)
{
	const struct config *c = config_of(field, sec.landlock);
	cfg_emit(o, key, "%llu:%llu:%llu", (unsigned long long)c->sec.ll_fs, (unsigned long long)c->sec.ll_net,
		 (unsigned long long)c->sec.ll_scoped);
}
#endif

/* parse_landlock_path reads "ACCESS:OPTIONAL:PATH"; the path may hold ':'. */
static const char *parse_landlock_path(struct cfg_parser *p, void *field, char *v)
{
	char *access = cfg_next(&v), *optional = cfg_next(&v);
	unsigned long long a, opt;
	if (!access || !optional || cfg_number(access, 0, ULLONG_MAX, &a) < 0 || cfg_number(optional, 0, 1, &opt) < 0 ||
	    !*v)
		return "want ACCESS:OPTIONAL:PATH (decimal, 0 or 1, a path)";
	struct config *c = config_of(field, sec.ll_paths);
	struct ll_path *lp = cfg_append(p, &c->sec.ll_paths, &c->sec.nll_paths, sizeof *lp);
	lp->access = a;
	lp->optional = (int)opt;
	lp->path = v;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_landlock_path(struct cfg_out *o, const char *key, const void *field)
{
	const struct config *c = config_of(field, sec.ll_paths);
	for (int i = 0; i < c->sec.nll_paths; i++)
		cfg_emit(o, key, "%llu:%d:%s", (unsigned long long)c->sec.ll_paths[i].access, c->sec.ll_paths[i].optional,
			 c->sec.ll_paths[i].path);
}
#endif

/* parse_landlock_port reads "ACCESS:PORT", decimal. */
static const char *parse_landlock_port(struct cfg_parser *p, void *field, char *v)
{
	char *access = cfg_next(&v);
	unsigned long long a, port;
	if (!access || cfg_number(access, 0, ULLONG_MAX, &a) < 0 || cfg_number(v, 0, 65535, &port) < 0)
		return "want ACCESS:PORT, decimal";
	struct config *c = config_of(field, sec.ll_ports);
	struct ll_port *lp = cfg_append(p, &c->sec.ll_ports, &c->sec.nll_ports, sizeof *lp);
	lp->access = a;
	lp->port = port;
	return NULL;
}

#ifdef NSBOX_CONFIG_CHECK
static void format_landlock_port(struct cfg_out *o, const char *key, const void *field)
{
	const struct config *c = config_of(field, sec.ll_ports);
	for (int i = 0; i < c->sec.nll_ports; i++)
		cfg_emit(o, key, "%llu:%llu", (unsigned long long)c->sec.ll_ports[i].access,
			 (unsigned long long)c->sec.ll_ports[i].port);
}
#endif

/* security_keys: what sandbox/security.go and limits.go send. "caps" is
 * required: a launcher that forgot it must not mean "keep them all". */
#define CFG_STRUCT struct cfg_security
const struct cfg_key security_keys[] = {
	{CFG_KEY(KEY_CAPS, CFG_CUSTOM, CFG_REQUIRED, caps), .parse = parse_caps, CFG_FORMAT(format_caps)},
	{CFG_KEY(KEY_SECCOMP, CFG_CUSTOM, CFG_REPEAT, seccomp), .parse = parse_seccomp, CFG_FORMAT(format_seccomp)},
	{CFG_KEY(KEY_NEW_SESSION, CFG_BOOL, 0, new_session)},
	{CFG_KEY(KEY_ASSERT_USERNS_DISABLED, CFG_BOOL, 0, assert_userns_disabled)},
	{CFG_KEY(KEY_LANDLOCK, CFG_CUSTOM, 0, landlock), .parse = parse_landlock, CFG_FORMAT(format_landlock)},
	{CFG_KEY(KEY_LANDLOCK_PATH, CFG_CUSTOM, CFG_REPEAT, ll_paths), .needs = KEY_LANDLOCK,
	 .parse = parse_landlock_path, CFG_FORMAT(format_landlock_path)},
	{CFG_KEY(KEY_LANDLOCK_PORT, CFG_CUSTOM, CFG_REPEAT, ll_ports), .needs = KEY_LANDLOCK,
	 .parse = parse_landlock_port, CFG_FORMAT(format_landlock_port)},
	{.key = NULL},
};

/* limit_keys: what sandbox/limits.go sends. */
#undef CFG_STRUCT
#define CFG_STRUCT struct cfg_limits
const struct cfg_key limit_keys[] = {
	{CFG_KEY(KEY_RLIMIT, CFG_CUSTOM, CFG_REPEAT, rlimits), .parse = parse_rlimit, CFG_FORMAT(format_rlimit)},
	{.key = NULL},
};

/* --- before the identity switch ----------------------------------------- */

static void apply_rlimits(const struct config *c)
{
	for (int i = 0; i < c->lim.nrlimits; i++) {
		const struct rlimit_rec *r = &c->lim.rlimits[i];
		struct rlimit rl = {.rlim_cur = r->soft, .rlim_max = r->hard};
		if (setrlimit(r->resource, &rl) < 0)
			fail_fix("pass --rlimit a hard limit no higher than nsbox's own (see ulimit -H -a)",
				 "--rlimit: setrlimit(resource %d, soft %llu, hard %llu)", r->resource, r->soft, r->hard);
	}
}

void security_before_identity(const struct config *c)
{
	apply_rlimits(c);
	/* With a pty of its own (pty.c) the command already has a session
	 * and a terminal that is not the user's: nothing to guard. */
	if (c->sec.new_session && !c->term.pty && setsid() < 0)
		fail("start a new session (setsid)");
	if (!c->sec.caps_set)
		return;
	/* The bounding set limits what any later exec can gain. Numbers past
	 * the kernel's last capability give EINVAL: nothing to drop. */
	for (int cap = 0; cap < 64; cap++)
		if (!(c->sec.caps & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			fail("drop capability %d from the bounding set", cap);
	/* A non-root command that keeps capabilities must keep its permitted
	 * set across setresuid; they become ambient before exec. */
	if (c->cmd.uid != 0 && c->sec.caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_KEEPCAPS)");
}

/* --- before exec ------------------------------------------------------- */

static void apply_capabilities(const struct config *c)
{
	if (!c->sec.caps_set)
		return;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail("clear the ambient capabilities");
	if (c->cmd.uid == 0)
		return; /* root's exec grants the bounding set: already trimmed */
	/* A non-root command: permitted, effective and inheritable become the
	 * kept set (empty by default), and each kept capability is made
	 * ambient so that it survives exec, as bwrap --cap-add does. */
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	for (int i = 0; i < 2; i++)
		d[i].effective = d[i].permitted = d[i].inheritable = (uint32_t)(c->sec.caps >> (32 * i));
	if (syscall(SYS_capset, &h, d) < 0)
		fail_fix("drop --cap-add, or run as root inside (--root)", "set the command's capabilities (capset)");
	for (int cap = 0; cap < 64; cap++)
		if ((c->sec.caps & (1ull << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			fail("raise capability %d to the ambient set", cap);
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

/* apply_landlock restricts the command to the paths and ports of its
 * records: "ACCESS:OPTIONAL:PATH" and "ACCESS:PORT". An optional path that
 * does not exist in the sandbox is skipped. */
static void apply_landlock(const struct config *c)
{
	if (!c->sec.landlock)
		return;
	struct nsbox_landlock_ruleset_attr attr = {c->sec.ll_fs, c->sec.ll_net, c->sec.ll_scoped};
	size_t size = sizeof attr;
	if (!attr.scoped)
		size = attr.handled_access_net ? 16 : 8;
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (rs < 0)
		fail("--landlock: create a ruleset");
	for (int i = 0; i < c->sec.nll_paths; i++) {
		uint64_t access = c->sec.ll_paths[i].access;
		int optional = c->sec.ll_paths[i].optional;
		const char *path = c->sec.ll_paths[i].path;
		int fd = open(path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			if (optional && (errno == ENOENT || errno == ENOTDIR || errno == EACCES))
				continue;
			fail_fix("name a path that exists inside the sandbox", "--landlock: open %s", path);
		}
		struct stat st;
		if (fstat(fd, &st) < 0)
			fail("--landlock: stat %s", path);
		if (!S_ISDIR(st.st_mode))
			access &= NSBOX_LANDLOCK_FILE_ACCESS;
		struct nsbox_landlock_path_beneath_attr pb = {.allowed_access = access & c->sec.ll_fs, .parent_fd = fd};
		if (pb.allowed_access && syscall(SYS_landlock_add_rule, rs, NSBOX_LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
			fail("--landlock: allow %s", path);
		close(fd);
	}
	for (int i = 0; i < c->sec.nll_ports; i++) {
		struct nsbox_landlock_net_port_attr np;
		np.allowed_access = c->sec.ll_ports[i].access & c->sec.ll_net;
		np.port = c->sec.ll_ports[i].port;
		if (np.allowed_access && syscall(SYS_landlock_add_rule, rs, NSBOX_LANDLOCK_RULE_NET_PORT, &np, 0) < 0)
			fail("--landlock: allow TCP port %llu", (unsigned long long)np.port);
	}
	/* restrict_self needs no_new_privs or CAP_SYS_ADMIN in our namespace;
	 * the command has one of them. */
	if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		fail("--landlock: restrict the command (landlock_restrict_self)");
	close(rs);
}

/* apply_seccomp installs each program (decoded by parse_seccomp) in
 * order; the kernel runs them all and the strictest answer wins. Through
 * prctl(PR_SET_SECCOMP), as bubblewrap does, not seccomp(2): a program
 * (flatpak's allowlist) may refuse seccomp(2) and still let the next one
 * be installed, as long as it allows prctl. */
static void apply_seccomp(const struct config *c)
{
	for (int i = 0; i < c->sec.nseccomp; i++) {
		struct sock_fprog prog = {.len = c->sec.seccomp[i].len, .filter = c->sec.seccomp[i].filter};
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
			fail_fix("check the program given to --seccomp (a raw struct sock_filter array), or pass --no-seccomp",
				 "install seccomp program %d", i + 1);
	}
}

/* assert_userns_disabled is bubblewrap's check for --disable-userns and
 * --assert-userns-disabled: with everything applied, try to create a user
 * namespace here, in the command's own context. If that works the command
 * must not run (this process is about to be replaced or to fail, so the
 * namespace it gained goes nowhere). Only the refusals that mean
 * "disabled" count: EPERM (seccomp, LSM), ENOSPC (user.max_user_namespaces)
 * and EUSERS (nesting depth); anything else (EINVAL: not single-threaded)
 * cannot tell, and fails too. */
static void assert_userns_disabled(const struct config *c)
{
	if (!c->sec.assert_userns_disabled)
		return;
	if (unshare(CLONE_NEWUSER) == 0) {
		errno = 0; /* the line reads "…: Success" */
		fail_fix("add --disable-userns, or drop --assert-userns-disabled",
			 "--assert-userns-disabled: create a user namespace inside the sandbox (unshare CLONE_NEWUSER)");
	}
	if (errno != EPERM && errno != ENOSPC && errno != EUSERS)
		fail("--assert-userns-disabled: check with unshare(CLONE_NEWUSER)");
}

void security_before_exec(const struct config *c)
{
	apply_capabilities(c);
	apply_landlock(c);
	apply_seccomp(c);
	assert_userns_disabled(c);
}
