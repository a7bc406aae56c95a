/* frl-client's local rounds under every --attack mode and in load-test
 * mode: each produces a valid ranking (a permutation of every layer), and
 * each does what its name says. */
#include "client_test_util.h"

#include "attack/frl_attack.h"
#include "common/frl_log.h"
#include "supermask/frl_ranking.h"

static char data_dir[1024];

static int setup(void **state)
{
    (void)state;
    frl_log_set_level(FRL_LOG_WARN);
    test_make_data(data_dir, sizeof data_dir, "attack", 200);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_remove_data(data_dir);
    return 0;
}

typedef struct {
    frl__local_t L;
    frl_model_spec_t spec;
    Frl__V1__RankingBlob *global;
} rig_t;

static void rig_init(rig_t *g, frl_attack_kind attack, int load_test)
{
    memset(g, 0, sizeof *g);
    frl_client_opts_t o;
    frl_client_opts_defaults(&o);
    snprintf(o.data_dir, sizeof o.data_dir, "%s", data_dir);
    o.attack = attack;
    o.load_test = load_test;
    o.shard = 1;
    o.shards = 2;
    frl__welcome_t w;
    memset(&w, 0, sizeof w);
    snprintf(w.federation_id, sizeof w.federation_id, "f");
    snprintf(w.model_name, sizeof w.model_name, "mlp");
    assert_int_equal(frl_model_spec_by_name("mlp", &g->spec), 0);
    memcpy(w.spec_hash, g->spec.hash, 32);
    frl_seed_from_u64(11, w.seed);
    w.keep = 0.5;
    w.epochs = 1;
    w.batch = 8;
    w.lr = 0.2;
    w.lr_decay = 1;
    w.momentum = 0.9;
    w.weight_decay = 1e-4;
    char why[512];
    assert_int_equal(frl__local_setup(&g->L, &o, &w, &g->spec, why, sizeof why), 0);
    g->global = test_blob_for(&g->spec);
}

static void rig_free(rig_t *g)
{
    frl_msg_ranking_free(g->global);
    frl__local_free(&g->L);
}

/* One local round from the rig's global ranking; returns the blob. */
static Frl__V1__RankingBlob *rig_round(rig_t *g, frl_attack_kind attack, uint32_t round)
{
    char why[512];
    assert_int_equal(frl__local_take_task(&g->L, g->global, why, sizeof why), 0);
    frl__round_result_t res;
    frl__local_round(&g->L, attack, round, 0.2, NULL, &res);
    assert_int_equal(res.status, 0);
    assert_non_null(res.blob);
    assert_int_equal(test_blob_check(&g->spec, res.blob), 0);
    assert_true(res.peak_rss_kb > 0);
    return res.blob;
}

static uint32_t *unpack_all(const rig_t *g, const Frl__V1__RankingBlob *b)
{
    uint32_t *v = malloc((size_t)g->spec.total_edges * sizeof *v);
    for (int l = 0; l < g->spec.n_layers; l++)
        assert_int_equal(frl_msg_ranking_layer(b, (size_t)l, v + g->L.layout.offset[l]), 0);
    return v;
}

static int blobs_equal(const Frl__V1__RankingBlob *a, const Frl__V1__RankingBlob *b)
{
    if (a->n_layers != b->n_layers)
        return 0;
    for (size_t l = 0; l < a->n_layers; l++)
        if (a->layers[l]->packed.len != b->layers[l]->packed.len ||
            memcmp(a->layers[l]->packed.data, b->layers[l]->packed.data, a->layers[l]->packed.len) != 0)
            return 0;
    return 1;
}

static void test_honest_round_is_valid_and_deterministic(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, FRL_ATTACK_NONE, 0);
    Frl__V1__RankingBlob *a = rig_round(&g, FRL_ATTACK_NONE, 3);
    Frl__V1__RankingBlob *b = rig_round(&g, FRL_ATTACK_NONE, 3);
    assert_true(blobs_equal(a, b));
    assert_false(blobs_equal(a, g.global)); /* training moved something */
    frl_msg_ranking_free(a);
    frl_msg_ranking_free(b);
    rig_free(&g);
}

/* The honest round is exactly the reference computation of client u in
 * round r (frl-sim's): scores from the global ranking, training with the
 * Welcome's hyper-parameters and the task's lr on stream
 * (FRL_STREAM_SHUFFLE, u, r - 1), then the ranking of the scores. */
static void test_honest_round_is_the_reference_computation(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, FRL_ATTACK_NONE, 0);
    Frl__V1__RankingBlob *got = rig_round(&g, FRL_ATTACK_NONE, 4);
    uint32_t *glob = unpack_all(&g, g.global), *want = malloc((size_t)g.spec.total_edges * sizeof *want);
    frl_trainer_t *tr = NULL;
    assert_int_equal(frl_trainer_create(&g.L.network, 8, 0.5, FRL_MASK_ABS, &tr), 0);
    assert_int_equal(frl_trainer_set_ranking(tr, glob), 0);
    frl_train_cfg_t cfg;
    frl_train_cfg_default(&cfg);
    cfg.lr = 0.2;
    cfg.momentum = 0.9;
    cfg.weight_decay = 1e-4;
    frl_rng_t rng;
    frl_rng_init(&rng, g.L.w.seed, FRL_STREAM_SHUFFLE, 1 /* shard */, 3 /* round 4 */);
    frl_train_stats_t st;
    assert_int_equal(frl_train_local(tr, &g.L.data, NULL, g.L.data.n, &cfg, &rng, &st, NULL, NULL), 0);
    assert_int_equal(frl_trainer_get_ranking(tr, want), 0);
    uint32_t *have = unpack_all(&g, got);
    assert_memory_equal(have, want, (size_t)g.spec.total_edges * sizeof *want);
    frl_trainer_destroy(tr);
    free(glob);
    free(want);
    free(have);
    frl_msg_ranking_free(got);
    rig_free(&g);
}

/* reverse = the library's reverse attack with this client as the only
 * colluder (sums = its own positions). */
static void test_reverse_is_the_library_attack_with_one_colluder(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, FRL_ATTACK_REVERSE, 0);
    Frl__V1__RankingBlob *honest = rig_round(&g, FRL_ATTACK_NONE, 2);
    Frl__V1__RankingBlob *rev = rig_round(&g, FRL_ATTACK_REVERSE, 2);
    uint32_t *h = unpack_all(&g, honest), *r = unpack_all(&g, rev);
    size_t n = (size_t)g.spec.total_edges;
    uint64_t *sums = malloc(n * sizeof *sums);
    uint32_t *want = malloc(n * sizeof *want);
    void *scratch = malloc(frl_attack_scratch_size(&g.L.layout));
    for (int l = 0; l < g.spec.n_layers; l++) {
        uint64_t off = g.L.layout.offset[l];
        for (uint32_t p = 0; p < g.L.layout.n_edges[l]; p++)
            sums[off + h[off + p]] = p;
    }
    assert_int_equal(frl_attack_reverse(&g.L.layout, sums, want, scratch), 0);
    assert_memory_equal(r, want, n * sizeof *r);
    free(h);
    free(r);
    free(sums);
    free(want);
    free(scratch);
    frl_msg_ranking_free(honest);
    frl_msg_ranking_free(rev);
    rig_free(&g);
}

static void test_random_is_seeded_per_round_and_valid(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, FRL_ATTACK_RANDOM, 0);
    Frl__V1__RankingBlob *a = rig_round(&g, FRL_ATTACK_RANDOM, 1);
    Frl__V1__RankingBlob *b = rig_round(&g, FRL_ATTACK_RANDOM, 1);
    Frl__V1__RankingBlob *c = rig_round(&g, FRL_ATTACK_RANDOM, 2);
    assert_true(blobs_equal(a, b));
    assert_false(blobs_equal(a, c));
    frl_msg_ranking_free(a);
    frl_msg_ranking_free(b);
    frl_msg_ranking_free(c);
    rig_free(&g);
}

/* boundary = the library's boundary attack with this client's own trained
 * ranking as the consensus and the mask it gives; it flips masks. */
static void test_boundary_is_the_library_attack_on_the_own_ranking(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, FRL_ATTACK_BOUNDARY, 0);
    Frl__V1__RankingBlob *honest = rig_round(&g, FRL_ATTACK_NONE, 1);
    Frl__V1__RankingBlob *bnd = rig_round(&g, FRL_ATTACK_BOUNDARY, 1);
    uint32_t *h = unpack_all(&g, honest), *b = unpack_all(&g, bnd);
    const frl_vote_layout_t *lay = &g.L.layout;
    size_t N = (size_t)g.spec.total_edges;
    uint8_t *mh = malloc(N), *mb = malloc(N);
    void *tk = malloc(frl_topk_scratch_size(lay->max_layer_edges));
    uint32_t *want = malloc(N * sizeof *want);
    void *scratch = malloc(frl_attack_scratch_size(lay));
    for (int l = 0; l < g.spec.n_layers; l++)
        assert_int_equal(frl_mask_from_ranking(h + lay->offset[l], g.L.network.sorted_init[l], lay->n_edges[l], 0.5, FRL_MASK_ABS,
                                               mh + lay->offset[l], tk),
                         0);
    assert_int_equal(frl_attack_boundary(lay, h, mh, FRL_ATTACK_DEFAULT_BAND, want, scratch), 0);
    assert_memory_equal(b, want, N * sizeof *b);
    for (int l = 0; l < g.spec.n_layers; l++)
        assert_int_equal(frl_mask_from_ranking(b + lay->offset[l], g.L.network.sorted_init[l], lay->n_edges[l], 0.5, FRL_MASK_ABS,
                                               mb + lay->offset[l], tk),
                         0);
    size_t flipped = 0;
    for (size_t e = 0; e < N; e++)
        flipped += mh[e] != mb[e];
    print_message("boundary: %zu of %zu edges change mask (band %.2f)\n", flipped, N, FRL_ATTACK_DEFAULT_BAND);
    assert_true(flipped >= (size_t)(0.05 * (double)N));
    free(mh);
    free(mb);
    free(tk);
    free(want);
    free(scratch);
    free(h);
    free(b);
    frl_msg_ranking_free(honest);
    frl_msg_ranking_free(bnd);
    rig_free(&g);
}

static void test_labelflip_flips_the_shard_labels(void **state)
{
    (void)state;
    rig_t honest, flip;
    rig_init(&honest, FRL_ATTACK_NONE, 0);
    rig_init(&flip, FRL_ATTACK_LABELFLIP, 0);
    assert_int_equal(honest.L.data.n, flip.L.data.n);
    for (uint32_t i = 0; i < honest.L.data.n; i++)
        assert_int_equal(flip.L.data.labels[i], 9 - honest.L.data.labels[i]);
    Frl__V1__RankingBlob *b = rig_round(&flip, FRL_ATTACK_LABELFLIP, 1);
    frl_msg_ranking_free(b);
    rig_free(&honest);
    rig_free(&flip);
}

/* Load test: no network, no data, no trainer; still a valid ranking. */
static void test_load_test_round_needs_no_data(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, FRL_ATTACK_NONE, 1);
    assert_false(g.L.have_network);
    assert_null(g.L.tr);
    assert_int_equal(g.L.data.n, 0);
    Frl__V1__RankingBlob *a = rig_round(&g, FRL_ATTACK_NONE, 1);
    Frl__V1__RankingBlob *b = rig_round(&g, FRL_ATTACK_NONE, 2);
    assert_false(blobs_equal(a, b));
    frl_msg_ranking_free(a);
    frl_msg_ranking_free(b);
    rig_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_round_is_valid_and_deterministic),
        cmocka_unit_test(test_honest_round_is_the_reference_computation),
        cmocka_unit_test(test_reverse_is_the_library_attack_with_one_colluder),
        cmocka_unit_test(test_random_is_seeded_per_round_and_valid),
        cmocka_unit_test(test_boundary_is_the_library_attack_on_the_own_ranking),
        cmocka_unit_test(test_labelflip_flips_the_shard_labels),
        cmocka_unit_test(test_load_test_round_needs_no_data),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
