/* argsort of vote sums: LSD radix sort on (key - min), stable, so equal keys
 * keep ascending index order, which is the vote's tie rule.
 *
 * Digits: the key range needs `bits` bits; they are split into passes of
 * equal width, at most 5 bits (32 buckets; see RADIX_MAX_BITS for why so
 * narrow). All histograms come from one read of the keys, and a pass whose
 * digit is the same for every key (one bucket holds all n) is skipped. For
 * the vote the range is bounded without a min/max pass: sums lie in
 * [0, total_weight * (n - 1)]; 10 unit votes on lenet's 1,605,632-edge
 * layer need 24 bits: 5 passes. Items move packed: (key << 32) | index in
 * one uint64 when the range fits 32 bits, and for small two-pass ranges
 * ((key >> d0) << index_bits) | index in one uint32 after the first pass.
 * Wider ranges use separate uint64 key and uint32 index arrays. The
 * scratch is backed by huge pages where possible (see vote_internal.h). */
#include "aggregation/frl_vote.h"

#include <stdint.h>
#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"
#include "common/frl_wc.h"

/* Digit widths: at most 32 output streams per pass. Measured on this
 * project's VM (loaded by other jobs), a scatter pass of 1.6 M uint32
 * items into 16 or 32 streams costs about 3 ms, into 64 streams 4-10 ms,
 * into 128 or more 12-15 ms: the store path falls off a cliff. So 5 passes
 * of 5 bits beat 2 passes of 12-13 bits for lenet's big layer with 10
 * votes (about 33 ms against 45 ms under load, and more stable). Wide
 * items (separate key and index arrays) write two streams per bucket: 16
 * buckets. */
#define RADIX_MAX_BITS 5
#define RADIX_MAX_BITS_WIDE 4
#define RADIX_MAX_PASSES 16 /* 64 / 4 */
#define RADIX_HIST_BYTES ((size_t)RADIX_MAX_PASSES * ((size_t)1 << RADIX_MAX_BITS) * sizeof(uint32_t))

/* The write-combined passes (see "Write-combining radix passes" below):
 * digit widths, and their streams and histograms, kept at the end of the
 * scratch. */
#define WC_BITS 8
#define WC_BITS_MAX 12
#define WC_NB_MAX (1u << WC_BITS_MAX)
#define WC_WIDE_MIN (1u << 16)

/* One pass's streams: buffers and cursors. */
typedef struct wc_streams_s {
    _Alignas(64) uint64_t wc[WC_NB_MAX * 8];
    uint32_t f[WC_NB_MAX], line[WC_NB_MAX];
} wc_streams_t;

/* Two sets of streams (the MSD sort's two threads scatter at once) and
 * the LSD sort's histograms (two copies, see argsort_u32_wc). */
typedef struct wc_area_s {
    wc_streams_t s[2];
    uint32_t hist[4][WC_NB_MAX], hist2[4][WC_NB_MAX];
} wc_area_t;

static wc_area_t *wc_area(void *scratch, uint32_t n)
{
    uintptr_t p = (uintptr_t)scratch + RADIX_HIST_BYTES + (size_t)n * 24;
    return (wc_area_t *)((p + 63) & ~(uintptr_t)63);
}

size_t frl_vote_argsort_scratch_size(uint64_t n)
{
    /* hist | keys A (8n) | keys B (8n) | index A (4n) | index B (4n) | write-combining area */
    return RADIX_HIST_BYTES + (size_t)n * 24 + 64 + sizeof(wc_area_t);
}

/* Scatter passes for ranges wider than 32 bits: uint64 keys and uint32
 * indices in separate ping-pong arrays. `act` lists the active passes
 * (na >= 1); hist[p * nb ..] holds exclusive prefix sums for each. */
static void radix_passes_wide(const uint64_t *keys, uint32_t n, uint64_t mn, const int *act, int na, int digit, uint32_t *hist,
                              unsigned char *buf, uint32_t *order)
{
    const uint32_t nb = 1u << digit, mask = nb - 1;
    uint64_t *ka = (uint64_t *)buf, *kb = (uint64_t *)(buf + (size_t)n * 8);
    uint32_t *ia = (uint32_t *)(buf + (size_t)n * 16), *ib = (uint32_t *)(buf + (size_t)n * 20);
    int p = act[0];
    uint32_t *h = hist + (size_t)p * nb;
    int sh = p * digit;
    if (na == 1) {
        for (uint32_t i = 0; i < n; i++)
            order[h[((keys[i] - mn) >> sh) & mask]++] = i;
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k = keys[i] - mn;
        uint32_t d = h[(k >> sh) & mask]++;
        ka[d] = k;
        ia[d] = i;
    }
    for (int a = 1; a < na; a++) {
        p = act[a];
        h = hist + (size_t)p * nb;
        sh = p * digit;
        if (a == na - 1) {
            for (uint32_t j = 0; j < n; j++)
                order[h[(ka[j] >> sh) & mask]++] = ia[j];
            return;
        }
        for (uint32_t j = 0; j < n; j++) {
            uint64_t k = ka[j];
            uint32_t d = h[(k >> sh) & mask]++;
            kb[d] = k;
            ib[d] = ia[j];
        }
        uint64_t *kt = ka;
        ka = kb;
        kb = kt;
        uint32_t *it = ia;
        ia = ib;
        ib = it;
    }
}

/* Ranges that fit 32 bits: key and index travel packed as one uint64
 * ((key << 32) | index), one write stream per element. Generated for
 * uint64 and uint32 source keys (the tally's pending uint32 sums). */
#define FRL__DEFINE_PACKED(NAME, KT)                                                                                               \
    static void NAME(const KT *keys, uint32_t n, uint64_t mn, const int *act, int na, int digit, uint32_t *hist,                   \
                     unsigned char *buf, uint32_t *order)                                                                          \
    {                                                                                                                              \
        const uint32_t nb = 1u << digit, mask = nb - 1;                                                                            \
        uint64_t *xa = (uint64_t *)buf, *xb = (uint64_t *)(buf + (size_t)n * 8);                                                   \
        int p = act[0];                                                                                                            \
        uint32_t *h = hist + (size_t)p * nb;                                                                                       \
        int sh = p * digit;                                                                                                        \
        if (na == 1) {                                                                                                             \
            for (uint32_t i = 0; i < n; i++)                                                                                       \
                order[h[(((uint64_t)keys[i] - mn) >> sh) & mask]++] = i;                                                           \
            return;                                                                                                                \
        }                                                                                                                          \
        for (uint32_t i = 0; i < n; i++) {                                                                                         \
            uint64_t k = (uint64_t)keys[i] - mn;                                                                                   \
            xa[h[(k >> sh) & mask]++] = (k << 32) | i;                                                                             \
        }                                                                                                                          \
        for (int a = 1; a < na; a++) {                                                                                             \
            p = act[a];                                                                                                            \
            h = hist + (size_t)p * nb;                                                                                             \
            sh = 32 + p * digit;                                                                                                   \
            if (a == na - 1) {                                                                                                     \
                for (uint32_t j = 0; j < n; j++) {                                                                                 \
                    uint64_t x = xa[j];                                                                                            \
                    order[h[(x >> sh) & mask]++] = (uint32_t)x;                                                                    \
                }                                                                                                                  \
                return;                                                                                                            \
            }                                                                                                                      \
            for (uint32_t j = 0; j < n; j++) {                                                                                     \
                uint64_t x = xa[j];                                                                                                \
                xb[h[(x >> sh) & mask]++] = x;                                                                                     \
            }                                                                                                                      \
            uint64_t *xt = xa;                                                                                                     \
            xa = xb;                                                                                                               \
            xb = xt;                                                                                                               \
        }                                                                                                                          \
    }

FRL__DEFINE_PACKED(radix_packed_u64, uint64_t)
FRL__DEFINE_PACKED(radix_packed_u32, uint32_t)

/* Histograms (one read of the keys) and the active passes, for keys in
 * [mn, mn + range], range > 0. Returns the number of active passes. */
#define FRL__DEFINE_HIST(NAME, KT)                                                                                                 \
    static int NAME(const KT *keys, uint32_t n, uint64_t mn, int passes, int digit, uint32_t *hist, int *act)                      \
    {                                                                                                                              \
        const uint32_t nb = 1u << digit, mask = nb - 1;                                                                            \
        memset(hist, 0, (size_t)passes *nb * sizeof *hist);                                                                        \
        if (passes == 1) {                                                                                                         \
            for (uint32_t i = 0; i < n; i++)                                                                                       \
                hist[((uint64_t)keys[i] - mn) & mask]++;                                                                           \
        } else if (passes == 2) {                                                                                                  \
            uint32_t *h1 = hist + nb;                                                                                              \
            for (uint32_t i = 0; i < n; i++) {                                                                                     \
                uint64_t k = (uint64_t)keys[i] - mn;                                                                               \
                hist[k & mask]++;                                                                                                  \
                h1[(k >> digit) & mask]++;                                                                                         \
            }                                                                                                                      \
        } else if (passes == 3) {                                                                                                  \
            uint32_t *h1 = hist + nb, *h2 = hist + 2 * (size_t)nb;                                                                 \
            for (uint32_t i = 0; i < n; i++) {                                                                                     \
                uint64_t k = (uint64_t)keys[i] - mn;                                                                               \
                hist[k & mask]++;                                                                                                  \
                h1[(k >> digit) & mask]++;                                                                                         \
                h2[(k >> (2 * digit)) & mask]++;                                                                                   \
            }                                                                                                                      \
        } else {                                                                                                                   \
            for (uint32_t i = 0; i < n; i++) {                                                                                     \
                uint64_t k = (uint64_t)keys[i] - mn;                                                                               \
                for (int p = 0; p < passes; p++)                                                                                   \
                    hist[(size_t)p * nb + ((k >> (p * digit)) & mask)]++;                                                          \
            }                                                                                                                      \
        }                                                                                                                          \
        /* Skip passes where every key has the same digit; prefix-sum the rest. */                                                 \
        int na = 0;                                                                                                                \
        uint64_t k0 = (uint64_t)keys[0] - mn;                                                                                      \
        for (int p = 0; p < passes; p++) {                                                                                         \
            uint32_t *h = hist + (size_t)p * nb;                                                                                   \
            if (h[(k0 >> (p * digit)) & mask] == n)                                                                                \
                continue;                                                                                                          \
            uint32_t sum = 0;                                                                                                      \
            for (uint32_t b = 0; b < nb; b++) {                                                                                    \
                uint32_t c = h[b];                                                                                                 \
                h[b] = sum;                                                                                                        \
                sum += c;                                                                                                          \
            }                                                                                                                      \
            act[na++] = p;                                                                                                         \
        }                                                                                                                          \
        return na;                                                                                                                 \
    }

FRL__DEFINE_HIST(hist_u64, uint64_t)
FRL__DEFINE_HIST(hist_u32, uint32_t)

static void identity(uint32_t *order, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
}

/* Digit plan for a range: passes of equal width <= max_bits. */
static void plan(uint64_t range, int max_bits, int *passes, int *digit)
{
    int bits = 64 - __builtin_clzll(range);
    *passes = (bits + max_bits - 1) / max_bits;
    *digit = (bits + *passes - 1) / *passes;
}

/* The sort proper, for uint64 keys in [mn, mn + range]. */
static void argsort_range_u64(const uint64_t *keys, uint32_t n, uint64_t mn, uint64_t range, uint32_t *order, void *scratch)
{
    if (range == 0) {
        identity(order, n);
        return;
    }
    int passes, digit, act[RADIX_MAX_PASSES];
    plan(range, range <= UINT32_MAX ? RADIX_MAX_BITS : RADIX_MAX_BITS_WIDE, &passes, &digit);
    uint32_t *hist = (uint32_t *)scratch;
    int na = hist_u64(keys, n, mn, passes, digit, hist, act);
    if (na == 0) { /* only with a loose bound: all keys equal */
        identity(order, n);
        return;
    }
    unsigned char *buf = (unsigned char *)scratch + RADIX_HIST_BYTES;
    if (range <= UINT32_MAX)
        radix_packed_u64(keys, n, mn, act, na, digit, hist, buf, order);
    else
        radix_passes_wide(keys, n, mn, act, na, digit, hist, buf, order);
}

int frl_vote_argsort_u64(const uint64_t *keys, uint32_t n, uint32_t *order, void *scratch)
{
    if (n == 0)
        return 0;
    if (!keys || !order || !scratch)
        return FRL_EINVAL;
    uint64_t mn = keys[0], mx = keys[0];
    for (uint32_t i = 1; i < n; i++) {
        uint64_t k = keys[i];
        mn = k < mn ? k : mn;
        mx = k > mx ? k : mx;
    }
    argsort_range_u64(keys, n, mn, mx - mn, order, scratch);
    return 0;
}

/* Vote sums of a layer are bounded by total_weight * (n - 1), so the
 * min/max pass is not needed: digits come from the bound, and the high
 * digits no sum uses are skipped as constant. */
void frl__vote_argsort_bounded(const uint64_t *keys, uint32_t n, uint64_t max_key, uint32_t *order, void *scratch)
{
    if (n == 0)
        return;
    argsort_range_u64(keys, n, 0, max_key, order, scratch);
}

/* Two passes whose intermediate items fit 32 bits: after the first pass
 * (low d0 bits of the key) only the key's high d1 bits are still needed,
 * and they travel packed with the index in one uint32:
 * ((key >> d0) << ib) | index, ib = bits of the largest index. Half the
 * bytes of the uint64 packing. Used when ib + d1 <= 32 and both digits
 * have at most RADIX_MAX_BITS bits (ranges of 6 to 10 bits: small layers
 * and few votes). Returns 0 when it does not apply. */
static int argsort_u32_narrow(const uint32_t *keys, uint32_t n, int bits, uint32_t *order, void *scratch)
{
    int ib = n > 1 ? 32 - __builtin_clz(n - 1) : 1;
    int d0 = (bits + 1) / 2;
    if (bits - d0 + ib > 32)
        d0 = bits - (32 - ib);
    int d1 = bits - d0;
    if (d1 < 1 || d0 > RADIX_MAX_BITS || d1 > RADIX_MAX_BITS)
        return 0;
    const uint32_t nb0 = 1u << d0, nb1 = 1u << d1, m0 = nb0 - 1, m1 = nb1 - 1, imask = (uint32_t)((1ull << ib) - 1);
    uint32_t *h0 = (uint32_t *)scratch, *h1 = h0 + nb0;
    memset(h0, 0, ((size_t)nb0 + nb1) * sizeof *h0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = keys[i];
        h0[k & m0]++;
        h1[(k >> d0) & m1]++;
    }
    int skip0 = h0[keys[0] & m0] == n, skip1 = h1[(keys[0] >> d0) & m1] == n;
    uint32_t sum = 0;
    for (uint32_t b = 0; b < nb0; b++) {
        uint32_t c = h0[b];
        h0[b] = sum;
        sum += c;
    }
    sum = 0;
    for (uint32_t b = 0; b < nb1; b++) {
        uint32_t c = h1[b];
        h1[b] = sum;
        sum += c;
    }
    if (skip0 && skip1) {
        identity(order, n);
    } else if (skip1) {
        for (uint32_t i = 0; i < n; i++)
            order[h0[keys[i] & m0]++] = i;
    } else if (skip0) {
        for (uint32_t i = 0; i < n; i++)
            order[h1[(keys[i] >> d0) & m1]++] = i;
    } else {
        uint32_t *x = (uint32_t *)((unsigned char *)scratch + RADIX_HIST_BYTES);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = keys[i];
            x[h0[k & m0]++] = ((k >> d0) << ib) | i;
        }
        for (uint32_t j = 0; j < n; j++) {
            uint32_t v = x[j];
            order[h1[v >> ib]++] = v & imask;
        }
    }
    return 1;
}

/* ---- Write-combining radix passes for uint32 keys (the tally's pending
 * sums, i.e. every ordinary round) ----------------------------------------
 *
 * A scatter pass writes each item to one of 2^digit output streams. Stored
 * one by one, more than about 32 streams overwhelm the store path (see
 * RADIX_MAX_BITS). Here each stream collects its items in a 64-byte buffer
 * and leaves it as a whole cache line (a non-temporal store where SSE2 is
 * there). Lines are those of the output's address; a bucket's first and
 * last lines are shared with its neighbours and written item by item.
 * Digits of up to 12 bits (4096 streams, whose buffers then sit in L2):
 * the 24-bit sums of 10 lenet votes take 2 passes, which measured ~22%
 * faster than 3 passes of 8 bits on this project's VM; inputs under 2^16
 * keys keep 8-bit digits (setting up 4096 streams would dominate). The
 * streams' state and the histograms (wc_area_t, at the top of this file)
 * live in the scratch, not on the stack (~700 KB). */

/* One pass. SRC(i) gives item i (uint64: key << 32 | index) and its
 * digit; OT is the output type (uint64 items, or the uint32 index on the
 * last pass) and OUTV(x) what is stored, where `base` is the index of
 * src[0] in the whole input and `lm` the key bits an MSD pass keeps.
 *
 * f[b] is where stream b's next item goes in wc itself, and line[b] the
 * output index of wc[b][0] plus L (a first line may start before dst[0]):
 * the store's address is one load away from the item, with no arithmetic
 * on the loaded cursor (the same change made the vote's partitioned add
 * ~30% faster, kernels.c). On return h[b] is stream b's end, as if each
 * item had been stored at h[b]++. */
#define FRL__DEFINE_WC_PASS(NAME, ST, OT, DIGIT, OUTV)                                                                             \
    static void NAME(const ST *src, uint32_t n, int sh, uint32_t m, uint32_t *h, OT *dst, uint32_t base, uint32_t lm,              \
                     wc_streams_t *ws)                                                                                             \
    {                                                                                                                              \
        (void)base;                                                                                                                \
        (void)lm;                                                                                                                  \
        enum { L = 64 / sizeof(OT) };                                                                                              \
        OT *wc = (OT *)ws->wc;                                                                                                     \
        uint32_t *f = ws->f, *line = ws->line;                                                                                     \
        const uint32_t phase = (uint32_t)(((uintptr_t)dst / sizeof(OT)) & (L - 1));                                                \
        for (uint32_t b = 0; b <= m; b++) {                                                                                        \
            uint32_t k = (h[b] + phase) & (L - 1);                                                                                 \
            f[b] = b * L + k;                                                                                                      \
            line[b] = h[b] + L - k;                                                                                                \
        }                                                                                                                          \
        for (uint32_t i = 0; i < n; i++) {                                                                                         \
            ST x = src[i];                                                                                                         \
            uint32_t b = ((uint32_t)(DIGIT)) & m;                                                                                  \
            uint32_t fi = f[b];                                                                                                    \
            wc[fi] = (OT)(OUTV);                                                                                                   \
            f[b] = ++fi;                                                                                                           \
            if ((fi & (L - 1)) == 0) {                                                                                             \
                fi -= L;                                                                                                           \
                f[b] = fi;                                                                                                         \
                uint32_t ql = line[b]; /* the line is dst[ql - L, ql) */                                                           \
                line[b] = ql + L;                                                                                                  \
                if (ql >= L && ql - L >= h[b]) {                                                                                   \
                    frl_wc_line_out(dst + ql - L, wc + fi);                                                                        \
                } else { /* the stream's first line, shared with the stream before */                                              \
                    for (uint32_t q = h[b]; q < ql; q++)                                                                           \
                        dst[q] = wc[fi + q + L - ql];                                                                              \
                }                                                                                                                  \
            }                                                                                                                      \
        }                                                                                                                          \
        for (uint32_t b = 0; b <= m; b++) { /* the partly filled lines */                                                          \
            uint32_t ql = line[b], end = ql + (f[b] & (L - 1)) - L;                                                                \
            for (uint32_t q = ql >= L && ql - L > h[b] ? ql - L : h[b]; q < end; q++)                                              \
                dst[q] = wc[b * L + q + L - ql];                                                                                   \
            h[b] = end;                                                                                                            \
        }                                                                                                                          \
    }

/* keys -> items, by the digit at sh of the key */
FRL__DEFINE_WC_PASS(wc_first, uint32_t, uint64_t, x >> sh, ((uint64_t)x << 32) | i)
/* items -> items */
FRL__DEFINE_WC_PASS(wc_mid, uint64_t, uint64_t, x >> (32 + sh), x)
/* items -> indices */
FRL__DEFINE_WC_PASS(wc_last, uint64_t, uint32_t, x >> (32 + sh), (uint32_t)x)
/* keys -> indices (a single active pass) */
FRL__DEFINE_WC_PASS(wc_only, uint32_t, uint32_t, x >> sh, i)
/* keys -> items by the top digit, keeping the key's low bits (MSD pass) */
FRL__DEFINE_WC_PASS(wc_msd, uint32_t, uint64_t, x >> sh, ((uint64_t)(x & lm) << 32) | (base + i))

/* LSD radix sort of uint32 keys in [0, 2^bits). Needs 16 n + 64 bytes of
 * buf, 64-byte aligned, and the write-combining area. */
static void argsort_u32_wc(const uint32_t *keys, uint32_t n, int bits, uint32_t *order, unsigned char *buf, wc_area_t *area)
{
    const int max_digit = n >= WC_WIDE_MIN ? WC_BITS_MAX : WC_BITS;
    int passes = (bits + max_digit - 1) / max_digit;
    int digit = (bits + passes - 1) / passes; /* equal widths */
    const uint32_t nbins = 1u << digit;
    /* Two copies of every histogram, for even and odd i: the sums' high
     * digits are bunched (a sum of votes is bell-shaped), and one copy
     * would make each increment wait for the last one to the same bin. */
    uint32_t(*hist)[WC_NB_MAX] = area->hist, (*hist2)[WC_NB_MAX] = area->hist2;
    for (int p = 0; p < 4; p++) {
        memset(hist[p], 0, nbins * sizeof **hist);
        memset(hist2[p], 0, nbins * sizeof **hist2);
    }
    wc_streams_t *ws = &area->s[0];
    const uint32_t mask = nbins - 1;
    const int d1 = digit, d2 = 2 * digit, d3 = 3 * digit;
    uint32_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint32_t k = keys[i], k2 = keys[i + 1];
        hist[0][k & mask]++;
        hist2[0][k2 & mask]++;
        hist[1][(k >> d1) & mask]++; /* unused when passes == 1 */
        hist2[1][(k2 >> d1) & mask]++;
        if (passes >= 3) {
            hist[2][(k >> d2) & mask]++;
            hist2[2][(k2 >> d2) & mask]++;
        }
        if (passes >= 4) {
            hist[3][(k >> d3) & mask]++;
            hist2[3][(k2 >> d3) & mask]++;
        }
    }
    for (; i < n; i++)
        for (int p = 0; p < passes; p++)
            hist[p][(keys[i] >> (p * digit)) & mask]++;
    for (int p = 0; p < passes; p++)
        for (uint32_t b = 0; b < nbins; b++)
            hist[p][b] += hist2[p][b];
    int act[4], na = 0;
    for (int p = 0; p < passes; p++) {
        if (hist[p][(keys[0] >> (p * digit)) & mask] == n)
            continue; /* every key has the same digit here */
        uint32_t sum = 0;
        for (uint32_t b = 0; b < nbins; b++) {
            uint32_t c = hist[p][b];
            hist[p][b] = sum;
            sum += c;
        }
        act[na++] = p;
    }
    if (na == 0) {
        identity(order, n);
        return;
    }
    if (na == 1) {
        wc_only(keys, n, act[0] * digit, mask, hist[act[0]], order, 0, 0, ws);
        frl_wc_fence();
        return;
    }
    uint64_t *xa = (uint64_t *)buf, *xb = (uint64_t *)(buf + (((size_t)n * 8 + 63) & ~(size_t)63));
    wc_first(keys, n, act[0] * digit, mask, hist[act[0]], xa, 0, 0, ws);
    frl_wc_fence();
    for (int a = 1; a < na - 1; a++) {
        wc_mid(xa, n, act[a] * digit, mask, hist[act[a]], xb, 0, 0, ws);
        frl_wc_fence();
        uint64_t *t = xa;
        xa = xb;
        xb = t;
    }
    wc_last(xa, n, act[na - 1] * digit, mask, hist[act[na - 1]], order, 0, 0, ws);
    frl_wc_fence();
}

/* ---- MSD first, for the wide sums of big layers ---------------------------
 *
 * One write-combined scatter by the key's top 8 bits, then every top bucket
 * sorted on its own by the key's low bits with LSD passes of at most 8
 * bits. A bucket of a bell-shaped vote sum is ~2^13 items, so its passes
 * run in L1/L2. On one thread this costs about what the LSD sort costs
 * (measured on this project's VM), but it splits in two without any
 * merging: the scatter by input halves (the first half's items go first
 * in each bucket: stable) and the bucket sorts by bucket ranges; the two
 * threads never write the same bytes. So it is used with a helper only. */
#define MSD_BITS 8
#define MSD_NB (1u << MSD_BITS)
#define MSD_BUCKET_MAX (1u << 18) /* larger top buckets (2 MB of items) would not stay in cache: LSD instead */
#define MSD_MT_MIN (1u << 18)     /* smaller inputs: the LSD sort on one thread */

typedef struct msd_job_s {
    const uint32_t *keys;
    uint64_t *xa, *xb;
    uint32_t *order;
    const uint32_t *start; /* MSD_NB + 1 bucket starts */
    int sh, low_bits;
    int pass;         /* 0: top-digit counts, 1: scatter, 2: bucket sorts */
    uint32_t i0, i1;  /* counts, scatter: input range */
    uint32_t *off;    /* scatter: running offsets of this half */
    uint32_t *cnt;    /* counts: 2 x MSD_NB, for even and odd i */
    wc_streams_t *ws; /* scatter: this thread's streams */
    uint32_t b0, b1;  /* bucket sorts: range of top buckets */
} msd_job_t;

/* LSD passes over each bucket of [b0, b1): items in xa, xb as scratch,
 * the last pass writes the indices into order. */
static void msd_sort_buckets(const msd_job_t *j)
{
    const int np = (j->low_bits + MSD_BITS - 1) / MSD_BITS, d = (j->low_bits + np - 1) / np;
    const uint32_t m = (1u << d) - 1;
    uint32_t hist[3][MSD_NB];
    /* Every bucket of the range uses the same stretch of xb (the range's
     * first items' place, as long as any of its buckets), so the
     * intermediate pass writes lines still in L2 instead of pulling fresh
     * ones from memory (bucket sorts ~25% faster). */
    uint64_t *const hot = j->xb + j->start[j->b0];
    for (uint32_t b = j->b0; b < j->b1; b++) {
        uint32_t s0 = j->start[b], sz = j->start[b + 1] - s0;
        uint64_t *src = j->xa + s0, *tmp = hot;
        uint32_t *out = j->order + s0;
        if (sz <= 1) {
            if (sz)
                out[0] = (uint32_t)src[0];
            continue;
        }
        memset(hist, 0, sizeof hist);
        for (uint32_t i = 0; i < sz; i++) {
            uint32_t k = (uint32_t)(src[i] >> 32);
            for (int p = 0; p < np; p++)
                hist[p][(k >> (p * d)) & m]++;
        }
        for (int p = 0; p < np; p++) {
            uint32_t sum = 0;
            for (uint32_t q = 0; q <= m; q++) {
                uint32_t c = hist[p][q];
                hist[p][q] = sum;
                sum += c;
            }
        }
        for (int p = 0; p < np - 1; p++) {
            for (uint32_t i = 0; i < sz; i++) {
                uint64_t x = src[i];
                tmp[hist[p][((uint32_t)(x >> 32) >> (p * d)) & m]++] = x;
            }
            uint64_t *t = src;
            src = tmp;
            tmp = t;
        }
        const int last = (np - 1) * d;
        for (uint32_t i = 0; i < sz; i++) {
            uint64_t x = src[i];
            out[hist[np - 1][((uint32_t)(x >> 32) >> last) & m]++] = (uint32_t)x;
        }
    }
}

/* Top-digit counts of keys [i0, i1); two copies for even and odd i (the
 * top digits of a vote sum are bunched, and one copy would make each
 * increment wait for the last one to the same bin). */
static void msd_count(const msd_job_t *j)
{
    uint32_t *c0 = j->cnt, *c1 = j->cnt + MSD_NB;
    uint32_t i = j->i0;
    for (; i + 1 < j->i1; i += 2) {
        c0[j->keys[i] >> j->sh]++;
        c1[j->keys[i + 1] >> j->sh]++;
    }
    if (i < j->i1)
        c0[j->keys[i] >> j->sh]++;
}

static void msd_run(void *p)
{
    msd_job_t *j = p;
    if (j->pass == 0) {
        msd_count(j);
    } else if (j->pass == 1) {
        wc_msd(j->keys + j->i0, j->i1 - j->i0, j->sh, MSD_NB - 1, j->off, j->xa, j->i0, (1u << j->sh) - 1, j->ws);
        frl_wc_fence(); /* the other thread reads these lines next */
    } else {
        msd_sort_buckets(j);
    }
}

/* Keys in [0, 2^bits), 16 < bits <= 32, n >= 2; buf as argsort_u32_wc;
 * this thread and the helper. Returns 0 (nothing written) when a top
 * bucket is too big to sort in cache. */
static int argsort_u32_msd(const uint32_t *keys, uint32_t n, int bits, uint32_t *order, unsigned char *buf, wc_area_t *area,
                           frl__vote_helper_t *helper)
{
    const int sh = bits - MSD_BITS;
    const uint32_t h = n / 2;
    uint64_t *xa = (uint64_t *)buf, *xb = (uint64_t *)(buf + (((size_t)n * 8 + 63) & ~(size_t)63));
    uint32_t cnt[2][2][MSD_NB];
    memset(cnt, 0, sizeof cnt);
    msd_job_t mine = {.keys = keys, .xa = xa, .xb = xb, .order = order, .sh = sh, .low_bits = sh};
    msd_job_t other = mine;
    /* Each thread counts the top digits of its half, then scatters it. */
    mine.i0 = 0;
    mine.i1 = other.i0 = h;
    other.i1 = n;
    mine.cnt = cnt[0][0];
    other.cnt = cnt[1][0];
    mine.ws = &area->s[0];
    other.ws = &area->s[1];
    mine.pass = other.pass = 0;
    frl__vote_helper_run2(helper, msd_run, &mine, &other);
    uint32_t start[MSD_NB + 1], off0[MSD_NB], off1[MSD_NB];
    start[0] = 0;
    for (uint32_t b = 0; b < MSD_NB; b++) {
        uint32_t c0 = cnt[0][0][b] + cnt[0][1][b], c1 = cnt[1][0][b] + cnt[1][1][b];
        if (c0 + c1 > MSD_BUCKET_MAX)
            return 0;
        off0[b] = start[b];
        off1[b] = start[b] + c0;
        start[b + 1] = start[b] + c0 + c1;
    }
    mine.start = other.start = start;
    mine.pass = other.pass = 1;
    mine.off = off0;
    other.off = off1;
    frl__vote_helper_run2(helper, msd_run, &mine, &other);
    /* Bucket sorts: the helper takes the buckets from the middle item on. */
    uint32_t bsplit = 0;
    while (bsplit < MSD_NB && start[bsplit] < h)
        bsplit++;
    mine.pass = other.pass = 2;
    mine.b0 = 0;
    mine.b1 = bsplit;
    other.b0 = bsplit;
    other.b1 = MSD_NB;
    frl__vote_helper_run2(helper, msd_run, &mine, &other);
    return 1;
}

void frl__vote_argsort_bounded_u32(const uint32_t *keys, uint32_t n, uint32_t max_key, uint32_t *order, void *scratch,
                                   frl__vote_helper_t *helper)
{
    if (n == 0)
        return;
    if (max_key == 0) {
        identity(order, n);
        return;
    }
    int bits = 32 - __builtin_clz(max_key);
    if (bits > RADIX_MAX_BITS && bits <= 2 * RADIX_MAX_BITS && argsort_u32_narrow(keys, n, bits, order, scratch))
        return;
    if (helper && bits > 2 * MSD_BITS && n >= MSD_MT_MIN && ((uintptr_t)scratch & 63) == 0 &&
        argsort_u32_msd(keys, n, bits, order, (unsigned char *)scratch + RADIX_HIST_BYTES, wc_area(scratch, n), helper))
        return;
    if (bits > 2 * RADIX_MAX_BITS && n >= 64 && ((uintptr_t)scratch & 63) == 0) {
        argsort_u32_wc(keys, n, bits, order, (unsigned char *)scratch + RADIX_HIST_BYTES, wc_area(scratch, n));
        return;
    }
    int passes, digit, act[RADIX_MAX_PASSES];
    plan(max_key, RADIX_MAX_BITS, &passes, &digit);
    uint32_t *hist = (uint32_t *)scratch;
    int na = hist_u32(keys, n, 0, passes, digit, hist, act);
    if (na == 0) {
        identity(order, n);
        return;
    }
    radix_packed_u32(keys, n, 0, act, na, digit, hist, (unsigned char *)scratch + RADIX_HIST_BYTES, order);
}
