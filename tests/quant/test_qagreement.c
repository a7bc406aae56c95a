/* On a Fashion-MNIST subset: a briefly trained lenet, exported the way the
 * server does (frl_qmodel_from_ranking), must agree with the float masked
 * model on the argmax of at least AGREE_BOUND of the test images, on every
 * kernel path, and every path must give the same predictions. The model is
 * weak (TRAIN_N images, one epoch), so its logits have more near-ties than
 * a fully trained one: the bench (frl-bench infer) measures the real
 * figure on the full test set. Skipped (77) without the data set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/frl_error.h"
#include "data/frl_idx.h"
#include "quant/frl_quant.h"
#include "supermask/frl_train.h"

#define TRAIN_N 600
#define TEST_N 1000
#define AGREE_BOUND 0.98
#define SCALAR_N 60

static frl_dataset_t train, test;

static int setup(void **state)
{
    uint32_t sel[TEST_N];
    for (uint32_t i = 0; i < TEST_N; i++)
        sel[i] = i;
    if (frl_mnist_load(NULL, "train", sel, TRAIN_N, &train) || frl_mnist_load(NULL, "t10k", sel, TEST_N, &test))
        return -1;
    return 0;
}
static int teardown(void **state)
{
    frl_dataset_free(&train);
    frl_dataset_free(&test);
    return 0;
}

static void test_trained_lenet_agrees_with_float(void **state)
{
    frl_model_spec_t spec;
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(0, seed);
    assert_int_equal(frl_model_spec_by_name("lenet", &spec), 0);
    frl_network_t net;
    assert_int_equal(frl_network_init(&net, &spec, seed, 1), 0);
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    frl_trainer_t *tr;
    assert_int_equal(frl_trainer_create(&net, cfg.batch, cfg.keep, cfg.rule, &tr), 0);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_SHUFFLE, 0, 0);
    frl_train_stats_t st;
    assert_int_equal(frl_train_local(tr, &train, NULL, train.n, &cfg, &rng, &st, NULL, NULL), 0);
    uint32_t *ranking = malloc(spec.total_edges * sizeof(uint32_t));
    assert_int_equal(frl_trainer_get_ranking(tr, ranking), 0);
    frl_trainer_destroy(tr);
    frl_network_free(&net);

    frl_qmodel_t *m;
    frl_qcalib_opts_t co = {256, 0};
    assert_int_equal(frl_qmodel_from_ranking(&spec, seed, cfg.keep, cfg.rule, ranking, &train, &co, &m), 0);
    free(ranking);
    uint8_t *fp = malloc(test.n), *ip = malloc(test.n), *ref = malloc(test.n);
    assert_int_equal(frl_qmodel_float_predict(m, &test, cfg.mean, cfg.std, fp), 0);
    /* the scalar reference is slow (and slower under sanitizers): it runs
     * on the first SCALAR_N images and the fast paths must match it there */
    frl_dataset_t head = test;
    head.n = SCALAR_N;
    assert_int_equal(frl_qmodel_set_path(m, FRL_QPATH_SCALAR), 0);
    frl_qeval_t ev;
    assert_int_equal(frl_qmodel_evaluate(m, &head, 16, 2, &ev, ref), 0);
    for (int p = FRL_QPATH_AVX2; p <= FRL_QPATH_AVX512; p++) {
        if (frl_qmodel_set_path(m, (frl_qpath)p) != 0) {
            printf("%s: not available on this CPU, skipped\n", frl_qpath_name((frl_qpath)p));
            continue;
        }
        assert_int_equal(frl_qmodel_evaluate(m, &test, 64, 2, &ev, ip), 0);
        uint32_t agree = 0, fc = 0;
        for (uint32_t i = 0; i < test.n; i++) {
            agree += ip[i] == fp[i];
            fc += fp[i] == test.labels[i];
        }
        printf("%s: accuracy int %.4f float %.4f, agreement %.4f (%u of %u)\n", frl_qpath_name((frl_qpath)p), ev.accuracy,
               (double)fc / test.n, (double)agree / test.n, agree, test.n);
        assert_true((double)agree / test.n >= AGREE_BOUND);
        assert_memory_equal(ref, ip, SCALAR_N);
    }
    free(fp);
    free(ip);
    free(ref);
    frl_qmodel_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trained_lenet_agrees_with_float),
    };
    if (setup(NULL) != 0) {
        printf("Fashion-MNIST not found in %s: skipped\n", FRL_FMNIST_DIR);
        return 77;
    }
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    teardown(NULL);
    return rc;
}
