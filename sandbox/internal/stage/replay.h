/*
 * replay.h: the replayed start (replay.c), and the pieces of it that
 * replay_check_test.go tests against their Go twins (internal/replay and
 * cmd/nsbox/internal/state).
 */
#ifndef NSBOX_REPLAY_H
#define NSBOX_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* nsbox_replay runs `nsbox run` from its plan, if this invocation has a
 * plan whose every input still matches; it then never returns. It
 * returns 0 when the Go launcher must run instead, with a stage forked
 * for it as before (nsbox_prefork_pid, nsbox_prefork_fd). */
int nsbox_replay(void);
extern char nsbox_replay_why[512];
extern int nsbox_replay_noticed;
extern int nsbox_replay_sent;

struct nsbox_sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t n;
};
void nsbox_sha256_init(struct nsbox_sha256 *s);
void nsbox_sha256_update(struct nsbox_sha256 *s, const void *data, size_t len);
void nsbox_sha256_final(struct nsbox_sha256 *s, uint8_t out[32]);
void nsbox_hmac_sha256(const uint8_t *key, size_t klen, const void *msg, size_t len, uint8_t out[32]);
/* Set, the plain C rounds serve where the CPU has SHA extensions (tests
 * compare the two). */
extern int nsbox_sha256_portable;

/* nsbox_replay_look answers a plan's check (internal/replay.Look) into
 * out; its length, or -1. nsbox_replay_creds is internal/replay.Creds. */
int nsbox_replay_look(char kind, const char *path, char *out, size_t cap);
int nsbox_replay_creds(char *out, size_t cap);

/* The values of a record template's holes (state.Template). */
struct nsbox_record_values {
	const char *name, *created, *uid_map, *gid_map;
	pid_t pid, launcher;
	unsigned long long start_time;
	int record_fd;
	unsigned long long ns[7]; /* user, mnt, pid, net, ipc, uts, cgroup */
};
/* nsbox_record_fill fills tmpl's holes; *out is malloc'd. */
int nsbox_record_fill(const char *tmpl, size_t len, const struct nsbox_record_values *v, char **out, size_t *outlen);

#endif
