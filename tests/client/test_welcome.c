/* Welcome handling in frl-client: the spec hash check, the shard worked
 * out from the federation seed, reuse of the set-up on a repeated Welcome,
 * and the checks on a task's global ranking. */
#include "client_test_util.h"

#include "common/frl_log.h"
#include "data/frl_partition.h"

static char data_dir[1024];
static char labels_path[1200];

static int setup(void **state)
{
    (void)state;
    frl_log_set_level(FRL_LOG_WARN);
    test_make_data(data_dir, sizeof data_dir, "welcome", 300);
    snprintf(labels_path, sizeof labels_path, "%s/train-labels-idx1-ubyte", data_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_remove_data(data_dir);
    return 0;
}

static void welcome_for(const char *model, frl__welcome_t *w)
{
    memset(w, 0, sizeof *w);
    frl_model_spec_t spec;
    assert_int_equal(frl_model_spec_by_name(model, &spec), 0);
    snprintf(w->federation_id, sizeof w->federation_id, "fed-a");
    snprintf(w->model_name, sizeof w->model_name, "%s", model);
    memcpy(w->spec_hash, spec.hash, 32);
    frl_seed_from_u64(5, w->seed);
    w->keep = 0.5;
    w->epochs = 1;
    w->batch = 8;
    w->lr = 0.2;
    w->lr_decay = 1;
    w->momentum = 0.9;
    w->weight_decay = 1e-4;
}

static void test_matching_spec_hash_is_accepted(void **state)
{
    (void)state;
    frl__welcome_t w;
    welcome_for("lenet", &w);
    frl_model_spec_t spec;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), 0);
    assert_int_equal(spec.total_edges, 1625632);
    assert_int_equal(frl__welcome_check(&w, "lenet", &spec, why, sizeof why), 0);
}

static void test_spec_hash_mismatch_is_refused(void **state)
{
    (void)state;
    frl__welcome_t w;
    welcome_for("mlp", &w);
    w.spec_hash[31] ^= 1;
    frl_model_spec_t spec;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), FRL_EMISMATCH);
    assert_non_null(strstr(why, "spec hash mismatch"));
}

static void test_model_other_than_flag_is_refused(void **state)
{
    (void)state;
    frl__welcome_t w;
    welcome_for("mlp", &w);
    frl_model_spec_t spec;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "lenet", &spec, why, sizeof why), FRL_EMISMATCH);
    assert_non_null(strstr(why, "--model lenet"));
}

static void test_unknown_model_and_mask_rule_are_refused(void **state)
{
    (void)state;
    frl__welcome_t w;
    welcome_for("mlp", &w);
    snprintf(w.model_name, sizeof w.model_name, "resnet50");
    frl_model_spec_t spec;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), FRL_EMISMATCH);
    assert_non_null(strstr(why, "not in this client's model zoo"));
    welcome_for("mlp", &w);
    w.mask_rule = 7;
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), FRL_EUNSUPPORTED);
}

/* Same seed -> same shard, on every call; another seed -> another shard;
 * the shards of all clients are disjoint and cover the data (IID). And the
 * shard is exactly frl_partition_make's, as the server and frl-sim use. */
static void test_shard_from_seed_is_reproducible(void **state)
{
    (void)state;
    uint8_t s1[32], s2[32];
    frl_seed_from_u64(1, s1);
    frl_seed_from_u64(2, s2);
    frl_part_spec_t ps = {.kind = FRL_PART_IID};
    uint32_t *a = NULL, *b = NULL, *c = NULL, na, nb, nc, cls;
    assert_int_equal(frl__shard_indices(labels_path, &ps, 2, 3, s1, &a, &na, &cls), 0);
    assert_int_equal(frl__shard_indices(labels_path, &ps, 2, 3, s1, &b, &nb, &cls), 0);
    assert_int_equal(frl__shard_indices(labels_path, &ps, 2, 3, s2, &c, &nc, &cls), 0);
    assert_int_equal(cls, 10);
    assert_int_equal(na, 100);
    assert_int_equal(nb, na);
    assert_memory_equal(a, b, na * sizeof *a);
    assert_int_equal(nc, 100);
    assert_memory_not_equal(a, c, na * sizeof *a);
    /* Disjoint and covering. */
    uint8_t seen[300] = {0};
    for (uint32_t u = 0; u < 3; u++) {
        uint32_t *x = NULL, n;
        assert_int_equal(frl__shard_indices(labels_path, &ps, u, 3, s1, &x, &n, &cls), 0);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(x[i] < 300);
            assert_int_equal(seen[x[i]], 0);
            seen[x[i]] = 1;
        }
        free(x);
    }
    for (int i = 0; i < 300; i++)
        assert_int_equal(seen[i], 1);
    /* The same as the partition library's own answer. */
    uint8_t *labels = NULL;
    uint32_t nl = 0;
    assert_int_equal(frl_labels_load(labels_path, &labels, &nl), 0);
    frl_partition_t p;
    assert_int_equal(frl_partition_make(&ps, labels, nl, 10, 3, s1, &p), 0);
    assert_int_equal(frl_partition_size(&p, 2), na);
    assert_memory_equal(frl_partition_client(&p, 2), a, na * sizeof *a);
    frl_partition_free(&p);
    free(labels);
    free(a);
    free(b);
    free(c);
}

static void test_dirichlet_shard_is_reproducible(void **state)
{
    (void)state;
    uint8_t s1[32];
    frl_seed_from_u64(1, s1);
    frl_part_spec_t ps;
    assert_int_equal(frl_part_spec_parse("dirichlet:0.5", &ps), 0);
    uint32_t *a = NULL, *b = NULL, na, nb, cls;
    assert_int_equal(frl__shard_indices(labels_path, &ps, 1, 4, s1, &a, &na, &cls), 0);
    assert_int_equal(frl__shard_indices(labels_path, &ps, 1, 4, s1, &b, &nb, &cls), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
}

/* A repeated Welcome of the same federation reuses network, data and
 * trainer; another seed rebuilds them. */
static void test_same_federation_reuses_setup(void **state)
{
    (void)state;
    frl_client_opts_t o;
    frl_client_opts_defaults(&o);
    snprintf(o.data_dir, sizeof o.data_dir, "%s", data_dir);
    o.shards = 3;
    o.shard = 1;
    frl__welcome_t w;
    welcome_for("mlp", &w);
    frl_model_spec_t spec;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), 0);
    frl__local_t L;
    memset(&L, 0, sizeof L);
    assert_int_equal(frl__local_setup(&L, &o, &w, &spec, why, sizeof why), 0);
    assert_int_equal(L.data.n, 100);
    uint8_t *images = L.data.images;
    frl_trainer_t *tr = L.tr;
    const float *sorted0 = L.network.sorted_init[0];
    w.current_round = 4; /* after a server restart, further on */
    assert_int_equal(frl__local_setup(&L, &o, &w, &spec, why, sizeof why), 0);
    assert_ptr_equal(L.data.images, images);
    assert_ptr_equal(L.tr, tr);
    assert_ptr_equal(L.network.sorted_init[0], sorted0);
    /* A larger batch needs a new trainer only. */
    w.batch = 16;
    assert_int_equal(frl__local_setup(&L, &o, &w, &spec, why, sizeof why), 0);
    assert_ptr_equal(L.data.images, images);
    assert_int_equal(L.cfg.batch, 16);
    /* A new seed: everything again. */
    frl_seed_from_u64(6, w.seed);
    assert_int_equal(frl__local_setup(&L, &o, &w, &spec, why, sizeof why), 0);
    assert_int_equal(L.data.n, 100);
    frl__local_free(&L);
}

static void test_missing_data_is_reported(void **state)
{
    (void)state;
    frl_client_opts_t o;
    frl_client_opts_defaults(&o);
    snprintf(o.data_dir, sizeof o.data_dir, "/nonexistent/frl-data");
    frl__welcome_t w;
    welcome_for("mlp", &w);
    frl_model_spec_t spec;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), 0);
    frl__local_t L;
    memset(&L, 0, sizeof L);
    assert_int_equal(frl__local_setup(&L, &o, &w, &spec, why, sizeof why), FRL_ENOENT);
    assert_non_null(strstr(why, "/nonexistent/frl-data"));
    frl__local_free(&L);
}

/* A task's ranking must have the model's shape and be a permutation. */
static void test_task_ranking_shape_and_permutation_checked(void **state)
{
    (void)state;
    frl_client_opts_t o;
    frl_client_opts_defaults(&o);
    o.load_test = 0;
    snprintf(o.data_dir, sizeof o.data_dir, "%s", data_dir);
    frl__welcome_t w;
    welcome_for("mlp", &w);
    frl_model_spec_t spec, other;
    char why[512];
    assert_int_equal(frl__welcome_check(&w, "", &spec, why, sizeof why), 0);
    frl__local_t L;
    memset(&L, 0, sizeof L);
    assert_int_equal(frl__local_setup(&L, &o, &w, &spec, why, sizeof why), 0);

    Frl__V1__RankingBlob *good = test_blob_for(&spec);
    assert_int_equal(frl__local_take_task(&L, good, why, sizeof why), 0);

    assert_int_equal(frl_model_spec_by_name("conv2", &other), 0);
    Frl__V1__RankingBlob *wrong = test_blob_for(&other);
    assert_int_equal(frl__local_take_task(&L, wrong, why, sizeof why), FRL_EVOTE_LAYERS);

    /* Duplicate: layer 1 all zeros except... build [0, 0, 2, 3, ...]. */
    uint32_t n0 = spec.layers[0].n_edges, n1 = spec.layers[1].n_edges;
    uint32_t *l0 = malloc(n0 * sizeof *l0), *l1 = malloc(n1 * sizeof *l1);
    for (uint32_t i = 0; i < n0; i++)
        l0[i] = i;
    for (uint32_t i = 0; i < n1; i++)
        l1[i] = i;
    l1[1] = 0;
    const uint32_t *layers[2] = {l0, l1};
    uint32_t ne[2] = {n0, n1};
    Frl__V1__RankingBlob *dup = NULL;
    assert_int_equal(frl_msg_ranking_new(layers, ne, 2, &dup), 0);
    assert_int_equal(frl__local_take_task(&L, dup, why, sizeof why), FRL_EVOTE_DUPLICATE);
    assert_non_null(strstr(why, "layer 1"));

    free(l0);
    free(l1);
    frl_msg_ranking_free(good);
    frl_msg_ranking_free(wrong);
    frl_msg_ranking_free(dup);
    frl__local_free(&L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching_spec_hash_is_accepted),
        cmocka_unit_test(test_spec_hash_mismatch_is_refused),
        cmocka_unit_test(test_model_other_than_flag_is_refused),
        cmocka_unit_test(test_unknown_model_and_mask_rule_are_refused),
        cmocka_unit_test(test_shard_from_seed_is_reproducible),
        cmocka_unit_test(test_dirichlet_shard_is_reproducible),
        cmocka_unit_test(test_same_federation_reuses_setup),
        cmocka_unit_test(test_missing_data_is_reported),
        cmocka_unit_test(test_task_ranking_shape_and_permutation_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
