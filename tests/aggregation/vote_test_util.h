/* Helpers shared by the aggregation tests: permutations and a naive vote. */
#ifndef FRL_VOTE_TEST_UTIL_H
#define FRL_VOTE_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aggregation/frl_vote.h"
#include "common/frl_rng.h"

static inline void tu_identity(uint32_t *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        a[i] = i;
}

static inline void tu_reverse(uint32_t *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        a[i] = n - 1 - i;
}

static inline void tu_rng(frl_rng_t *rng, uint32_t a, uint32_t b)
{
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(42, seed);
    frl_rng_init(rng, seed, FRL_STREAM_TEST, a, b);
}

/* A random model ranking for `layout` (each layer shuffled). */
static inline void tu_random_ranking(const frl_vote_layout_t *L, frl_rng_t *rng, uint32_t *a)
{
    for (int l = 0; l < L->n_layers; l++) {
        tu_identity(a + L->offset[l], L->n_edges[l]);
        frl_rng_shuffle_u32(rng, a + L->offset[l], L->n_edges[l]);
    }
}

/* `base` with `swaps` random transpositions of nearby positions: a ranking
 * that mostly agrees with base, like an honest client's after training. */
static inline void tu_perturb(const frl_vote_layout_t *L, frl_rng_t *rng, const uint32_t *base, uint32_t *out, uint32_t swaps,
                              uint32_t reach)
{
    memcpy(out, base, (size_t)L->total_edges * sizeof *out);
    for (int l = 0; l < L->n_layers; l++) {
        uint32_t n = L->n_edges[l];
        uint32_t *a = out + L->offset[l];
        if (n < 2)
            continue;
        for (uint32_t s = 0; s < swaps; s++) {
            uint32_t i = frl_rng_below(rng, n);
            uint32_t j = i + 1 + frl_rng_below(rng, reach);
            if (j >= n)
                j = n - 1;
            if (i == j)
                continue;
            uint32_t t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
}

/* Naive vote: sums[e] += w * pos, then a stable selection-free argsort by
 * (sum, index) with qsort on pairs. For cross-checking the fast path. */
typedef struct tu_pair_s {
    uint64_t key;
    uint32_t idx;
} tu_pair_t;

static int tu_cmp_pair(const void *x, const void *y)
{
    const tu_pair_t *a = x, *b = y;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static inline void tu_argsort_naive(const uint64_t *keys, uint32_t n, uint32_t *order)
{
    tu_pair_t *p = malloc((size_t)n * sizeof *p);
    for (uint32_t i = 0; i < n; i++) {
        p[i].key = keys[i];
        p[i].idx = i;
    }
    qsort(p, n, sizeof *p, tu_cmp_pair);
    for (uint32_t i = 0; i < n; i++)
        order[i] = p[i].idx;
    free(p);
}

static inline int tu_is_permutation(const uint32_t *a, uint32_t n)
{
    uint8_t *seen = calloc(n, 1);
    int ok = 1;
    for (uint32_t i = 0; i < n && ok; i++) {
        if (a[i] >= n || seen[a[i]])
            ok = 0;
        else
            seen[a[i]] = 1;
    }
    free(seen);
    return ok;
}

#endif
