/* Validation of submitted rankings: every malformed vote is rejected with
 * the right reason and changes nothing. */
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

static const uint32_t k_layers[] = {10, 1000, 3};

typedef struct fixture_s {
    frl_vote_layout_t L;
    uint32_t *good; /* a valid model ranking */
    uint32_t *bad;  /* scratch for a corrupted copy (room for +5 elements) */
    void *scratch;
    frl_vote_tally_t *t;
    uint64_t *snapshot; /* the tally's sums before a bad vote */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_int_equal(frl_vote_layout_init(&f->L, 3, k_layers), 0);
    size_t n = (size_t)f->L.total_edges;
    f->good = malloc(n * sizeof *f->good);
    f->bad = malloc((n + 5) * sizeof *f->bad);
    f->scratch = malloc(frl_vote_validate_scratch_size(&f->L));
    f->snapshot = malloc(n * 8);
    frl_rng_t rng;
    tu_rng(&rng, 100, 0);
    tu_random_ranking(&f->L, &rng, f->good);
    assert_int_equal(frl_vote_tally_create(&f->L, &f->t), 0);
    /* Two valid votes first, so that "untouched" means non-zero sums kept. */
    assert_int_equal(frl_vote_tally_add(f->t, f->good, 3, NULL, 1, NULL), 0);
    tu_random_ranking(&f->L, &rng, f->bad);
    assert_int_equal(frl_vote_tally_add(f->t, f->bad, 3, NULL, 2, NULL), 0);
    memcpy(f->snapshot, frl_vote_tally_sums(f->t, 0), n * 8);
    memcpy(f->bad, f->good, n * sizeof *f->bad);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    frl_vote_tally_destroy(f->t);
    free(f->good);
    free(f->bad);
    free(f->scratch);
    free(f->snapshot);
    free(f);
    return 0;
}

/* Submits f->bad cut as (n_layers, lens) to the tally and checks the code,
 * the reject details, and that the tally did not change. */
static void expect_rejected(fixture_t *f, int n_layers, const uint32_t *lens, int code, int layer, int64_t index, uint64_t value)
{
    frl_vote_reject_t rej;
    assert_int_equal(frl_vote_validate(&f->L, f->bad, n_layers, lens, f->scratch, &rej), code);
    assert_int_equal(rej.code, code);
    assert_int_equal(rej.layer, layer);
    assert_int_equal(rej.index, index);
    assert_int_equal(rej.value, value);
    assert_int_equal(frl_vote_tally_add(f->t, f->bad, n_layers, lens, 1, &rej), code);
    assert_int_equal(frl_vote_tally_votes(f->t), 2);
    assert_int_equal(frl_vote_tally_weight(f->t), 3);
    assert_memory_equal(frl_vote_tally_sums(f->t, 0), f->snapshot, (size_t)f->L.total_edges * 8);
}

static void test_valid_ranking_is_accepted(void **state)
{
    fixture_t *f = *state;
    frl_vote_reject_t rej;
    assert_int_equal(frl_vote_validate(&f->L, f->good, 3, f->L.n_edges, f->scratch, &rej), 0);
    assert_int_equal(rej.code, 0);
    assert_int_equal(frl_vote_validate(&f->L, f->good, 3, NULL, f->scratch, NULL), 0);
}

static void test_wrong_layer_count_is_rejected(void **state)
{
    fixture_t *f = *state;
    const uint32_t lens[4] = {10, 1000, 3, 1};
    expect_rejected(f, 2, lens, FRL_EVOTE_LAYERS, -1, -1, 2);
    expect_rejected(f, 4, lens, FRL_EVOTE_LAYERS, -1, -1, 4);
    expect_rejected(f, 0, lens, FRL_EVOTE_LAYERS, -1, -1, 0);
}

static void test_short_layer_is_rejected_with_length(void **state)
{
    fixture_t *f = *state;
    const uint32_t lens[3] = {10, 999, 3};
    expect_rejected(f, 3, lens, FRL_EVOTE_LENGTH, 1, -1, 999);
}

static void test_long_layer_is_rejected_with_length(void **state)
{
    fixture_t *f = *state;
    const uint32_t lens[3] = {10, 1000, 4};
    expect_rejected(f, 3, lens, FRL_EVOTE_LENGTH, 2, -1, 4);
}

static void test_duplicated_edge_is_rejected_at_its_second_position(void **state)
{
    fixture_t *f = *state;
    /* Layer 1 starts at offset 10; copy its element 5 over element 700. */
    uint32_t *a = f->bad + f->L.offset[1];
    a[700] = a[5];
    expect_rejected(f, 3, f->L.n_edges, FRL_EVOTE_DUPLICATE, 1, 700, a[5]);
}

static void test_out_of_range_edge_is_rejected(void **state)
{
    fixture_t *f = *state;
    uint32_t *a = f->bad + f->L.offset[2];
    a[1] = 3; /* layer 2 has 3 edges: valid values 0..2 */
    expect_rejected(f, 3, f->L.n_edges, FRL_EVOTE_RANGE, 2, 1, 3);
    memcpy(f->bad, f->good, (size_t)f->L.total_edges * sizeof *f->bad);
    f->bad[f->L.offset[1] + 999] = UINT32_MAX;
    expect_rejected(f, 3, f->L.n_edges, FRL_EVOTE_RANGE, 1, 999, UINT32_MAX);
}

/* A layer of the right length that is all zeros: caught as a duplicate at
 * position 1. */
static void test_constant_layer_is_rejected_as_duplicate(void **state)
{
    fixture_t *f = *state;
    memset(f->bad, 0, 10 * sizeof *f->bad);
    expect_rejected(f, 3, f->L.n_edges, FRL_EVOTE_DUPLICATE, 0, 1, 0);
}

/* The add checks while it adds; a duplicate at the very last position of
 * the last layer means every other element was already added: all of it
 * must be undone. */
static void test_late_rejection_leaves_the_tally_bit_identical(void **state)
{
    fixture_t *f = *state;
    uint32_t *a = f->bad + f->L.offset[2];
    a[2] = a[0];
    expect_rejected(f, 3, f->L.n_edges, FRL_EVOTE_DUPLICATE, 2, 2, a[0]);
}

/* Layers of 65,536 edges or more take the partitioned add path; its
 * rejections must be as exact as the plain path's: same code and details
 * as frl_vote_validate, tally bit for bit unchanged. Covers a duplicate
 * whose two copies fall in one bucket (caught while adding: undo), one
 * whose copies fall in different buckets (caught while partitioning), and
 * an out-of-range last element. */
static void test_large_layer_rejections_are_exact_and_leave_no_trace(void **state)
{
    (void)state;
    const uint32_t sizes[2] = {300, 100000};
    frl_vote_layout_t L;
    assert_int_equal(frl_vote_layout_init(&L, 2, sizes), 0);
    size_t total = (size_t)L.total_edges;
    uint32_t *good = malloc(total * sizeof *good), *bad = malloc(total * sizeof *bad);
    uint64_t *snap = malloc(total * 8);
    void *scratch = malloc(frl_vote_validate_scratch_size(&L));
    frl_rng_t rng;
    tu_rng(&rng, 120, 0);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&L, &t), 0);
    for (int v = 0; v < 3; v++) {
        tu_random_ranking(&L, &rng, good);
        assert_int_equal(frl_vote_tally_add(t, good, 2, NULL, 1, NULL), 0);
    }
    memcpy(snap, frl_vote_tally_sums(t, 0), total * 8);
    uint32_t *big = bad + L.offset[1];
    const uint32_t *gb = good + L.offset[1];
    /* Buckets of the 100,000-edge layer hold 4,096 edges (e >> 12). */
    uint32_t same_j = 0, diff_j = 0;
    for (uint32_t j = 50000; j < 100000 && (!same_j || !diff_j); j++) {
        if ((gb[j] >> 12) == (gb[7] >> 12) && !same_j)
            same_j = j;
        if ((gb[j] >> 12) != (gb[7] >> 12) && !diff_j)
            diff_j = j;
    }
    assert_true(same_j && diff_j);
    for (int c = 0; c < 3; c++) {
        memcpy(bad, good, total * sizeof *bad);
        if (c == 0)
            big[same_j] = big[7];
        else if (c == 1)
            big[diff_j] = big[7];
        else
            big[99999] = 100000;
        frl_vote_reject_t want, got;
        int code = frl_vote_validate(&L, bad, 2, NULL, scratch, &want);
        assert_int_equal(code, c < 2 ? FRL_EVOTE_DUPLICATE : FRL_EVOTE_RANGE);
        assert_int_equal(want.layer, 1);
        assert_int_equal(frl_vote_tally_add(t, bad, 2, NULL, 1, &got), code);
        assert_int_equal(got.code, want.code);
        assert_int_equal(got.layer, want.layer);
        assert_int_equal(got.index, want.index);
        assert_int_equal(got.value, want.value);
        assert_int_equal(frl_vote_tally_votes(t), 3);
        assert_memory_equal(frl_vote_tally_sums(t, 0), snap, total * 8);
    }
    /* And the path still adds correctly afterwards. */
    assert_int_equal(frl_vote_tally_add(t, good, 2, NULL, 1, NULL), 0);
    frl_vote_tally_destroy(t);
    free(good);
    free(bad);
    free(snap);
    free(scratch);
}

static void test_layout_init_rejects_bad_shapes(void **state)
{
    (void)state;
    frl_vote_layout_t L;
    const uint32_t zero[2] = {5, 0};
    uint32_t many[FRL_VOTE_MAX_LAYERS + 1];
    for (int i = 0; i <= FRL_VOTE_MAX_LAYERS; i++)
        many[i] = 1;
    assert_int_equal(frl_vote_layout_init(&L, 2, zero), FRL_EINVAL);
    assert_int_equal(frl_vote_layout_init(&L, 0, zero), FRL_EINVAL);
    assert_int_equal(frl_vote_layout_init(&L, FRL_VOTE_MAX_LAYERS + 1, many), FRL_EINVAL);
    assert_int_equal(frl_vote_layout_init(&L, FRL_VOTE_MAX_LAYERS, many), 0);
    assert_int_equal(L.total_edges, FRL_VOTE_MAX_LAYERS);
}

static void test_positions_invert_the_ranking(void **state)
{
    fixture_t *f = *state;
    uint32_t *pos = malloc((size_t)f->L.total_edges * sizeof *pos);
    frl_vote_positions(&f->L, f->good, pos);
    for (int l = 0; l < f->L.n_layers; l++)
        for (uint32_t r = 0; r < f->L.n_edges[l]; r++)
            assert_int_equal(pos[f->L.offset[l] + f->good[f->L.offset[l] + r]], r);
    free(pos);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_ranking_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_layer_count_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_layer_is_rejected_with_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_layer_is_rejected_with_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicated_edge_is_rejected_at_its_second_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range_edge_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constant_layer_is_rejected_as_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_rejection_leaves_the_tally_bit_identical, setup, teardown),
        cmocka_unit_test(test_large_layer_rejections_are_exact_and_leave_no_trace),
        cmocka_unit_test(test_layout_init_rejects_bad_shapes),
        cmocka_unit_test_setup_teardown(test_positions_invert_the_ranking, setup, teardown),
    };
    return cmocka_run_group_tests_name("aggregation_validate", tests, NULL, NULL);
}
