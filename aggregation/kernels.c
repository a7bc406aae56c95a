/* Per-layer vote kernels: validation, add, agreement (see vote_internal.h).
 *
 * Prefetching: element r + FRL__VOTE_PREFETCH of the ranking is read ahead
 * and its target cache line requested, so that the scattered accesses of
 * many elements are in flight at once. Nothing outside the arrays is
 * touched or addressed. */
#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"
#include "common/frl_wc.h"

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
        uint64_t d = (uint64_t)((int64_t)r - (int64_t)ref_pos[v]); /* d * d is the same for -d: no branch */
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
            uint64_t d = (uint64_t)((int64_t)r - (int64_t)q);                                                                      \
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
        uint64_t d = (uint64_t)((int64_t)r - (int64_t)q); /* squared: the sign does not matter */
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

/* Partitioned add for large layers (see vote_internal.h).
 *
 * Pass 1 reads the ranking once and sends each (r, e) to bucket e >> 14,
 * whose 2^14 edges own the places [b << 14, (b + 1) << 14) of a pairs
 * region: with a valid permutation every bucket receives exactly as many
 * pairs as it covers edges, so places are known without counting, and a
 * bucket that overflows proves a bad ranking. A pair is one uint32,
 * (e & 0x3fff) << 18 | (r & 0x3ffff): r's high bits are its chunk of 2^18
 * positions, and the bucket cursors are recorded at every chunk's end, so
 * pass 2 knows them. Stores go through a buffer of four cache lines per
 * bucket (in the scratch) and leave it as whole lines (non-temporal where
 * SSE2 is there): ~100 buckets can be written without the store path
 * falling off a cliff. Four lines, not one: whether an item fills its
 * bucket's buffer is a coin toss the branch predictor loses, and with 64
 * items per flush it is tossed a quarter as often (pass 1 ~17% faster on
 * lenet's big layer).
 *
 * Pass 2 applies each bucket, whose 64 KB slices of S and of ref_pos stay
 * in L2; the next bucket's slices are prefetched on the way.
 *
 * With a helper thread, pass 1 is split by positions into two halves, each
 * with its own pairs region and chunk cursors (a bucket's pairs are then
 * the first half's, followed by the second's), and pass 2 by buckets. Each
 * thread only writes its own region, bucket range and bitmap words, so no
 * two threads ever touch the same memory, whatever the ranking holds. */
#define PART_SH 14 /* edges per bucket: 2^14, 64 KB slices */
#define PART_W (1u << PART_SH)
#define PART_CB (32 - PART_SH) /* positions per chunk: 2^18 */
#define PART_CW (1u << PART_CB)
#define PART_LINE 16           /* uint32 per 64-byte line */
#define PART_BUF 64            /* uint32 buffered per bucket in pass 1: four lines */
#define PART_MT_MIN (1u << 19) /* smaller layers: one thread (a post + join costs more than it saves) */
#define PART_SEEN (1u << 31)   /* pass 2's check: see part_pass2 */

typedef struct part_half_s {
    uint32_t *pairs;  /* region: bucket b's pairs from b << PART_SH */
    uint32_t *buf;    /* pass 1's buffers: bucket b's at b * PART_BUF, 64-byte aligned */
    uint32_t *bounds; /* [c * nb + b]: bucket b's cursor at the end of chunk c, for the chunks of [r_lo, r_hi) */
    uint32_t r_lo, r_hi;
    uint32_t cur[FRL__VOTE_PART_MAX_BUCKETS]; /* cursors after pass 1 */
} part_half_t;

static size_t part_region_words(uint32_t n)
{
    return (((size_t)n + 15) & ~(size_t)15) + 16;
}

/* Words of one half's chunk cursors, rounded up to whole lines (the
 * buffers follow them). */
static size_t part_bounds_words(size_t nb, size_t nc)
{
    return (nb * nc + 15) & ~(size_t)15;
}

size_t frl__vote_part_scratch_size(uint32_t n)
{
    size_t nb = ((size_t)(n ? n - 1 : 0) >> PART_SH) + 1, nc = ((size_t)(n ? n - 1 : 0) >> PART_CB) + 1;
    return 2 * (part_region_words(n) + part_bounds_words(nb, nc) + nb * PART_BUF) * 4 + 64;
}

/* Pass 1 (see above) over positions [h->r_lo, h->r_hi). Returns 1 on a
 * value out of range or a bucket overflowing this half's region (check
 * only); nothing has been added then.
 *
 * fill[b] is where bucket b's next item goes in buf itself, not a count:
 * the store's address is one load away from the ranking, with no
 * arithmetic on the loaded cursor (pass 1 ~30% faster than indexing the
 * buffer by the pairs cursor). cur[b] only moves when a buffer leaves, so
 * a bucket's room in the region is checked once per 64 items. */
static inline __attribute__((always_inline)) int part_pass1(const uint32_t *a, uint32_t n, const int check, uint32_t nb,
                                                            part_half_t *h)
{
    uint32_t end[FRL__VOTE_PART_MAX_BUCKETS], fill[FRL__VOTE_PART_MAX_BUCKETS], *cur = h->cur, *pairs = h->pairs, *buf = h->buf;
    for (uint32_t b = 0; b < nb; b++) {
        cur[b] = b << PART_SH;
        end[b] = b + 1 < nb ? (b + 1) << PART_SH : n;
        fill[b] = b * PART_BUF;
    }
    uint32_t c0 = h->r_lo >> PART_CB, c1 = (h->r_hi - 1) >> PART_CB;
    for (uint32_t c = c0; c <= c1; c++) {
        uint32_t r0 = c << PART_CB, r1 = c < ((n - 1) >> PART_CB) ? r0 + PART_CW : n;
        r0 = r0 > h->r_lo ? r0 : h->r_lo;
        r1 = r1 < h->r_hi ? r1 : h->r_hi;
        /* Within a chunk, r's low bits are rlow + i; e << PART_CB keeps
         * exactly e's low PART_SH bits. */
        const uint32_t *ac = a + r0;
        uint32_t len = r1 - r0, rlow = r0 & (PART_CW - 1);
        for (uint32_t i = 0; i < len; i++) {
            uint32_t e = ac[i];
            if (check && e >= n)
                return 1;
            uint32_t b = e >> PART_SH;
            uint32_t f = fill[b];
            buf[f] = (e << PART_CB) | (rlow + i);
            fill[b] = ++f;
            if ((f & (PART_BUF - 1)) == 0) {
                f -= PART_BUF;
                fill[b] = f;
                uint32_t p = cur[b];
                if (check && end[b] - p < PART_BUF)
                    return 1;
                cur[b] = p + PART_BUF;
                for (uint32_t q = 0; q < PART_BUF; q += PART_LINE)
                    frl_wc_line_out(pairs + p + q, buf + f + q);
            }
        }
        uint32_t *bc = h->bounds + (size_t)c * nb;
        for (uint32_t b = 0; b < nb; b++)
            bc[b] = cur[b] + (fill[b] & (PART_BUF - 1));
    }
    /* The partly filled last buffer of each bucket. */
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t k = fill[b] & (PART_BUF - 1);
        if (!k)
            continue;
        if (check && end[b] - cur[b] < k)
            return 1;
        memcpy(pairs + cur[b], buf + (size_t)b * PART_BUF, k * sizeof *pairs);
        cur[b] += k;
    }
    frl_wc_fence();
    return 0;
}

/* Takes back buckets [b0, b1) in full (uint32 arithmetic is modular, so S
 * ends bit for bit as it was). */
static void part_undo(uint32_t *s, const part_half_t *halves, int nh, uint32_t nb, uint32_t w, uint32_t b0, uint32_t b1)
{
    for (uint32_t b = b0; b < b1; b++) {
        uint32_t *sb = s + ((size_t)b << PART_SH);
        for (int k = 0; k < nh; k++) {
            const part_half_t *h = &halves[k];
            uint32_t j = b << PART_SH;
            for (uint32_t c = h->r_lo >> PART_CB; c <= (h->r_hi - 1) >> PART_CB; c++) {
                uint32_t hi = h->bounds[(size_t)c * nb + b], rbase = c << PART_CB;
                for (; j < hi; j++) {
                    uint32_t x = h->pairs[j];
                    sb[x >> PART_CB] -= w * (rbase | (x & (PART_CW - 1)));
                }
            }
        }
    }
}

/* Clears the seen flags of a slice; returns the AND of them (PART_SEEN when
 * every edge was seen). */
static uint32_t part_seen_clear(uint32_t *sb, uint32_t len)
{
    uint32_t all = PART_SEEN;
    for (uint32_t i = 0; i < len; i++) {
        uint32_t x = sb[i];
        all &= x;
        sb[i] = x & ~PART_SEEN;
    }
    return all;
}

/* Pass 2 (see above) over buckets [b0, b1), specialised by the constant
 * flags. On a duplicate it takes back what it applied and returns 1.
 *
 * The check needs no bitmap: pending sums stay below 2^31 (tally.c), so
 * bit 31 of S is free, and each pair adds PART_SEEN with its position.
 * Pass 1 proved the bucket holds exactly len pairs, all in range, so a
 * duplicate means some edge got none and kept its bit clear (an edge seen
 * twice toggles it back, but the check is on the missing one). One
 * sequential sweep of the slice, still in L2, reads and clears the bits:
 * ~20% cheaper than setting bits in a bitmap per pair. */
static inline __attribute__((always_inline)) int part_pass2(uint32_t *s, uint32_t n, uint32_t w, const int check, const int assign,
                                                            const part_half_t *halves, int nh, uint32_t nb, uint32_t b0,
                                                            uint32_t b1, const uint32_t *ref_pos, frl__u128 *d2)
{
    frl__u128 acc = 0;
    const uint32_t seen = check ? PART_SEEN : 0;
    for (uint32_t b = b0; b < b1; b++) {
        uint32_t lo = b << PART_SH, len = b + 1 < nb ? PART_W : n - lo;
        uint32_t *sb = s + lo;
        const uint32_t *qb = ref_pos ? ref_pos + lo : NULL;
        /* The next bucket's slices, one line of each every 16 pairs:
         * touched in random order they would miss once per line. */
        uint32_t next = b + 1 < b1 ? (b + 2 < nb ? PART_W : n - lo - PART_W) : 0;
        const uint32_t *pf_s = next ? s + lo + PART_W : s, *pf_q = ref_pos && next ? ref_pos + lo + PART_W : ref_pos;
        uint64_t bacc = 0; /* < 2^14 squares of values < 2^23: fits */
        uint32_t pf_k = 0;
        for (int k = 0; k < nh; k++) {
            const part_half_t *h = &halves[k];
            const uint32_t *pairs = h->pairs;
            uint32_t j = lo;
            for (uint32_t c = h->r_lo >> PART_CB; c <= (h->r_hi - 1) >> PART_CB; c++) {
                uint32_t hi = h->bounds[(size_t)c * nb + b];
                uint32_t rbase = c << PART_CB;
                /* Blocks of 16 pairs, one line of each next slice per block. */
                for (;;) {
                    uint32_t stop = hi - j >= PART_LINE ? j + PART_LINE : hi;
                    if (j == stop)
                        break;
                    if (pf_k < next) {
                        __builtin_prefetch(pf_s + pf_k, 1);
                        if (ref_pos)
                            __builtin_prefetch(pf_q + pf_k, 0);
                        pf_k += PART_LINE;
                    }
                    for (; j < stop; j++) {
                        uint32_t x = pairs[j];
                        uint32_t el = x >> PART_CB, r = rbase | (x & (PART_CW - 1));
                        if (assign)
                            sb[el] = r;
                        else
                            sb[el] += w * r + seen;
                        if (ref_pos) {
                            uint32_t q = qb[el];
                            uint64_t d = (uint64_t)((int64_t)r - (int64_t)q); /* squared: the sign does not matter */
                            bacc += d * d;
                        }
                    }
                }
            }
        }
        if (check && !part_seen_clear(sb, len)) {
            /* Take everything back; this bucket's sums are then right
             * below bit 31 only (an edge seen twice may have carried into
             * it), and were below 2^31 before. */
            part_undo(s, halves, nh, nb, w, b0, b + 1);
            part_seen_clear(sb, len);
            return 1;
        }
        acc += bacc;
    }
    *d2 = acc;
    return 0;
}

/* The flag combinations, each a pass 1 and a pass 2 function. */
#define FRL__DEFINE_PART(NAME, CHECK, REF, ASSIGN)                                                                                 \
    static int NAME##_p1(const uint32_t *a, uint32_t n, uint32_t nb, part_half_t *h)                                               \
    {                                                                                                                              \
        return part_pass1(a, n, CHECK, nb, h);                                                                                     \
    }                                                                                                                              \
    static int NAME##_p2(uint32_t *s, uint32_t n, uint32_t w, const part_half_t *halves, int nh, uint32_t nb, uint32_t b0,         \
                         uint32_t b1, const uint32_t *ref_pos, frl__u128 *d2)                                                      \
    {                                                                                                                              \
        return part_pass2(s, n, w, CHECK, ASSIGN, halves, nh, nb, b0, b1, REF ? ref_pos : NULL, d2);                               \
    }
FRL__DEFINE_PART(part_add, 0, 0, 0)
FRL__DEFINE_PART(part_add_checked, 1, 0, 0)
FRL__DEFINE_PART(part_add_checked_d2, 1, 1, 0)
FRL__DEFINE_PART(part_add_d2, 0, 1, 0)
FRL__DEFINE_PART(part_invert, 0, 0, 1)

typedef struct part_kind_s {
    int (*p1)(const uint32_t *a, uint32_t n, uint32_t nb, part_half_t *h);
    int (*p2)(uint32_t *s, uint32_t n, uint32_t w, const part_half_t *halves, int nh, uint32_t nb, uint32_t b0, uint32_t b1,
              const uint32_t *ref_pos, frl__u128 *d2);
} part_kind_t;

/* Everything one thread needs for its share of a pass. */
typedef struct part_job_s {
    const part_kind_t *kind;
    uint32_t *s;
    const uint32_t *a;
    uint32_t n, w, nb;
    part_half_t *halves;
    int nh;
    int pass;        /* 1 or 2 */
    int half;        /* pass 1: which half */
    uint32_t b0, b1; /* pass 2: bucket range */
    const uint32_t *ref_pos;
    frl__u128 d2;
    int rc;
} part_job_t;

static void part_job_run(void *p)
{
    part_job_t *j = p;
    if (j->pass == 1)
        j->rc = j->kind->p1(j->a, j->n, j->nb, &j->halves[j->half]);
    else
        j->rc = j->kind->p2(j->s, j->n, j->w, j->halves, j->nh, j->nb, j->b0, j->b1, j->ref_pos, &j->d2);
}

static int part_run(const part_kind_t *kind, int check, uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w, void *scratch,
                    const uint32_t *ref_pos, frl__u128 *d2, frl__vote_helper_t *helper)
{
    uint32_t nb = ((n - 1) >> PART_SH) + 1, nc = ((n - 1) >> PART_CB) + 1;
    const int nh = helper && n >= PART_MT_MIN ? 2 : 1;
    part_half_t halves[2];
    uint32_t *base = (uint32_t *)scratch;
    size_t region = part_region_words(n);
    uint32_t split = nh == 2 ? n / 2 : n;
    size_t bounds = part_bounds_words(nb, nc);
    for (int k = 0; k < nh; k++) {
        halves[k].pairs = base + (size_t)k * region;
        halves[k].bounds = base + 2 * region + (size_t)k * bounds;
        halves[k].buf = base + 2 * (region + bounds) + (size_t)k * nb * PART_BUF;
        halves[k].r_lo = k ? split : 0;
        halves[k].r_hi = k + 1 < nh ? split : n;
    }
    part_job_t job = {.kind = kind, .s = s, .a = a, .n = n, .w = w, .nb = nb, .halves = halves, .nh = nh, .ref_pos = ref_pos};
    frl__u128 acc = 0;
    if (nh == 1) {
        if (kind->p1(a, n, nb, &halves[0]))
            return 1;
        int rc = kind->p2(s, n, w, halves, 1, nb, 0, nb, ref_pos, &acc);
        if (!rc && d2)
            *d2 = acc;
        return rc;
    }
    /* Pass 1: the helper takes the second half of the positions. */
    part_job_t other = job;
    job.pass = other.pass = 1;
    job.half = 0;
    other.half = 1;
    frl__vote_helper_run2(helper, part_job_run, &job, &other);
    if (job.rc || other.rc)
        return 1;
    /* Each half kept inside its region; together they must fill every
     * bucket exactly (else a bucket lacks an edge, which pass 2 would find
     * too, after adding and taking back: refuse before). */
    if (check)
        for (uint32_t b = 0; b < nb; b++) {
            uint32_t lo = b << PART_SH, len = b + 1 < nb ? PART_W : n - lo;
            if ((uint64_t)(halves[0].cur[b] - lo) + (halves[1].cur[b] - lo) != len)
                return 1;
        }
    /* Pass 2: the helper takes the second half of the buckets. */
    uint32_t bsplit = nb / 2;
    job.pass = other.pass = 2;
    job.b0 = 0;
    job.b1 = other.b0 = bsplit;
    other.b1 = nb;
    frl__vote_helper_run2(helper, part_job_run, &job, &other);
    /* A failed range took back its own adds; take back the other one's. */
    if (job.rc && !other.rc)
        part_undo(s, halves, 2, nb, w, bsplit, nb);
    else if (!job.rc && other.rc)
        part_undo(s, halves, 2, nb, w, 0, bsplit);
    if (job.rc || other.rc)
        return 1;
    if (d2)
        *d2 = job.d2 + other.d2;
    return 0;
}

static const part_kind_t k_add = {part_add_p1, part_add_p2}, k_add_checked = {part_add_checked_p1, part_add_checked_p2},
                         k_add_checked_d2 = {part_add_checked_d2_p1, part_add_checked_d2_p2},
                         k_add_d2 = {part_add_d2_p1, part_add_d2_p2}, k_invert = {part_invert_p1, part_invert_p2};

int frl__vote_add_part32(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w, int check, void *scratch, const uint32_t *ref_pos,
                         frl__u128 *d2, frl__vote_helper_t *helper)
{
    const part_kind_t *kind = check ? (ref_pos ? &k_add_checked_d2 : &k_add_checked) : (ref_pos ? &k_add_d2 : &k_add);
    return part_run(kind, check, s, a, n, w, scratch, ref_pos, d2, helper);
}

void frl__vote_positions_part32(uint32_t *pos, const uint32_t *a, uint32_t n, void *scratch)
{
    (void)part_run(&k_invert, 0, pos, a, n, 0, scratch, NULL, NULL, NULL);
}
