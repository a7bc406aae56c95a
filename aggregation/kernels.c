/* Per-layer vote kernels: validation, add, agreement (see vote_internal.h).
 *
 * Prefetching: element r + FRL__VOTE_PREFETCH of the ranking is read ahead
 * and its target cache line requested, so that the scattered accesses of
 * many elements are in flight at once. Nothing outside the arrays is
 * touched or addressed. */
#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"

#define PF FRL__VOTE_PREFETCH

/* Requests the line of base[a[r + PF]] (clamped into [0, n): a malformed
 * ranking's values are not yet checked). The branch is taken until the
 * last PF elements, so it predicts well; measured on this machine it beats
 * a branch-free clamp of the read-ahead index. */
#define FRL__PREFETCH_AHEAD(base, rw)                                                                                              \
    do {                                                                                                                           \
        if (r + PF < n) {                                                                                                          \
            uint32_t v_ahead_ = a[r + PF];                                                                                         \
            __builtin_prefetch(&(base)[v_ahead_ < n ? v_ahead_ : 0], (rw));                                                        \
        }                                                                                                                          \
    } while (0)

int frl__vote_check_perm(const uint32_t *a, uint32_t n, uint64_t *bitmap, int64_t *bad_index, uint64_t *bad_value)
{
    memset(bitmap, 0, frl__vote_bitmap_bytes(n));
    for (uint32_t r = 0; r < n; r++) {
        uint32_t v = a[r];
        if (v >= n) {
            *bad_index = r;
            *bad_value = v;
            return FRL_EVOTE_RANGE;
        }
        uint64_t bit = (uint64_t)1 << (v & 63);
        uint64_t w = bitmap[v >> 6];
        if (w & bit) {
            *bad_index = r;
            *bad_value = v;
            return FRL_EVOTE_DUPLICATE;
        }
        bitmap[v >> 6] = w | bit;
    }
    return 0;
}

int frl__vote_check_perm_d2(const uint32_t *a, uint32_t n, uint64_t *bitmap, const uint32_t *ref_pos, frl__u128 *d2,
                            int64_t *bad_index, uint64_t *bad_value)
{
    memset(bitmap, 0, frl__vote_bitmap_bytes(n));
    frl__u128 acc = 0;
    for (uint32_t r = 0; r < n; r++) {
        FRL__PREFETCH_AHEAD(ref_pos, 0);
        uint32_t v = a[r];
        if (v >= n) {
            *bad_index = r;
            *bad_value = v;
            return FRL_EVOTE_RANGE;
        }
        uint64_t bit = (uint64_t)1 << (v & 63);
        uint64_t w = bitmap[v >> 6];
        if (w & bit) {
            *bad_index = r;
            *bad_value = v;
            return FRL_EVOTE_DUPLICATE;
        }
        bitmap[v >> 6] = w | bit;
        uint64_t d = r > ref_pos[v] ? (uint64_t)(r - ref_pos[v]) : (uint64_t)(ref_pos[v] - r);
        acc += d * d; /* d < 2^32: fits */
    }
    *d2 = acc;
    return 0;
}

/* The add kernels exist for the uint64 sums and for the tally's pending
 * uint32 sums (see tally.c): S[a[r]] += w * r, its inverse, and the fused
 * check + add that undoes its own partial adds on failure. */
#define FRL__DEFINE_ADD(SUFFIX, ST)                                                                                                \
    void frl__vote_add##SUFFIX(ST *s, const uint32_t *a, uint32_t n, ST w)                                                         \
    {                                                                                                                              \
        if (w == 1) {                                                                                                              \
            for (uint32_t r = 0; r < n; r++) {                                                                                     \
                FRL__PREFETCH_AHEAD(s, 1);                                                                                         \
                s[a[r]] += r;                                                                                                      \
            }                                                                                                                      \
        } else {                                                                                                                   \
            for (uint32_t r = 0; r < n; r++) {                                                                                     \
                FRL__PREFETCH_AHEAD(s, 1);                                                                                         \
                s[a[r]] += w * r;                                                                                                  \
            }                                                                                                                      \
        }                                                                                                                          \
    }                                                                                                                              \
                                                                                                                                   \
    void frl__vote_sub##SUFFIX(ST *s, const uint32_t *a, uint32_t n, ST w)                                                         \
    {                                                                                                                              \
        for (uint32_t r = 0; r < n; r++)                                                                                           \
            s[a[r]] -= w * r;                                                                                                      \
    }                                                                                                                              \
                                                                                                                                   \
    int frl__vote_add_checked##SUFFIX(ST *s, const uint32_t *a, uint32_t n, ST w, uint64_t *bitmap, int64_t *bad_index,            \
                                      uint64_t *bad_value)                                                                         \
    {                                                                                                                              \
        memset(bitmap, 0, frl__vote_bitmap_bytes(n));                                                                              \
        int rc = 0;                                                                                                                \
        uint32_t r;                                                                                                                \
        for (r = 0; r < n; r++) {                                                                                                  \
            FRL__PREFETCH_AHEAD(s, 1);                                                                                             \
            uint32_t v = a[r];                                                                                                     \
            if (v >= n) {                                                                                                          \
                rc = FRL_EVOTE_RANGE;                                                                                              \
                break;                                                                                                             \
            }                                                                                                                      \
            uint64_t bit = (uint64_t)1 << (v & 63);                                                                                \
            uint64_t bw = bitmap[v >> 6];                                                                                          \
            if (bw & bit) {                                                                                                        \
                rc = FRL_EVOTE_DUPLICATE;                                                                                          \
                break;                                                                                                             \
            }                                                                                                                      \
            bitmap[v >> 6] = bw | bit;                                                                                             \
            s[v] += w * (ST)r;                                                                                                     \
        }                                                                                                                          \
        if (rc) {                                                                                                                  \
            *bad_index = r;                                                                                                        \
            *bad_value = a[r];                                                                                                     \
            frl__vote_sub##SUFFIX(s, a, r, w); /* positions [0, r) were added and are in range */                                  \
        }                                                                                                                          \
        return rc;                                                                                                                 \
    }

FRL__DEFINE_ADD(, uint64_t)
FRL__DEFINE_ADD(32, uint32_t)

/* Check + agreement + add in one pass (the round keeper's path): the
 * scattered reads of ref_pos and read-modify-writes of S are in flight
 * together. Undoes its partial adds on failure like the plain checked add. */
#define FRL__DEFINE_ADD_D2(SUFFIX, ST)                                                                                             \
    int frl__vote_add_checked_d2##SUFFIX(ST *s, const uint32_t *a, uint32_t n, ST w, uint64_t *bitmap, const uint32_t *ref_pos,    \
                                         frl__u128 *d2, int64_t *bad_index, uint64_t *bad_value)                                   \
    {                                                                                                                              \
        memset(bitmap, 0, frl__vote_bitmap_bytes(n));                                                                              \
        frl__u128 acc = 0;                                                                                                         \
        int rc = 0;                                                                                                                \
        uint32_t r;                                                                                                                \
        for (r = 0; r < n; r++) {                                                                                                  \
            FRL__PREFETCH_AHEAD(s, 1);                                                                                             \
            FRL__PREFETCH_AHEAD(ref_pos, 0);                                                                                       \
            uint32_t v = a[r];                                                                                                     \
            if (v >= n) {                                                                                                          \
                rc = FRL_EVOTE_RANGE;                                                                                              \
                break;                                                                                                             \
            }                                                                                                                      \
            uint64_t bit = (uint64_t)1 << (v & 63);                                                                                \
            uint64_t bw = bitmap[v >> 6];                                                                                          \
            if (bw & bit) {                                                                                                        \
                rc = FRL_EVOTE_DUPLICATE;                                                                                          \
                break;                                                                                                             \
            }                                                                                                                      \
            bitmap[v >> 6] = bw | bit;                                                                                             \
            s[v] += w * (ST)r;                                                                                                     \
            uint32_t q = ref_pos[v];                                                                                               \
            uint64_t d = r > q ? (uint64_t)(r - q) : (uint64_t)(q - r);                                                            \
            acc += d * d;                                                                                                          \
        }                                                                                                                          \
        if (rc) {                                                                                                                  \
            *bad_index = r;                                                                                                        \
            *bad_value = a[r];                                                                                                     \
            frl__vote_sub##SUFFIX(s, a, r, w);                                                                                     \
            return rc;                                                                                                             \
        }                                                                                                                          \
        *d2 = acc;                                                                                                                 \
        return 0;                                                                                                                  \
    }

FRL__DEFINE_ADD_D2(, uint64_t)
FRL__DEFINE_ADD_D2(32, uint32_t)

frl__u128 frl__vote_d2(const uint32_t *a, uint32_t n, const uint32_t *ref_pos)
{
    frl__u128 acc = 0;
    for (uint32_t r = 0; r < n; r++) {
        FRL__PREFETCH_AHEAD(ref_pos, 0);
        uint32_t q = ref_pos[a[r]];
        uint64_t d = r > q ? (uint64_t)(r - q) : (uint64_t)(q - r);
        acc += d * d; /* d < 2^32: fits */
    }
    return acc;
}

double frl__vote_rho(frl__u128 d2, uint32_t n)
{
    if (n < 2)
        return 1.0;
    double nn = (double)n;
    double rho = 1.0 - 6.0 * (double)d2 / (nn * (nn * nn - 1.0));
    /* Rounding may leave rho a few ulps outside [-1, 1]. */
    if (rho > 1.0)
        rho = 1.0;
    if (rho < -1.0)
        rho = -1.0;
    return rho;
}

/* Partitioned add for large layers (see vote_internal.h). Pass 1 reads the
 * ranking once and writes (r, e) pairs into FRL__VOTE_PART_BUCKETS
 * contiguous buckets by the high bits of e; pass 2 applies each bucket,
 * whose slice of S (and of ref_pos) fits in L2. With a valid permutation
 * every bucket receives exactly as many pairs as it covers edges, so the
 * buckets' places are known without counting, and a bucket that overflows
 * proves a duplicate. */
int frl__vote_add_part32(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w, int check, uint64_t *bitmap, uint64_t *pairs,
                         const uint32_t *ref_pos, frl__u128 *d2)
{
    int top = n > 1 ? 32 - __builtin_clz(n - 1) : 1;
    int sh = top > FRL__VOTE_PART_BITS ? top - FRL__VOTE_PART_BITS : 0;
    uint32_t nb = ((n - 1) >> sh) + 1;
    uint32_t cur[1u << FRL__VOTE_PART_BITS], end[1u << FRL__VOTE_PART_BITS];
    for (uint32_t b = 0; b < nb; b++) {
        cur[b] = b << sh;
        end[b] = b + 1 < nb ? (b + 1) << sh : n;
    }
    for (uint32_t r = 0; r < n; r++) {
        uint32_t e = a[r];
        if (check && e >= n)
            return 1;
        uint32_t b = e >> sh;
        if (check && cur[b] == end[b])
            return 1;
        pairs[cur[b]++] = ((uint64_t)r << 32) | e;
    }
    frl__u128 acc = 0;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t lo = b << sh, hi = end[b];
        if (check)
            memset(bitmap, 0, frl__vote_bitmap_bytes(hi - lo));
        for (uint32_t j = lo; j < hi; j++) {
            uint64_t x = pairs[j];
            uint32_t e = (uint32_t)x, r = (uint32_t)(x >> 32);
            if (check) {
                uint32_t el = e - lo;
                uint64_t bit = (uint64_t)1 << (el & 63);
                uint64_t bw = bitmap[el >> 6];
                if (bw & bit) {
                    /* Undo pairs [0, j): every bucket before, and this one's
                     * first part; they are contiguous. */
                    for (uint32_t k = 0; k < j; k++)
                        s[(uint32_t)pairs[k]] -= w * (uint32_t)(pairs[k] >> 32);
                    return 1;
                }
                bitmap[el >> 6] = bw | bit;
            }
            s[e] += w * r;
            if (ref_pos) {
                uint32_t q = ref_pos[e];
                uint64_t d = r > q ? (uint64_t)(r - q) : (uint64_t)(q - r);
                acc += d * d;
            }
        }
    }
    if (d2)
        *d2 = acc;
    return 0;
}
