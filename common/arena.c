#include "common/frl_arena.h"
#include "common/frl_error.h"

#include <stdlib.h>
#include <string.h>

int frl_arena_init(frl_arena_t *a, size_t cap)
{
    a->base = NULL;
    a->cap = a->used = a->high = 0;
    size_t c = frl_align_up(cap ? cap : 64, 64);
    void *p = aligned_alloc(64, c);
    if (!p)
        return FRL_ENOMEM;
    a->base = p;
    a->cap = c;
    return 0;
}

void frl_arena_free(frl_arena_t *a)
{
    free(a->base);
    a->base = NULL;
    a->cap = a->used = a->high = 0;
}

void *frl_arena_alloc(frl_arena_t *a, size_t size, size_t align)
{
    if (align == 0)
        align = 1;
    size_t off = frl_align_up(a->used, align);
    if (off > a->cap || size > a->cap - off)
        return NULL;
    a->used = off + size;
    if (a->used > a->high)
        a->high = a->used;
    return a->base + off;
}

void *frl_arena_calloc(frl_arena_t *a, size_t size, size_t align)
{
    void *p = frl_arena_alloc(a, size, align);
    if (p)
        memset(p, 0, size);
    return p;
}

void frl_arena_reset(frl_arena_t *a)
{
    a->used = 0;
}
