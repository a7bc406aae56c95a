/* Margin report: edges whose vote sum is close to the sum at a mask cut. */
#include "aggregation/frl_vote_robust.h"

#include "common/frl_error.h"

/* First position r in [0, n) with sums[order[r]] >= x (n if none). */
static uint32_t lower_bound(const uint64_t *sums, const uint32_t *order, uint32_t n, uint64_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (sums[order[mid]] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First position r with sums[order[r]] > x (n if none). */
static uint32_t upper_bound(const uint64_t *sums, const uint32_t *order, uint32_t n, uint64_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (sums[order[mid]] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int frl_vote_margin(const uint64_t *sums, const uint32_t *order, uint32_t n, const uint32_t *cuts, size_t n_cuts, uint64_t delta,
                    frl_vote_margin_t *out)
{
    if (!sums || !order || (n_cuts && (!cuts || !out)) || n < 2)
        return FRL_EINVAL;
    for (size_t i = 0; i < n_cuts; i++)
        if (cuts[i] < 1 || cuts[i] >= n || order[cuts[i]] >= n)
            return FRL_EINVAL;
    for (size_t i = 0; i < n_cuts; i++) {
        uint32_t c = cuts[i];
        uint64_t cs = sums[order[c]];
        uint64_t lo_key = cs >= delta ? cs - delta : 0;
        uint64_t hi_key = cs <= UINT64_MAX - delta ? cs + delta : UINT64_MAX;
        uint32_t lo = lower_bound(sums, order, n, lo_key);
        uint32_t hi = upper_bound(sums, order, n, hi_key);
        frl_vote_margin_t m;
        m.cut = c;
        m.cut_sum = cs;
        m.n_near = hi - lo;
        m.n_below = c > lo ? c - lo : 0;
        m.n_above = m.n_near - m.n_below;
        out[i] = m;
    }
    return 0;
}

size_t frl_vote_mask_cuts(const uint32_t *order, const uint8_t *mask, uint32_t n, uint32_t *cuts, size_t max_cuts)
{
    size_t k = 0;
    for (uint32_t r = 1; r < n; r++) {
        if ((mask[order[r]] != 0) != (mask[order[r - 1]] != 0)) {
            if (k < max_cuts)
                cuts[k] = r;
            k++;
        }
    }
    return k;
}
