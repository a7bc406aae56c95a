#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "supermask/frl_ranking.h"

/* Reference: sort (value, index) pairs with qsort. */
typedef struct {
    float v;
    uint32_t i;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

static float *random_scores(uint32_t n, int with_ties, uint32_t stream)
{
    uint8_t seed[32];
    frl_seed_from_u64(42, seed);
    frl_rng_t r;
    frl_rng_init(&r, seed, FRL_STREAM_TEST, stream, 0);
    float *s = malloc(sizeof(float) * n);
    for (uint32_t e = 0; e < n; e++) {
        float u = frl_rng_unit_f32(&r) * 2.0f - 1.0f;
        s[e] = with_ties ? (float)((int)(u * 20.0f)) / 20.0f : u; /* ~41 distinct values: many ties, +0 and -0 */
    }
    return s;
}

static void check_ranking(const float *s, uint32_t n)
{
    uint32_t *rk = malloc(sizeof(uint32_t) * n);
    void *scratch = malloc(frl_ranking_scratch_size(n));
    pair *p = malloc(sizeof(pair) * n);
    assert_int_equal(frl_ranking_from_scores(s, n, rk, scratch), 0);
    for (uint32_t e = 0; e < n; e++)
        p[e] = (pair){s[e] == 0.0f ? 0.0f : s[e], e};
    qsort(p, n, sizeof *p, cmp_pair);
    uint32_t mismatches = 0;
    for (uint32_t r = 0; r < n; r++) {
        /* -0 sorts before +0 in ours (bit order); the reference treats them equal */
        if (rk[r] != p[r].i && !(s[rk[r]] == 0.0f && s[p[r].i] == 0.0f))
            mismatches++;
    }
    assert_int_equal(mismatches, 0);
    free(rk);
    free(scratch);
    free(p);
}

static void test_ranking_is_ascending_with_ties_by_index(void **state)
{
    (void)state;
    float *s = random_scores(100000, 1, 1);
    check_ranking(s, 100000);
    free(s);
    float t[6] = {0.5f, -1.0f, 0.5f, 0.25f, -1.0f, 0.5f};
    uint32_t rk[6], scratch[6];
    assert_int_equal(frl_ranking_from_scores(t, 6, rk, scratch), 0);
    const uint32_t want[6] = {1, 4, 3, 0, 2, 5};
    assert_memory_equal(rk, want, sizeof want);
}

/* The scatter writes whole cache lines of the output: every alignment of
 * the ranking and the scratch gives the same ranking. */
static void test_ranking_is_the_same_at_every_output_alignment(void **state)
{
    (void)state;
    const uint32_t n = 50001;
    float *s = random_scores(n, 1, 4);
    uint32_t *want = malloc(sizeof(uint32_t) * n), *buf = malloc(sizeof(uint32_t) * (n + 16)),
             *sbuf = malloc(sizeof(uint32_t) * (n + 16));
    assert_non_null(s);
    assert_non_null(want);
    assert_non_null(buf);
    assert_non_null(sbuf);
    assert_int_equal(frl_ranking_from_scores(s, n, want, sbuf), 0);
    for (uint32_t off = 1; off < 16; off += 2) {
        memset(buf, 0xab, sizeof(uint32_t) * (n + 16));
        assert_int_equal(frl_ranking_from_scores(s, n, buf + off, sbuf + (16 - off)), 0);
        assert_memory_equal(buf + off, want, sizeof(uint32_t) * n);
        for (uint32_t i = 0; i < off; i++)
            assert_int_equal(buf[i], 0xabababab); /* nothing written before the output */
        for (uint32_t i = off + n; i < n + 16; i++)
            assert_int_equal(buf[i], 0xabababab); /* nor after it */
    }
    free(s);
    free(want);
    free(buf);
    free(sbuf);
}

static void test_ranking_of_distinct_scores_matches_sort(void **state)
{
    (void)state;
    float *s = random_scores(1605632, 0, 2);
    check_ranking(s, 1605632);
    free(s);
}

static void test_ranking_scores_round_trip(void **state)
{
    (void)state;
    const uint32_t n = 20000;
    float *s = random_scores(n, 0, 3);
    float *sorted = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    uint32_t *rk = malloc(sizeof(uint32_t) * n), *rk2 = malloc(sizeof(uint32_t) * n), *scr = malloc(sizeof(uint32_t) * n);
    frl_ranking_from_scores(s, n, rk, scr);
    for (uint32_t r = 0; r < n; r++)
        sorted[r] = s[rk[r]];
    frl_scores_from_ranking(rk, sorted, n, back);
    assert_memory_equal(back, s, sizeof(float) * n);
    frl_ranking_from_scores(back, n, rk2, scr);
    assert_memory_equal(rk, rk2, sizeof(uint32_t) * n);
    free(s);
    free(sorted);
    free(back);
    free(rk);
    free(rk2);
    free(scr);
}

/* Reference mask: sort by (key, index) and drop the first j. */
static void reference_mask(const float *s, uint32_t n, double keep, frl_mask_rule rule, uint8_t *mask)
{
    pair *p = malloc(sizeof(pair) * n);
    for (uint32_t e = 0; e < n; e++)
        p[e] = (pair){rule == FRL_MASK_ABS ? fabsf(s[e]) : s[e], e};
    qsort(p, n, sizeof *p, cmp_pair);
    uint32_t j = frl_mask_dropped(n, keep);
    memset(mask, 1, n);
    for (uint32_t r = 0; r < j; r++)
        mask[p[r].i] = 0;
    free(p);
}

static void test_topk_matches_sorted_reference_with_ties(void **state)
{
    (void)state;
    const uint32_t n = 30011;
    const double keeps[4] = {0.5, 0.1, 0.999, 1.0};
    for (int ties = 0; ties < 2; ties++) {
        float *s = random_scores(n, ties, 4 + ties);
        for (int k = 0; k < 4; k++) {
            for (int rule = 0; rule < 2; rule++) {
                uint8_t *m = malloc(n), *want = malloc(n);
                void *scr = malloc(frl_topk_scratch_size(n));
                assert_int_equal(frl_topk_mask(s, n, keeps[k], (frl_mask_rule)rule, m, scr), 0);
                reference_mask(s, n, keeps[k], (frl_mask_rule)rule, want);
                assert_memory_equal(m, want, n);
                uint32_t kept = 0;
                for (uint32_t e = 0; e < n; e++)
                    kept += m[e];
                assert_int_equal(kept, n - frl_mask_dropped(n, keeps[k]));
                free(m);
                free(want);
                free(scr);
            }
        }
        free(s);
    }
}

static void test_mask_from_ranking_equals_topk_of_rebuilt_scores(void **state)
{
    (void)state;
    const uint32_t n = 5000;
    float *s = random_scores(n, 0, 7), *sorted = malloc(sizeof(float) * n), *rebuilt = malloc(sizeof(float) * n);
    uint32_t *rk = malloc(sizeof(uint32_t) * n), *scr = malloc(sizeof(uint32_t) * n);
    uint8_t *m1 = malloc(n), *m2 = malloc(n);
    frl_ranking_from_scores(s, n, rk, scr);
    for (uint32_t r = 0; r < n; r++)
        sorted[r] = s[rk[r]];
    /* a different ranking: reverse */
    for (uint32_t r = 0; r < n / 2; r++) {
        uint32_t t = rk[r];
        rk[r] = rk[n - 1 - r];
        rk[n - 1 - r] = t;
    }
    for (int rule = 0; rule < 2; rule++) {
        assert_int_equal(frl_mask_from_ranking(rk, sorted, n, 0.5, (frl_mask_rule)rule, m1, scr), 0);
        frl_scores_from_ranking(rk, sorted, n, rebuilt);
        assert_int_equal(frl_topk_mask(rebuilt, n, 0.5, (frl_mask_rule)rule, m2, scr), 0);
        assert_memory_equal(m1, m2, n);
    }
    /* abs rule keeps both tails of the ranking, signed keeps the top half */
    frl_mask_from_ranking(rk, sorted, n, 0.5, FRL_MASK_ABS, m1, scr);
    assert_int_equal(m1[rk[0]], 1);
    assert_int_equal(m1[rk[n - 1]], 1);
    assert_int_equal(m1[rk[n / 2]], 0);
    frl_mask_from_ranking(rk, sorted, n, 0.5, FRL_MASK_SIGNED, m1, scr);
    assert_int_equal(m1[rk[0]], 0);
    assert_int_equal(m1[rk[n - 1]], 1);
    free(s);
    free(sorted);
    free(rebuilt);
    free(rk);
    free(scr);
    free(m1);
    free(m2);
}

static void test_bad_arguments_are_rejected(void **state)
{
    (void)state;
    float s[4] = {0};
    uint8_t m[4];
    uint32_t scr[4];
    assert_int_equal(frl_topk_mask(s, 4, 1.5, FRL_MASK_ABS, m, scr), FRL_EINVAL);
    assert_int_equal(frl_topk_mask(NULL, 4, 0.5, FRL_MASK_ABS, m, scr), FRL_EINVAL);
    assert_int_equal(frl_ranking_from_scores(s, 4, NULL, scr), FRL_EINVAL);
    frl_mask_rule r;
    assert_int_equal(frl_mask_rule_parse("top", &r), FRL_EINVAL);
    assert_int_equal(frl_mask_dropped(1605632, 0.5), 802816);
    assert_int_equal(frl_mask_dropped(7, 0.5), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranking_is_ascending_with_ties_by_index),
        cmocka_unit_test(test_ranking_is_the_same_at_every_output_alignment),
        cmocka_unit_test(test_ranking_of_distinct_scores_matches_sort),
        cmocka_unit_test(test_ranking_scores_round_trip),
        cmocka_unit_test(test_topk_matches_sorted_reference_with_ties),
        cmocka_unit_test(test_mask_from_ranking_equals_topk_of_rebuilt_scores),
        cmocka_unit_test(test_bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
