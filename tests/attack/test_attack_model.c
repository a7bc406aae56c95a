/* The attacks on a tiny real model (mlp, a few hundred Fashion-MNIST
 * images): rankings from actual local training, masks from
 * frl_mask_from_ranking. */
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
#include "attack/frl_attack.h"
#include "common/frl_error.h"
#include "data/frl_idx.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"
#include "supermask/frl_train.h"

typedef struct ctx_s {
    frl_dataset_t data; /* the first 300 training images */
    frl_model_spec_t spec;
    frl_network_t net;
    frl_trainer_t *tr;
    frl_train_cfg_t cfg;
    frl_vote_layout_t L;
    uint32_t *global;
} ctx_t;

static int setup(void **state)
{
    ctx_t *c = calloc(1, sizeof *c);
    uint32_t sel[300];
    for (uint32_t i = 0; i < 300; i++)
        sel[i] = i;
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(11, seed);
    if (!c || frl_mnist_load(NULL, "train", sel, 300, &c->data) || frl_model_spec_by_name("mlp", &c->spec) ||
        frl_network_init(&c->net, &c->spec, seed, 1))
        return -1;
    frl_train_cfg_default(&c->cfg);
    if (frl_trainer_create(&c->net, c->cfg.batch, c->cfg.keep, c->cfg.rule, &c->tr))
        return -1;
    uint32_t n[FRL_MAX_LAYERS];
    for (int l = 0; l < c->spec.n_layers; l++)
        n[l] = c->spec.layers[l].n_edges;
    if (frl_vote_layout_init(&c->L, c->spec.n_layers, n))
        return -1;
    c->global = malloc(sizeof(uint32_t) * c->L.total_edges);
    if (!c->global || frl_trainer_reset_scores(c->tr) || frl_trainer_get_ranking(c->tr, c->global))
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    frl_trainer_destroy(c->tr);
    frl_network_free(&c->net);
    frl_dataset_free(&c->data);
    free(c->global);
    free(c);
    return 0;
}

/* One client's honest round on examples [first, first + n) of `data`. */
static void train_client(ctx_t *c, const frl_dataset_t *data, uint32_t first, uint32_t n, uint32_t client, uint32_t *out)
{
    uint32_t idx[300];
    for (uint32_t i = 0; i < n; i++)
        idx[i] = first + i;
    frl_rng_t rng;
    frl_rng_init(&rng, c->net.seed, FRL_STREAM_SHUFFLE, client, 0);
    assert_int_equal(frl_trainer_set_ranking(c->tr, c->global), 0);
    frl_train_stats_t st;
    assert_int_equal(frl_train_local(c->tr, data, idx, n, &c->cfg, &rng, &st, NULL, NULL), 0);
    assert_int_equal(frl_trainer_get_ranking(c->tr, out), 0);
}

static void mask_of(ctx_t *c, const uint32_t *order, uint8_t *mask)
{
    void *scratch = malloc(frl_topk_scratch_size(c->L.max_layer_edges));
    for (int l = 0; l < c->L.n_layers; l++)
        assert_int_equal(frl_mask_from_ranking(order + c->L.offset[l], c->net.sorted_init[l], c->L.n_edges[l], c->cfg.keep,
                                               c->cfg.rule, mask + c->L.offset[l], scratch),
                         0);
    free(scratch);
}

/* Two colluders train benignly; the attack is the exact reverse of their
 * consensus, and a valid vote. */
static void test_reverse_on_model_is_reverse_of_colluders_consensus(void **state)
{
    ctx_t *c = *state;
    const size_t E = c->L.total_edges;
    uint32_t *a = malloc(E * 4), *b = malloc(E * 4), *out = malloc(E * 4), *cons = malloc(E * 4);
    void *scratch = malloc(frl_attack_scratch_size(&c->L));
    train_client(c, &c->data, 0, 100, 0, a);
    train_client(c, &c->data, 100, 100, 1, b);
    frl_vote_tally_t *t;
    assert_int_equal(frl_vote_tally_create(&c->L, &t), 0);
    assert_int_equal(frl_vote_tally_add(t, a, c->L.n_layers, NULL, 1, NULL), 0);
    assert_int_equal(frl_vote_tally_add(t, b, c->L.n_layers, NULL, 1, NULL), 0);
    const uint64_t *sums = frl_vote_tally_sums(t, 0);
    assert_int_equal(frl_attack_reverse(&c->L, sums, out, scratch), 0);
    void *vs = malloc(frl_vote_validate_scratch_size(&c->L));
    assert_int_equal(frl_vote_validate(&c->L, out, c->L.n_layers, NULL, vs, NULL), 0);
    /* Position r of the attack holds the consensus' position n-1-r up to
     * the order inside groups of equal sums: the sums match exactly. */
    assert_int_equal(frl_vote_tally_finalize(t, cons), 0);
    for (int l = 0; l < c->L.n_layers; l++) {
        const uint32_t n = c->L.n_edges[l];
        const uint64_t *s = sums + c->L.offset[l];
        for (uint32_t r = 0; r < n; r++)
            assert_true(s[out[c->L.offset[l] + r]] == s[cons[c->L.offset[l] + n - 1 - r]]);
    }
    frl_vote_tally_destroy(t);
    free(vs);
    free(a);
    free(b);
    free(out);
    free(cons);
    free(scratch);
}

/* Boundary on a trained consensus: membership changes for the edges near
 * the cuts, and only for them. */
static void test_boundary_on_model_flips_membership_near_the_cut(void **state)
{
    ctx_t *c = *state;
    const size_t E = c->L.total_edges;
    uint32_t *cons = malloc(E * 4), *out = malloc(E * 4), *pos = malloc(E * 4);
    uint8_t *m0 = malloc(E), *m1 = malloc(E);
    void *scratch = malloc(frl_attack_scratch_size(&c->L));
    train_client(c, &c->data, 0, 150, 0, cons);
    mask_of(c, cons, m0);
    const double band = 0.02;
    assert_int_equal(frl_attack_boundary(&c->L, cons, m0, band, out, scratch), 0);
    mask_of(c, out, m1);
    for (int l = 0; l < c->L.n_layers; l++) {
        const uint32_t n = c->L.n_edges[l], off = (uint32_t)c->L.offset[l];
        uint32_t cuts[4];
        size_t nc = frl_vote_mask_cuts(cons + off, m0 + off, n, cuts, 4);
        assert_true(nc >= 1 && nc <= 4); /* abs rule: both tails kept, normally 2 cuts */
        uint32_t b = (uint32_t)ceil(band * n);
        uint32_t changed = 0, near = 0;
        for (uint32_t r = 0; r < n; r++) {
            uint32_t e = cons[off + r];
            int is_near = 0;
            for (size_t k = 0; k < nc; k++)
                is_near |= r + b >= cuts[k] && r < cuts[k] + b;
            near += is_near;
            if (m0[off + e] != m1[off + e]) {
                changed++;
                assert_true(is_near);
            }
        }
        assert_true(changed > 0);
        assert_true(changed * 10 >= near * 9); /* (almost) every near edge flips */
    }
    free(cons);
    free(out);
    free(pos);
    free(m0);
    free(m1);
    free(scratch);
}

/* Label flipping is the honest protocol on poisoned labels: a valid vote
 * that differs from the same client's honest one. */
static void test_labelflip_differs_from_honest(void **state)
{
    ctx_t *c = *state;
    const size_t E = c->L.total_edges;
    uint32_t *honest = malloc(E * 4), *flip = malloc(E * 4);
    uint8_t *labels = malloc(c->data.n);
    frl_attack_flip_labels(c->data.labels, c->data.n, c->data.n_classes, labels);
    frl_dataset_t flipped = c->data;
    flipped.labels = labels;
    train_client(c, &c->data, 0, 150, 0, honest);
    train_client(c, &flipped, 0, 150, 0, flip);
    void *vs = malloc(frl_vote_validate_scratch_size(&c->L));
    assert_int_equal(frl_vote_validate(&c->L, flip, c->L.n_layers, NULL, vs, NULL), 0);
    assert_true(memcmp(honest, flip, E * 4) != 0);
    /* ... and it disagrees more with the honest ranking than a rerun of the
     * honest client (which is bit-identical: same stream). */
    uint32_t *again = malloc(E * 4);
    train_client(c, &c->data, 0, 150, 0, again);
    assert_memory_equal(honest, again, E * 4);
    free(vs);
    free(again);
    free(honest);
    free(flip);
    free(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reverse_on_model_is_reverse_of_colluders_consensus),
        cmocka_unit_test(test_boundary_on_model_flips_membership_near_the_cut),
        cmocka_unit_test(test_labelflip_differs_from_honest),
    };
    return cmocka_run_group_tests_name("attack_model", tests, setup, teardown);
}
