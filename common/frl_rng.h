/* Seeded random streams. Everything random in frl comes from here: a
 * 32-byte federation seed keys ChaCha20 (IETF variant, libsodium), and the
 * 96-bit nonce names the purpose and up to two indices, so that every
 * (purpose, a, b) is an independent stream that any machine regenerates
 * bit for bit:
 *
 *   nonce = le32(purpose) || le32(a) || le32(b),  block counter from 0.
 *
 * Words are read little-endian from the keystream. Floats are made from
 * integers in one documented way (frl_rng_unit_f32/f64) so that every
 * platform gets the same values. Not thread-safe per stream: give each
 * thread its own frl_rng_t. */
#ifndef FRL_RNG_H
#define FRL_RNG_H

#include <stddef.h>
#include <stdint.h>

#define FRL_SEED_BYTES 32

/* Stream purposes (the first nonce word). Never renumber: it changes every
 * derived value. */
enum {
    FRL_STREAM_WEIGHTS = 1,   /* a = layer index: sign bits of the frozen weights */
    FRL_STREAM_SCORES = 2,    /* a = layer index: initial scores */
    FRL_STREAM_SHUFFLE = 3,   /* a = client id, b = round: mini-batch order */
    FRL_STREAM_PARTITION = 4, /* a = 0: data split across clients */
    FRL_STREAM_SAMPLE = 5,    /* a = round, b = try: which clients a round selects */
    FRL_STREAM_ATTACK = 6,    /* a = round, b = client: attack randomness */
    FRL_STREAM_TEST = 7,      /* tests and benchmarks */
    FRL_STREAM_CALIB = 8,     /* a = 0: calibration subset */
    FRL_STREAM_JITTER = 9,    /* reconnect jitter (not reproducibility-critical) */
};

typedef struct frl_rng_s {
    uint8_t key[32];
    uint8_t nonce[12];
    uint32_t block; /* next keystream block to generate */
    uint32_t pos;   /* read position in buf */
    uint8_t buf[1024];
} frl_rng_t;

/* Starts stream (purpose, a, b) of `seed`. */
void frl_rng_init(frl_rng_t *rng, const uint8_t seed[FRL_SEED_BYTES], uint32_t purpose, uint32_t a, uint32_t b);
uint32_t frl_rng_u32(frl_rng_t *rng);
uint64_t frl_rng_u64(frl_rng_t *rng);
/* Uniform in [0, 1): (u32 >> 8) * 2^-24. Exact, platform independent. */
float frl_rng_unit_f32(frl_rng_t *rng);
/* Uniform in [0, 1): (u64 >> 11) * 2^-53. */
double frl_rng_unit_f64(frl_rng_t *rng);
/* Uniform integer in [0, n), n >= 1, without bias (Lemire's method). */
uint32_t frl_rng_below(frl_rng_t *rng, uint32_t n);
/* Fisher-Yates shuffle of v[0..n). */
void frl_rng_shuffle_u32(frl_rng_t *rng, uint32_t *v, size_t n);
/* Raw keystream bytes. */
void frl_rng_fill(frl_rng_t *rng, void *dst, size_t len);

/* seed = BLAKE2b-256("frl seed v1" || le64(x)): a full seed from a small
 * integer, for simulations and tests ("--seed 0"). */
void frl_seed_from_u64(uint64_t x, uint8_t seed[FRL_SEED_BYTES]);
/* A fresh random seed from the OS (libsodium randombytes). */
void frl_seed_random(uint8_t seed[FRL_SEED_BYTES]);
/* 64 hex characters <-> seed. Parse returns 0 or FRL_EINVAL. A decimal
 * integer (up to 20 digits) is also accepted and goes through
 * frl_seed_from_u64. `out` of frl_seed_to_hex needs 65 bytes. */
int frl_seed_parse(const char *s, uint8_t seed[FRL_SEED_BYTES]);
void frl_seed_to_hex(const uint8_t seed[FRL_SEED_BYTES], char out[65]);

#endif
