/* The attacks of attack/frl_attack.h on plain arrays: valid permutations,
 * and each does what it says. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aggregation/frl_vote.h"
#include "attack/frl_attack.h"
#include "common/frl_error.h"
#include "common/frl_rng.h"

static const uint32_t k_layers[] = {9, 1000, 4000};
enum { N_LAYERS = 3 };

static void layout(frl_vote_layout_t *L)
{
    assert_int_equal(frl_vote_layout_init(L, N_LAYERS, k_layers), 0);
}

static void test_rng(frl_rng_t *rng, uint32_t a)
{
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(7, seed);
    frl_rng_init(rng, seed, FRL_STREAM_TEST, a, 0);
}

static void random_ranking(const frl_vote_layout_t *L, frl_rng_t *rng, uint32_t *a)
{
    for (int l = 0; l < L->n_layers; l++) {
        for (uint32_t i = 0; i < L->n_edges[l]; i++)
            a[L->offset[l] + i] = i;
        frl_rng_shuffle_u32(rng, a + L->offset[l], L->n_edges[l]);
    }
}

static void assert_valid(const frl_vote_layout_t *L, const uint32_t *ranking)
{
    void *scratch = malloc(frl_vote_validate_scratch_size(L));
    assert_non_null(scratch);
    frl_vote_reject_t rej;
    assert_int_equal(frl_vote_validate(L, ranking, L->n_layers, NULL, scratch, &rej), 0);
    free(scratch);
}

static void test_parse_and_name_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < FRL_ATTACK_COUNT; k++) {
        frl_attack_kind out;
        assert_int_equal(frl_attack_parse(frl_attack_name((frl_attack_kind)k), &out), 0);
        assert_int_equal((int)out, k);
    }
    frl_attack_kind out = FRL_ATTACK_RANDOM;
    assert_int_equal(frl_attack_parse("Reverse", &out), FRL_EINVAL);
    assert_int_equal(frl_attack_parse("", &out), FRL_EINVAL);
    assert_int_equal((int)out, FRL_ATTACK_RANDOM);
    assert_string_equal(frl_attack_name((frl_attack_kind)99), "unknown");
    assert_int_equal(frl_attack_needs(FRL_ATTACK_NONE), 0);
    assert_true(frl_attack_needs(FRL_ATTACK_REVERSE) & FRL_ATTACK_NEEDS_CONSENSUS);
    assert_true(frl_attack_needs(FRL_ATTACK_LABELFLIP) & FRL_ATTACK_NEEDS_OWN_TRAINING);
}

static void test_n_malicious_rounds_like_the_reference(void **state)
{
    (void)state;
    assert_int_equal(frl_attack_n_malicious(0.2, 100), 20);
    assert_int_equal(frl_attack_n_malicious(0.1, 100), 10);
    assert_int_equal(frl_attack_n_malicious(0.3, 100), 30);
    assert_int_equal(frl_attack_n_malicious(0.0, 100), 0);
    assert_int_equal(frl_attack_n_malicious(0.25, 10), 3);
}

/* The reverse of the colluders' summed positions, exactly: descending sums,
 * equal sums by ascending edge index (brute force check). */
static void test_reverse_is_descending_consensus_with_ties_by_index(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout(&L);
    const size_t E = L.total_edges;
    uint32_t *r = malloc(E * 4), *out = malloc(E * 4);
    void *scratch = malloc(frl_attack_scratch_size(&L));
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    frl_rng_t rng;
    test_rng(&rng, 1);
    for (int c = 0; c < 3; c++) {
        random_ranking(&L, &rng, r);
        assert_int_equal(frl_vote_tally_add(t, r, N_LAYERS, NULL, 1, NULL), 0);
    }
    const uint64_t *sums = frl_vote_tally_sums(t, 0);
    assert_int_equal(frl_attack_reverse(&L, sums, out, scratch), 0);
    assert_valid(&L, out);
    int ties = 0;
    for (int l = 0; l < N_LAYERS; l++) {
        const uint64_t *s = sums + L.offset[l];
        const uint32_t *o = out + L.offset[l];
        for (uint32_t i = 1; i < L.n_edges[l]; i++) {
            assert_true(s[o[i - 1]] >= s[o[i]]);
            if (s[o[i - 1]] == s[o[i]]) {
                assert_true(o[i - 1] < o[i]);
                ties++;
            }
        }
    }
    assert_true(ties > 0); /* the tie rule was exercised */
    frl_vote_tally_destroy(t);
    free(r);
    free(out);
    free(scratch);
}

/* With one colluder, the attack is that colluder's ranking reversed. */
static void test_reverse_of_one_colluder_is_its_ranking_reversed(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout(&L);
    const size_t E = L.total_edges;
    uint32_t *r = malloc(E * 4), *out = malloc(E * 4);
    void *scratch = malloc(frl_attack_scratch_size(&L));
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    frl_rng_t rng;
    test_rng(&rng, 2);
    random_ranking(&L, &rng, r);
    assert_int_equal(frl_vote_tally_add(t, r, N_LAYERS, NULL, 1, NULL), 0);
    assert_int_equal(frl_attack_reverse(&L, frl_vote_tally_sums(t, 0), out, scratch), 0);
    for (int l = 0; l < N_LAYERS; l++)
        for (uint32_t i = 0; i < L.n_edges[l]; i++)
            assert_int_equal(out[L.offset[l] + i], r[L.offset[l] + L.n_edges[l] - 1 - i]);
    frl_vote_tally_destroy(t);
    free(r);
    free(out);
    free(scratch);
}

static void test_random_gives_valid_permutations_from_its_stream(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout(&L);
    const size_t E = L.total_edges;
    uint32_t *a = malloc(E * 4), *b = malloc(E * 4), *c = malloc(E * 4);
    frl_rng_t rng;
    test_rng(&rng, 3);
    assert_int_equal(frl_attack_random(&L, &rng, a), 0);
    test_rng(&rng, 3);
    assert_int_equal(frl_attack_random(&L, &rng, b), 0);
    test_rng(&rng, 4);
    assert_int_equal(frl_attack_random(&L, &rng, c), 0);
    assert_valid(&L, a);
    assert_valid(&L, c);
    assert_memory_equal(a, b, E * 4);
    assert_true(memcmp(a, c, E * 4) != 0);
    /* Not the identity either (a 4000-edge layer). */
    uint32_t fixed = 0;
    for (uint32_t i = 0; i < k_layers[2]; i++)
        fixed += a[L.offset[2] + i] == i;
    assert_true(fixed < 20);
    free(a);
    free(b);
    free(c);
}

/* Mask along positions as the abs rule gives it with symmetric initial
 * scores: both tails kept (positions < n/4 and >= n - n/4), the middle
 * dropped. */
static void abs_like_mask(const frl_vote_layout_t *L, const uint32_t *consensus, uint8_t *mask)
{
    for (int l = 0; l < L->n_layers; l++) {
        uint32_t n = L->n_edges[l], q = n / 4;
        for (uint32_t r = 0; r < n; r++)
            mask[L->offset[l] + consensus[L->offset[l] + r]] = (r < q || r >= n - q) ? 1 : 0;
    }
}

/* Boundary: the position pattern of the mask is fixed, so an edge's
 * membership under the attack ranking is pattern[its new position]. The
 * edges of the bands flip, every other edge keeps its membership. */
static void test_boundary_flips_exactly_the_band_edges(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout(&L);
    const size_t E = L.total_edges;
    uint32_t *cons = malloc(E * 4), *out = malloc(E * 4), *pos = malloc(E * 4);
    uint8_t *mask = malloc(E);
    void *scratch = malloc(frl_attack_scratch_size(&L));
    frl_rng_t rng;
    test_rng(&rng, 5);
    random_ranking(&L, &rng, cons);
    abs_like_mask(&L, cons, mask);
    const double band = 0.05;
    assert_int_equal(frl_attack_boundary(&L, cons, mask, band, out, scratch), 0);
    assert_valid(&L, out);
    frl_vote_positions(&L, out, pos);
    for (int l = 1; l < N_LAYERS; l++) { /* layers large enough for whole bands */
        uint32_t n = L.n_edges[l], q = n / 4, b = (uint32_t)ceil(band * n);
        uint32_t flipped = 0;
        for (uint32_t r = 0; r < n; r++) {
            uint32_t e = cons[L.offset[l] + r];
            uint32_t p = pos[L.offset[l] + e];
            int kept_after = p < q || p >= n - q;
            int in_band = (r + b >= q && r < q + b) || (r + b >= n - q && r < n - q + b);
            if (in_band) {
                assert_int_not_equal(kept_after, mask[L.offset[l] + e]);
                flipped++;
            } else {
                assert_int_equal(kept_after, mask[L.offset[l] + e]);
            }
        }
        assert_int_equal(flipped, 4 * b);
    }
    free(cons);
    free(out);
    free(pos);
    free(mask);
    free(scratch);
}

/* Boundary moves kept band edges to the middle of the dropped run and
 * dropped band edges to the ends, and leaves the rest in consensus order:
 * the vote stays strongly correlated with the consensus. */
static void test_boundary_keeps_the_rest_of_the_consensus(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    layout(&L);
    const size_t E = L.total_edges;
    uint32_t *cons = malloc(E * 4), *out = malloc(E * 4), *pos = malloc(E * 4);
    uint8_t *mask = malloc(E);
    void *scratch = malloc(frl_attack_scratch_size(&L));
    frl_rng_t rng;
    test_rng(&rng, 6);
    random_ranking(&L, &rng, cons);
    abs_like_mask(&L, cons, mask);
    assert_int_equal(frl_attack_boundary(&L, cons, mask, 0.05, out, scratch), 0);
    frl_vote_positions(&L, out, pos);
    const int l = 2;
    uint32_t n = L.n_edges[l], q = n / 4;
    /* The edge just inside the lower cut lands near the middle; the one
     * just outside it lands near position 0. */
    uint32_t inside = cons[L.offset[l] + q - 1], outside = cons[L.offset[l] + q];
    assert_true(labs((long)pos[L.offset[l] + inside] - (long)(n / 2)) < (long)(n / 10));
    assert_true(pos[L.offset[l] + outside] < n / 10);
    /* Unmoved edges keep their relative order. */
    uint32_t prev = 0;
    int have = 0;
    for (uint32_t r = n / 8; r < q - n / 20 - 1; r++) {
        uint32_t p = pos[L.offset[l] + cons[L.offset[l] + r]];
        if (have)
            assert_true(p > prev);
        prev = p;
        have = 1;
    }
    free(cons);
    free(out);
    free(pos);
    free(mask);
    free(scratch);
}

static void test_boundary_with_one_cut_targets_the_ends(void **state)
{
    (void)state;
    const uint32_t n = 1000;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    uint32_t cons[1000], out[1000], pos[1000];
    uint8_t mask[1000];
    for (uint32_t r = 0; r < n; r++) {
        cons[r] = (r * 7) % n;      /* a permutation: 7 and 1000 are coprime */
        mask[cons[r]] = r >= n / 2; /* signed rule: the top half is kept */
    }
    void *scratch = malloc(frl_attack_scratch_size(&L));
    assert_int_equal(frl_attack_boundary(&L, cons, mask, 0.01, out, scratch), 0);
    assert_valid(&L, out);
    frl_vote_positions(&L, out, pos);
    /* kept just above the cut -> bottom end; dropped just below -> top end */
    assert_true(pos[cons[n / 2]] < 10);
    assert_true(pos[cons[n / 2 - 1]] >= n - 10);
    free(scratch);
}

static void test_boundary_rejects_bad_band(void **state)
{
    (void)state;
    const uint32_t n = 10;
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 1, &n), 0);
    uint32_t cons[10], out[10];
    uint8_t mask[10] = {0};
    for (uint32_t i = 0; i < n; i++)
        cons[i] = i;
    void *scratch = malloc(frl_attack_scratch_size(&L));
    assert_int_equal(frl_attack_boundary(&L, cons, mask, 0.0, out, scratch), FRL_EINVAL);
    assert_int_equal(frl_attack_boundary(&L, cons, mask, 0.6, out, scratch), FRL_EINVAL);
    cons[3] = 10; /* out of range */
    assert_int_equal(frl_attack_boundary(&L, cons, mask, 0.1, out, scratch), FRL_EINVAL);
    /* no cut at all: the consensus is copied */
    cons[3] = 3;
    assert_int_equal(frl_attack_boundary(&L, cons, mask, 0.1, out, scratch), 0);
    assert_memory_equal(out, cons, sizeof cons);
    free(scratch);
}

static void test_flip_labels_maps_y_to_last_minus_y(void **state)
{
    (void)state;
    uint8_t y[] = {0, 1, 9, 4, 5, 200};
    uint8_t o[6];
    frl_attack_flip_labels(y, 6, 10, o);
    uint8_t want[] = {9, 8, 0, 5, 4, 200};
    assert_memory_equal(o, want, 6);
    frl_attack_flip_labels(o, 6, 10, o); /* in place, an involution */
    assert_memory_equal(o, y, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_name_round_trip),
        cmocka_unit_test(test_n_malicious_rounds_like_the_reference),
        cmocka_unit_test(test_reverse_is_descending_consensus_with_ties_by_index),
        cmocka_unit_test(test_reverse_of_one_colluder_is_its_ranking_reversed),
        cmocka_unit_test(test_random_gives_valid_permutations_from_its_stream),
        cmocka_unit_test(test_boundary_flips_exactly_the_band_edges),
        cmocka_unit_test(test_boundary_keeps_the_rest_of_the_consensus),
        cmocka_unit_test(test_boundary_with_one_cut_targets_the_ends),
        cmocka_unit_test(test_boundary_rejects_bad_band),
        cmocka_unit_test(test_flip_labels_maps_y_to_last_minus_y),
    };
    return cmocka_run_group_tests_name("attack", tests, NULL, NULL);
}
