/* Allocation of the large per-edge arrays (see vote_internal.h). */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "aggregation/vote_internal.h"

#define HUGE_PAGE ((size_t)2 << 20)

/* Every big array starts at its own offset into its huge pages. Arrays
 * that all began on a 2 MiB boundary would put element i of each (the
 * tally's sums, the reference positions, the partition scratch: the
 * kernels touch them at the same indices together) into the same cache
 * sets, and they then evict each other: measured on this project's VM,
 * the fused check + add + agreement of lenet's big layer took 25 ms with
 * aligned arrays and 9 ms staggered. Offsets step by 4 KiB + 1 cache
 * line through 128 KiB (the L2 set period), so no two of a few arrays
 * share sets at equal indices. The pointer to free sits just before the
 * returned block. */
static atomic_uint big_color;

void *frl__vote_alloc_big(size_t bytes)
{
    unsigned color = atomic_fetch_add_explicit(&big_color, 1, memory_order_relaxed) % 31u;
    size_t off = 64 + (size_t)color * (4096 + 64);
    size_t total = bytes + off;
    if (total < bytes)
        return NULL;
    void *p = NULL;
    if (total < HUGE_PAGE) {
        if (posix_memalign(&p, 64, total) != 0)
            return NULL;
    } else {
        size_t rounded = (total + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        if (rounded < total || posix_memalign(&p, HUGE_PAGE, rounded) != 0)
            return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: failure only costs speed */
#endif
    }
    unsigned char *q = (unsigned char *)p + off;
    memcpy(q - sizeof p, &p, sizeof p);
    return q;
}

void *frl__vote_calloc_big(size_t bytes)
{
    void *p = frl__vote_alloc_big(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void frl__vote_free_big(void *q)
{
    if (!q)
        return;
    void *p;
    memcpy(&p, (unsigned char *)q - sizeof p, sizeof p);
    free(p);
}
