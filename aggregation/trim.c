/* Trimmed vote: every vote's positions are kept, and per edge the t lowest
 * and t highest positions are left out of the sum. */
#include "aggregation/frl_vote_robust.h"

#include <stdlib.h>
#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"

struct frl_vote_trim_s {
    frl_vote_layout_t layout;
    uint32_t max_votes;
    uint32_t votes;
    uint32_t *pos; /* (max_votes, total_edges): pos[v * total + off_l + e] = position of e in vote v */
    /* finalize scratch, allocated with the store so finalize never allocates */
    uint32_t *col;   /* max_votes: one edge's positions */
    uint64_t *tsums; /* max_layer_edges: trimmed sums of a layer */
    void *sort_buf;  /* frl_vote_argsort_scratch_size(max_layer_edges) */
};

/* Bytes of the positions alone, or 0 on overflow. */
static size_t positions_bytes(const frl_vote_layout_t *layout, uint32_t max_votes)
{
    size_t bytes;
    if (layout->total_edges > SIZE_MAX / 4)
        return 0;
    if (frl__vote_mul_size((size_t)layout->total_edges * 4, max_votes, &bytes))
        return 0;
    return bytes;
}

size_t frl_vote_trim_memory(const frl_vote_layout_t *layout, uint32_t max_votes)
{
    size_t pos = positions_bytes(layout, max_votes);
    size_t extra =
        (size_t)max_votes * 4 + (size_t)layout->max_layer_edges * 8 + frl_vote_argsort_scratch_size(layout->max_layer_edges);
    if (pos == 0 || pos > SIZE_MAX - extra)
        return 0;
    return pos + extra;
}

int frl_vote_trim_create(const frl_vote_layout_t *layout, uint32_t max_votes, size_t max_bytes, frl_vote_trim_t **out)
{
    if (!layout || !out || max_votes == 0 || layout->n_layers < 1)
        return FRL_EINVAL;
    *out = NULL;
    size_t bytes = positions_bytes(layout, max_votes);
    size_t all = frl_vote_trim_memory(layout, max_votes);
    if (bytes == 0 || all == 0 || (max_bytes && all > max_bytes))
        return FRL_ETOOBIG;
    frl_vote_trim_t *tr = calloc(1, sizeof *tr);
    if (!tr)
        return FRL_ENOMEM;
    tr->pos = frl__vote_alloc_big(bytes);
    tr->col = malloc((size_t)max_votes * sizeof *tr->col);
    tr->tsums = frl__vote_alloc_big((size_t)layout->max_layer_edges * sizeof *tr->tsums);
    tr->sort_buf = frl__vote_alloc_big(frl_vote_argsort_scratch_size(layout->max_layer_edges));
    if (!tr->pos || !tr->col || !tr->tsums || !tr->sort_buf) {
        frl_vote_trim_destroy(tr);
        return FRL_ENOMEM;
    }
    tr->layout = *layout;
    tr->max_votes = max_votes;
    *out = tr;
    return 0;
}

void frl_vote_trim_destroy(frl_vote_trim_t *tr)
{
    if (!tr)
        return;
    frl__vote_free_big(tr->pos);
    free(tr->col);
    frl__vote_free_big(tr->tsums);
    frl__vote_free_big(tr->sort_buf);
    free(tr);
}

void frl_vote_trim_reset(frl_vote_trim_t *tr)
{
    tr->votes = 0;
}

uint32_t frl_vote_trim_votes(const frl_vote_trim_t *tr)
{
    return tr->votes;
}

uint32_t frl_vote_trim_capacity(const frl_vote_trim_t *tr)
{
    return tr->max_votes;
}

int frl_vote_trim_add_valid(frl_vote_trim_t *tr, const uint32_t *ranking)
{
    if (!tr || !ranking)
        return FRL_EINVAL;
    if (tr->votes >= tr->max_votes)
        return FRL_ETOOBIG;
    frl_vote_positions(&tr->layout, ranking, tr->pos + (size_t)tr->votes * tr->layout.total_edges);
    tr->votes++;
    return 0;
}

static void insertion_sort_u32(uint32_t *v, uint32_t m)
{
    for (uint32_t i = 1; i < m; i++) {
        uint32_t x = v[i], j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int frl_vote_trim_finalize(frl_vote_trim_t *tr, uint32_t t, uint32_t *ranking, uint64_t *sums)
{
    if (!tr || !ranking)
        return FRL_EINVAL;
    uint32_t m = tr->votes;
    if (m == 0 || (uint64_t)2 * t >= m)
        return FRL_ESTATE;
    const frl_vote_layout_t *L = &tr->layout;
    size_t total = (size_t)L->total_edges;
    uint32_t *buf = tr->col;
    for (int l = 0; l < L->n_layers; l++) {
        uint64_t off = L->offset[l];
        uint32_t n = L->n_edges[l];
        uint64_t *T = sums ? sums + off : tr->tsums;
        for (uint32_t e = 0; e < n; e++) {
            const uint32_t *col = tr->pos + off + e;
            for (uint32_t v = 0; v < m; v++)
                buf[v] = col[(size_t)v * total];
            if (t > 0) {
                if (m <= 64)
                    insertion_sort_u32(buf, m);
                else
                    qsort(buf, m, sizeof *buf, cmp_u32);
            }
            uint64_t s = 0;
            for (uint32_t v = t; v < m - t; v++)
                s += buf[v];
            T[e] = s;
        }
        int rc = frl_vote_argsort_u64(T, n, ranking + off, tr->sort_buf);
        if (rc)
            return rc;
    }
    return 0;
}
