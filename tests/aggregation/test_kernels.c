/* The vote's internal fast kernels against naive versions: the partitioned
 * add (buckets of 2^14 edges, uint32 pairs, write-combined; one thread and
 * two) and the write-combining radix sort of the pending uint32 sums.
 * Sizes straddle bucket and chunk boundaries and the two-thread threshold;
 * outputs start at every alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aggregation/frl_vote.h"
#include "aggregation/vote_internal.h"
#include "tests/aggregation/vote_test_util.h"

static const uint32_t k_sizes[] = {65536, 65537, 100003, (1u << 18) + 5, 3u << 18, 1u << 19, (1u << 20) + 12345};

static void shuffled(frl_rng_t *rng, uint32_t *a, uint32_t n)
{
    tu_identity(a, n);
    frl_rng_shuffle_u32(rng, a, n);
}

/* S[a[r]] += w r and sum (r - ref[a[r]])^2, bit for bit, for each flag combination. */
static void test_partitioned_add_equals_the_naive_scatter(void **state)
{
    (void)state;
    frl_rng_t rng;
    tu_rng(&rng, 21, 0);
    for (size_t si = 0; si < sizeof k_sizes / sizeof *k_sizes; si++) {
        uint32_t n = k_sizes[si];
        uint32_t *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref), *s = malloc(n * sizeof *s),
                 *want = malloc(n * sizeof *want);
        void *scratch = frl__vote_alloc_big(frl__vote_part_scratch_size(n));
        assert_non_null(a);
        assert_non_null(ref);
        assert_non_null(s);
        assert_non_null(want);
        assert_non_null(scratch);
        shuffled(&rng, ref, n); /* positions of some reference ranking */
        for (uint32_t e = 0; e < n; e++)
            s[e] = want[e] = frl_rng_u32(&rng) & 0xffff;
        frl__vote_helper_t *helper = NULL;
        assert_int_equal(frl__vote_helper_create(&helper), 0);
        for (int mode = 0; mode < 8; mode++) {
            int check = mode & 1, with_ref = (mode >> 1) & 1, two = mode >> 2;
            uint32_t w = 1 + (uint32_t)mode * 3;
            shuffled(&rng, a, n);
            frl__u128 d2_want = 0, d2 = 12345;
            for (uint32_t r = 0; r < n; r++) {
                want[a[r]] += w * r;
                int64_t d = (int64_t)r - (int64_t)ref[a[r]];
                d2_want += (frl__u128)(uint64_t)(d * d);
            }
            assert_int_equal(frl__vote_add_part32(s, a, n, w, check, scratch, with_ref ? ref : NULL, &d2, two ? helper : NULL), 0);
            assert_memory_equal(s, want, n * sizeof *s);
            if (with_ref)
                assert_true(d2 == d2_want);
        }
        frl__vote_helper_destroy(helper);
        free(a);
        free(ref);
        free(s);
        free(want);
        frl__vote_free_big(scratch);
    }
}

/* Where is edge e in a? */
static uint32_t where(const uint32_t *a, uint32_t n, uint32_t e)
{
    for (uint32_t r = 0; r < n; r++)
        if (a[r] == e)
            return r;
    return n;
}

/* A bad ranking is refused wherever the fault sits (first and last
 * position, either side of the two-thread split; a bucket that overflows,
 * or a duplicate inside the first or the last bucket, which only pass 2
 * sees), with one thread and two, and the sums are left exactly as they
 * were. */
static void test_partitioned_add_refuses_bad_rankings_without_a_trace(void **state)
{
    (void)state;
    frl_rng_t rng;
    tu_rng(&rng, 22, 0);
    const uint32_t sizes[] = {100003, (1u << 20) + 12345};
    frl__vote_helper_t *helper = NULL;
    assert_int_equal(frl__vote_helper_create(&helper), 0);
    for (int si = 0; si < 2; si++) {
        const uint32_t n = sizes[si];
        uint32_t *a = malloc(n * sizeof *a), *ref = malloc(n * sizeof *ref), *s = malloc(n * sizeof *s),
                 *keep = malloc(n * sizeof *keep);
        void *scratch = frl__vote_alloc_big(frl__vote_part_scratch_size(n));
        assert_non_null(a);
        assert_non_null(ref);
        assert_non_null(s);
        assert_non_null(keep);
        assert_non_null(scratch);
        shuffled(&rng, ref, n);
        /* Anything the check allows: S + 7 (n - 1) below 2^31. */
        for (uint32_t e = 0; e < n; e++)
            s[e] = keep[e] = frl_rng_u32(&rng) % ((1u << 31) - 7 * n);
        const uint32_t places[] = {0, n - 1, n / 2, n / 2 - 1};
        for (int fault = 0; fault < 16; fault++) {
            shuffled(&rng, a, n);
            if (fault < 12) {
                uint32_t at = places[fault / 3], other = at == 0 ? n - 1 : 0;
                if (fault % 3 == 0)
                    a[at] = n; /* out of range */
                else if (fault % 3 == 1)
                    a[at] = a[other]; /* duplicate of a far position */
                else
                    a[at] = a[at == 0 ? 1 : at - 1]; /* duplicate of a neighbour */
            } else if (fault == 15) {
                /* Edge 0 4,096 times: its sum wraps past 2^32. */
                for (uint32_t r = 0; r < n; r++)
                    if (a[r] < 4096)
                        a[r] = 0;
            } else if (fault == 14) {
                /* Edge 5 three times (an odd count sets its flag), edges
                 * 6 and 7 missing: every bucket still counts right. */
                a[where(a, n, 6)] = 5;
                a[where(a, n, 7)] = 5;
            } else {
                /* Same bucket, so every bucket still counts right: edge 1
                 * (or n - 2) replaced by edge 0 (or n - 1). */
                uint32_t keep_e = fault == 12 ? 0 : n - 1, lost = fault == 12 ? 1 : n - 2;
                a[where(a, n, lost)] = keep_e;
            }
            for (int mode = 0; mode < 4; mode++) {
                int with_ref = mode & 1, two = mode >> 1;
                frl__u128 d2 = 0;
                assert_int_equal(frl__vote_add_part32(s, a, n, 7, 1, scratch, with_ref ? ref : NULL, &d2, two ? helper : NULL), 1);
                assert_memory_equal(s, keep, n * sizeof *s);
            }
        }
        free(a);
        free(ref);
        free(s);
        free(keep);
        frl__vote_free_big(scratch);
    }
    frl__vote_helper_destroy(helper);
}

/* The partitioned inversion gives every edge its position. */
static void test_partitioned_positions_invert_the_ranking(void **state)
{
    (void)state;
    frl_rng_t rng;
    tu_rng(&rng, 24, 0);
    for (size_t si = 0; si < sizeof k_sizes / sizeof *k_sizes; si++) {
        uint32_t n = k_sizes[si];
        uint32_t *a = malloc(n * sizeof *a), *pos = malloc(n * sizeof *pos);
        void *scratch = frl__vote_alloc_big(frl__vote_part_scratch_size(n));
        assert_non_null(a);
        assert_non_null(pos);
        assert_non_null(scratch);
        shuffled(&rng, a, n);
        memset(pos, 0xff, n * sizeof *pos);
        frl__vote_positions_part32(pos, a, n, scratch);
        for (uint32_t r = 0; r < n; r++)
            assert_int_equal(pos[a[r]], r);
        free(a);
        free(pos);
        frl__vote_free_big(scratch);
    }
}

/* The uint32 sorts (narrow two-pass, write-combining 8- and 12-bit digits, one
 * active pass) equal a naive stable sort for key widths 1..32, output at
 * each 4-byte alignment within a cache line. */
static void test_u32_argsort_equals_the_naive_sort_at_every_width_and_alignment(void **state)
{
    (void)state;
    frl_rng_t rng;
    tu_rng(&rng, 23, 0);
    const uint32_t sizes[] = {64, 1000, 70001};
    for (size_t si = 0; si < 3; si++) {
        uint32_t n = sizes[si];
        uint32_t *k = malloc(n * sizeof *k), *out = malloc((n + 16) * sizeof *out), *want = malloc(n * sizeof *want);
        uint64_t *k64 = malloc(n * sizeof *k64);
        void *scratch = frl__vote_alloc_big(frl_vote_argsort_scratch_size(n));
        assert_non_null(k);
        assert_non_null(out);
        assert_non_null(want);
        assert_non_null(k64);
        assert_non_null(scratch);
        for (int bits = 1; bits <= 32; bits++) {
            uint32_t max = bits == 32 ? UINT32_MAX : (1u << bits) - 1;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t v = frl_rng_u32(&rng) & max;
                if (bits > 12 && i % 3 == 0)
                    v &= ~0xffu; /* many keys share their low digit */
                k[i] = v;
                k64[i] = v;
            }
            tu_argsort_naive(k64, n, want);
            uint32_t off = (uint32_t)bits % 16u;
            frl__vote_argsort_bounded_u32(k, n, max, out + off, scratch, NULL);
            assert_memory_equal(out + off, want, n * sizeof *want);
        }
        free(k);
        free(out);
        free(want);
        free(k64);
        frl__vote_free_big(scratch);
    }
}

/* Big inputs of the vote's wide sums (MSD first, 1 and 2 threads):
 * bell-shaped sums of 10 votes, uniform keys, and keys all in one top
 * bucket (too big to sort in cache: the LSD path) equal the naive sort. */
static void test_u32_argsort_of_big_sums_with_one_and_two_threads(void **state)
{
    (void)state;
    frl_rng_t rng;
    tu_rng(&rng, 25, 0);
    const uint32_t n = (1u << 19) + 33, top = 10 * (n - 1);
    uint32_t *k = malloc(n * sizeof *k), *out = malloc(n * sizeof *out), *want = malloc(n * sizeof *want);
    uint64_t *k64 = malloc(n * sizeof *k64);
    void *scratch = frl__vote_alloc_big(frl_vote_argsort_scratch_size(n));
    frl__vote_helper_t *helper = NULL;
    assert_non_null(k);
    assert_non_null(out);
    assert_non_null(want);
    assert_non_null(k64);
    assert_non_null(scratch);
    assert_int_equal(frl__vote_helper_create(&helper), 0);
    for (int shape = 0; shape < 3; shape++) {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t v = 0;
            if (shape == 0)
                for (int c = 0; c < 10; c++)
                    v += frl_rng_below(&rng, n);
            else if (shape == 1)
                v = frl_rng_below(&rng, top + 1);
            else
                v = top - (frl_rng_u32(&rng) & 0xfff);
            k[i] = v;
            k64[i] = v;
        }
        tu_argsort_naive(k64, n, want);
        for (int two = 0; two < 2; two++) {
            memset(out, 0xff, n * sizeof *out);
            frl__vote_argsort_bounded_u32(k, n, top, out, scratch, two ? helper : NULL);
            assert_memory_equal(out, want, n * sizeof *want);
        }
    }
    frl__vote_helper_destroy(helper);
    free(k);
    free(out);
    free(want);
    free(k64);
    frl__vote_free_big(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitioned_add_equals_the_naive_scatter),
        cmocka_unit_test(test_partitioned_add_refuses_bad_rankings_without_a_trace),
        cmocka_unit_test(test_partitioned_positions_invert_the_ranking),
        cmocka_unit_test(test_u32_argsort_equals_the_naive_sort_at_every_width_and_alignment),
        cmocka_unit_test(test_u32_argsort_of_big_sums_with_one_and_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
