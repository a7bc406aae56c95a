#include "common/frl_rng.h"
#include "common/frl_error.h"

#include <sodium.h>
#include <string.h>

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void refill(frl_rng_t *rng)
{
    /* Keystream = ChaCha20(key, nonce) XOR zeros, starting at block `block`. */
    memset(rng->buf, 0, sizeof rng->buf);
    crypto_stream_chacha20_ietf_xor_ic(rng->buf, rng->buf, sizeof rng->buf, rng->nonce, rng->block, rng->key);
    rng->block += (uint32_t)(sizeof rng->buf / 64);
    rng->pos = 0;
}

void frl_rng_init(frl_rng_t *rng, const uint8_t seed[FRL_SEED_BYTES], uint32_t purpose, uint32_t a, uint32_t b)
{
    /* Idempotent; picks the fastest ChaCha20 implementation. It fails only
     * when the OS has no entropy source, which streams do not use. */
    if (sodium_init() < 0)
        (void)0;
    memcpy(rng->key, seed, 32);
    put_le32(rng->nonce, purpose);
    put_le32(rng->nonce + 4, a);
    put_le32(rng->nonce + 8, b);
    rng->block = 0;
    refill(rng);
}

void frl_rng_fill(frl_rng_t *rng, void *dst, size_t len)
{
    uint8_t *d = dst;
    while (len) {
        if (rng->pos == sizeof rng->buf)
            refill(rng);
        size_t take = sizeof rng->buf - rng->pos;
        if (take > len)
            take = len;
        memcpy(d, rng->buf + rng->pos, take);
        rng->pos += (uint32_t)take;
        d += take;
        len -= take;
    }
}

uint32_t frl_rng_u32(frl_rng_t *rng)
{
    if (rng->pos + 4 > sizeof rng->buf)
        refill(rng);
    const uint8_t *p = rng->buf + rng->pos;
    rng->pos += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t frl_rng_u64(frl_rng_t *rng)
{
    uint64_t lo = frl_rng_u32(rng);
    uint64_t hi = frl_rng_u32(rng);
    return lo | hi << 32;
}

float frl_rng_unit_f32(frl_rng_t *rng)
{
    return (float)(frl_rng_u32(rng) >> 8) * 0x1p-24f;
}

double frl_rng_unit_f64(frl_rng_t *rng)
{
    return (double)(frl_rng_u64(rng) >> 11) * 0x1p-53;
}

uint32_t frl_rng_below(frl_rng_t *rng, uint32_t n)
{
    /* Lemire, "Fast random integer generation in an interval" (2019). */
    uint64_t m = (uint64_t)frl_rng_u32(rng) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)frl_rng_u32(rng) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void frl_rng_shuffle_u32(frl_rng_t *rng, uint32_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        uint32_t j = frl_rng_below(rng, (uint32_t)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

void frl_seed_from_u64(uint64_t x, uint8_t seed[FRL_SEED_BYTES])
{
    static const char tag[] = "frl seed v1";
    uint8_t msg[sizeof tag - 1 + 8];
    memcpy(msg, tag, sizeof tag - 1);
    for (int i = 0; i < 8; i++)
        msg[sizeof tag - 1 + i] = (uint8_t)(x >> (8 * i));
    crypto_generichash(seed, FRL_SEED_BYTES, msg, sizeof msg, NULL, 0);
}

void frl_seed_random(uint8_t seed[FRL_SEED_BYTES])
{
    if (sodium_init() < 0) /* randombytes falls back to its own init */
        (void)0;
    randombytes_buf(seed, FRL_SEED_BYTES);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int frl_seed_parse(const char *s, uint8_t seed[FRL_SEED_BYTES])
{
    if (!s || !*s)
        return FRL_EINVAL;
    size_t len = strlen(s);
    if (len == 64) {
        for (size_t i = 0; i < 32; i++) {
            int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return FRL_EINVAL;
            seed[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    }
    if (len > 20)
        return FRL_EINVAL;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FRL_EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return FRL_EINVAL;
        x = x * 10 + d;
    }
    frl_seed_from_u64(x, seed);
    return 0;
}

void frl_seed_to_hex(const uint8_t seed[FRL_SEED_BYTES], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[seed[i] >> 4];
        out[2 * i + 1] = digits[seed[i] & 15];
    }
    out[64] = '\0';
}
