/* Robustness signals and policies: agreement, policy, trimmed vote, margins. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aggregation/frl_vote.h"
#include "aggregation/frl_vote_robust.h"
#include "common/frl_error.h"
#include "tests/aggregation/vote_test_util.h"

static const uint32_t k_layers[] = {7, 400, 3000};

static void layout3(frl_vote_layout_t *L)
{
    assert_int_equal(frl_vote_layout_init(L, 3, k_layers), 0);
}

static uint32_t *alloc_ranking(const frl_vote_layout_t *L)
{
    uint32_t *a = malloc((size_t)L->total_edges * sizeof *a);
    assert_non_null(a);
    return a;
}

/* ---- agreement ---- */

static void test_agreement_of_identical_ranking_is_plus_one(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout3(&L);
    frl_rng_t rng;
    tu_rng(&rng, 200, 0);
    uint32_t *g = alloc_ranking(&L), *pos = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, g);
    frl_vote_positions(&L, g, pos);
    double rho[3], mn;
    assert_true(frl_vote_agreement(&L, g, pos, rho, &mn) == 1.0);
    for (int l = 0; l < 3; l++)
        assert_true(rho[l] == 1.0);
    assert_true(mn == 1.0);
    free(g);
    free(pos);
}

static void test_agreement_ranks_a_reversed_ranking_as_maximally_anti_correlated(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout3(&L);
    frl_rng_t rng;
    tu_rng(&rng, 201, 0);
    uint32_t *g = alloc_ranking(&L), *pos = alloc_ranking(&L), *rev = alloc_ranking(&L), *other = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, g);
    frl_vote_positions(&L, g, pos);
    for (int l = 0; l < 3; l++)
        for (uint32_t r = 0; r < L.n_edges[l]; r++)
            rev[L.offset[l] + r] = g[L.offset[l] + L.n_edges[l] - 1 - r];
    double rho[3], mn;
    double a_rev = frl_vote_agreement(&L, rev, pos, rho, &mn);
    assert_true(fabs(a_rev + 1.0) < 1e-12);
    for (int l = 0; l < 3; l++)
        assert_true(fabs(rho[l] + 1.0) < 1e-12);
    /* Nothing scores lower than the reversal: random and perturbed
     * rankings all lie strictly above it. */
    for (int i = 0; i < 20; i++) {
        if (i % 2)
            tu_random_ranking(&L, &rng, other);
        else
            tu_perturb(&L, &rng, rev, other, 50, 20);
        assert_true(frl_vote_agreement(&L, other, pos, NULL, NULL) > a_rev);
    }
    free(g);
    free(pos);
    free(rev);
    free(other);
}

static void test_agreement_of_a_random_ranking_is_near_zero(void **state)
{
    (void)state;
    const uint32_t n = 200000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    frl_rng_t rng;
    tu_rng(&rng, 202, 0);
    uint32_t *g = alloc_ranking(&L), *pos = alloc_ranking(&L), *a = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, g);
    tu_random_ranking(&L, &rng, a);
    frl_vote_positions(&L, g, pos);
    double rho = frl_vote_agreement(&L, a, pos, NULL, NULL);
    assert_true(fabs(rho) < 5.0 / sqrt((double)n)); /* 5 standard deviations */
    free(g);
    free(pos);
    free(a);
}

/* Against the textbook formula on positions, computed in doubles. */
static void test_agreement_matches_pearson_on_positions(void **state)
{
    (void)state;
    const uint32_t n = 1000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    frl_rng_t rng;
    tu_rng(&rng, 203, 0);
    uint32_t *g = alloc_ranking(&L), *pos = alloc_ranking(&L), *a = alloc_ranking(&L), *pa = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, g);
    tu_perturb(&L, &rng, g, a, 300, 200);
    frl_vote_positions(&L, g, pos);
    frl_vote_positions(&L, a, pa);
    double mean = (n - 1) / 2.0, sxy = 0, sxx = 0, syy = 0;
    for (uint32_t e = 0; e < n; e++) {
        double x = pa[e] - mean, y = pos[e] - mean;
        sxy += x * y;
        sxx += x * x;
        syy += y * y;
    }
    double want = sxy / sqrt(sxx * syy);
    double got = frl_vote_agreement(&L, a, pos, NULL, NULL);
    assert_true(fabs(got - want) < 1e-9);
    assert_true(got > 0.5 && got < 1.0);
    free(g);
    free(pos);
    free(a);
    free(pa);
}

/* The min over layers exposes an attack on a small layer that the
 * edge-weighted mean hides. */
static void test_agreement_min_layer_exposes_a_small_layer_attack(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout3(&L);
    frl_rng_t rng;
    tu_rng(&rng, 204, 0);
    uint32_t *g = alloc_ranking(&L), *pos = alloc_ranking(&L), *a = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, g);
    frl_vote_positions(&L, g, pos);
    memcpy(a, g, (size_t)L.total_edges * sizeof *a);
    for (uint32_t r = 0; r < 7; r++) /* reverse layer 0 only */
        a[r] = g[6 - r];
    double mn;
    double all = frl_vote_agreement(&L, a, pos, NULL, &mn);
    assert_true(all > 0.99);
    assert_true(fabs(mn + 1.0) < 1e-12);
    free(g);
    free(pos);
    free(a);
}

/* ---- policy ---- */

static void test_policy_is_off_by_default_and_then_observes_nothing(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    assert_int_equal(cfg.mode, FRL_VOTE_POLICY_OFF);
    assert_true(cfg.threshold == FRL_VOTE_POLICY_DEFAULT_THRESHOLD);
    assert_int_equal(cfg.rounds, FRL_VOTE_POLICY_DEFAULT_ROUNDS);
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, 4, &p), 0);
    frl_vote_decision_t d;
    for (uint64_t r = 0; r < 5; r++) {
        assert_int_equal(frl_vote_policy_observe(p, 1, r, -1.0, &d), 0);
        assert_int_equal(d.weight, 1);
        assert_int_equal(d.flagged, 0);
    }
    assert_int_equal(frl_vote_policy_streak(p, 1), 0);
    frl_vote_policy_destroy(p);
}

static void test_policy_drops_after_r_consecutive_low_observations(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DROP;
    cfg.rounds = 3;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, 4, &p), 0);
    frl_vote_decision_t d;
    assert_int_equal(frl_vote_policy_observe(p, 2, 10, -0.9, &d), 0);
    assert_int_equal(d.weight, 1);
    assert_int_equal(d.streak, 1);
    assert_int_equal(frl_vote_policy_observe(p, 2, 14, -0.5, &d), 0); /* rounds it took part in */
    assert_int_equal(d.weight, 1);
    assert_int_equal(frl_vote_policy_observe(p, 2, 15, -0.2, &d), 0);
    assert_int_equal(d.weight, 0);
    assert_int_equal(d.flagged, 1);
    assert_int_equal(d.streak, 3);
    /* Another client is unaffected. */
    assert_int_equal(frl_vote_policy_observe(p, 3, 15, 0.8, &d), 0);
    assert_int_equal(d.weight, 1);
    /* No reference (NaN): history unchanged, still dropped. */
    assert_int_equal(frl_vote_policy_observe(p, 2, 16, NAN, &d), 0);
    assert_int_equal(d.weight, 0);
    assert_int_equal(d.streak, 3);
    frl_vote_policy_destroy(p);
}

static void test_policy_client_recovers_after_one_good_observation(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DROP;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), 0);
    frl_vote_decision_t d;
    assert_int_equal(frl_vote_policy_observe(p, 0, 1, -0.5, &d), 0);
    assert_int_equal(frl_vote_policy_observe(p, 0, 2, -0.5, &d), 0);
    assert_int_equal(d.weight, 0);
    assert_int_equal(frl_vote_policy_observe(p, 0, 3, 0.3, &d), 0);
    assert_int_equal(d.weight, 1);
    assert_int_equal(d.streak, 0);
    /* A single low observation after recovery is not enough. */
    assert_int_equal(frl_vote_policy_observe(p, 0, 4, -0.5, &d), 0);
    assert_int_equal(d.weight, 1);
    /* Exactly at the threshold is not low. */
    assert_int_equal(frl_vote_policy_observe(p, 0, 5, cfg.threshold, &d), 0);
    assert_int_equal(d.streak, 0);
    frl_vote_policy_destroy(p);
}

static void test_policy_retried_round_replaces_its_observation(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DROP;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), 0);
    frl_vote_decision_t d;
    assert_int_equal(frl_vote_policy_observe(p, 1, 7, -0.5, &d), 0);
    assert_int_equal(frl_vote_policy_observe(p, 1, 7, -0.5, &d), 0);
    assert_int_equal(d.streak, 1); /* not 2: same round */
    assert_int_equal(d.weight, 1);
    assert_int_equal(frl_vote_policy_observe(p, 1, 6, -0.5, &d), FRL_EVOTE_ROUND);
    assert_int_equal(frl_vote_policy_observe(p, 5, 7, -0.5, &d), FRL_EVOTE_UNKNOWN_CLIENT);
    frl_vote_policy_destroy(p);
}

static void test_policy_downweights_and_flag_mode_only_reports(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DOWNWEIGHT;
    cfg.rounds = 1;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), 0);
    frl_vote_decision_t d;
    assert_int_equal(frl_vote_policy_observe(p, 0, 1, 0.9, &d), 0);
    assert_int_equal(d.weight, FRL_VOTE_POLICY_DEFAULT_WEIGHT_OK);
    assert_int_equal(frl_vote_policy_observe(p, 1, 1, -0.9, &d), 0);
    assert_int_equal(d.weight, FRL_VOTE_POLICY_DEFAULT_WEIGHT_LOW);
    assert_int_equal(d.flagged, 1);
    frl_vote_policy_destroy(p);

    cfg.mode = FRL_VOTE_POLICY_FLAG;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), 0);
    assert_int_equal(frl_vote_policy_observe(p, 1, 1, -0.9, &d), 0);
    assert_int_equal(d.weight, 1);
    assert_int_equal(d.flagged, 1);
    frl_vote_policy_destroy(p);
}

static void test_policy_create_rejects_bad_configs(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_t *p;
    frl_vote_policy_config_default(&cfg);
    cfg.rounds = 0;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), FRL_EINVAL);
    frl_vote_policy_config_default(&cfg);
    cfg.threshold = NAN;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), FRL_EINVAL);
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DOWNWEIGHT;
    cfg.weight_low = 3;
    cfg.weight_ok = 2;
    assert_int_equal(frl_vote_policy_create(&cfg, 2, &p), FRL_EINVAL);
    frl_vote_policy_config_default(&cfg);
    assert_int_equal(frl_vote_policy_create(&cfg, 0, &p), FRL_EINVAL);
}

/* ---- trimmed vote ---- */

static void test_trimmed_vote_with_t0_equals_the_plain_vote(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout3(&L);
    frl_rng_t rng;
    tu_rng(&rng, 300, 0);
    uint32_t *a = alloc_ranking(&L), *g1 = alloc_ranking(&L), *g2 = alloc_ranking(&L);
    uint64_t *sums = malloc((size_t)L.total_edges * 8);
    frl_vote_tally_t *t;
    frl_vote_trim_t *tr;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    assert_int_equal(frl_vote_trim_create(&L, 5, 0, &tr), 0);
    for (int v = 0; v < 5; v++) {
        tu_random_ranking(&L, &rng, a);
        assert_int_equal(frl_vote_tally_add(t, a, 3, NULL, 1, NULL), 0);
        assert_int_equal(frl_vote_trim_add_valid(tr, a), 0);
    }
    assert_int_equal(frl_vote_trim_add_valid(tr, a), FRL_ETOOBIG);
    assert_int_equal(frl_vote_tally_finalize(t, g1), 0);
    assert_int_equal(frl_vote_trim_finalize(tr, 0, g2, sums), 0);
    assert_memory_equal(g1, g2, (size_t)L.total_edges * sizeof *g1);
    assert_memory_equal(sums, frl_vote_tally_sums(t, 0), (size_t)L.total_edges * 8);
    frl_vote_tally_destroy(t);
    frl_vote_trim_destroy(tr);
    free(a);
    free(g1);
    free(g2);
    free(sums);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

/* Brute force: per edge, sort the m positions, sum the middle m - 2t. Also
 * m > 64 (the qsort path). */
static void test_trimmed_vote_ignores_the_t_highest_and_lowest_positions(void **state)
{
    (void)state;
    const uint32_t sizes[2] = {500, 40};
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 2, sizes), 0);
    frl_rng_t rng;
    tu_rng(&rng, 301, 0);
    const uint32_t ms[2] = {9, 70};
    for (int k = 0; k < 2; k++) {
        uint32_t m = ms[k], t = k == 0 ? 2 : 10;
        uint32_t *votes = malloc((size_t)m * L.total_edges * sizeof *votes);
        uint32_t *pos = alloc_ranking(&L), *g = alloc_ranking(&L), *want = alloc_ranking(&L);
        uint64_t *sums = malloc((size_t)L.total_edges * 8), *ws = malloc((size_t)L.total_edges * 8);
        frl_vote_trim_t *tr;
        assert_int_equal(frl_vote_trim_create(&L, m, 0, &tr), 0);
        for (uint32_t v = 0; v < m; v++) {
            tu_random_ranking(&L, &rng, votes + (size_t)v * L.total_edges);
            assert_int_equal(frl_vote_trim_add_valid(tr, votes + (size_t)v * L.total_edges), 0);
        }
        assert_int_equal(frl_vote_trim_finalize(tr, t, g, sums), 0);
        uint32_t *col = malloc(m * sizeof *col);
        uint32_t **all_pos = malloc(m * sizeof *all_pos);
        for (uint32_t v = 0; v < m; v++) {
            all_pos[v] = alloc_ranking(&L);
            frl_vote_positions(&L, votes + (size_t)v * L.total_edges, all_pos[v]);
        }
        for (uint64_t e = 0; e < L.total_edges; e++) {
            for (uint32_t v = 0; v < m; v++)
                col[v] = all_pos[v][e];
            qsort(col, m, sizeof *col, cmp_u32);
            uint64_t s = 0;
            for (uint32_t v = t; v < m - t; v++)
                s += col[v];
            ws[e] = s;
        }
        assert_memory_equal(sums, ws, (size_t)L.total_edges * 8);
        for (int l = 0; l < 2; l++)
            tu_argsort_naive(ws + L.offset[l], L.n_edges[l], want + L.offset[l]);
        assert_memory_equal(g, want, (size_t)L.total_edges * sizeof *g);
        /* Needs m > 2t. */
        assert_int_equal(frl_vote_trim_finalize(tr, (m + 1) / 2, g, NULL), FRL_ESTATE);
        for (uint32_t v = 0; v < m; v++)
            free(all_pos[v]);
        free(all_pos);
        free(col);
        frl_vote_trim_destroy(tr);
        free(votes);
        free(pos);
        free(g);
        free(want);
        free(sums);
        free(ws);
    }
}

/* One extreme voter cannot move anything once t >= 1: with 4 identical
 * honest votes and 1 reversed, the trimmed (t = 1) vote is the honest
 * ranking. */
static void test_trimmed_vote_removes_a_single_reversing_voter(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout3(&L);
    frl_rng_t rng;
    tu_rng(&rng, 302, 0);
    uint32_t *h = alloc_ranking(&L), *rev = alloc_ranking(&L), *g = alloc_ranking(&L);
    tu_random_ranking(&L, &rng, h);
    for (int l = 0; l < 3; l++)
        for (uint32_t r = 0; r < L.n_edges[l]; r++)
            rev[L.offset[l] + r] = h[L.offset[l] + L.n_edges[l] - 1 - r];
    frl_vote_trim_t *tr;
    assert_int_equal(frl_vote_trim_create(&L, 5, 0, &tr), 0);
    for (int v = 0; v < 4; v++)
        assert_int_equal(frl_vote_trim_add_valid(tr, h), 0);
    assert_int_equal(frl_vote_trim_add_valid(tr, rev), 0);
    assert_int_equal(frl_vote_trim_finalize(tr, 1, g, NULL), 0);
    assert_memory_equal(g, h, (size_t)L.total_edges * sizeof *g);
    frl_vote_trim_destroy(tr);
    free(h);
    free(rev);
    free(g);
}

static void test_trim_memory_is_reported_and_capped(void **state)
{
    (void)state;
    const uint32_t lenet[4] = {288, 18432, 1605632, 1280};
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 4, lenet), 0);
    size_t m10 = frl_vote_trim_memory(&L, 10);
    assert_true(m10 >= (size_t)1625632 * 4 * 10);
    assert_true(m10 <= (size_t)1625632 * 4 * 10 + (size_t)1605632 * 32 + 1000000); /* + the sort's 0.7 MB of buffers */
    frl_vote_trim_t *tr = NULL;
    assert_int_equal(frl_vote_trim_create(&L, 100, (size_t)100 << 20, &tr), FRL_ETOOBIG);
    assert_null(tr);
}

/* ---- margin report ---- */

static void test_margin_counts_the_edges_near_each_cut(void **state)
{
    (void)state;
    const uint32_t n = 2000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    frl_rng_t rng;
    tu_rng(&rng, 400, 0);
    uint32_t *a = alloc_ranking(&L), *g = alloc_ranking(&L);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    for (int v = 0; v < 6; v++) {
        tu_random_ranking(&L, &rng, a);
        assert_int_equal(frl_vote_tally_add(t, a, 1, NULL, 1, NULL), 0);
    }
    assert_int_equal(frl_vote_tally_finalize(t, g), 0);
    const uint64_t *s = frl_vote_tally_sums(t, 0);
    const uint32_t cuts[3] = {500, 1000, 1500};
    const uint64_t deltas[3] = {0, 50, 2 * (n - 1)};
    for (int k = 0; k < 3; k++) {
        frl_vote_margin_t m[3];
        assert_int_equal(frl_vote_margin(s, g, n, cuts, 3, deltas[k], m), 0);
        for (int c = 0; c < 3; c++) {
            uint64_t cs = s[g[cuts[c]]], near = 0, below = 0;
            for (uint32_t r = 0; r < n; r++) {
                uint64_t x = s[g[r]];
                uint64_t dist = x > cs ? x - cs : cs - x;
                if (dist <= deltas[k]) {
                    near++;
                    below += r < cuts[c];
                }
            }
            assert_int_equal(m[c].cut, cuts[c]);
            assert_int_equal(m[c].cut_sum, cs);
            assert_int_equal(m[c].n_near, near);
            assert_int_equal(m[c].n_below, below);
            assert_int_equal(m[c].n_above, near - below);
            assert_true(near >= 1);
        }
    }
    const uint32_t bad_cut = 0;
    frl_vote_margin_t m;
    assert_int_equal(frl_vote_margin(s, g, n, &bad_cut, 1, 5, &m), FRL_EINVAL);
    frl_vote_tally_destroy(t);
    free(a);
    free(g);
}

/* The `abs` rule keeps both tails of the consensus ranking: two cuts. */
static void test_mask_cuts_finds_both_boundaries_of_an_abs_mask(void **state)
{
    (void)state;
    enum { N = 100 };
    uint32_t order[N];
    uint8_t mask[N];
    frl_rng_t rng;
    tu_rng(&rng, 401, 0);
    tu_identity(order, N);
    frl_rng_shuffle_u32(&rng, order, N);
    for (uint32_t r = 0; r < N; r++)
        mask[order[r]] = (r < 25 || r >= 75) ? 1 : 0;
    uint32_t cuts[4];
    assert_int_equal(frl_vote_mask_cuts(order, mask, N, cuts, 4), 2);
    assert_int_equal(cuts[0], 25);
    assert_int_equal(cuts[1], 75);
    for (uint32_t r = 0; r < N; r++)
        mask[order[r]] = r >= 50;
    assert_int_equal(frl_vote_mask_cuts(order, mask, N, cuts, 4), 1);
    assert_int_equal(cuts[0], 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agreement_of_identical_ranking_is_plus_one),
        cmocka_unit_test(test_agreement_ranks_a_reversed_ranking_as_maximally_anti_correlated),
        cmocka_unit_test(test_agreement_of_a_random_ranking_is_near_zero),
        cmocka_unit_test(test_agreement_matches_pearson_on_positions),
        cmocka_unit_test(test_agreement_min_layer_exposes_a_small_layer_attack),
        cmocka_unit_test(test_policy_is_off_by_default_and_then_observes_nothing),
        cmocka_unit_test(test_policy_drops_after_r_consecutive_low_observations),
        cmocka_unit_test(test_policy_client_recovers_after_one_good_observation),
        cmocka_unit_test(test_policy_retried_round_replaces_its_observation),
        cmocka_unit_test(test_policy_downweights_and_flag_mode_only_reports),
        cmocka_unit_test(test_policy_create_rejects_bad_configs),
        cmocka_unit_test(test_trimmed_vote_with_t0_equals_the_plain_vote),
        cmocka_unit_test(test_trimmed_vote_ignores_the_t_highest_and_lowest_positions),
        cmocka_unit_test(test_trimmed_vote_removes_a_single_reversing_voter),
        cmocka_unit_test(test_trim_memory_is_reported_and_capped),
        cmocka_unit_test(test_margin_counts_the_edges_near_each_cut),
        cmocka_unit_test(test_mask_cuts_finds_both_boundaries_of_an_abs_mask),
    };
    return cmocka_run_group_tests_name("aggregation_robust", tests, NULL, NULL);
}
