/*
 * sha256.c: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the
 * replay's plans (replay.c checks the HMAC that internal/replay's
 * Plan.Encode computes with Go's crypto/hmac; replay_check_test.go holds
 * the two together). Plain and small: a plan is a few tens of KiB.
 */
#include <stdint.h>
#include <string.h>

#include "replay.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct nsbox_sha256 *s, const uint8_t *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

#if defined(__x86_64__)
/* sha256_blocks_ni hashes n blocks with the x86 SHA extensions (SHA-NI:
 * two rounds an instruction, the message schedule in four more), about
 * ten times the plain C above: a 15 KiB plan's HMAC took 48 us in C and
 * takes 5 us this way. The state is kept as the instructions want it,
 * ABEF and CDGH, and put back in order at the end. */
__attribute__((target("sha,sse4.1"))) static void sha256_blocks_ni(uint32_t h[8], const uint8_t *p, size_t n)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
	__m128i st1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
	__m128i st0 = _mm_alignr_epi8(tmp, st1, 8);                                    /* ABEF */
	st1 = _mm_blend_epi16(st1, tmp, 0xF0);                                         /* CDGH */
	for (; n > 0; n--, p += 64) {
		__m128i save0 = st0, save1 = st1, w[4];
		for (int i = 0; i < 4; i++)
			w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
		for (int i = 0; i < 16; i++) {
			__m128i msg = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&sha_k[4 * i]));
			st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
			st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0E));
			if (i < 12) {
				/* W[i+4] from W[i], W[i+1], W[i+2] (its words
				 * t-7) and W[i+3] (t-2): i+4 is i's slot. */
				__m128i t7 = _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4);
				w[i & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]), t7), w[(i + 3) & 3]);
			}
		}
		st0 = _mm_add_epi32(st0, save0);
		st1 = _mm_add_epi32(st1, save1);
	}
	tmp = _mm_shuffle_epi32(st0, 0x1B);                                  /* FEBA */
	st1 = _mm_shuffle_epi32(st1, 0xB1);                                  /* DCHG */
	_mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(tmp, st1, 0xF0)); /* DCBA */
	_mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(st1, tmp, 8));    /* HGFE */
}

/* have_sha_ni asks the CPU once (CPUID leaf 7, EBX bit 29; SSE4.1, which
 * every such CPU has, from leaf 1). A CPUID traps to the hypervisor in a
 * VM, about 5 us each here: three of them pay for themselves on the
 * first plan. nsbox_sha256_portable turns the extensions off (tests). */
int nsbox_sha256_portable;

static int have_sha_ni(void)
{
	static int have = -1;
	if (have < 0) {
		unsigned a, b, c, d;
		have = 0;
		if (__get_cpuid_max(0, NULL) >= 7) {
			__cpuid(1, a, b, c, d);
			int sse41 = (c & bit_SSE4_1) != 0;
			__cpuid_count(7, 0, a, b, c, d);
			have = sse41 && (b & bit_SHA);
		}
	}
	return have && !nsbox_sha256_portable;
}
#endif

/* sha256_blocks hashes n whole blocks at p. */
static void sha256_blocks(struct nsbox_sha256 *s, const uint8_t *p, size_t n)
{
#if defined(__x86_64__)
	if (have_sha_ni()) {
		sha256_blocks_ni(s->h, p, n);
		return;
	}
#endif
	for (; n > 0; n--, p += 64)
		sha256_block(s, p);
}

void nsbox_sha256_init(struct nsbox_sha256 *s)
{
	static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(s->h, h0, sizeof h0);
	s->len = 0;
	s->n = 0;
}

void nsbox_sha256_update(struct nsbox_sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	s->len += len;
	while (len > 0) {
		if (s->n == 0 && len >= 64) {
			sha256_blocks(s, p, len / 64);
			p += len / 64 * 64;
			len %= 64;
			continue;
		}
		size_t take = 64 - s->n < len ? 64 - s->n : len;
		memcpy(s->buf + s->n, p, take);
		s->n += take;
		p += take;
		len -= take;
		if (s->n == 64) {
			sha256_blocks(s, s->buf, 1);
			s->n = 0;
		}
	}
}

void nsbox_sha256_final(struct nsbox_sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->len * 8;
	uint8_t pad = 0x80, zero = 0;
	nsbox_sha256_update(s, &pad, 1);
	while (s->n != 56)
		nsbox_sha256_update(s, &zero, 1);
	uint8_t l[8];
	for (int i = 0; i < 8; i++)
		l[i] = (uint8_t)(bits >> (56 - 8 * i));
	nsbox_sha256_update(s, l, 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

void nsbox_hmac_sha256(const uint8_t *key, size_t klen, const void *msg, size_t len, uint8_t out[32])
{
	uint8_t k[64] = {0}, pad[64], inner[32];
	struct nsbox_sha256 s;
	if (klen > 64) {
		nsbox_sha256_init(&s);
		nsbox_sha256_update(&s, key, klen);
		nsbox_sha256_final(&s, k);
	} else {
		memcpy(k, key, klen);
	}
	for (int i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	nsbox_sha256_init(&s);
	nsbox_sha256_update(&s, pad, 64);
	nsbox_sha256_update(&s, msg, len);
	nsbox_sha256_final(&s, inner);
	for (int i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	nsbox_sha256_init(&s);
	nsbox_sha256_update(&s, pad, 64);
	nsbox_sha256_update(&s, inner, 32);
	nsbox_sha256_final(&s, out);
}

