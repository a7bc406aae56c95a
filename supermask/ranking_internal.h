/* Helpers shared by ranking.c and train.c (not part of the public API). */
#ifndef FRL_RANKING_INTERNAL_H
#define FRL_RANKING_INTERNAL_H

#include <stdint.h>
#include <string.h>

/* Order-preserving map of a float's bits to an unsigned key: negative floats
 * flip all bits, positive ones flip the sign bit. */
static inline uint32_t frl__float_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* k-th smallest (0-based) of v[0..n), reordering v: quickselect with a
 * median-of-3 pivot and a 3-way partition (many equal keys stay linear). */
uint32_t frl__select_kth(uint32_t *v, uint32_t n, uint32_t k);

#endif
