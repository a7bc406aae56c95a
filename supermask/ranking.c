/* Rankings (argsort of scores, ties by index), scores rebuilt from rankings,
 * and exact top-k masks by O(n) selection. */
#include "supermask/frl_ranking.h"
#include "common/frl_error.h"
#include "common/frl_wc.h"
#include "supermask/ranking_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int frl_mask_rule_parse(const char *s, frl_mask_rule *out)
{
    if (s && strcmp(s, "abs") == 0) {
        *out = FRL_MASK_ABS;
        return 0;
    }
    if (s && strcmp(s, "signed") == 0) {
        *out = FRL_MASK_SIGNED;
        return 0;
    }
    return FRL_EINVAL;
}

const char *frl_mask_rule_name(frl_mask_rule r)
{
    return r == FRL_MASK_SIGNED ? "signed" : "abs";
}

uint32_t frl_mask_dropped(uint32_t n, double keep)
{
    /* The reference computes int((1 - k) * n) in double precision. */
    if (keep >= 1.0)
        return 0;
    if (keep <= 0.0)
        return n;
    double j = floor((1.0 - keep) * (double)n);
    return j >= (double)n ? n : (uint32_t)j;
}

size_t frl_ranking_scratch_size(uint32_t n)
{
    return (size_t)n * sizeof(uint32_t);
}

/* Write-combining scatter of uint32 indices into up to 2^11 streams: each
 * stream collects a cache line's worth in a buffer and writes it whole
 * (non-temporal where SSE2 is there); more streams written item by item
 * overwhelm the store path. Lines are those of dst's address; a bucket's
 * first and last lines are shared with its neighbours and written item by
 * item. */
#define RK_BITS 11
#define RK_NB (1u << RK_BITS)
#define RK_L 16

typedef struct {
    _Alignas(64) uint32_t line[RK_NB][RK_L];
    uint32_t start[RK_NB];
} rk_wc;

static inline void rk_push(rk_wc *w, uint32_t *dst, uint32_t phase, uint32_t *off, uint32_t b, uint32_t v)
{
    uint32_t p = off[b]++;
    w->line[b][(p + phase) & (RK_L - 1)] = v;
    if (((p + 1 + phase) & (RK_L - 1)) == 0) {
        if (p + 1 >= RK_L && p + 1 - RK_L >= w->start[b])
            frl_wc_line_out(dst + p + 1 - RK_L, w->line[b]);
        else
            for (uint32_t q = w->start[b]; q <= p; q++)
                dst[q] = w->line[b][(q + phase) & (RK_L - 1)];
    }
}

static void rk_finish(rk_wc *w, uint32_t *dst, uint32_t phase, const uint32_t *off, uint32_t nb)
{
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t p = off[b], k = (p + phase) & (RK_L - 1);
        if (k == 0 || p == w->start[b])
            continue;
        uint32_t q = p >= k && p - k > w->start[b] ? p - k : w->start[b];
        for (; q < p; q++)
            dst[q] = w->line[b][(q + phase) & (RK_L - 1)];
    }
    frl_wc_fence();
}

/* LSD radix sort of edge indices by frl__float_key, 3 passes of 11/11/10 bits.
 * Each pass is stable, and pass 1 starts from index order, so ties end up by
 * index. Keys are recomputed from `scores` (a gather, prefetched ahead)
 * instead of being stored next to the indices: the scratch is 4 bytes per
 * edge, which keeps a client's peak memory low. Passes whose digit is the
 * same for every edge are skipped. The scatter goes through write-combining
 * buffers (128 KB, allocated per call; without them, item by item). */
int frl_ranking_from_scores(const float *scores, uint32_t n, uint32_t *ranking, void *scratch)
{
    if (!scores || !ranking || (n && !scratch))
        return FRL_EINVAL;
    enum { B0 = 11, B1 = 11, B2 = 10, PF = 32 };
    static const int shift[3] = {0, B0, B0 + B1};
    static const uint32_t mask[3] = {(1u << B0) - 1, (1u << B1) - 1, (1u << B2) - 1};
    uint32_t hist[3][1u << 11];
    memset(hist, 0, sizeof hist);
    for (uint32_t e = 0; e < n; e++) {
        uint32_t k = frl__float_key(scores[e]);
        hist[0][k & mask[0]]++;
        hist[1][(k >> shift[1]) & mask[1]]++;
        hist[2][k >> shift[2]]++;
    }
    int passes[3], np = 0;
    for (int p = 0; p < 3; p++) {
        uint32_t buckets = mask[p] + 1, nonzero = 0;
        for (uint32_t b = 0; b < buckets && nonzero < 2; b++)
            nonzero += hist[p][b] != 0;
        if (nonzero > 1)
            passes[np++] = p;
    }
    /* Ping-pong so that the last pass writes into `ranking`. */
    uint32_t *bufs[2] = {ranking, scratch};
    uint32_t *src = NULL;
    uint32_t *dst = (np % 2 == 1) ? ranking : (uint32_t *)scratch;
    if (np == 0) {
        for (uint32_t e = 0; e < n; e++)
            ranking[e] = e;
        return 0;
    }
    rk_wc *w = n >= 4096 ? aligned_alloc(64, sizeof(rk_wc)) : NULL;
    for (int i = 0; i < np; i++) {
        int p = passes[i];
        uint32_t off[1u << 11], sum = 0, nb = mask[p] + 1;
        for (uint32_t b = 0; b < nb; b++) {
            off[b] = sum;
            sum += hist[p][b];
        }
        const int sh = shift[p];
        const uint32_t m = mask[p];
        if (w) {
            const uint32_t phase = (uint32_t)(((uintptr_t)dst / sizeof *dst) & (RK_L - 1));
            memcpy(w->start, off, nb * sizeof *off);
            if (!src) {
                for (uint32_t e = 0; e < n; e++)
                    rk_push(w, dst, phase, off, (frl__float_key(scores[e]) >> sh) & m, e);
            } else {
                for (uint32_t r = 0; r < n; r++) {
                    if (r + PF < n)
                        __builtin_prefetch(&scores[src[r + PF]], 0);
                    uint32_t e = src[r];
                    rk_push(w, dst, phase, off, (frl__float_key(scores[e]) >> sh) & m, e);
                }
            }
            rk_finish(w, dst, phase, off, nb);
        } else if (!src) {
            for (uint32_t e = 0; e < n; e++) {
                uint32_t k = frl__float_key(scores[e]);
                dst[off[(k >> sh) & m]++] = e;
            }
        } else {
            for (uint32_t r = 0; r < n; r++) {
                uint32_t e = src[r];
                uint32_t k = frl__float_key(scores[e]);
                dst[off[(k >> sh) & m]++] = e;
            }
        }
        src = dst;
        dst = (dst == bufs[0]) ? bufs[1] : bufs[0];
    }
    free(w);
    return 0;
}

void frl_scores_from_ranking(const uint32_t *ranking, const float *sorted_init, uint32_t n, float *scores)
{
    for (uint32_t r = 0; r < n; r++)
        scores[ranking[r]] = sorted_init[r];
}

size_t frl_topk_scratch_size(uint32_t n)
{
    return (size_t)n * sizeof(uint32_t);
}

uint32_t frl__select_kth(uint32_t *v, uint32_t n, uint32_t k)
{
    uint32_t lo = 0, hi = n; /* [lo, hi) holds the answer */
    while (hi - lo > 16) {
        uint32_t a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1];
        uint32_t pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        /* Dutch national flag: [lo,lt) < pivot, [lt,i) == pivot, (gt,hi) > pivot */
        uint32_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            uint32_t x = v[i];
            if (x < pivot) {
                v[i++] = v[lt];
                v[lt++] = x;
            } else if (x > pivot) {
                v[i] = v[--gt];
                v[gt] = x;
            } else {
                i++;
            }
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return pivot;
    }
    /* insertion sort of the small remainder */
    for (uint32_t i = lo + 1; i < hi; i++) {
        uint32_t x = v[i], j = i;
        while (j > lo && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return v[k];
}

static inline uint32_t mask_key(float s, frl_mask_rule rule)
{
    return rule == FRL_MASK_ABS ? frl__float_key(fabsf(s)) : frl__float_key(s);
}

int frl_topk_mask(const float *scores, uint32_t n, double keep, frl_mask_rule rule, uint8_t *mask, void *scratch)
{
    if (!scores || !mask || (n && !scratch) || keep < 0.0 || keep > 1.0)
        return FRL_EINVAL;
    uint32_t j = frl_mask_dropped(n, keep);
    if (j == 0) {
        memset(mask, 1, n);
        return 0;
    }
    uint32_t *keys = scratch;
    for (uint32_t e = 0; e < n; e++)
        keys[e] = mask_key(scores[e], rule);
    /* Threshold T = j-th smallest key; drop every key < T, and among keys
     * == T the lowest indices until j edges are dropped. */
    uint32_t t = frl__select_kth(keys, n, j - 1);
    uint32_t below = 0;
    for (uint32_t e = 0; e < n; e++)
        below += mask_key(scores[e], rule) < t;
    uint32_t eq_drop = j - below;
    for (uint32_t e = 0; e < n; e++) {
        uint32_t k = mask_key(scores[e], rule);
        if (k < t) {
            mask[e] = 0;
        } else if (k == t && eq_drop) {
            mask[e] = 0;
            eq_drop--;
        } else {
            mask[e] = 1;
        }
    }
    return 0;
}

int frl_mask_from_ranking(const uint32_t *ranking, const float *sorted_init, uint32_t n, double keep, frl_mask_rule rule,
                          uint8_t *mask, void *scratch)
{
    uint32_t *keys = scratch;
    if (!ranking || !sorted_init || !mask || (n && !keys) || keep < 0.0 || keep > 1.0)
        return FRL_EINVAL;
    uint32_t j = frl_mask_dropped(n, keep);
    if (j == 0) {
        memset(mask, 1, n);
        return 0;
    }
    /* The rebuilt scores are sorted_init permuted, so the threshold can be
     * selected on sorted_init's keys directly (same multiset). */
    for (uint32_t r = 0; r < n; r++)
        keys[r] = mask_key(sorted_init[r], rule);
    uint32_t t = frl__select_kth(keys, n, j - 1);
    uint32_t below = 0;
    for (uint32_t r = 0; r < n; r++)
        below += mask_key(sorted_init[r], rule) < t;
    uint32_t eq_drop = j - below;
    /* 0 = below T, 1 = above, 2 = equal; equal keys are resolved in edge
     * index order, as frl_topk_mask does. */
    for (uint32_t r = 0; r < n; r++) {
        uint32_t k = mask_key(sorted_init[r], rule);
        mask[ranking[r]] = k < t ? 0 : (k > t ? 1 : 2);
    }
    for (uint32_t e = 0; e < n; e++) {
        if (mask[e] == 2) {
            mask[e] = eq_drop ? 0 : 1;
            if (eq_drop)
                eq_drop--;
        }
    }
    return 0;
}
