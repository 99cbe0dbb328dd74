/*
 * config.h: the CONFIG protocol's C half. The launcher (sandbox/internal/stage/config.go)
 * sends "key=value\0" records (their keys: protocol.h); config.c decodes
 * them into struct config (stagelib.h), one small struct per job, each
 * through its key table, in the file that uses the fields:
 *
 *   command_keys   stage.c     struct cfg_command: argv, env, identity, exec
 *   ids_keys       stage.c     struct cfg_ids: setup identity, nested maps
 *   ns_keys        stage.c     struct cfg_ns: namespaces made or entered
 *   join_keys      stage.c     struct cfg_join: nsbox exec's sandbox
 *   term_keys      stage.c     struct cfg_term: terminal, pty
 *   mount_keys     mounts.c    struct cfg_root: the new root and its mount ops
 *   security_keys  security.c  struct cfg_security: caps, seccomp, Landlock
 *   limit_keys     security.c  struct cfg_limits: rlimits
 *   tap_keys       tap.c       struct cfg_tap: the network device (also
 *                              NET_READY's payload)
 *
 * config.c registers them in one array: a key is known exactly once,
 * and adding one is one table line (plus its field). The decoder is strict:
 * the first record must be "v=NSBOX_CONFIG_VERSION"; an unknown key, a
 * record without '=', a number that is not canonical decimal or is out of
 * its range, a scalar key given twice, or a missing required key fails the
 * whole message with one line naming the key:
 *
 *   config record "foo": unknown key
 *
 * The stage sends that line as an ERROR (the launcher exits 125). Nothing
 * is ignored, so a key renamed on one side cannot silently mean "off".
 * The keys themselves are protocol.h's macros, which the launcher's
 * encoder reads too.
 */
#ifndef NSBOX_CONFIG_H
#define NSBOX_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "stagelib.h"

enum cfg_type {
	CFG_BOOL,   /* int: "0" or "1" */
	CFG_INT,    /* int in [min, max] */
	CFG_LLONG,  /* long long in [min, max] */
	CFG_U32,    /* uint32_t (uid_t, gid_t, unsigned) in [min, max] */
	CFG_U64,    /* unsigned long long / uint64_t in [min, max] */
	CFG_STR,    /* const char *; max > 0 bounds its length */
	CFG_LIST,   /* repeated: char ** kept NULL-terminated, int count at count_off */
	CFG_CUSTOM, /* parse and format below */
};

#define CFG_REQUIRED 1u /* must be present (once per mount op with CFG_OP) */
#define CFG_OP 2u       /* a field of the current struct mount_op */
#define CFG_REPEAT 4u   /* may be given more than once (lists) */
#define CFG_OPENS_OP 8u /* starts a new mount op (the "mount" record) */

/* Areas, for config_decode's mask. */
#define CFG_AREA_STAGE 1u
#define CFG_AREA_MOUNTS 2u
#define CFG_AREA_SECURITY 4u
#define CFG_AREA_TAP 8u
#define CFG_AREA_ALL 15u

struct cfg_parser;
struct cfg_out;

/* cfg_key is one record's key, what its value is and where it goes. */
struct cfg_key {
	const char *key;
	enum cfg_type type;
	unsigned flags;
	size_t off;       /* the field in the table's struct (struct mount_op with CFG_OP) */
	size_t size;      /* its size, checked against the type (CFG_KEY fills it in) */
	size_t count_off; /* CFG_LIST: the int counting its elements */
	long long min;    /* numbers: the accepted range */
	unsigned long long max; /* numbers: the range's top; CFG_STR: longest length (0: any) */
	const char *with;  /* this key is required whenever that key is given */
	const char *needs; /* this key is refused unless that key is given */
	/* CFG_CUSTOM: parse stores v (which it may rewrite in place) into
	 * the field; it returns NULL or why v is bad ("want ACCESS:PORT").
	 * format writes the field back out as records (config_check). */
	const char *(*parse)(struct cfg_parser *p, void *field, char *v);
	void (*format)(struct cfg_out *o, const char *key, const void *field);
};

/* The tables, one per struct of struct config (stagelib.h), each ended by
 * an entry with key NULL; config.c lists them with their struct's place. */
extern const struct cfg_key command_keys[], ids_keys[], ns_keys[], join_keys[], term_keys[];
extern const struct cfg_key mount_keys[], security_keys[], limit_keys[], tap_keys[];

/* CFG_FORMAT names a CFG_CUSTOM key's formatter: the writer that turns a
 * decoded config back into records exists for the round-trip tests only
 * (NSBOX_CONFIG_CHECK, set by configcheck.go under the nsbox_configcheck
 * build tag), so the stage that ships has neither it nor the formatters. */
#ifdef NSBOX_CONFIG_CHECK
#define CFG_CHECK 1
#define CFG_FORMAT(f) .format = (f)
#else
#define CFG_CHECK 0
#define CFG_FORMAT(f) .format = NULL
#endif

/* Table entries: CFG_KEY for a field of the table's struct (CFG_STRUCT,
 * defined before each table), CFG_OP_KEY for one of the current mount op;
 * designated fields (.max, .with, …) after. */
#define CFG_FIELD(f) offsetof(CFG_STRUCT, f)
#define CFG_OPFIELD(f) offsetof(struct mount_op, f)
#define CFG_KEY(k, t, fl, f) \
	.key = (k), .type = (t), .flags = (fl), .off = CFG_FIELD(f), .size = sizeof(((CFG_STRUCT *)0)->f)
#define CFG_OP_KEY(k, t, fl, f) \
	.key = (k), .type = (t), .flags = (fl) | CFG_OP, .off = CFG_OPFIELD(f), .size = sizeof(((struct mount_op *)0)->f)

/* config_decode decodes len bytes of records at buf (NUL at buf[len];
 * values are cut out of buf and kept) into c, with the keys of the areas
 * in mask. With versioned the first record must be the protocol version.
 * Returns 0, or -1 with one line in err. Fields without a record keep
 * their defaults (config_defaults); lists are never NULL afterwards. */
int config_decode(char *buf, size_t len, struct config *c, unsigned mask, int versioned,
		  char *err, size_t errsize);
/* config_defaults sets what an absent record means (-1 for ids and fds). */
void config_defaults(struct config *c);

/* For custom parsers: cfg_append grows a list of count elements of size
 * bytes by one zeroed element (a zeroed one always follows it) and returns
 * it; cfg_number parses canonical decimal within [min, max]. */
void *cfg_append(struct cfg_parser *p, void *list, int *count, size_t size);
int cfg_number(const char *s, long long min, unsigned long long max, unsigned long long *out);
/* cfg_next cuts *s at the next ':' and returns the part before it, or
 * NULL when there is no ':'. */
char *cfg_next(char **s);
/* For custom formatters: cfg_emit writes "key=" and the printf text. */
__attribute__((format(printf, 3, 4))) void cfg_emit(struct cfg_out *o, const char *key, const char *fmt, ...);
void cfg_emit_hex(struct cfg_out *o, const char *key, const void *data, size_t len);

/* With NSBOX_CONFIG_CHECK only (the tests' build, configcheck.go):
 * nsbox_config_check decodes as
 * the stage does and writes the decoded struct back out as records into a
 * malloc'd *out; nsbox_config_free releases what a decode allocated. */
long nsbox_config_check(const char *in, size_t len, unsigned mask, int versioned, char **out,
			char *err, size_t errsize);
/* nsbox_config_keys writes every key of every area, "area key\n" each. */
size_t nsbox_config_keys(char *buf, size_t size);
void nsbox_config_free(struct config *c);
/* nsbox_mount_flag_name names the MOUNT_* bit as the stage means it
 * (tests: which Op field sets which bit), or NULL. */
const char *nsbox_mount_flag_name(int bit);

/* mountinfo_unescape (mounts.c) undoes /proc/self/mountinfo's octal
 * escapes in place (\040 for a space; the kernel escapes space, tab,
 * newline and backslash). \000 and malformed escapes stay as they are. */
void mountinfo_unescape(char *s);

#endif
