#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "data/frl_idx.h"
#include "supermask/frl_ranking.h"
#include "supermask/frl_train.h"

static frl_dataset_t g_data; /* the first 1000 Fashion-MNIST test images */

static int setup(void **state)
{
    (void)state;
    uint32_t sel[1000];
    for (uint32_t i = 0; i < 1000; i++)
        sel[i] = i;
    return frl_mnist_load(NULL, "t10k", sel, 1000, &g_data) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    frl_dataset_free(&g_data);
    return 0;
}

typedef struct {
    const char *model;
    uint32_t n_train;
    int rule;
    uint32_t *ranking; /* out */
    uint64_t edges;
    int rc;
} job;

/* One client round from the seed's initial scores: the ranking it uploads. */
static void *run_job(void *arg)
{
    job *j = arg;
    frl_model_spec_t spec;
    uint8_t seed[32];
    frl_network_t net;
    frl_trainer_t *tr = NULL;
    frl_seed_from_u64(5, seed);
    j->rc = frl_model_spec_by_name(j->model, &spec);
    if (!j->rc)
        j->rc = frl_network_init(&net, &spec, seed, 1);
    if (j->rc)
        return NULL;
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    cfg.rule = (frl_mask_rule)j->rule;
    j->rc = frl_trainer_create(&net, cfg.batch, cfg.keep, cfg.rule, &tr);
    if (!j->rc) {
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 3, 0);
        frl_train_stats_t st;
        j->rc = frl_train_local(tr, &g_data, NULL, j->n_train, &cfg, &rng, &st, NULL, NULL);
        j->edges = spec.total_edges;
        j->ranking = malloc(sizeof(uint32_t) * spec.total_edges);
        if (!j->rc && j->ranking)
            j->rc = frl_trainer_get_ranking(tr, j->ranking);
    }
    frl_trainer_destroy(tr);
    frl_network_free(&net);
    return NULL;
}

static void test_same_seed_gives_bit_identical_rankings(void **state)
{
    (void)state;
    job a = {"mlp", 400, 0, NULL, 0, 0}, b = a;
    run_job(&a);
    run_job(&b);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_memory_equal(a.ranking, b.ranking, sizeof(uint32_t) * a.edges);
    free(a.ranking);
    free(b.ranking);
}

static void test_parallel_trainers_match_sequential_ones(void **state)
{
    (void)state;
    job seq = {"mlp", 300, 0, NULL, 0, 0};
    run_job(&seq);
    job par[2] = {seq, seq};
    par[0].ranking = par[1].ranking = NULL;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(par[i].rc, 0);
        assert_memory_equal(par[i].ranking, seq.ranking, sizeof(uint32_t) * seq.edges);
        free(par[i].ranking);
    }
    free(seq.ranking);
}

/* The incremental threshold must give exactly the mask a full selection
 * gives, after every kind of update: checked after training lenet. */
static void test_training_keeps_masks_exact(void **state)
{
    (void)state;
    for (int rule = 0; rule < 2; rule++) {
        frl_model_spec_t spec;
        uint8_t seed[32];
        frl_network_t net;
        frl_trainer_t *tr;
        frl_seed_from_u64(9, seed);
        frl_model_spec_by_name("lenet", &spec);
        assert_int_equal(frl_network_init(&net, &spec, seed, 0), 0);
        frl_train_cfg_t cfg;
        frl_train_cfg_default(&cfg);
        cfg.rule = (frl_mask_rule)rule;
        assert_int_equal(frl_trainer_create(&net, 8, 0.5, cfg.rule, &tr), 0);
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 0, 0);
        frl_train_stats_t st;
        assert_int_equal(frl_train_local(tr, &g_data, NULL, 160, &cfg, &rng, &st, NULL, NULL), 0);
        assert_int_equal(st.steps, 20);
        uint32_t n = spec.layers[2].n_edges;
        uint8_t *mask = malloc(n);
        void *scr = malloc(frl_topk_scratch_size(n));
        for (int l = 0; l < spec.n_layers; l++) {
            uint32_t ne = spec.layers[l].n_edges;
            assert_int_equal(frl_topk_mask(frl_trainer_scores(tr, l), ne, 0.5, cfg.rule, mask, scr), 0);
            const float *w = frl_trainer_weights(tr, l);
            uint32_t bad = 0;
            for (uint32_t e = 0; e < ne; e++)
                bad += (w[e] != 0.0f) != (mask[e] != 0) || (w[e] != 0.0f && w[e] != frl_network_weight(&net, l, e));
            assert_int_equal(bad, 0);
        }
        print_message("rule %d: %llu full selections in %llu steps\n", rule, (unsigned long long)st.full_selects,
                      (unsigned long long)st.steps);
        free(mask);
        free(scr);
        frl_trainer_destroy(tr);
        frl_network_free(&net);
    }
}

static void test_training_lowers_the_loss(void **state)
{
    (void)state;
    frl_model_spec_t spec;
    uint8_t seed[32];
    frl_network_t net;
    frl_trainer_t *tr;
    frl_seed_from_u64(1, seed);
    frl_model_spec_by_name("mlp", &spec);
    assert_int_equal(frl_network_init(&net, &spec, seed, 0), 0);
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    cfg.epochs = 3;
    assert_int_equal(frl_trainer_create(&net, 100, 0.5, cfg.rule, &tr), 0);
    double acc0, loss0, acc1, loss1;
    assert_int_equal(frl_trainer_evaluate(tr, &g_data, NULL, 1000, &cfg, &acc0, &loss0), 0);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 0, 0);
    frl_train_stats_t st;
    assert_int_equal(frl_train_local(tr, &g_data, NULL, 800, &cfg, &rng, &st, NULL, NULL), 0);
    assert_int_equal(frl_trainer_evaluate(tr, &g_data, NULL, 1000, &cfg, &acc1, &loss1), 0);
    print_message("mlp: acc %.3f -> %.3f, loss %.3f -> %.3f\n", acc0, acc1, loss0, loss1);
    assert_true(loss1 < loss0);
    assert_true(acc1 > 0.5); /* random masks score ~0.1 */
    frl_trainer_destroy(tr);
    frl_network_free(&net);
}

/* set_ranking reuses the threshold it found the first time (the scores are
 * always a permutation of sorted_init): the mask after each of several
 * rankings is still exactly the top-k of the scores, under both rules. */
static void test_masks_stay_exact_across_set_ranking_calls(void **state)
{
    (void)state;
    for (int rule = 0; rule < 2; rule++) {
        frl_model_spec_t spec;
        uint8_t seed[32];
        frl_network_t net;
        frl_trainer_t *tr;
        frl_seed_from_u64(11, seed);
        frl_model_spec_by_name("mlp", &spec);
        assert_int_equal(frl_network_init(&net, &spec, seed, 1), 0);
        assert_int_equal(frl_trainer_create(&net, 8, 0.5, (frl_mask_rule)rule, &tr), 0);
        uint32_t *rk = malloc(sizeof(uint32_t) * spec.total_edges);
        uint8_t *mask = malloc(spec.total_edges);
        void *scr = malloc(frl_topk_scratch_size((uint32_t)spec.total_edges));
        assert_non_null(rk);
        assert_non_null(mask);
        assert_non_null(scr);
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_TEST, 7, (uint32_t)rule);
        for (int k = 0; k < 3; k++) {
            uint32_t off = 0;
            for (int l = 0; l < spec.n_layers; l++) {
                uint32_t ne = spec.layers[l].n_edges;
                for (uint32_t e = 0; e < ne; e++)
                    rk[off + e] = e;
                frl_rng_shuffle_u32(&rng, rk + off, ne);
                off += ne;
            }
            assert_int_equal(frl_trainer_set_ranking(tr, rk), 0);
            for (int l = 0; l < spec.n_layers; l++) {
                uint32_t ne = spec.layers[l].n_edges;
                assert_int_equal(frl_topk_mask(frl_trainer_scores(tr, l), ne, 0.5, (frl_mask_rule)rule, mask, scr), 0);
                const float *w = frl_trainer_weights(tr, l);
                uint32_t bad = 0;
                for (uint32_t e = 0; e < ne; e++)
                    bad += (w[e] != 0.0f) != (mask[e] != 0);
                assert_int_equal(bad, 0);
            }
        }
        free(rk);
        free(mask);
        free(scr);
        frl_trainer_destroy(tr);
        frl_network_free(&net);
    }
}

static void test_bad_arguments_are_rejected(void **state)
{
    (void)state;
    frl_model_spec_t spec;
    uint8_t seed[32] = {0};
    frl_network_t net;
    frl_trainer_t *tr;
    frl_model_spec_by_name("mlp", &spec);
    assert_int_equal(frl_network_init(&net, &spec, seed, 0), 0);
    assert_int_equal(frl_trainer_create(&net, 0, 0.5, FRL_MASK_ABS, &tr), FRL_EINVAL);
    assert_int_equal(frl_trainer_create(&net, 8, 0.5, FRL_MASK_ABS, &tr), 0);
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 0, 0);
    cfg.batch = 9; /* above the trainer's max batch */
    assert_int_equal(frl_train_local(tr, &g_data, NULL, 10, &cfg, &rng, NULL, NULL, NULL), FRL_EINVAL);
    cfg.batch = 8;
    cfg.keep = 0.25; /* not the trainer's */
    assert_int_equal(frl_train_local(tr, &g_data, NULL, 10, &cfg, &rng, NULL, NULL, NULL), FRL_EMISMATCH);
    cfg.keep = 0.5;
    uint32_t idx[2] = {0, 5000};
    assert_int_equal(frl_train_local(tr, &g_data, idx, 2, &cfg, &rng, NULL, NULL, NULL), FRL_ERANGE);
    uint32_t *rk = malloc(sizeof(uint32_t) * spec.total_edges);
    assert_int_equal(frl_trainer_set_ranking(tr, rk), FRL_ESTATE); /* network built without sorted_init */
    free(rk);
    frl_trainer_destroy(tr);
    frl_network_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_gives_bit_identical_rankings),
        cmocka_unit_test(test_parallel_trainers_match_sequential_ones),
        cmocka_unit_test(test_training_keeps_masks_exact),
        cmocka_unit_test(test_masks_stay_exact_across_set_ranking_calls),
        cmocka_unit_test(test_training_lowers_the_loss),
        cmocka_unit_test(test_bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
