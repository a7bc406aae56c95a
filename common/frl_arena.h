/* Bump arenas: one allocation up front, named views carved out of it
 * (llm.c style), reset in O(1). Not thread-safe. */
#ifndef FRL_ARENA_H
#define FRL_ARENA_H

#include <stddef.h>

typedef struct frl_arena_s {
    unsigned char *base;
    size_t cap;
    size_t used;
    size_t high; /* high-water mark, for reporting */
} frl_arena_t;

/* Allocates `cap` bytes (64-byte aligned). Returns 0 or FRL_ENOMEM. */
int frl_arena_init(frl_arena_t *a, size_t cap);
void frl_arena_free(frl_arena_t *a);
/* `size` bytes aligned to `align` (a power of two, <= 64), or NULL when the
 * arena is full. Memory is not zeroed. */
void *frl_arena_alloc(frl_arena_t *a, size_t size, size_t align);
/* Same, zeroed. */
void *frl_arena_calloc(frl_arena_t *a, size_t size, size_t align);
void frl_arena_reset(frl_arena_t *a);

/* Rounds `n` up to a multiple of `align` (a power of two). */
static inline size_t frl_align_up(size_t n, size_t align)
{
    return (n + align - 1) & ~(align - 1);
}

#endif
