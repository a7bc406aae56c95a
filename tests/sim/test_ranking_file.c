/* Ranking files (sim/frl_sim_ranking_file.h), starting a simulation from a
 * given global ranking (frl_sim_set_global_ranking), and continuing a run
 * from its saved ranking (first_round). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frl_error.h"
#include "sim/frl_sim.h"
#include "sim/frl_sim_ranking_file.h"
#include "tests/sim/sim_test_data.h"

/* Two layers of 3 and 2 edges. */
static void tiny(frl_vote_layout_t *lay, uint8_t hash[32], uint8_t seed[FRL_SEED_BYTES])
{
    const uint32_t n[] = {3, 2};
    assert_int_equal(frl_vote_layout_init(lay, 2, n), 0);
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)(0xA0 + i);
    frl_seed_from_u64(7, seed);
}

static const uint32_t TINY_RANKING[] = {2, 0, 1, 1, 0};

static uint8_t *tiny_file(size_t *len)
{
    frl_vote_layout_t lay;
    uint8_t hash[32], seed[FRL_SEED_BYTES], *buf = NULL;
    tiny(&lay, hash, seed);
    assert_int_equal(frl_sim_ranking_encode(hash, seed, &lay, TINY_RANKING, &buf, len), 0);
    return buf;
}

static void test_encode_writes_the_documented_bytes(void **state)
{
    (void)state;
    frl_vote_layout_t lay;
    uint8_t hash[32], seed[FRL_SEED_BYTES];
    tiny(&lay, hash, seed);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(frl_sim_ranking_encode(hash, seed, &lay, TINY_RANKING, &buf, &len), 0);
    assert_int_equal(len, 8 + 32 + 32 + 4 + 2 * 4 + 5 * 4);
    assert_int_equal(frl_sim_ranking_file_size(&lay), len);
    assert_memory_equal(buf, "FRLRANK1", 8);
    assert_memory_equal(buf + 8, hash, 32);
    assert_memory_equal(buf + 40, seed, 32);
    /* tools/ref_aligned.py reads the layer count at byte 72 and the layer
     * sizes from byte 76: little-endian u32 everywhere. */
    const uint8_t tail[] = {2, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(buf + 72, tail, sizeof tail);
    free(buf);
}

static void test_decode_returns_what_encode_wrote(void **state)
{
    (void)state;
    frl_vote_layout_t lay;
    uint8_t hash[32], seed[FRL_SEED_BYTES];
    tiny(&lay, hash, seed);
    size_t len;
    uint8_t *buf = tiny_file(&len);
    uint32_t got[5] = {0};
    assert_int_equal(frl_sim_ranking_decode(buf, len, hash, seed, &lay, got, NULL, 0), 0);
    assert_memory_equal(got, TINY_RANKING, sizeof got);
    free(buf);
}

/* Decodes buf (possibly edited) and expects rc with `want` in the message. */
static void expect_decode_error(const uint8_t *buf, size_t len, int rc, const char *want)
{
    frl_vote_layout_t lay;
    uint8_t hash[32], seed[FRL_SEED_BYTES];
    tiny(&lay, hash, seed);
    uint32_t got[5];
    char err[200] = "";
    assert_int_equal(frl_sim_ranking_decode(buf, len, hash, seed, &lay, got, err, sizeof err), rc);
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
}

static void test_decode_rejects_every_truncation(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = tiny_file(&len);
    expect_decode_error(buf, 0, FRL_EFORMAT, "not a ranking file");
    expect_decode_error(buf, 7, FRL_EFORMAT, "not a ranking file");
    for (size_t n = 8; n < len; n++)
        expect_decode_error(buf, n, FRL_ETRUNC, "truncated");
    free(buf);
}

static void test_decode_rejects_bytes_after_the_ranking(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = tiny_file(&len);
    uint8_t *longer = calloc(1, len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    expect_decode_error(longer, len + 1, FRL_ETOOBIG, "1 bytes after the ranking");
    free(longer);
    free(buf);
}

static void test_decode_rejects_another_model_seed_or_shape(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = tiny_file(&len);
    buf[8 + 5] ^= 1;
    expect_decode_error(buf, len, FRL_EMISMATCH, "another model");
    buf[8 + 5] ^= 1;
    buf[40 + 31] ^= 1;
    expect_decode_error(buf, len, FRL_EMISMATCH, "another seed");
    buf[40 + 31] ^= 1;
    buf[72] = 3;
    expect_decode_error(buf, len, FRL_EMISMATCH, "3 layers, the model has 2");
    buf[72] = 2;
    buf[80] = 4; /* layer 1: 4 edges */
    expect_decode_error(buf, len, FRL_EMISMATCH, "layer 1 has 4 edges");
    free(buf);
}

static void test_decode_rejects_a_ranking_that_is_not_a_permutation(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = tiny_file(&len);
    size_t data = 84;
    buf[data + 4] = 2; /* layer 0 becomes 2, 2, 1 */
    expect_decode_error(buf, len, FRL_EVOTE_DUPLICATE, "layer 0, position 1");
    buf[data + 4] = 0;
    buf[data + 16] = 2; /* layer 1 (2 edges) holds edge 2 */
    expect_decode_error(buf, len, FRL_EVOTE_RANGE, "layer 1, position 1");
    free(buf);
}

static void small_config(frl_sim_config_t *c)
{
    frl_sim_config_default(c);
    snprintf(c->model, sizeof c->model, "mlp");
    c->clients = 8;
    c->per_round = 4;
    c->rounds = 2;
    c->eval_n = 200;
}

/* A simulation given another run's ranking evaluates to that run's
 * accuracy, and clients that do not train (0 epochs) hand its model back:
 * the round starts from the loaded ranking. */
static void test_sim_starts_from_a_loaded_ranking(void **state)
{
    const data_t *d = *state;
    frl_sim_config_t c;
    small_config(&c);
    frl_sim_t *a = NULL, *b = NULL;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &a), 0);
    frl_sim_round_t rec;
    for (int r = 0; r < 2; r++)
        assert_int_equal(frl_sim_round(a, &rec), 0);
    double acc_a, loss_a, acc_b, loss_b;
    assert_int_equal(frl_sim_evaluate(a, 0, &acc_a, &loss_a), 0);
    size_t E = frl_sim_spec(a)->total_edges;

    c.train.epochs = 0;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &b), 0);
    assert_int_equal(frl_sim_evaluate(b, 0, &acc_b, &loss_b), 0);
    assert_true(loss_b != loss_a); /* the test can tell the two models apart */
    assert_memory_not_equal(frl_sim_global_ranking(b), frl_sim_global_ranking(a), E * sizeof(uint32_t));
    assert_int_equal(frl_sim_set_global_ranking(b, frl_sim_global_ranking(a), NULL), 0);
    assert_memory_equal(frl_sim_global_ranking(b), frl_sim_global_ranking(a), E * sizeof(uint32_t));
    assert_int_equal(frl_sim_evaluate(b, 0, &acc_b, &loss_b), 0);
    assert_true(acc_b == acc_a); /* same model, same images: bit-identical */
    assert_true(loss_b == loss_a);
    assert_int_equal(frl_sim_round(b, &rec), 0);
    assert_true(rec.mask_churn == 0.0);
    /* Edges with equal initial scores may swap places in the vote, so the
     * ranking can differ among ties; the model cannot. */
    assert_int_equal(frl_sim_evaluate(b, 0, &acc_b, &loss_b), 0);
    assert_true(acc_b == acc_a);
    assert_true(loss_b == loss_a);
    frl_sim_destroy(a);
    frl_sim_destroy(b);
}

/* Round r's record and ranking of a run of `rounds` rounds from
 * first_round, starting from `start` (NULL: the initial ranking). */
static void play(const data_t *d, frl_sim_config_t *c, int first_round, int rounds, const uint32_t *start, uint32_t **ranking,
                 double *last_acc)
{
    c->first_round = first_round;
    c->rounds = rounds;
    frl_sim_t *sim = NULL;
    assert_int_equal(frl_sim_create(c, &d->train, &d->test, &sim), 0);
    if (start)
        assert_int_equal(frl_sim_set_global_ranking(sim, start, NULL), 0);
    frl_sim_round_t rec;
    for (int r = first_round; r < rounds; r++) {
        assert_int_equal(frl_sim_round(sim, &rec), 0);
        assert_int_equal(rec.round, r);
    }
    assert_int_equal(frl_sim_round(sim, &rec), FRL_ESTATE);
    *last_acc = rec.accuracy;
    size_t E = frl_sim_spec(sim)->total_edges;
    *ranking = malloc(E * sizeof(uint32_t));
    assert_non_null(*ranking);
    memcpy(*ranking, frl_sim_global_ranking(sim), E * sizeof(uint32_t));
    frl_sim_destroy(sim);
}

/* Three rounds in one run, or two rounds saved to a ranking file and the
 * third played from it with first_round 2: the same model, bit for bit
 * (attackers included: every draw follows the round number). */
static void test_sim_continued_from_its_saved_ranking_ends_where_the_whole_run_ends(void **state)
{
    const data_t *d = *state;
    frl_sim_config_t c;
    small_config(&c);
    c.malicious = 0.25;
    c.attack = FRL_ATTACK_REVERSE;
    c.attack_trainers = 2;
    c.sampling = FRL_SIM_SAMPLING_PLAIN;
    uint32_t *whole = NULL, *half = NULL, *rest = NULL;
    double acc_whole, acc_half, acc_rest;
    play(d, &c, 0, 3, NULL, &whole, &acc_whole);
    play(d, &c, 0, 2, NULL, &half, &acc_half);

    frl_sim_t *probe = NULL;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &probe), 0);
    const frl_vote_layout_t *lay = frl_sim_layout(probe);
    size_t E = lay->total_edges;
    uint8_t *file = NULL;
    size_t len = 0;
    assert_int_equal(frl_sim_ranking_encode(frl_sim_spec(probe)->hash, c.seed, lay, half, &file, &len), 0);
    uint32_t *loaded = malloc(E * sizeof(uint32_t));
    assert_non_null(loaded);
    assert_int_equal(frl_sim_ranking_decode(file, len, frl_sim_spec(probe)->hash, c.seed, lay, loaded, NULL, 0), 0);
    frl_sim_destroy(probe);

    play(d, &c, 2, 3, loaded, &rest, &acc_rest);
    assert_memory_not_equal(half, whole, E * sizeof(uint32_t));
    assert_memory_equal(rest, whole, E * sizeof(uint32_t));
    free(whole);
    free(half);
    free(rest);
    free(loaded);
    free(file);
}

static void test_sim_refuses_a_first_round_after_the_last(void **state)
{
    const data_t *d = *state;
    frl_sim_config_t c;
    small_config(&c);
    c.first_round = 3; /* rounds is 2 */
    frl_sim_t *sim = NULL;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), FRL_EINVAL);
    assert_null(sim);
    c.first_round = 2; /* nothing to play, but valid */
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), 0);
    frl_sim_round_t rec;
    assert_int_equal(frl_sim_round(sim, &rec), FRL_ESTATE);
    frl_sim_destroy(sim);
}

static void test_sim_refuses_a_ranking_that_is_not_a_permutation(void **state)
{
    const data_t *d = *state;
    frl_sim_config_t c;
    small_config(&c);
    frl_sim_t *sim = NULL;
    assert_int_equal(frl_sim_create(&c, &d->train, &d->test, &sim), 0);
    size_t E = frl_sim_spec(sim)->total_edges;
    uint32_t *before = malloc(E * sizeof(uint32_t)), *bad = malloc(E * sizeof(uint32_t));
    assert_non_null(before);
    assert_non_null(bad);
    memcpy(before, frl_sim_global_ranking(sim), E * sizeof(uint32_t));
    memcpy(bad, before, E * sizeof(uint32_t));
    bad[1] = bad[0];
    frl_vote_reject_t rj;
    assert_int_equal(frl_sim_set_global_ranking(sim, bad, &rj), FRL_EVOTE_DUPLICATE);
    assert_int_equal(rj.layer, 0);
    assert_memory_equal(frl_sim_global_ranking(sim), before, E * sizeof(uint32_t));
    free(before);
    free(bad);
    frl_sim_destroy(sim);
}

int main(void)
{
    const struct CMUnitTest file[] = {
        cmocka_unit_test(test_encode_writes_the_documented_bytes),
        cmocka_unit_test(test_decode_returns_what_encode_wrote),
        cmocka_unit_test(test_decode_rejects_every_truncation),
        cmocka_unit_test(test_decode_rejects_bytes_after_the_ranking),
        cmocka_unit_test(test_decode_rejects_another_model_seed_or_shape),
        cmocka_unit_test(test_decode_rejects_a_ranking_that_is_not_a_permutation),
    };
    const struct CMUnitTest sim[] = {
        cmocka_unit_test(test_sim_starts_from_a_loaded_ranking),
        cmocka_unit_test(test_sim_refuses_a_ranking_that_is_not_a_permutation),
        cmocka_unit_test(test_sim_continued_from_its_saved_ranking_ends_where_the_whole_run_ends),
        cmocka_unit_test(test_sim_refuses_a_first_round_after_the_last),
    };
    int failed = cmocka_run_group_tests_name("ranking_file", file, NULL, NULL);
    return failed | cmocka_run_group_tests_name("sim_init_ranking", sim, setup, teardown);
}
