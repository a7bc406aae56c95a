/* The streaming vote tally: per-edge uint64 sums of rank positions.
 *
 * Storage: the exact sums are uint64 (S = sums + pending). Votes are first
 * added into a uint32 `pending` array, which halves the memory the
 * scattered adds touch (6.5 MB instead of 13 MB for lenet; the adds are
 * bound by cache misses). pending can take `pending_limit` =
 * floor(INT32_MAX / (max_layer_edges - 1)) units of weight before a sum
 * could reach 2^31 (1,337 unit votes for lenet, 910 for conv8; bit 31 is
 * the partitioned add's check flag, kernels.c);
 * then it is flushed into `sums` (sums += pending, pending = 0) and
 * filling starts again. A round of fewer votes never flushes, and finalize
 * then sorts the uint32 pending sums directly. Every public view (sums,
 * merge, load) flushes first, so callers only ever see exact uint64 sums. */
#include "aggregation/frl_vote.h"

#include <stdlib.h>
#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"

struct frl_vote_tally_s {
    frl_vote_layout_t layout;
    uint64_t *sums;             /* total_edges: flushed sums, layers concatenated */
    uint32_t *pending;          /* total_edges: sums not yet flushed */
    uint64_t pending_weight;    /* weight held in pending */
    uint64_t pending_limit;     /* largest pending_weight that cannot overflow */
    int sums_used;              /* sums may be non-zero */
    int last_pending;           /* the last vote added went to pending */
    uint64_t votes;             /* votes added */
    uint64_t weight;            /* sum of their weights */
    uint64_t *bitmap;           /* validation scratch for the largest layer */
    void *sort_buf;             /* argsort and partitioned-add scratch, largest layer */
    frl__vote_helper_t *helper; /* second thread for large layers, or NULL */
};

int frl_vote_tally_create(const frl_vote_layout_t *layout, frl_vote_tally_t **out)
{
    if (!layout || !out || layout->n_layers < 1 || layout->n_layers > FRL_VOTE_MAX_LAYERS)
        return FRL_EINVAL;
    *out = NULL;
    size_t sums_bytes;
    if (layout->total_edges > SIZE_MAX || frl__vote_mul_size((size_t)layout->total_edges, 8, &sums_bytes))
        return FRL_ENOMEM;
    frl_vote_tally_t *t = calloc(1, sizeof *t);
    if (!t)
        return FRL_ENOMEM;
    t->layout = *layout;
    uint64_t top = layout->max_layer_edges > 1 ? (uint64_t)layout->max_layer_edges - 1 : 1;
    t->pending_limit = INT32_MAX / top;
    t->sums = frl__vote_calloc_big(sums_bytes);
    t->pending = frl__vote_calloc_big(sums_bytes / 2);
    t->bitmap = malloc(frl_vote_validate_scratch_size(layout));
    size_t sort_bytes = frl_vote_argsort_scratch_size(layout->max_layer_edges);
    if (layout->max_layer_edges <= FRL__VOTE_PART_MAX) {
        size_t part_bytes = frl__vote_part_scratch_size((uint32_t)layout->max_layer_edges);
        sort_bytes = part_bytes > sort_bytes ? part_bytes : sort_bytes;
    }
    t->sort_buf = frl__vote_calloc_big(sort_bytes);
    if (!t->sums || !t->pending || !t->bitmap || !t->sort_buf)
        goto fail;
    *out = t;
    return 0;
fail:
    frl_vote_tally_destroy(t);
    return FRL_ENOMEM;
}

void frl_vote_tally_destroy(frl_vote_tally_t *t)
{
    if (!t)
        return;
    frl__vote_free_big(t->sums);
    frl__vote_free_big(t->pending);
    free(t->bitmap);
    frl__vote_free_big(t->sort_buf);
    frl__vote_helper_destroy(t->helper);
    free(t);
}

int frl_vote_tally_set_threads(frl_vote_tally_t *t, int threads)
{
    if (!t || threads < 1 || threads > 2)
        return FRL_EINVAL;
    if (threads == 1) {
        frl__vote_helper_destroy(t->helper);
        t->helper = NULL;
        return 0;
    }
    return t->helper ? 0 : frl__vote_helper_create(&t->helper);
}

void frl_vote_tally_reset(frl_vote_tally_t *t)
{
    size_t n = (size_t)t->layout.total_edges;
    if (t->sums_used)
        memset(t->sums, 0, n * sizeof *t->sums);
    if (t->pending_weight)
        memset(t->pending, 0, n * sizeof *t->pending);
    t->sums_used = 0;
    t->pending_weight = 0;
    t->votes = 0;
    t->weight = 0;
}

const frl_vote_layout_t *frl_vote_tally_layout(const frl_vote_tally_t *t)
{
    return &t->layout;
}

/* sums += pending; pending = 0. */
static void flush(frl_vote_tally_t *t)
{
    if (t->pending_weight == 0)
        return;
    size_t n = (size_t)t->layout.total_edges;
    uint64_t *s = t->sums;
    uint32_t *p = t->pending;
    for (size_t i = 0; i < n; i++)
        s[i] += p[i];
    memset(p, 0, n * sizeof *p);
    t->pending_weight = 0;
    t->sums_used = 1;
}

/* Largest total weight for which no sum can exceed UINT64_MAX: a sum is at
 * most weight * (n - 1) for the largest layer n. */
static uint64_t weight_limit(const frl_vote_layout_t *layout)
{
    uint64_t top = layout->max_layer_edges > 1 ? (uint64_t)layout->max_layer_edges - 1 : 1;
    return UINT64_MAX / top;
}

static int weight_fits(const frl_vote_tally_t *t, uint64_t more)
{
    uint64_t lim = weight_limit(&t->layout);
    return more <= lim && t->weight <= lim - more;
}

/* Where a vote of `weight` goes: 1 = pending (flushed first if full),
 * 0 = straight into the uint64 sums (weights too large for pending). */
static int use_pending(frl_vote_tally_t *t, uint64_t weight)
{
    if (weight > t->pending_limit)
        return 0;
    if (t->pending_weight + weight > t->pending_limit)
        flush(t);
    return 1;
}

int frl_vote_tally_add_valid(frl_vote_tally_t *t, const uint32_t *ranking, uint32_t weight)
{
    if (!t || !ranking || weight == 0)
        return FRL_EINVAL;
    if (!weight_fits(t, weight))
        return FRL_ERANGE;
    const frl_vote_layout_t *L = &t->layout;
    /* S[ranking[r]] += weight * r: no need to invert the permutation. */
    t->last_pending = use_pending(t, weight);
    if (t->last_pending) {
        for (int l = 0; l < L->n_layers; l++) {
            uint32_t n = L->n_edges[l];
            if (n >= FRL__VOTE_PART_MIN && n <= FRL__VOTE_PART_MAX)
                (void)frl__vote_add_part32(t->pending + L->offset[l], ranking + L->offset[l], n, weight, 0, t->sort_buf, NULL, NULL,
                                           t->helper);
            else
                frl__vote_add32(t->pending + L->offset[l], ranking + L->offset[l], n, weight);
        }
        t->pending_weight += weight;
    } else {
        for (int l = 0; l < L->n_layers; l++)
            frl__vote_add(t->sums + L->offset[l], ranking + L->offset[l], L->n_edges[l], weight);
        t->sums_used = 1;
    }
    t->votes++;
    t->weight += weight;
    return 0;
}

/* One fused pass per layer: check and add together (the ranking is read
 * once), and with ref_pos also the agreement. When a layer fails, its own
 * partial adds are undone by the kernel and the earlier layers' adds here,
 * so the sums end bit for bit as they were: a rejected vote leaves no
 * trace. */
int frl__vote_tally_add_agree(frl_vote_tally_t *t, const uint32_t *ranking, int n_layers, const uint32_t *lens, uint32_t weight,
                              const uint32_t *ref_pos, frl_vote_reject_t *reject, double *agreement, double *min_layer)
{
    if (!t || !ranking || weight == 0)
        return frl__vote_reject(reject, FRL_EINVAL, -1, -1, 0);
    const frl_vote_layout_t *L = &t->layout;
    int rc = frl__vote_check_shape(L, n_layers, lens, reject);
    if (rc)
        return rc;
    if (!weight_fits(t, weight))
        return frl__vote_reject(reject, FRL_ERANGE, -1, -1, weight);
    int pend = use_pending(t, weight);
    double acc = 0.0, mn = 1.0;
    for (int l = 0; l < L->n_layers; l++) {
        int64_t bad_index = -1;
        uint64_t bad_value = 0;
        uint64_t off = L->offset[l];
        uint32_t n = L->n_edges[l];
        frl__u128 d2 = 0;
        if (pend && n >= FRL__VOTE_PART_MIN && n <= FRL__VOTE_PART_MAX) {
            /* Large layer: partitioned add (the sort scratch holds the pairs). */
            if (frl__vote_add_part32(t->pending + off, ranking + off, n, weight, 1, t->sort_buf, ref_pos ? ref_pos + off : NULL,
                                     &d2, t->helper)) {
                rc = frl__vote_check_perm(ranking + off, n, t->bitmap, &bad_index, &bad_value);
                if (rc == 0) /* cannot happen: a failed partition proves a bad value */
                    rc = FRL_EVOTE_DUPLICATE;
            } else
                rc = 0;
        } else if (pend && ref_pos)
            rc = frl__vote_add_checked_d232(t->pending + off, ranking + off, n, weight, t->bitmap, ref_pos + off, &d2, &bad_index,
                                            &bad_value);
        else if (pend)
            rc = frl__vote_add_checked32(t->pending + off, ranking + off, n, weight, t->bitmap, &bad_index, &bad_value);
        else if (ref_pos)
            rc = frl__vote_add_checked_d2(t->sums + off, ranking + off, n, weight, t->bitmap, ref_pos + off, &d2, &bad_index,
                                          &bad_value);
        else
            rc = frl__vote_add_checked(t->sums + off, ranking + off, n, weight, t->bitmap, &bad_index, &bad_value);
        if (rc) {
            for (int k = 0; k < l; k++) {
                if (pend)
                    frl__vote_sub32(t->pending + L->offset[k], ranking + L->offset[k], L->n_edges[k], weight);
                else
                    frl__vote_sub(t->sums + L->offset[k], ranking + L->offset[k], L->n_edges[k], weight);
            }
            return frl__vote_reject(reject, rc, l, bad_index, bad_value);
        }
        if (ref_pos) {
            double rho = frl__vote_rho(d2, n);
            acc += (double)n * rho;
            mn = rho < mn ? rho : mn;
        }
    }
    if (pend)
        t->pending_weight += weight;
    else
        t->sums_used = 1;
    t->last_pending = pend;
    t->votes++;
    t->weight += weight;
    if (ref_pos) {
        *agreement = acc / (double)L->total_edges;
        *min_layer = mn;
    }
    return frl__vote_reject(reject, 0, -1, -1, 0);
}

int frl_vote_tally_add(frl_vote_tally_t *t, const uint32_t *ranking, int n_layers, const uint32_t *lens, uint32_t weight,
                       frl_vote_reject_t *reject)
{
    return frl__vote_tally_add_agree(t, ranking, n_layers, lens, weight, NULL, reject, NULL, NULL);
}

/* Only for the vote added last (its place, pending or sums, is
 * remembered): subtracts the difference where the vote went, which holds
 * at least weight * r for each position, so nothing wraps. */
void frl__vote_tally_reweight(frl_vote_tally_t *t, const uint32_t *ranking, uint32_t from, uint32_t to)
{
    const frl_vote_layout_t *L = &t->layout;
    uint64_t diff = (uint64_t)from - to;
    if (diff == 0)
        return;
    for (int l = 0; l < L->n_layers; l++) {
        if (t->last_pending)
            frl__vote_sub32(t->pending + L->offset[l], ranking + L->offset[l], L->n_edges[l], (uint32_t)diff);
        else
            frl__vote_sub(t->sums + L->offset[l], ranking + L->offset[l], L->n_edges[l], diff);
    }
    if (t->last_pending)
        t->pending_weight -= diff;
    t->weight -= diff;
    if (to == 0)
        t->votes--;
}

int frl_vote_tally_merge(frl_vote_tally_t *dst, const frl_vote_tally_t *src)
{
    if (!dst || !src)
        return FRL_EINVAL;
    if (!frl_vote_layout_equal(&dst->layout, &src->layout))
        return FRL_EMISMATCH;
    uint64_t add_w = src->weight; /* read before dst changes: src may be dst */
    uint64_t add_v = src->votes;
    if (!weight_fits(dst, add_w))
        return FRL_ERANGE;
    flush(dst); /* when src == dst this flushes src too */
    uint64_t *d = dst->sums;
    const uint64_t *s = src->sums;
    const uint32_t *p = src->pending;
    size_t n = (size_t)dst->layout.total_edges;
    if (src->pending_weight)
        for (size_t i = 0; i < n; i++)
            d[i] += s[i] + p[i];
    else
        for (size_t i = 0; i < n; i++)
            d[i] += s[i];
    dst->sums_used = 1;
    dst->weight += add_w;
    dst->votes += add_v;
    return 0;
}

void *frl__vote_tally_scratch(frl_vote_tally_t *t)
{
    return t->sort_buf;
}

uint64_t frl_vote_tally_votes(const frl_vote_tally_t *t)
{
    return t->votes;
}

uint64_t frl_vote_tally_weight(const frl_vote_tally_t *t)
{
    return t->weight;
}

const uint64_t *frl_vote_tally_sums(frl_vote_tally_t *t, int l)
{
    if (!t || l < 0 || l >= t->layout.n_layers)
        return NULL;
    flush(t);
    return t->sums + t->layout.offset[l];
}

int frl_vote_tally_load(frl_vote_tally_t *t, const uint64_t *sums, uint64_t votes, uint64_t weight)
{
    if (!t || !sums)
        return FRL_EINVAL;
    if (weight > weight_limit(&t->layout) || (votes == 0) != (weight == 0) || votes > weight)
        return FRL_ERANGE;
    /* Check everything before touching the tally: every sum is at most
     * weight * (n - 1), and a layer's sums add up to exactly
     * weight * n (n - 1) / 2, as any weighted set of permutations gives. */
    for (int l = 0; l < t->layout.n_layers; l++) {
        const uint64_t *s = sums + t->layout.offset[l];
        uint32_t n = t->layout.n_edges[l];
        uint64_t top = weight * (uint64_t)(n - 1);
        frl__u128 total = 0;
        for (uint32_t e = 0; e < n; e++) {
            if (s[e] > top)
                return FRL_ERANGE;
            total += s[e];
        }
        frl__u128 want = (frl__u128)weight * n * (n - 1) / 2;
        if (total != want)
            return FRL_ERANGE;
    }
    frl_vote_tally_reset(t);
    memcpy(t->sums, sums, (size_t)t->layout.total_edges * sizeof *sums);
    t->sums_used = 1;
    t->votes = votes;
    t->weight = weight;
    return 0;
}

int frl_vote_tally_finalize(frl_vote_tally_t *t, uint32_t *ranking)
{
    if (!t || !ranking)
        return FRL_EINVAL;
    if (t->votes == 0)
        return FRL_ESTATE;
    const frl_vote_layout_t *L = &t->layout;
    if (!t->sums_used) {
        /* Every vote is still in the uint32 pending sums (the usual round). */
        for (int l = 0; l < L->n_layers; l++) {
            uint32_t n = L->n_edges[l];
            frl__vote_argsort_bounded_u32(t->pending + L->offset[l], n, (uint32_t)(t->pending_weight * (n - 1)),
                                          ranking + L->offset[l], t->sort_buf, t->helper);
        }
        return 0;
    }
    flush(t);
    for (int l = 0; l < L->n_layers; l++) {
        uint32_t n = L->n_edges[l];
        frl__vote_argsort_bounded(t->sums + L->offset[l], n, t->weight * (uint64_t)(n - 1), ranking + L->offset[l], t->sort_buf);
    }
    return 0;
}
