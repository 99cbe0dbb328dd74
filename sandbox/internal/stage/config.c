/*
 * config.c: decodes the CONFIG records (config.h explains the protocol)
 * through the areas' key tables, and writes a decoded config back out for
 * the round-trip tests.
 *
 * One pass over the records: each key is looked up in the tables of the
 * areas asked for, its value checked and stored at the table's offset. A
 * failure anywhere longjmps back to config_decode with one line in the
 * parser, so no parser below it calls fail() or exits: the same code runs
 * in the stage and under go test (configcheck.go), fuzzed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "stage.h"
#include "stagelib.h"

/* The tables, in the order their records are written back out: each
 * fills one struct of struct config (at base) and belongs to an area. */
static const struct {
	const char *name;
	unsigned bit;
	size_t base;
	const struct cfg_key *keys;
} areas[] = {
	{"command", CFG_AREA_STAGE, offsetof(struct config, cmd), command_keys},
	{"ids", CFG_AREA_STAGE, offsetof(struct config, ids), ids_keys},
	{"ns", CFG_AREA_STAGE, offsetof(struct config, ns), ns_keys},
	{"join", CFG_AREA_STAGE, offsetof(struct config, join), join_keys},
	{"term", CFG_AREA_STAGE, offsetof(struct config, term), term_keys},
	{"mounts", CFG_AREA_MOUNTS, offsetof(struct config, root), mount_keys},
	{"security", CFG_AREA_SECURITY, offsetof(struct config, sec), security_keys},
	{"limits", CFG_AREA_SECURITY, offsetof(struct config, lim), limit_keys},
	{"tap", CFG_AREA_TAP, offsetof(struct config, tap), tap_keys},
};
#define NAREAS (sizeof areas / sizeof *areas)
/* CFG_MAX_KEYS bounds the keys of all tables together. */
#define CFG_MAX_KEYS 128

struct cfg_parser {
	struct config *c;
	unsigned mask;
	jmp_buf fail;
	char *err;
	size_t errsize;
	/* seen counts each key's records (index: area_base + entry); op_seen
	 * is a bit per key of the mount area, per mount op. */
	unsigned seen[CFG_MAX_KEYS];
	uint64_t *op_seen;
	int n_op_seen;
};

__attribute__((format(printf, 3, 4), noreturn)) static void bad(struct cfg_parser *p, const char *key,
								 const char *fmt, ...)
{
	int n = snprintf(p->err, p->errsize, "config record \"%.64s\": ", key);
	if (n >= 0 && (size_t)n < p->errsize) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errsize - (size_t)n, fmt, ap);
		va_end(ap);
	}
	longjmp(p->fail, 1);
}

/* --- values --------------------------------------------------------------- */

static size_t slots(size_t n)
{
	size_t c = 4;
	while (c < n)
		c *= 2;
	return c;
}

void *cfg_append(struct cfg_parser *p, void *list, int *count, size_t size)
{
	char **l = list;
	size_t n = (size_t)*count;
	if (n >= (size_t)INT_MAX - 2)
		bad(p, "", "too many records");
	/* n elements live in slots(n + 1) (room for the zeroed one after them). */
	if (!*l || slots(n + 2) > slots(n + 1)) {
		char *grown = realloc(*l, slots(n + 2) * size);
		if (!grown)
			bad(p, "", "out of memory");
		*l = grown;
	}
	*count = (int)n + 1;
	memset(*l + n * size, 0, 2 * size);
	return *l + n * size;
}

int cfg_number(const char *s, long long min, unsigned long long max, unsigned long long *out)
{
	/* Canonical decimal only, as strconv writes it: digits, a '-' for
	 * a negative number, no leading zeros, spaces, '+' or "-0". */
	const char *d = s + (*s == '-');
	size_t n = strspn(d, "0123456789");
	if (n == 0 || d[n] != '\0' || (d[0] == '0' && (n > 1 || d != s)))
		return -1;
	char *end;
	errno = 0;
	if (*s == '-') {
		long long v = strtoll(s, &end, 10);
		if (errno || *end || v < min || (max <= LLONG_MAX && v > (long long)max))
			return -1;
		*out = (unsigned long long)v;
		return 0;
	}
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max || (min > 0 && v < (unsigned long long)min))
		return -1;
	*out = v;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

ssize_t hex_decode(const char *hex, char *out)
{
	size_t n = strlen(hex);
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (char)(hi << 4 | lo);
	}
	return (ssize_t)(n / 2);
}

char *cfg_next(char **s)
{
	char *colon = strchr(*s, ':');
	if (!colon)
		return NULL;
	char *part = *s;
	*colon = '\0';
	*s = colon + 1;
	return part;
}

/* store checks v against k and stores it in the field at base + k->off. */
static void store(struct cfg_parser *p, const struct cfg_key *k, char *base, char *v)
{
	void *field = base + k->off;
	unsigned long long n = 0;
	switch (k->type) {
	case CFG_BOOL:
		if (strcmp(v, "0") && strcmp(v, "1"))
			bad(p, k->key, "\"%.64s\" is not 0 or 1", v);
		*(int *)field = v[0] == '1';
		return;
	case CFG_INT:
	case CFG_LLONG:
	case CFG_U32:
	case CFG_U64:
		if (cfg_number(v, k->min, k->max, &n) < 0)
			bad(p, k->key, "\"%.64s\" is not a decimal number in %lld..%llu", v, k->min, k->max);
		if (k->type == CFG_INT)
			*(int *)field = (int)(long long)n;
		else if (k->type == CFG_LLONG)
			*(long long *)field = (long long)n;
		else if (k->type == CFG_U32)
			*(uint32_t *)field = (uint32_t)n;
		else
			memcpy(field, &n, sizeof n); /* unsigned long long or uint64_t */
		return;
	case CFG_STR:
		if (k->max && strlen(v) > k->max)
			bad(p, k->key, "longer than %llu bytes", k->max);
		*(const char **)field = v;
		return;
	case CFG_LIST:
		*(char **)cfg_append(p, field, (int *)(base + k->count_off), sizeof(char *)) = v;
		return;
	case CFG_CUSTOM: {
		char shown[65]; /* parse may cut v */
		size_t n = strnlen(v, sizeof shown - 1);
		memcpy(shown, v, n);
		shown[n] = '\0';
		const char *why = k->parse(p, field, v);
		if (why)
			bad(p, k->key, "\"%s\": %s", shown, why);
		return;
	}
	}
	bad(p, k->key, "no type in the key table");
}

/* --- the records ---------------------------------------------------------- */

/* The key index: every key of every table in a hash table built at the
 * first lookup (the tables are constant), so that a record's key is found
 * in a few comparisons. A linear walk with strcmp over the 100-odd keys,
 * for each record and for each key again in finish, took 200 000 of the
 * stage's 324 000 instructions (single-stepped). Keys of the same name in
 * two tables sit in the index in table order, which is the order the walk
 * took them in. */
#define CFG_INDEX 256 /* a power of two, at least twice CFG_MAX_KEYS */
static struct cfg_slot {
	const struct cfg_key *k; /* NULL: empty */
	unsigned char table;     /* its index in areas */
	unsigned char index;     /* its seen[] slot */
} cfg_index[CFG_INDEX];
static const char *cfg_index_twice; /* a key in two tables, which check_tables refuses */

static unsigned cfg_hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void build_index(void)
{
	int base = 0;
	for (size_t a = 0; a < NAREAS; a++) {
		int i = 0;
		for (const struct cfg_key *k = areas[a].keys; k->key; k++, i++) {
			unsigned h = cfg_hash(k->key) & (CFG_INDEX - 1);
			for (; cfg_index[h].k; h = (h + 1) & (CFG_INDEX - 1))
				if (!strcmp(cfg_index[h].k->key, k->key))
					cfg_index_twice = k->key;
			cfg_index[h] = (struct cfg_slot){k, (unsigned char)a, (unsigned char)(base + i)};
		}
		base += i;
	}
}

/* lookup finds key in the areas of mask; *index is its seen[] slot,
 * *table its table's index in areas. */
static const struct cfg_key *lookup(unsigned mask, const char *key, int *index, size_t *table)
{
	static pthread_once_t built = PTHREAD_ONCE_INIT; /* go test decodes from several threads */
	pthread_once(&built, build_index);
	for (unsigned h = cfg_hash(key) & (CFG_INDEX - 1); cfg_index[h].k; h = (h + 1) & (CFG_INDEX - 1)) {
		const struct cfg_slot *s = &cfg_index[h];
		if ((mask & areas[s->table].bit) && !strcmp(s->k->key, key)) {
			*index = s->index;
			*table = s->table;
			return s->k;
		}
	}
	return NULL;
}

static int seen(struct cfg_parser *p, const char *key)
{
	int i;
	size_t a;
	return lookup(p->mask, key, &i, &a) && p->seen[i] > 0;
}

/* op_index is the position of k among the mount area's keys. */
static int op_index(const struct cfg_key *k)
{
	return (int)(k - mount_keys);
}

/* close_op checks that the current mount op got its required keys. */
static void close_op(struct cfg_parser *p)
{
	if (p->c->root.n_mounts == 0)
		return;
	uint64_t got = p->op_seen[p->c->root.n_mounts - 1];
	for (const struct cfg_key *k = mount_keys; k->key; k++)
		if ((k->flags & CFG_OP) && (k->flags & CFG_REQUIRED) && !(got >> op_index(k) & 1))
			bad(p, k->key, "missing in mount op %d (%s)", p->c->root.n_mounts,
			    p->c->root.mounts[p->c->root.n_mounts - 1].what);
}

static void record(struct cfg_parser *p, char *key, char *v)
{
	int i;
	size_t a;
	const struct cfg_key *k = lookup(p->mask, key, &i, &a);
	if (!k)
		bad(p, key, "unknown key");
	struct config *c = p->c;
	if (k->flags & CFG_OPENS_OP) {
		close_op(p);
		cfg_append(p, &p->op_seen, &p->n_op_seen, sizeof *p->op_seen);
		struct mount_op *op = cfg_append(p, &c->root.mounts, &c->root.n_mounts, sizeof *op);
		p->op_seen[c->root.n_mounts - 1] = 1ull << op_index(k);
		p->seen[i]++;
		store(p, k, (char *)op, v);
		return;
	}
	if (k->flags & CFG_OP) {
		if (c->root.n_mounts == 0)
			bad(p, key, "before any \"mount\" record");
		uint64_t bit = 1ull << op_index(k);
		uint64_t *got = &p->op_seen[c->root.n_mounts - 1];
		if ((*got & bit) && !(k->flags & CFG_REPEAT))
			bad(p, key, "given twice in mount op %d", c->root.n_mounts);
		*got |= bit;
		p->seen[i]++;
		store(p, k, (char *)&c->root.mounts[c->root.n_mounts - 1], v);
		return;
	}
	if (p->seen[i] && !(k->flags & CFG_REPEAT))
		bad(p, key, "given twice");
	p->seen[i]++;
	store(p, k, (char *)c + areas[a].base, v);
}

/* finish checks what is required and what needs another key, and makes
 * every list non-NULL. */
static void finish(struct cfg_parser *p)
{
	close_op(p);
	int i = 0; /* k's seen[] slot: the tables' keys counted in order */
	for (size_t a = 0; a < NAREAS; a++) {
		for (const struct cfg_key *k = areas[a].keys; k->key; k++, i++) {
			if (!(p->mask & areas[a].bit))
				continue;
			int on = p->seen[i] > 0;
			if (!(k->flags & CFG_OP) && (k->flags & CFG_REQUIRED) && !on)
				bad(p, k->key, "missing");
			if (k->with && !on && seen(p, k->with))
				bad(p, k->key, "missing; \"%s\" needs it", k->with);
			if (k->needs && on && !seen(p, k->needs))
				bad(p, k->key, "given without \"%s\"", k->needs);
			if (k->type == CFG_LIST && !(k->flags & CFG_OP)) {
				char *base = (char *)p->c + areas[a].base;
				char **l = (char **)(base + k->off);
				int *n = (int *)(base + k->count_off);
				if (!*l) {
					cfg_append(p, l, n, sizeof(char *));
					*n = 0;
				}
			}
		}
	}
}

/* check_tables refuses a table line whose type does not fit its field or
 * whose range does not fit its type: a mistake there would store a
 * number cut short without a word. */
static void check_tables(struct cfg_parser *p)
{
	size_t total = 0;
	for (size_t a = 0; a < NAREAS; a++)
		for (const struct cfg_key *k = areas[a].keys; k->key; k++, total++) {
			size_t size = 0;
			int fits = 1;
			switch (k->type) {
			case CFG_BOOL:
				size = sizeof(int);
				break;
			case CFG_INT:
				size = sizeof(int);
				fits = k->min >= INT_MIN && k->max <= INT_MAX;
				break;
			case CFG_LLONG:
				size = sizeof(long long);
				fits = k->max <= LLONG_MAX;
				break;
			case CFG_U32:
				size = sizeof(uint32_t);
				fits = k->min >= 0 && k->max <= UINT32_MAX;
				break;
			case CFG_U64:
				size = sizeof(unsigned long long);
				fits = k->min >= 0;
				break;
			case CFG_STR:
				size = sizeof(char *);
				break;
			case CFG_LIST:
				size = sizeof(char **);
				break;
			case CFG_CUSTOM:
				size = k->size;
				fits = k->parse && (!CFG_CHECK || k->format);
				break;
			}
			if (size != k->size || !fits)
				bad(p, k->key, "the key table's type does not fit the field or its range");
		}
	if (total > CFG_MAX_KEYS)
		bad(p, "", "more than %d keys in the tables", CFG_MAX_KEYS);
	int i;
	size_t a;
	lookup(0, "", &i, &a); /* builds the index */
	if (cfg_index_twice)
		bad(p, cfg_index_twice, "in two key tables: a record could fill only the first");
	for (const struct cfg_key *k = mount_keys; k->key; k++)
		if (op_index(k) >= 64)
			bad(p, k->key, "more than 64 keys in mount_keys");
}

/* decode is config_decode with a parser the caller keeps (p->c, mask,
 * err set): nsbox_config_check writes back out what it saw. */
static int decode(struct cfg_parser *p, char *buf, size_t len, int versioned)
{
	p->err[0] = '\0';
	if (setjmp(p->fail))
		return -1;
	check_tables(p);
	char *end = buf + len;
	int first = 1;
	for (char *r = buf, *next; r < end; r = next, first = 0) {
		next = r + strlen(r) + 1; /* before the '=' below is cut */
		char *v = strchr(r, '=');
		if (!v)
			bad(p, r, "no '=' in the record");
		*v++ = '\0';
		if (!strcmp(r, KEY_VERSION)) {
			if (!versioned || !first)
				bad(p, r, "the protocol version must be the first record, once");
			unsigned long long version;
			if (cfg_number(v, 0, INT_MAX, &version) < 0 || version != NSBOX_CONFIG_VERSION)
				bad(p, r, "protocol version %.16s, this stage speaks %d; fix: run the launcher and the stage from the same nsbox build",
				    v, NSBOX_CONFIG_VERSION);
			continue;
		}
		if (first && versioned)
			bad(p, KEY_VERSION, "missing: the protocol version must be the first record (v=%d)",
			    NSBOX_CONFIG_VERSION);
		record(p, r, v);
	}
	if (first && versioned)
		bad(p, KEY_VERSION, "missing: the message is empty");
	finish(p);
	return 0;
}

/* new_parser returns a parser for c, or NULL with err set. */
static struct cfg_parser *new_parser(struct config *c, unsigned mask, char *err, size_t errsize)
{
	struct cfg_parser *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errsize, "config: out of memory");
		return NULL;
	}
	p->c = c;
	p->mask = mask;
	p->err = err;
	p->errsize = errsize;
	return p;
}

static void free_parser(struct cfg_parser *p)
{
	free(p->op_seen);
	free(p);
}

int config_decode(char *buf, size_t len, struct config *c, unsigned mask, int versioned, char *err,
		  size_t errsize)
{
	struct cfg_parser *p = new_parser(c, mask, err, errsize);
	if (!p)
		return -1;
	int r = decode(p, buf, len, versioned);
	free_parser(p);
	return r;
}

void config_defaults(struct config *c)
{
	c->term.tty_fd = -1;
	c->root.owner_uid = c->root.owner_gid = -1;
	c->ids.nest_uid = c->ids.nest_gid = -1;
	c->ns.enter_userns = c->ns.enter_userns2 = c->ns.enter_pidns = -1;
}

#ifdef NSBOX_CONFIG_CHECK
/* --- writing a config back out (tests) -------------------------------------- */

struct cfg_out {
	char *buf;
	size_t len, cap;
	int failed;
};

static void out_put(struct cfg_out *o, const void *data, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n + 1)
			cap *= 2;
		char *b = realloc(o->buf, cap);
		if (!b) {
			o->failed = 1;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, data, n);
	o->len += n;
}

void cfg_emit(struct cfg_out *o, const char *key, const char *fmt, ...)
{
	out_put(o, key, strlen(key));
	out_put(o, "=", 1);
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->failed = 1;
		return;
	}
	out_put(o, text, (size_t)n);
	out_put(o, "", 1);
	free(text);
}

void cfg_emit_hex(struct cfg_out *o, const char *key, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	out_put(o, key, strlen(key));
	out_put(o, "=", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char b = ((const unsigned char *)data)[i];
		char two[2] = {digits[b >> 4], digits[b & 15]};
		out_put(o, two, 2);
	}
	out_put(o, "", 1);
}

static void emit(struct cfg_out *o, const struct cfg_key *k, const char *base)
{
	const void *field = base + k->off;
	switch (k->type) {
	case CFG_BOOL:
	case CFG_INT:
		cfg_emit(o, k->key, "%d", *(const int *)field);
		return;
	case CFG_LLONG:
		cfg_emit(o, k->key, "%lld", *(const long long *)field);
		return;
	case CFG_U32:
		cfg_emit(o, k->key, "%u", (unsigned)*(const uint32_t *)field);
		return;
	case CFG_U64: {
		unsigned long long n;
		memcpy(&n, field, sizeof n);
		cfg_emit(o, k->key, "%llu", n);
		return;
	}
	case CFG_STR:
		cfg_emit(o, k->key, "%s", *(const char *const *)field);
		return;
	case CFG_LIST: {
		char *const *l = *(char *const *const *)field;
		int n = *(const int *)(base + k->count_off);
		for (int i = 0; i < n; i++)
			cfg_emit(o, k->key, "%s", l[i]);
		return;
	}
	case CFG_CUSTOM:
		k->format(o, k->key, field);
		return;
	}
}

/* config_encode writes c back out: the version, then each area's keys in
 * table order, each mount op at its "mount" key. Only keys the decode saw
 * are written (seen, op_seen), each from the decoded field. */
static void config_encode(struct cfg_out *o, const struct cfg_parser *p, int versioned)
{
	const struct config *c = p->c;
	if (versioned)
		cfg_emit(o, KEY_VERSION, "%d", NSBOX_CONFIG_VERSION);
	int base = 0;
	for (size_t a = 0; a < NAREAS; a++) {
		int i = 0;
		for (const struct cfg_key *k = areas[a].keys; k->key; k++, i++) {
			if (!(p->mask & areas[a].bit) || !p->seen[base + i] || (k->flags & CFG_OP))
				continue;
			if (!(k->flags & CFG_OPENS_OP)) {
				emit(o, k, (const char *)c + areas[a].base);
				continue;
			}
			for (int m = 0; m < c->root.n_mounts; m++)
				for (const struct cfg_key *ok = mount_keys; ok->key; ok++)
					if ((ok->flags & (CFG_OP | CFG_OPENS_OP)) && (p->op_seen[m] >> op_index(ok) & 1))
						emit(o, ok, (const char *)&c->root.mounts[m]);
		}
		base += i;
	}
}

#endif

void nsbox_config_free(struct config *c)
{
	for (int m = 0; m < c->root.n_mounts; m++)
		free(c->root.mounts[m].lower);
	free(c->root.mounts);
	free(c->cmd.argv);
	free(c->cmd.envp);
	free(c->sec.seccomp);
	free(c->lim.rlimits);
	free(c->sec.ll_paths);
	free(c->sec.ll_ports);
	memset(c, 0, sizeof *c);
}

#ifdef NSBOX_CONFIG_CHECK
long nsbox_config_check(const char *in, size_t len, unsigned mask, int versioned, char **out, char *err,
			size_t errsize)
{
	*out = NULL;
	struct config c;
	memset(&c, 0, sizeof c);
	config_defaults(&c);
	char *buf = malloc(len + 1);
	struct cfg_parser *p = new_parser(&c, mask, err, errsize);
	long n = -1;
	if (!buf || !p) {
		snprintf(err, errsize, "config: out of memory");
		goto done;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	if (decode(p, buf, len, versioned) < 0)
		goto done;
	struct cfg_out o = {0};
	config_encode(&o, p, versioned);
	if (o.failed) {
		free(o.buf);
		snprintf(err, errsize, "config: out of memory");
		goto done;
	}
	*out = o.buf;
	n = (long)o.len;
done:
	if (p)
		free_parser(p);
	nsbox_config_free(&c);
	free(buf);
	return n;
}

size_t nsbox_config_keys(char *buf, size_t size)
{
	size_t n = 0;
	for (size_t a = 0; a < NAREAS; a++)
		for (const struct cfg_key *k = areas[a].keys; k->key; k++) {
			int w = snprintf(buf + n, n < size ? size - n : 0, "%s %s\n", areas[a].name, k->key);
			if (w > 0)
				n += (size_t)w;
		}
	return n;
}

const char *nsbox_mount_flag_name(int bit)
{
	switch (bit) {
	case MOUNT_READONLY:
		return "readonly";
	case MOUNT_DEVICES:
		return "devices";
	case MOUNT_OPTIONAL:
		return "optional";
	case MOUNT_OWNED:
		return "owned";
	case MOUNT_NONRECURSIVE:
		return "nonrecursive";
	case MOUNT_TUN:
		return "tun";
	case MOUNT_MODE_SET:
		return "mode-set";
	}
	return NULL;
}
#endif
