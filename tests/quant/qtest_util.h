/* Shared helpers of the quant tests: a small deterministic PRNG and random
 * ternary layers. */
#ifndef FRL_QTEST_UTIL_H
#define FRL_QTEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quant/frl_qkernels.h"

static inline uint64_t qt_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint32_t qt_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(qt_next(s) % n);
}

/* mode 0: random ternary (1/4 +1, 1/4 -1, 1/2 0); 1: all +1; 2: all -1 */
static inline void qt_codes(uint64_t *s, uint8_t *codes, int O, int K, int mode)
{
    size_t rb = frl_tern_row_bytes((uint32_t)K);
    memset(codes, 0, (size_t)O * rb);
    for (int o = 0; o < O; o++)
        for (int k = 0; k < K; k++) {
            unsigned v;
            if (mode == 1)
                v = 1;
            else if (mode == 2)
                v = 3;
            else {
                uint32_t r = qt_below(s, 4);
                v = r == 0 ? 1u : r == 1 ? 3u : 0u;
            }
            codes[(size_t)o * rb + (k >> 2)] |= (uint8_t)(v << (2 * (k & 3)));
        }
}

/* mode 0: uniform bytes; 1: all 255; 2: sparse (3/4 zeros, like post-ReLU) */
static inline void qt_bytes(uint64_t *s, uint8_t *p, size_t n, int mode)
{
    for (size_t i = 0; i < n; i++) {
        if (mode == 1)
            p[i] = 255;
        else if (mode == 2)
            p[i] = qt_below(s, 4) ? 0 : (uint8_t)qt_next(s);
        else
            p[i] = (uint8_t)qt_next(s);
    }
}

static inline int qt_first_diff(const uint8_t *a, const uint8_t *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            printf("%s: first mismatch at byte %zu: %u vs %u\n", what, i, a[i], b[i]);
            return 1;
        }
    return 0;
}
static inline int qt_first_diff32(const int32_t *a, const int32_t *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            printf("%s: first mismatch at %zu: %d vs %d\n", what, i, a[i], b[i]);
            return 1;
        }
    return 0;
}

#endif
