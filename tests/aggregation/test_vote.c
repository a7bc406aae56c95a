/* The plain FRL vote: tally, finalize, merge, order independence, ties,
 * overflow. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aggregation/frl_vote.h"
#include "common/frl_error.h"
#include "tests/aggregation/vote_test_util.h"

static const uint32_t k_small_layers[] = {9, 300, 5000, 17};

static void small_layout(frl_vote_layout_t *L)
{
    assert_int_equal(frl_vote_layout_init(L, 4, k_small_layers), 0);
}

static uint32_t *alloc_ranking(const frl_vote_layout_t *L)
{
    uint32_t *a = malloc((size_t)L->total_edges * sizeof *a);
    assert_non_null(a);
    return a;
}

static void test_single_client_tally_gives_back_its_ranking(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 1, 0);
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, a);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, L.n_edges, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_finalize(t, g), 0);
    assert_memory_equal(a, g, (size_t)L.total_edges * sizeof *a);
    frl_vote_tally_destroy(t);
    free(a);
    free(g);
}

static void test_identical_clients_give_the_same_ranking(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 2, 0);
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, a);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    for (int i = 0; i < 13; i++)
        assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_votes(t), 13);
    assert_int_equal(frl_vote_tally_finalize(t, g), 0);
    assert_memory_equal(a, g, (size_t)L.total_edges * sizeof *a);
    frl_vote_tally_destroy(t);
    free(a);
    free(g);
}

/* Tallies the same 8 weighted votes in 5 different orders: sums and
 * rankings must be bit-identical. */
static void test_result_does_not_depend_on_submission_order(void **state)
{
    (void)state;
    enum { NV = 8 };
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 3, 0);
    uint32_t *votes[NV];
    uint32_t w[NV];
    for (int v = 0; v < NV; v++) {
        votes[v] = alloc_ranking(&L);
        tu_random_ranking(&L, &rng, votes[v]);
        w[v] = 1 + frl_rng_below(&rng, 3);
    }
    uint32_t *g0 = alloc_ranking(&L), *g = alloc_ranking(&L);
    uint64_t *s0 = malloc((size_t)L.total_edges * 8);
    uint32_t order[NV];
    for (int trial = 0; trial < 5; trial++) {
        tu_identity(order, NV);
        if (trial > 0)
            frl_rng_shuffle_u32(&rng, order, NV);
        frl_vote_tally_t *t;
        assert_int_equal(frl_vote_tally_create(&L, &t), 0);
        for (int i = 0; i < NV; i++)
            assert_int_equal(frl_vote_tally_add(t, votes[order[i]], L.n_layers, NULL, w[order[i]], NULL), 0);
        assert_int_equal(frl_vote_tally_finalize(t, trial ? g : g0), 0);
        if (trial == 0) {
            memcpy(s0, frl_vote_tally_sums(t, 0), (size_t)L.total_edges * 8);
        } else {
            assert_memory_equal(s0, frl_vote_tally_sums(t, 0), (size_t)L.total_edges * 8);
            assert_memory_equal(g0, g, (size_t)L.total_edges * sizeof *g);
        }
        frl_vote_tally_destroy(t);
    }
    for (int v = 0; v < NV; v++)
        free(votes[v]);
    free(g0);
    free(g);
    free(s0);
}

/* An identity and a reversed vote give every edge the same sum n - 1: the
 * result must be the identity (ties by ascending edge index). */
static void test_ties_are_resolved_by_ascending_edge_index(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    uint32_t *a = alloc_ranking(&L), *b = alloc_ranking(&L), *g = alloc_ranking(&L);
    for (int l = 0; l < L.n_layers; l++) {
        tu_identity(a + L.offset[l], L.n_edges[l]);
        tu_reverse(b + L.offset[l], L.n_edges[l]);
    }
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_add(t, b, L.n_layers, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_finalize(t, g), 0);
    assert_memory_equal(a, g, (size_t)L.total_edges * sizeof *g);

    /* A partial tie: 3 edges; votes (2,0,1) and (1,0,2) give positions
     * e0: 1+2=3, e1: 2+1=3, e2: 0+0=0 -> order 2, 0, 1. */
    frl_vote_layout_t L3;
    uint32_t n3 = 3;
    assert_int_equal(frl_vote_layout_init(&L3, 1, &n3), 0);
    frl_vote_tally_t *t3;
    assert_int_equal(frl_vote_tally_create(&L3, &t3), 0);
    const uint32_t v1[3] = {2, 0, 1}, v2[3] = {2, 1, 0};
    uint32_t g3[3];
    assert_int_equal(frl_vote_tally_add(t3, v1, 1, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_add(t3, v2, 1, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_finalize(t3, g3), 0);
    assert_int_equal(g3[0], 2);
    assert_int_equal(g3[1], 0);
    assert_int_equal(g3[2], 1);
    frl_vote_tally_destroy(t3);
    frl_vote_tally_destroy(t);
    free(a);
    free(b);
    free(g);
}

/* The fast path agrees with a naive (sum, index) sort on random votes,
 * including weighted ones whose sums need several radix passes. */
static void test_finalize_matches_naive_argsort(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 4, 0);
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L), *want = alloc_ranking(&L);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    for (int v = 0; v < 10; v++) {
        tu_random_ranking(&L, &rng, a);
        uint32_t w = v < 5 ? 1 : 1u + frl_rng_u32(&rng) % 1000000u;
        assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, NULL, w, NULL), 0);
        assert_int_equal(frl_vote_tally_finalize(t, g), 0);
        for (int l = 0; l < L.n_layers; l++)
            tu_argsort_naive(frl_vote_tally_sums(t, l), L.n_edges[l], want + L.offset[l]);
        assert_memory_equal(want, g, (size_t)L.total_edges * sizeof *g);
    }
    frl_vote_tally_destroy(t);
    free(a);
    free(g);
    free(want);
}

/* argsort on keys that span all 64 bits, with many duplicates. */
static void test_argsort_handles_64_bit_keys_and_duplicates(void **state)
{
    (void)state;
    enum { N = 20000 };
    frl_rng_t rng;
    tu_rng(&rng, 5, 0);
    uint64_t *k = malloc(N * sizeof *k);
    uint32_t *got = malloc(N * sizeof *got), *want = malloc(N * sizeof *want);
    void *scratch = malloc(frl_vote_argsort_scratch_size(N));
    const uint64_t pool[5] = {0, 1, UINT64_MAX, (uint64_t)1 << 40, 12345};
    for (int mode = 0; mode < 3; mode++) {
        for (uint32_t i = 0; i < N; i++) {
            if (mode == 0)
                k[i] = frl_rng_u64(&rng);
            else if (mode == 1)
                k[i] = pool[frl_rng_below(&rng, 5)];
            else
                k[i] = ((uint64_t)1 << 33) + frl_rng_below(&rng, 7) * ((uint64_t)1 << 20); /* constant low digits */
        }
        assert_int_equal(frl_vote_argsort_u64(k, N, got, scratch), 0);
        tu_argsort_naive(k, N, want);
        assert_memory_equal(got, want, N * sizeof *got);
    }
    for (uint32_t i = 0; i < N; i++)
        k[i] = 77; /* all equal: identity */
    assert_int_equal(frl_vote_argsort_u64(k, N, got, scratch), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(got[i], i);
    free(k);
    free(got);
    free(want);
    free(scratch);
}

static void test_merge_equals_tally_of_the_union(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 6, 0);
    uint32_t *a = alloc_ranking(&L), *g1 = alloc_ranking(&L), *g2 = alloc_ranking(&L);
    frl_vote_tally_t *ta, *tb, *tall;
    assert_int_equal(frl_vote_tally_create(&L, &ta), 0);
    assert_int_equal(frl_vote_tally_create(&L, &tb), 0);
    assert_int_equal(frl_vote_tally_create(&L, &tall), 0);
    for (int v = 0; v < 9; v++) {
        tu_random_ranking(&L, &rng, a);
        uint32_t w = 1 + (uint32_t)v % 2;
        assert_int_equal(frl_vote_tally_add(v % 3 ? ta : tb, a, L.n_layers, NULL, w, NULL), 0);
        assert_int_equal(frl_vote_tally_add(tall, a, L.n_layers, NULL, w, NULL), 0);
    }
    assert_int_equal(frl_vote_tally_merge(ta, tb), 0);
    assert_int_equal(frl_vote_tally_votes(ta), frl_vote_tally_votes(tall));
    assert_int_equal(frl_vote_tally_weight(ta), frl_vote_tally_weight(tall));
    assert_memory_equal(frl_vote_tally_sums(ta, 0), frl_vote_tally_sums(tall, 0), (size_t)L.total_edges * 8);
    assert_int_equal(frl_vote_tally_finalize(ta, g1), 0);
    assert_int_equal(frl_vote_tally_finalize(tall, g2), 0);
    assert_memory_equal(g1, g2, (size_t)L.total_edges * sizeof *g1);
    frl_vote_tally_destroy(ta);
    frl_vote_tally_destroy(tb);
    frl_vote_tally_destroy(tall);
    free(a);
    free(g1);
    free(g2);
}

static void test_merge_into_itself_doubles_the_tally(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 7, 0);
    uint32_t *a = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, a);
    frl_vote_tally_t *t, *t2;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_create(&L, &t2), 0);
    assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, NULL, 3, NULL), 0);
    assert_int_equal(frl_vote_tally_add(t2, a, L.n_layers, NULL, 6, NULL), 0);
    assert_int_equal(frl_vote_tally_merge(t, t), 0);
    assert_int_equal(frl_vote_tally_weight(t), 6);
    assert_int_equal(frl_vote_tally_votes(t), 2);
    assert_memory_equal(frl_vote_tally_sums(t, 0), frl_vote_tally_sums(t2, 0), (size_t)L.total_edges * 8);
    frl_vote_tally_destroy(t);
    frl_vote_tally_destroy(t2);
    free(a);
}

static void test_merge_rejects_a_different_layout(void **state)
{
    (void)state;
    frl_vote_layout_t L, L2;
    small_layout(&L);
    const uint32_t other[] = {9, 300, 5001, 17};
    assert_int_equal(frl_vote_layout_init(&L2, 4, other), 0);
    frl_vote_tally_t *t, *t2;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_create(&L2, &t2), 0);
    assert_int_equal(frl_vote_tally_merge(t, t2), FRL_EMISMATCH);
    frl_vote_tally_destroy(t);
    frl_vote_tally_destroy(t2);
}

static void test_weighted_vote_equals_repeated_votes(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 8, 0);
    uint32_t *a = alloc_ranking(&L), *b = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, a);
    tu_random_ranking(&L, &rng, b);
    frl_vote_tally_t *tw, *tr;
    assert_int_equal(frl_vote_tally_create(&L, &tw), 0);
    assert_int_equal(frl_vote_tally_create(&L, &tr), 0);
    assert_int_equal(frl_vote_tally_add(tw, a, L.n_layers, NULL, 4, NULL), 0);
    assert_int_equal(frl_vote_tally_add(tw, b, L.n_layers, NULL, 1, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(frl_vote_tally_add(tr, a, L.n_layers, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_add(tr, b, L.n_layers, NULL, 1, NULL), 0);
    assert_memory_equal(frl_vote_tally_sums(tw, 0), frl_vote_tally_sums(tr, 0), (size_t)L.total_edges * 8);
    assert_int_equal(frl_vote_tally_votes(tw), 2);
    assert_int_equal(frl_vote_tally_weight(tw), 5);
    frl_vote_tally_destroy(tw);
    frl_vote_tally_destroy(tr);
    free(a);
    free(b);
}

/* 1,000 votes on a 5,000,000-edge layer: 5 real identity votes, merged
 * with a tally holding 995 more (one add of weight 995). The largest sum,
 * 1000 * 4,999,999 = 4,999,999,000, does not fit 32 bits; every sum must be
 * exact, and the ranking must still be the identity. */
static void test_sums_do_not_overflow_at_1000_clients_and_5m_edges(void **state)
{
    (void)state;
    const uint32_t n = 5000000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L);
    tu_identity(a, n);
    frl_vote_tally_t *t, *rest;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_create(&L, &rest), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(frl_vote_tally_add(t, a, 1, &n, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_add(rest, a, 1, &n, 995, NULL), 0);
    assert_int_equal(frl_vote_tally_merge(t, rest), 0);
    assert_int_equal(frl_vote_tally_weight(t), 1000);
    const uint64_t *s = frl_vote_tally_sums(t, 0);
    assert_true(s[n - 1] > UINT32_MAX);
    assert_int_equal(s[n - 1], (uint64_t)1000 * (n - 1));
    for (uint32_t e = 0; e < n; e++)
        if (s[e] != (uint64_t)1000 * e)
            fail_msg("sum of edge %u is %llu, want %llu", e, (unsigned long long)s[e], (unsigned long long)((uint64_t)1000 * e));
    assert_int_equal(frl_vote_tally_finalize(t, g), 0);
    assert_memory_equal(a, g, (size_t)n * sizeof *g);
    frl_vote_tally_destroy(t);
    frl_vote_tally_destroy(rest);
    free(a);
    free(g);
}

/* The weight guard: a total weight that could push a sum past UINT64_MAX is
 * refused and leaves the tally untouched. The tally is brought next to the
 * limit by loading the sums of an identity vote of weight limit - 5. */
static void test_add_refuses_a_weight_that_could_overflow(void **state)
{
    (void)state;
    const uint32_t n = 1000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    uint32_t *a = alloc_ranking(&L);
    uint64_t *s = malloc(n * sizeof *s);
    tu_identity(a, n);
    const uint64_t limit = UINT64_MAX / (n - 1);
    const uint64_t w0 = limit - 5;
    for (uint32_t e = 0; e < n; e++)
        s[e] = w0 * e;
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_load(t, s, 1, w0), 0);
    assert_int_equal(frl_vote_tally_add(t, a, 1, NULL, 6, NULL), FRL_ERANGE);
    assert_int_equal(frl_vote_tally_sums(t, 0)[n - 1], w0 * (n - 1));
    assert_int_equal(frl_vote_tally_weight(t), w0);
    assert_int_equal(frl_vote_tally_merge(t, t), FRL_ERANGE);
    assert_int_equal(frl_vote_tally_add(t, a, 1, NULL, 5, NULL), 0);
    assert_int_equal(frl_vote_tally_sums(t, 0)[n - 1], limit * (n - 1));
    assert_true(limit * (n - 1) > UINT64_MAX - (n - 1));
    frl_vote_tally_destroy(t);
    free(a);
    free(s);
}

static void test_reset_empties_the_tally(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L);
    frl_rng_t rng;
    tu_rng(&rng, 9, 0);
    tu_random_ranking(&L, &rng, a);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_finalize(t, g), FRL_ESTATE);
    assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, NULL, 1, NULL), 0);
    frl_vote_tally_reset(t);
    assert_int_equal(frl_vote_tally_votes(t), 0);
    assert_int_equal(frl_vote_tally_weight(t), 0);
    for (uint64_t i = 0; i < L.total_edges; i++)
        assert_int_equal(frl_vote_tally_sums(t, 0)[i], 0);
    assert_int_equal(frl_vote_tally_finalize(t, g), FRL_ESTATE);
    frl_vote_tally_destroy(t);
    free(a);
    free(g);
}

/* A tally moved as sums (checkpoint, or a child aggregator's partial sums)
 * loads exactly; sums no set of permutations can give are refused. */
static void test_load_accepts_real_sums_and_refuses_impossible_ones(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    frl_rng_t rng;
    tu_rng(&rng, 10, 0);
    uint32_t *a = alloc_ranking(&L);
    frl_vote_tally_t *t, *u;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_tally_create(&L, &u), 0);
    for (int v = 0; v < 3; v++) {
        tu_random_ranking(&L, &rng, a);
        assert_int_equal(frl_vote_tally_add(t, a, L.n_layers, NULL, 2, NULL), 0);
    }
    size_t bytes = (size_t)L.total_edges * 8;
    uint64_t *s = malloc(bytes);
    memcpy(s, frl_vote_tally_sums(t, 0), bytes);
    assert_int_equal(frl_vote_tally_load(u, s, 3, 6), 0);
    assert_memory_equal(frl_vote_tally_sums(u, 0), s, bytes);
    assert_int_equal(frl_vote_tally_weight(u), 6);
    frl_vote_tally_reset(u);
    s[5] += 1; /* layer total no longer weight * n (n - 1) / 2 */
    assert_int_equal(frl_vote_tally_load(u, s, 3, 6), FRL_ERANGE);
    s[5] -= 1;
    assert_int_equal(frl_vote_tally_load(u, s, 3, 5), FRL_ERANGE);
    assert_int_equal(frl_vote_tally_votes(u), 0);
    frl_vote_tally_destroy(t);
    frl_vote_tally_destroy(u);
    free(s);
    free(a);
}

/* Votes first go to uint32 staging sums that are folded into the uint64
 * sums when they could overflow; weights too large for staging go straight
 * to uint64. Whatever the path, the sums and the ranking are exact. Here
 * n = 1000, so staging holds at most floor(INT32_MAX / 999) = 2,149,631
 * units of weight (bit 31 is the partitioned check's flag). The weights
 * fill it, flush it, go around it, and fill it exactly to the limit. */
static void test_sums_stay_exact_across_staging_flushes(void **state)
{
    (void)state;
    const uint32_t sizes[2] = {1000, 10};
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 2, sizes), 0);
    frl_rng_t rng;
    tu_rng(&rng, 11, 0);
    const uint32_t weights[7] = {1, 1500000, 1500000, 2500000, 7, 2149631, 2};
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L), *want = alloc_ranking(&L);
    uint64_t *naive = calloc((size_t)L.total_edges, 8);
    uint32_t *pos = alloc_ranking(&L);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    for (int v = 0; v < 7; v++) {
        tu_random_ranking(&L, &rng, a);
        frl_vote_positions(&L, a, pos);
        for (uint64_t e = 0; e < L.total_edges; e++)
            naive[e] += (uint64_t)weights[v] * pos[e];
        assert_int_equal(frl_vote_tally_add(t, a, 2, NULL, weights[v], NULL), 0);
        /* A bad vote on each path leaves everything as it was. */
        uint32_t keep = a[L.offset[1] + 9];
        a[L.offset[1] + 9] = a[L.offset[1]];
        assert_int_equal(frl_vote_tally_add(t, a, 2, NULL, weights[v], NULL), FRL_EVOTE_DUPLICATE);
        a[L.offset[1] + 9] = keep;
        if (v % 2) {
            assert_memory_equal(frl_vote_tally_sums(t, 0), naive, (size_t)L.total_edges * 8);
            assert_int_equal(frl_vote_tally_finalize(t, g), 0);
        }
    }
    assert_int_equal(frl_vote_tally_finalize(t, g), 0);
    for (int l = 0; l < 2; l++)
        tu_argsort_naive(naive + L.offset[l], L.n_edges[l], want + L.offset[l]);
    assert_memory_equal(g, want, (size_t)L.total_edges * sizeof *g);
    assert_memory_equal(frl_vote_tally_sums(t, 0), naive, (size_t)L.total_edges * 8);
    frl_vote_tally_destroy(t);
    free(a);
    free(g);
    free(want);
    free(naive);
    free(pos);
}

/* Two threads for the large layer: the same sums, the same ranking and the
 * same rejections as one; 0 or 3 threads are refused. */
static void test_two_threads_give_the_same_tally_as_one(void **state)
{
    (void)state;
    const uint32_t sizes[3] = {300, (1u << 19) + 777, 70000};
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 3, sizes), 0);
    frl_rng_t rng;
    tu_rng(&rng, 12, 0);
    uint32_t *a = alloc_ranking(&L), *g1 = alloc_ranking(&L), *g2 = alloc_ranking(&L);
    frl_vote_tally_t *t1, *t2;
    assert_int_equal(frl_vote_tally_create(&L, &t1), 0);
    assert_int_equal(frl_vote_tally_create(&L, &t2), 0);
    assert_int_equal(frl_vote_tally_set_threads(t2, 0), FRL_EINVAL);
    assert_int_equal(frl_vote_tally_set_threads(t2, 3), FRL_EINVAL);
    assert_int_equal(frl_vote_tally_set_threads(t2, 2), 0);
    assert_int_equal(frl_vote_tally_set_threads(t2, 2), 0); /* again: still one helper */
    for (int v = 0; v < 5; v++) {
        tu_random_ranking(&L, &rng, a);
        uint32_t w = 1 + (uint32_t)v;
        assert_int_equal(frl_vote_tally_add(t1, a, 3, NULL, w, NULL), 0);
        assert_int_equal(frl_vote_tally_add(t2, a, 3, NULL, w, NULL), 0);
        if (v == 2) { /* the unchecked path too */
            assert_int_equal(frl_vote_tally_add_valid(t1, a, 1), 0);
            assert_int_equal(frl_vote_tally_add_valid(t2, a, 1), 0);
        }
        /* A duplicate far apart in the large layer: refused, no trace. */
        uint64_t off = L.offset[1];
        uint32_t keep = a[off + 5];
        a[off + 5] = a[off + sizes[1] - 3];
        frl_vote_reject_t r1, r2;
        assert_int_equal(frl_vote_tally_add(t1, a, 3, NULL, w, &r1), FRL_EVOTE_DUPLICATE);
        assert_int_equal(frl_vote_tally_add(t2, a, 3, NULL, w, &r2), FRL_EVOTE_DUPLICATE);
        assert_int_equal(r1.layer, r2.layer);
        assert_int_equal(r1.index, r2.index);
        a[off + 5] = keep;
    }
    assert_int_equal(frl_vote_tally_finalize(t1, g1), 0);
    assert_int_equal(frl_vote_tally_finalize(t2, g2), 0);
    assert_memory_equal(g1, g2, (size_t)L.total_edges * sizeof *g1);
    assert_memory_equal(frl_vote_tally_sums(t1, 0), frl_vote_tally_sums(t2, 0), (size_t)L.total_edges * 8);
    assert_int_equal(frl_vote_tally_set_threads(t2, 1), 0);
    frl_vote_tally_destroy(t1);
    frl_vote_tally_destroy(t2);
    free(a);
    free(g1);
    free(g2);
}

/* No hidden shared state: two tallies filled and finalized at the same
 * time in two threads give what they give one after the other. */
typedef struct thread_job_s {
    const frl_vote_layout_t *L;
    uint32_t seed;
    uint32_t *result;
    int rc;
} thread_job_t;

static void *run_job(void *arg)
{
    thread_job_t *j = arg;
    frl_rng_t rng;
    tu_rng(&rng, j->seed, 0);
    uint32_t *a = malloc((size_t)j->L->total_edges * sizeof *a);
    frl_vote_tally_t *t;
    j->rc = frl_vote_tally_create(j->L, &t);
    for (int rep = 0; rep < 20 && j->rc == 0; rep++) {
        frl_vote_tally_reset(t);
        for (int v = 0; v < 5 && j->rc == 0; v++) {
            tu_random_ranking(j->L, &rng, a);
            j->rc = frl_vote_tally_add(t, a, j->L->n_layers, NULL, 1, NULL);
        }
        if (j->rc == 0)
            j->rc = frl_vote_tally_finalize(t, j->result);
        tu_rng(&rng, j->seed, 0); /* same votes every repetition */
    }
    frl_vote_tally_destroy(t);
    free(a);
    return NULL;
}

static void test_distinct_tallies_are_independent_across_threads(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    small_layout(&L);
    size_t bytes = (size_t)L.total_edges * sizeof(uint32_t);
    thread_job_t par[2], seq[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        par[i] = (thread_job_t){&L, 20u + (uint32_t)i, alloc_ranking(&L), -1};
        seq[i] = (thread_job_t){&L, 20u + (uint32_t)i, alloc_ranking(&L), -1};
        run_job(&seq[i]);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(par[i].rc, 0);
        assert_int_equal(seq[i].rc, 0);
        assert_memory_equal(par[i].result, seq[i].result, bytes);
        free(par[i].result);
        free(seq[i].result);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_client_tally_gives_back_its_ranking),
        cmocka_unit_test(test_identical_clients_give_the_same_ranking),
        cmocka_unit_test(test_result_does_not_depend_on_submission_order),
        cmocka_unit_test(test_ties_are_resolved_by_ascending_edge_index),
        cmocka_unit_test(test_finalize_matches_naive_argsort),
        cmocka_unit_test(test_argsort_handles_64_bit_keys_and_duplicates),
        cmocka_unit_test(test_merge_equals_tally_of_the_union),
        cmocka_unit_test(test_merge_into_itself_doubles_the_tally),
        cmocka_unit_test(test_merge_rejects_a_different_layout),
        cmocka_unit_test(test_weighted_vote_equals_repeated_votes),
        cmocka_unit_test(test_sums_do_not_overflow_at_1000_clients_and_5m_edges),
        cmocka_unit_test(test_add_refuses_a_weight_that_could_overflow),
        cmocka_unit_test(test_reset_empties_the_tally),
        cmocka_unit_test(test_load_accepts_real_sums_and_refuses_impossible_ones),
        cmocka_unit_test(test_sums_stay_exact_across_staging_flushes),
        cmocka_unit_test(test_distinct_tallies_are_independent_across_threads),
        cmocka_unit_test(test_two_threads_give_the_same_tally_as_one),
    };
    return cmocka_run_group_tests_name("aggregation_vote", tests, NULL, NULL);
}
