/* Ranking bit-packing; the format is described in frl_rankpack.h. */
#include "proto/frl_rankpack.h"
#include "common/frl_error.h"

#include <string.h>

static inline void store32le(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
#endif
}

static inline uint32_t load32le(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
#endif
}

unsigned frl_rank_bits(uint32_t n)
{
    if (n == 0)
        return 0;
    if (n <= 2)
        return 1;
    return 32u - (unsigned)__builtin_clz(n - 1);
}

size_t frl_rank_packed_size(uint32_t n)
{
    uint64_t bits = (uint64_t)n * frl_rank_bits(n);
    return (size_t)((bits + 7) / 8);
}

/* Packs with a 64-bit accumulator that never holds more than 63 bits: before
 * adding an index it holds < 32 bits, and an index has <= 32 bits. Every
 * time 32 bits are ready they are stored as one little-endian word; the
 * last < 32 bits are stored byte by byte, so exactly packed_size bytes are
 * written. Out-of-range values are detected without a branch in the loop. */
int frl_rank_pack(const uint32_t *idx, uint32_t n, uint8_t *out, size_t cap, size_t *len)
{
    if (!idx || !out || !len || n == 0)
        return FRL_EINVAL;
    const unsigned b = frl_rank_bits(n);
    const size_t size = frl_rank_packed_size(n);
    if (cap < size)
        return FRL_ETOOBIG;
    const uint64_t mask = ((uint64_t)1 << b) - 1;
    uint64_t acc = 0;
    unsigned nb = 0;
    uint32_t bad = 0;
    uint8_t *p = out;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = idx[i];
        bad |= (uint32_t)(v >= n);
        acc |= ((uint64_t)v & mask) << nb;
        nb += b;
        if (nb >= 32) {
            store32le(p, (uint32_t)acc);
            p += 4;
            acc >>= 32;
            nb -= 32;
        }
    }
    while (nb > 0) {
        *p++ = (uint8_t)acc;
        acc >>= 8;
        nb = nb > 8 ? nb - 8 : 0;
    }
    if (bad)
        return FRL_EVOTE_RANGE;
    *len = size;
    return 0;
}

/* Unpacks with the mirror-image accumulator: refill 32 bits at a time while
 * 4 input bytes remain, byte by byte at the very end. Because the length was
 * checked first, the loop never reads past `len`, and what is left in the
 * accumulator at the end is exactly the padding, which must be zero. */
int frl_rank_unpack(const uint8_t *in, size_t len, uint32_t n, uint32_t *out)
{
    if (!in || !out || n == 0)
        return FRL_EINVAL;
    if (len != frl_rank_packed_size(n))
        return FRL_EVOTE_LENGTH;
    const unsigned b = frl_rank_bits(n);
    const uint64_t mask = ((uint64_t)1 << b) - 1;
    const uint8_t *p = in, *end = in + len;
    uint64_t acc = 0;
    unsigned nb = 0;
    uint32_t bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (nb < b) {
            if (end - p >= 4) {
                acc |= (uint64_t)load32le(p) << nb;
                p += 4;
                nb += 32;
            } else {
                while (nb < b && p < end) {
                    acc |= (uint64_t)*p++ << nb;
                    nb += 8;
                }
            }
        }
        uint32_t v = (uint32_t)(acc & mask);
        acc >>= b;
        nb -= b;
        bad |= (uint32_t)(v >= n);
        out[i] = v;
    }
    if (bad)
        return FRL_EVOTE_RANGE;
    if (acc != 0 || p != end)
        return FRL_EFORMAT;
    return 0;
}
