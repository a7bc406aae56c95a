/* The server's round keeper: eligibility, once per round, agreement per
 * client, the policy against a reversing client, order independence. */
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
#include "aggregation/frl_vote_round.h"
#include "common/frl_error.h"
#include "tests/aggregation/vote_test_util.h"

static const uint32_t k_layers[] = {30, 2000};
enum { N_HONEST = 6, N_CLIENTS = N_HONEST + 1, ATTACKER = N_HONEST };

/* A small simulated round: a reference global ranking, honest clients that
 * each perturb it a little (local training), and one attacker that submits
 * the reverse of the honest consensus (the FRL paper's attack). */
typedef struct sim_s {
    frl_vote_layout_t L;
    uint32_t *ref;              /* previous global ranking */
    uint32_t *votes[N_CLIENTS]; /* per client */
    uint32_t *honest_only;      /* the vote of the honest clients alone */
} sim_t;

static uint32_t *alloc_ranking(const frl_vote_layout_t *L)
{
    uint32_t *a = malloc((size_t)L->total_edges * sizeof *a);
    assert_non_null(a);
    return a;
}

static void sim_init(sim_t *s, uint32_t round)
{
    assert_int_equal(frl_vote_layout_init(&s->L, 2, k_layers), 0);
    frl_rng_t rng;
    tu_rng(&rng, 500, round);
    s->ref = alloc_ranking(&s->L);
    tu_random_ranking(&s->L, &rng, s->ref);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&s->L, &t), 0);
    for (int c = 0; c < N_HONEST; c++) {
        s->votes[c] = alloc_ranking(&s->L);
        tu_perturb(&s->L, &rng, s->ref, s->votes[c], 400, 60);
        assert_int_equal(frl_vote_tally_add(t, s->votes[c], 2, NULL, 1, NULL), 0);
    }
    s->honest_only = alloc_ranking(&s->L);
    assert_int_equal(frl_vote_tally_finalize(t, s->honest_only), 0);
    s->votes[ATTACKER] = alloc_ranking(&s->L);
    for (int l = 0; l < 2; l++)
        for (uint32_t r = 0; r < s->L.n_edges[l]; r++)
            s->votes[ATTACKER][s->L.offset[l] + r] = s->honest_only[s->L.offset[l] + s->L.n_edges[l] - 1 - r];
    frl_vote_tally_destroy(t);
}

static void sim_free(sim_t *s)
{
    free(s->ref);
    free(s->honest_only);
    for (int c = 0; c < N_CLIENTS; c++)
        free(s->votes[c]);
}

static frl_vote_round_t *new_round(const frl_vote_layout_t *L)
{
    frl_vote_round_t *vr;
    assert_int_equal(frl_vote_round_create(L, N_CLIENTS + 3, &vr), 0);
    return vr;
}

static void test_submit_before_a_round_opens_is_a_state_error(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_round_t *vr = new_round(&s.L);
    frl_vote_result_t res;
    assert_int_equal(frl_vote_round_submit(vr, 0, 0, s.votes[0], 2, NULL, &res), FRL_ESTATE);
    assert_int_equal(res.code, FRL_ESTATE);
    frl_vote_round_destroy(vr);
    sim_free(&s);
}

static void test_unknown_and_unselected_clients_are_rejected(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_round_t *vr = new_round(&s.L);
    const uint32_t selected[3] = {0, 2, 4};
    assert_int_equal(frl_vote_round_begin(vr, 5, s.ref, selected, 3), 0);
    assert_int_equal(frl_vote_round_submit(vr, 1, 5, s.votes[1], 2, NULL, NULL), FRL_EVOTE_UNKNOWN_CLIENT);
    assert_int_equal(frl_vote_round_submit(vr, 1000, 5, s.votes[1], 2, NULL, NULL), FRL_EVOTE_UNKNOWN_CLIENT);
    assert_int_equal(frl_vote_round_submit(vr, 2, 5, s.votes[2], 2, NULL, NULL), 0);
    assert_int_equal(frl_vote_tally_votes(frl_vote_round_tally(vr)), 1);
    const uint32_t out_of_range = N_CLIENTS + 3;
    assert_int_equal(frl_vote_round_begin(vr, 6, s.ref, &out_of_range, 1), FRL_EINVAL);
    frl_vote_round_destroy(vr);
    sim_free(&s);
}

static void test_vote_for_another_round_is_rejected(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_begin(vr, 9, s.ref, NULL, 0), 0);
    frl_vote_result_t res;
    assert_int_equal(frl_vote_round_submit(vr, 0, 8, s.votes[0], 2, NULL, &res), FRL_EVOTE_ROUND);
    assert_int_equal(frl_vote_round_submit(vr, 0, 10, s.votes[0], 2, NULL, &res), FRL_EVOTE_ROUND);
    assert_int_equal(frl_vote_tally_votes(frl_vote_round_tally(vr)), 0);
    assert_int_equal(frl_vote_round_submit(vr, 0, 9, s.votes[0], 2, NULL, &res), 0);
    frl_vote_round_destroy(vr);
    sim_free(&s);
}

static void test_a_client_is_counted_at_most_once_per_round(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    assert_int_equal(frl_vote_round_submit(vr, 3, 1, s.votes[3], 2, NULL, NULL), 0);
    size_t bytes = (size_t)s.L.total_edges * 8;
    uint64_t *snap = malloc(bytes);
    memcpy(snap, frl_vote_tally_sums(frl_vote_round_tally(vr), 0), bytes);
    assert_int_equal(frl_vote_round_submit(vr, 3, 1, s.votes[4], 2, NULL, NULL), FRL_EVOTE_REPEAT);
    assert_int_equal(frl_vote_round_submit(vr, 3, 1, s.votes[3], 2, NULL, NULL), FRL_EVOTE_REPEAT);
    assert_memory_equal(frl_vote_tally_sums(frl_vote_round_tally(vr), 0), snap, bytes);
    assert_int_equal(frl_vote_round_client_status(vr, 3), 0); /* the counted vote's status is kept */
    frl_vote_round_stats_t st;
    frl_vote_round_stats(vr, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.rejected, 2);
    /* The next round admits the client again. */
    assert_int_equal(frl_vote_round_begin(vr, 2, s.ref, NULL, 0), 0);
    assert_int_equal(frl_vote_round_client_status(vr, 3), 1);
    assert_int_equal(frl_vote_round_submit(vr, 3, 2, s.votes[3], 2, NULL, NULL), 0);
    free(snap);
    frl_vote_round_destroy(vr);
    sim_free(&s);
}

static void test_malformed_vote_is_rejected_and_may_be_resent(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    uint32_t *bad = alloc_ranking(&s.L);
    memcpy(bad, s.votes[0], (size_t)s.L.total_edges * sizeof *bad);
    bad[40] = bad[41];
    frl_vote_result_t res;
    assert_int_equal(frl_vote_round_submit(vr, 0, 1, bad, 2, NULL, &res), FRL_EVOTE_DUPLICATE);
    assert_int_equal(res.reject.layer, 1);
    assert_int_equal(res.reject.index, 11);
    assert_true(isnan(res.agreement));
    const uint32_t short_lens[2] = {30, 1999};
    assert_int_equal(frl_vote_round_submit(vr, 0, 1, s.votes[0], 2, short_lens, &res), FRL_EVOTE_LENGTH);
    assert_int_equal(frl_vote_round_submit(vr, 0, 1, s.votes[0], 1, NULL, &res), FRL_EVOTE_LAYERS);
    assert_int_equal(frl_vote_round_client_status(vr, 0), FRL_EVOTE_LAYERS);
    assert_int_equal(frl_vote_tally_votes(frl_vote_round_tally(vr)), 0);
    assert_int_equal(frl_vote_round_submit(vr, 0, 1, s.votes[0], 2, s.L.n_edges, &res), 0);
    assert_int_equal(res.weight, 1);
    free(bad);
    frl_vote_round_destroy(vr);
    sim_free(&s);
}

static void test_agreement_is_reported_per_client(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    frl_vote_result_t res;
    for (int c = 0; c < N_CLIENTS; c++) {
        assert_int_equal(frl_vote_round_submit(vr, (uint32_t)c, 1, s.votes[c], 2, NULL, &res), 0);
        assert_true(res.agreement == frl_vote_round_agreement(vr, (uint32_t)c));
        if (c == ATTACKER)
            assert_true(res.agreement < -0.9);
        else
            assert_true(res.agreement > 0.9);
    }
    assert_true(isnan(frl_vote_round_agreement(vr, N_CLIENTS))); /* did not vote */
    /* Without a reference there is no agreement. */
    assert_int_equal(frl_vote_round_begin(vr, 2, NULL, NULL, 0), 0);
    assert_int_equal(frl_vote_round_submit(vr, 0, 2, s.votes[0], 2, NULL, &res), 0);
    assert_true(isnan(res.agreement));
    /* A reference that is not a ranking is refused. */
    uint32_t *bad = alloc_ranking(&s.L);
    memset(bad, 0, (size_t)s.L.total_edges * sizeof *bad);
    assert_int_equal(frl_vote_round_begin(vr, 3, bad, NULL, 0), FRL_EINVAL);
    free(bad);
    frl_vote_round_destroy(vr);
    sim_free(&s);
}

/* The acceptance test: in a small simulated round, the plain vote
 * counts the reversing client (and its result moves away from the honest
 * vote); with the DROP policy the attacker is dropped and the result is
 * exactly the honest clients' vote. */
static void test_policy_drops_a_reversing_client_and_the_plain_vote_does_not(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    uint32_t *g = alloc_ranking(&s.L);
    size_t bytes = (size_t)s.L.total_edges * sizeof *g;

    /* Plain vote (no policy). */
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    frl_vote_result_t res;
    for (int c = 0; c < N_CLIENTS; c++)
        assert_int_equal(frl_vote_round_submit(vr, (uint32_t)c, 1, s.votes[c], 2, NULL, &res), 0);
    assert_int_equal(res.weight, 1); /* the attacker's vote counted */
    assert_int_equal(frl_vote_round_finalize(vr, g), 0);
    assert_true(memcmp(g, s.honest_only, bytes) != 0);
    frl_vote_round_destroy(vr);

    /* Same round with the DROP policy acting on the first low observation. */
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DROP;
    cfg.rounds = 1;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, N_CLIENTS + 3, &p), 0);
    vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_set_policy(vr, p), 0);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    for (int c = 0; c < N_CLIENTS; c++) {
        int rc = frl_vote_round_submit(vr, (uint32_t)c, 1, s.votes[c], 2, NULL, &res);
        if (c == ATTACKER) {
            assert_int_equal(rc, FRL_EVOTE_DROPPED);
            assert_int_equal(res.weight, 0);
            assert_int_equal(res.flagged, 1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(res.flagged, 0);
        }
    }
    assert_int_equal(frl_vote_round_finalize(vr, g), 0);
    assert_memory_equal(g, s.honest_only, bytes);
    frl_vote_round_stats_t st;
    frl_vote_round_stats(vr, &st);
    assert_int_equal(st.accepted, N_HONEST);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.flagged, 1);
    /* Dropped counts as having voted: no second try this round. */
    assert_int_equal(frl_vote_round_submit(vr, ATTACKER, 1, s.votes[0], 2, NULL, &res), FRL_EVOTE_REPEAT);
    frl_vote_round_destroy(vr);
    frl_vote_policy_destroy(p);
    free(g);
    sim_free(&s);
}

/* With the default persistence (2 rounds) the attacker is counted in its
 * first round and dropped from its second on; honest clients never are. */
static void test_default_policy_drops_a_persistent_attacker_from_its_second_round(void **state)
{
    (void)state;
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DROP;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, N_CLIENTS + 3, &p), 0);
    sim_t s0;
    sim_init(&s0, 0);
    frl_vote_round_t *vr = new_round(&s0.L);
    assert_int_equal(frl_vote_round_set_policy(vr, p), 0);
    uint32_t *g = alloc_ranking(&s0.L);
    for (uint32_t round = 0; round < 3; round++) {
        sim_t s;
        sim_init(&s, round);
        assert_int_equal(frl_vote_round_begin(vr, round, s.ref, NULL, 0), 0);
        for (int c = 0; c < N_CLIENTS; c++) {
            int rc = frl_vote_round_submit(vr, (uint32_t)c, round, s.votes[c], 2, NULL, NULL);
            if (c == ATTACKER && round >= 1)
                assert_int_equal(rc, FRL_EVOTE_DROPPED);
            else
                assert_int_equal(rc, 0);
        }
        assert_int_equal(frl_vote_round_finalize(vr, g), 0);
        if (round >= 1)
            assert_memory_equal(g, s.honest_only, (size_t)s.L.total_edges * sizeof *g);
        sim_free(&s);
    }
    assert_int_equal(frl_vote_policy_streak(p, ATTACKER), 3);
    for (int c = 0; c < N_HONEST; c++)
        assert_int_equal(frl_vote_policy_streak(p, (uint32_t)c), 0);
    free(g);
    frl_vote_round_destroy(vr);
    frl_vote_policy_destroy(p);
    sim_free(&s0);
}

/* Submission order changes nothing: same ranking, same per-client
 * outcomes, with the DOWNWEIGHT policy active. */
static void test_round_result_does_not_depend_on_arrival_order(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    size_t bytes = (size_t)s.L.total_edges * sizeof(uint32_t);
    uint32_t *g0 = alloc_ranking(&s.L), *g = alloc_ranking(&s.L);
    frl_rng_t rng;
    tu_rng(&rng, 501, 0);
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DOWNWEIGHT;
    cfg.rounds = 1;
    uint32_t order[N_CLIENTS];
    int codes0[N_CLIENTS];
    uint32_t w0[N_CLIENTS];
    for (int trial = 0; trial < 6; trial++) {
        frl_vote_policy_t *p;
        assert_int_equal(frl_vote_policy_create(&cfg, N_CLIENTS + 3, &p), 0);
        frl_vote_round_t *vr = new_round(&s.L);
        assert_int_equal(frl_vote_round_set_policy(vr, p), 0);
        assert_int_equal(frl_vote_round_begin(vr, 4, s.ref, NULL, 0), 0);
        tu_identity(order, N_CLIENTS);
        if (trial)
            frl_rng_shuffle_u32(&rng, order, N_CLIENTS);
        for (int i = 0; i < N_CLIENTS; i++) {
            uint32_t c = order[i];
            frl_vote_result_t res;
            int rc = frl_vote_round_submit(vr, c, 4, s.votes[c], 2, NULL, &res);
            if (trial == 0) {
                codes0[c] = rc;
                w0[c] = res.weight;
            } else {
                assert_int_equal(rc, codes0[c]);
                assert_int_equal(res.weight, w0[c]);
            }
        }
        assert_int_equal(frl_vote_round_finalize(vr, trial ? g : g0), 0);
        if (trial)
            assert_memory_equal(g0, g, bytes);
        frl_vote_round_destroy(vr);
        frl_vote_policy_destroy(p);
    }
    assert_int_equal(w0[ATTACKER], FRL_VOTE_POLICY_DEFAULT_WEIGHT_LOW);
    assert_int_equal(w0[0], FRL_VOTE_POLICY_DEFAULT_WEIGHT_OK);
    free(g0);
    free(g);
    sim_free(&s);
}

static void test_round_keeps_positions_for_the_trimmed_vote(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    uint32_t *g = alloc_ranking(&s.L);
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_finalize_trimmed(vr, 1, g), FRL_ESTATE);
    assert_int_equal(frl_vote_round_enable_trim(vr, N_CLIENTS, 0), 0);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    for (int c = 0; c < N_CLIENTS; c++)
        assert_int_equal(frl_vote_round_submit(vr, (uint32_t)c, 1, s.votes[c], 2, NULL, NULL), 0);
    assert_int_equal(frl_vote_round_enable_trim(vr, N_CLIENTS, 0), FRL_ESTATE); /* not mid-round */
    assert_int_equal(frl_vote_round_finalize_trimmed(vr, 0, g), 0);
    assert_true(memcmp(g, s.honest_only, (size_t)s.L.total_edges * sizeof *g) != 0);
    assert_int_equal(frl_vote_round_finalize_trimmed(vr, 3, g), 0);
    assert_int_equal(frl_vote_round_finalize_trimmed(vr, 4, g), FRL_ESTATE); /* needs m > 2t */
    assert_true(frl_vote_round_memory(vr) >= (size_t)s.L.total_edges * (8 + 4 + 4 * N_CLIENTS));
    frl_vote_round_destroy(vr);
    free(g);
    sim_free(&s);
}

/* A round without a reference still applies what the policy learned: the
 * client dropped last round stays dropped (its history is unchanged), but
 * a malformed ranking from it is reported as malformed first. */
static void test_policy_history_applies_in_a_round_without_reference(void **state)
{
    (void)state;
    sim_t s;
    sim_init(&s, 0);
    frl_vote_policy_config_t cfg;
    frl_vote_policy_config_default(&cfg);
    cfg.mode = FRL_VOTE_POLICY_DROP;
    cfg.rounds = 1;
    frl_vote_policy_t *p;
    assert_int_equal(frl_vote_policy_create(&cfg, N_CLIENTS + 3, &p), 0);
    frl_vote_round_t *vr = new_round(&s.L);
    assert_int_equal(frl_vote_round_set_policy(vr, p), 0);
    assert_int_equal(frl_vote_round_begin(vr, 1, s.ref, NULL, 0), 0);
    assert_int_equal(frl_vote_round_submit(vr, ATTACKER, 1, s.votes[ATTACKER], 2, NULL, NULL), FRL_EVOTE_DROPPED);
    assert_int_equal(frl_vote_tally_votes(frl_vote_round_tally(vr)), 0);
    assert_int_equal(frl_vote_tally_weight(frl_vote_round_tally(vr)), 0);

    assert_int_equal(frl_vote_round_begin(vr, 2, NULL, NULL, 0), 0);
    const uint32_t bad_lens[2] = {30, 5};
    assert_int_equal(frl_vote_round_submit(vr, ATTACKER, 2, s.votes[ATTACKER], 2, bad_lens, NULL), FRL_EVOTE_LENGTH);
    frl_vote_result_t res;
    assert_int_equal(frl_vote_round_submit(vr, ATTACKER, 2, s.votes[ATTACKER], 2, NULL, &res), FRL_EVOTE_DROPPED);
    assert_true(isnan(res.agreement));
    assert_int_equal(res.flagged, 1);
    assert_int_equal(frl_vote_round_submit(vr, 0, 2, s.votes[0], 2, NULL, &res), 0);
    assert_int_equal(frl_vote_tally_votes(frl_vote_round_tally(vr)), 1);
    frl_vote_round_destroy(vr);
    frl_vote_policy_destroy(p);
    sim_free(&s);
}

/* On a large layer (partitioned path) the round keeper's one-pass
 * agreement equals frl_vote_agreement exactly, and the vote equals a naive
 * (sum, index) sort of the positions. */
static void test_large_layer_agreement_and_vote_match_the_plain_computation(void **state)
{
    (void)state;
    const uint32_t n = 150000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    frl_rng_t rng;
    tu_rng(&rng, 520, 0);
    uint32_t *ref = alloc_ranking(&L), *a = alloc_ranking(&L), *pos = alloc_ranking(&L), *g = alloc_ranking(&L),
             *want = alloc_ranking(&L), *pa = alloc_ranking(&L);
    uint64_t *naive = calloc(n, 8);
    tu_random_ranking(&L, &rng, ref);
    frl_vote_positions(&L, ref, pos);
    frl_vote_round_t *vr;
    assert_int_equal(frl_vote_round_create(&L, 4, &vr), 0);
    assert_int_equal(frl_vote_round_begin(vr, 3, ref, NULL, 0), 0);
    for (uint32_t c = 0; c < 4; c++) {
        if (c == 3)
            tu_random_ranking(&L, &rng, a);
        else
            tu_perturb(&L, &rng, ref, a, 20000, 5000);
        frl_vote_result_t res;
        assert_int_equal(frl_vote_round_submit(vr, c, 3, a, 1, NULL, &res), 0);
        assert_true(res.agreement == frl_vote_agreement(&L, a, pos, NULL, NULL));
        frl_vote_positions(&L, a, pa);
        for (uint32_t e = 0; e < n; e++)
            naive[e] += pa[e];
    }
    assert_int_equal(frl_vote_round_finalize(vr, g), 0);
    tu_argsort_naive(naive, n, want);
    assert_memory_equal(g, want, (size_t)n * sizeof *g);
    frl_vote_round_destroy(vr);
    free(ref);
    free(a);
    free(pos);
    free(g);
    free(want);
    free(pa);
    free(naive);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_before_a_round_opens_is_a_state_error),
        cmocka_unit_test(test_unknown_and_unselected_clients_are_rejected),
        cmocka_unit_test(test_vote_for_another_round_is_rejected),
        cmocka_unit_test(test_a_client_is_counted_at_most_once_per_round),
        cmocka_unit_test(test_malformed_vote_is_rejected_and_may_be_resent),
        cmocka_unit_test(test_agreement_is_reported_per_client),
        cmocka_unit_test(test_policy_drops_a_reversing_client_and_the_plain_vote_does_not),
        cmocka_unit_test(test_default_policy_drops_a_persistent_attacker_from_its_second_round),
        cmocka_unit_test(test_round_result_does_not_depend_on_arrival_order),
        cmocka_unit_test(test_policy_history_applies_in_a_round_without_reference),
        cmocka_unit_test(test_large_layer_agreement_and_vote_match_the_plain_computation),
        cmocka_unit_test(test_round_keeps_positions_for_the_trimmed_vote),
    };
    return cmocka_run_group_tests_name("aggregation_round", tests, NULL, NULL);
}
