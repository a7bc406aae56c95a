/* Allocation of the large per-edge arrays (see vote_internal.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "aggregation/vote_internal.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *frl__vote_alloc_big(size_t bytes)
{
    if (bytes < HUGE_PAGE)
        return malloc(bytes ? bytes : 1);
    size_t rounded = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, rounded) != 0)
        return malloc(bytes);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: failure only costs speed */
#endif
    return p;
}

void *frl__vote_calloc_big(size_t bytes)
{
    void *p = frl__vote_alloc_big(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}
