/* Internal helpers shared by the aggregation sources (not a public API). */
#ifndef FRL_VOTE_INTERNAL_H
#define FRL_VOTE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "aggregation/frl_vote.h"

/* Exact 128-bit sums (sums of squared rank differences, tally checks).
 * GCC and Clang provide it on every 64-bit target. */
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 frl__u128;
#else
#error "aggregation/ needs unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif

/* Bytes of the 64-bit-word bitmap for n bits. */
static inline size_t frl__vote_bitmap_bytes(uint64_t n)
{
    return (size_t)((n + 63) / 64) * 8;
}

/* a * b into *out; 0 on success, 1 on overflow of size_t. */
static inline int frl__vote_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

/* Large O(edges) arrays: 64-byte aligned, each at its own offset from a
 * cache-set boundary (alloc.c) and, where the kernel offers it, backed by
 * transparent huge pages (madvise), because the radix sort's scatter
 * passes are bound by TLB misses on 4 KiB pages. Free with
 * frl__vote_free_big (not free()). Never zeroed. */
void *frl__vote_alloc_big(size_t bytes);
/* The same, zeroed. */
void *frl__vote_calloc_big(size_t bytes);
void frl__vote_free_big(void *p);

/* Per-layer kernels (kernels.c). All are single sequential passes over
 * the ranking `a` (n elements); the scattered accesses they make (the
 * bitmap, S[a[r]], ref_pos[a[r]]) are prefetched FRL__VOTE_PREFETCH
 * elements ahead, because on a memory-bound machine the scattered accesses
 * to 13 MB of sums cost more than everything else.
 *
 * Check: permutation of [0, n), with a bitmap of frl__vote_bitmap_bytes(n)
 * bytes. Failures return FRL_EVOTE_RANGE or FRL_EVOTE_DUPLICATE with
 * *bad_index / *bad_value set (the first failing position). */
#define FRL__VOTE_PREFETCH 64
int frl__vote_check_perm(const uint32_t *a, uint32_t n, uint64_t *bitmap, int64_t *bad_index, uint64_t *bad_value);
/* Check fused with Spearman's sum of squared rank differences against the
 * reference positions: *d2 = sum_r (r - ref_pos[a[r]])^2 (only valid on
 * success). */
int frl__vote_check_perm_d2(const uint32_t *a, uint32_t n, uint64_t *bitmap, const uint32_t *ref_pos, frl__u128 *d2,
                            int64_t *bad_index, uint64_t *bad_value);
/* Check fused with the add: S[a[r]] += w * r while checking. On a failure
 * the adds already made are subtracted again (exact: uint64 arithmetic is
 * modular), so S is bit for bit what it was before the call. */
int frl__vote_add_checked(uint64_t *s, const uint32_t *a, uint32_t n, uint64_t w, uint64_t *bitmap, int64_t *bad_index,
                          uint64_t *bad_value);
/* S[a[r]] += w * r, and its inverse, for a valid permutation. */
void frl__vote_add(uint64_t *s, const uint32_t *a, uint32_t n, uint64_t w);
void frl__vote_sub(uint64_t *s, const uint32_t *a, uint32_t n, uint64_t w);
/* The same on uint32 sums; the caller guarantees no sum exceeds UINT32_MAX. */
int frl__vote_add_checked32(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w, uint64_t *bitmap, int64_t *bad_index,
                            uint64_t *bad_value);
void frl__vote_add32(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w);
void frl__vote_sub32(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w);
/* Check + add + sum of squared rank differences against ref_pos, one pass. */
int frl__vote_add_checked_d2(uint64_t *s, const uint32_t *a, uint32_t n, uint64_t w, uint64_t *bitmap, const uint32_t *ref_pos,
                             frl__u128 *d2, int64_t *bad_index, uint64_t *bad_value);
int frl__vote_add_checked_d232(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w, uint64_t *bitmap, const uint32_t *ref_pos,
                               frl__u128 *d2, int64_t *bad_index, uint64_t *bad_value);

/* One helper thread for the two-thread kernels (helper.c). create returns
 * 0 or FRL_ENOMEM. run2 runs fn(other) on the helper and fn(mine) on the
 * caller, and returns when both have (the helper's writes are then
 * visible). */
typedef struct frl__vote_helper_s frl__vote_helper_t;
int frl__vote_helper_create(frl__vote_helper_t **out);
void frl__vote_helper_destroy(frl__vote_helper_t *h);
void frl__vote_helper_run2(frl__vote_helper_t *h, void (*fn)(void *), void *mine, void *other);

/* Partitioned add into uint32 sums, for layers of FRL__VOTE_PART_MIN to
 * FRL__VOTE_PART_MAX edges: S[a[r]] += w * r (and, with ref_pos, *d2 as
 * above) in two cache-friendly passes through `scratch`
 * (frl__vote_part_scratch_size(n) bytes, 64-byte aligned) instead of n
 * scattered read-modify-writes over the whole layer: buckets of 2^14 edges
 * (at most FRL__VOTE_PART_MAX_BUCKETS), pairs packed in one uint32 (see
 * kernels.c). Measured on this project's VM for lenet's 1.6 M-edge layer:
 * the plain prefetched scatter costs about 15 ms, the partitioned add
 * about 4-8. With `check`, the ranking is verified on the way, which
 * needs every S[e] + w * (n - 1) below 2^31 (bit 31 is the check's flag,
 * see kernels.c); on any failure it returns 1 with S exactly as before,
 * and the caller finds the first bad position with frl__vote_check_perm.
 * With a helper (not NULL), layers of 2^19 edges and more are done by two
 * threads: same result, bit for bit. */
#define FRL__VOTE_PART_MIN 65536u
#define FRL__VOTE_PART_MAX_BUCKETS 512u
#define FRL__VOTE_PART_MAX (FRL__VOTE_PART_MAX_BUCKETS << 14)
size_t frl__vote_part_scratch_size(uint32_t n);
int frl__vote_add_part32(uint32_t *s, const uint32_t *a, uint32_t n, uint32_t w, int check, void *scratch, const uint32_t *ref_pos,
                         frl__u128 *d2, frl__vote_helper_t *helper);
/* pos[a[r]] = r for a valid permutation of FRL__VOTE_PART_MIN to
 * FRL__VOTE_PART_MAX edges, the same two passes (scratch as above). */
void frl__vote_positions_part32(uint32_t *pos, const uint32_t *a, uint32_t n, void *scratch);
/* frl_vote_positions with the partitioned inversion for large layers. */
void frl__vote_positions_fast(const frl_vote_layout_t *layout, const uint32_t *ranking, uint32_t *pos, void *scratch);
/* The tally's scratch (frl__vote_part_scratch_size of its largest layer
 * when that is at most FRL__VOTE_PART_MAX), free between calls. */
void *frl__vote_tally_scratch(frl_vote_tally_t *t);

/* tally.c, for the round keeper. frl_vote_tally_add that also measures the
 * agreement with ref_pos in the same pass (ref_pos NULL: no agreement, the
 * outputs are left alone). */
int frl__vote_tally_add_agree(frl_vote_tally_t *t, const uint32_t *ranking, int n_layers, const uint32_t *lens, uint32_t weight,
                              const uint32_t *ref_pos, frl_vote_reject_t *reject, double *agreement, double *min_layer);
/* Changes the weight of the vote added last (with weight `from`) to `to`
 * (< from; 0 takes the vote out entirely, count included). Exact. */
void frl__vote_tally_reweight(frl_vote_tally_t *t, const uint32_t *ranking, uint32_t from, uint32_t to);
/* sum_r (r - ref_pos[a[r]])^2 for a valid permutation. */
frl__u128 frl__vote_d2(const uint32_t *a, uint32_t n, const uint32_t *ref_pos);
/* Spearman's rho from that sum: 1 - 6 d2 / (n (n^2 - 1)), clamped to
 * [-1, 1]; 1 for n < 2. */
double frl__vote_rho(frl__u128 d2, uint32_t n);

/* validate.c: the shape checks of frl_vote_validate (layer count, lengths). */
int frl__vote_check_shape(const frl_vote_layout_t *layout, int n_layers, const uint32_t *lens, frl_vote_reject_t *reject);
/* frl_vote_validate fused with frl_vote_agreement (one pass per layer). */
int frl__vote_validate_agree(const frl_vote_layout_t *layout, const uint32_t *ranking, int n_layers, const uint32_t *lens,
                             uint64_t *bitmap, const uint32_t *ref_pos, frl_vote_reject_t *reject, double *agreement,
                             double *min_layer);
/* sort.c: argsort of keys known to lie in [0, max_key] (no min/max pass).
 * The uint32 one splits big sorts with the helper if there is one (same
 * order). */
void frl__vote_argsort_bounded(const uint64_t *keys, uint32_t n, uint64_t max_key, uint32_t *order, void *scratch);
void frl__vote_argsort_bounded_u32(const uint32_t *keys, uint32_t n, uint32_t max_key, uint32_t *order, void *scratch,
                                   frl__vote_helper_t *helper);
/* Fills *reject (may be NULL) and returns code. */
int frl__vote_reject(frl_vote_reject_t *reject, int code, int layer, int64_t index, uint64_t value);

#endif
