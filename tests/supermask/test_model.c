#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "supermask/frl_model.h"

static void test_lenet_has_the_reference_layers_and_edges(void **state)
{
    (void)state;
    frl_model_spec_t s;
    assert_int_equal(frl_model_spec_by_name("lenet", &s), 0);
    assert_int_equal(s.n_layers, 4);
    const uint32_t want[4] = {288, 18432, 1605632, 1280};
    const uint32_t fan[4] = {9, 288, 12544, 128};
    for (int l = 0; l < 4; l++) {
        assert_int_equal(s.layers[l].n_edges, want[l]);
        assert_int_equal(s.layers[l].fan_in, fan[l]);
    }
    assert_int_equal(s.total_edges, 1625632);
    assert_int_equal(s.ops[s.n_ops - 1].out_c, 10);
}

static void test_conv8_matches_the_reference_edge_count(void **state)
{
    (void)state;
    frl_model_spec_t s;
    assert_int_equal(frl_model_spec_by_name("conv8", &s), 0);
    assert_int_equal(s.n_layers, 11);
    assert_int_equal(s.total_edges, 5275840);
    assert_int_equal(s.layers[8].n_edges, 524288); /* flatten 2048 -> 256 */
}

static void test_every_zoo_model_builds_with_distinct_hashes(void **state)
{
    (void)state;
    frl_model_spec_t a[8];
    int n = 0;
    for (const char *const *name = frl_model_names; *name; name++, n++) {
        assert_int_equal(frl_model_spec_by_name(*name, &a[n]), 0);
        assert_true(a[n].total_edges > 0);
    }
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            assert_memory_not_equal(a[i].hash, a[j].hash, 32);
}

static void test_spec_hash_is_stable_and_depends_on_shape(void **state)
{
    (void)state;
    frl_model_spec_t a, b, c;
    assert_int_equal(frl_model_spec_by_name("lenet", &a), 0);
    assert_int_equal(frl_model_spec_by_name("lenet", &b), 0);
    assert_memory_equal(a.hash, b.hash, 32);
    assert_int_equal(frl_model_spec_build("lenet", 3, 28, 28, 10, &c), 0);
    assert_memory_not_equal(a.hash, c.hash, 32);
    /* Pinned: changing the canonical encoding changes every model file. */
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", a.hash[i]);
    print_message("lenet spec hash %s\n", hex);
    assert_string_equal(hex, "01d9daaad8c29191e4c59621624a7e93a1fae69eb07b8699e513d7f330d3215b");
}

static void test_unknown_model_and_bad_shapes_are_rejected(void **state)
{
    (void)state;
    frl_model_spec_t s;
    assert_int_equal(frl_model_spec_by_name("resnet50", &s), FRL_EINVAL);
    assert_int_equal(frl_model_spec_by_name(NULL, &s), FRL_EINVAL);
    assert_int_equal(frl_model_spec_build("conv8", 3, 8, 8, 10, &s), FRL_EINVAL); /* pools down to nothing */
    assert_int_equal(frl_model_spec_build("mlp", 1, 28, 28, 1, &s), FRL_EINVAL);
}

static void test_weight_constants_are_signed_kaiming(void **state)
{
    (void)state;
    frl_model_spec_t s;
    frl_model_spec_by_name("lenet", &s);
    assert_true(frl_layer_weight_scale(&s.layers[0]) == (float)(sqrt(2.0) / 3.0));
    assert_true(frl_layer_weight_scale(&s.layers[3]) == 0.125f);
    assert_true(frl_layer_score_bound(&s.layers[1]) == 1.0 / sqrt(288.0));
}

static void test_network_signs_are_balanced_and_tail_bits_zero(void **state)
{
    (void)state;
    frl_model_spec_t s;
    frl_model_spec_by_name("lenet", &s);
    uint8_t seed[32];
    frl_seed_from_u64(0, seed);
    frl_network_t net;
    assert_int_equal(frl_network_init(&net, &s, seed, 1), 0);
    uint64_t plus = 0;
    for (uint32_t e = 0; e < s.layers[2].n_edges; e++)
        plus += frl_network_weight(&net, 2, e) > 0;
    assert_in_range(plus, 802816 - 5000, 802816 + 5000);
    for (int l = 0; l < s.n_layers; l++) {
        const float *si = net.sorted_init[l];
        double bound = frl_layer_score_bound(&s.layers[l]);
        for (uint32_t e = 1; e < s.layers[l].n_edges; e++)
            assert_true(si[e - 1] <= si[e]);
        assert_true(si[0] >= -bound && si[s.layers[l].n_edges - 1] < bound);
    }
    frl_network_free(&net);
}

/* Golden: the first 8 signs and initial scores of every lenet layer, made by
 * an independent pure-Python ChaCha20 (tools/gen_golden_lenet.py). */
static void test_weights_and_scores_match_independent_golden(void **state)
{
    (void)state;
    FILE *f = fopen(FRL_SOURCE_DIR "/tests/data/golden/lenet_step.txt", "r");
    assert_non_null(f);
    frl_model_spec_t s;
    frl_model_spec_by_name("lenet", &s);
    uint8_t seed[32];
    frl_seed_from_u64(0, seed);
    frl_network_t net;
    assert_int_equal(frl_network_init(&net, &s, seed, 0), 0);
    char line[512];
    int checked = 0;
    float *scores = malloc(sizeof(float) * s.layers[2].n_edges);
    assert_non_null(scores);
    while (fgets(line, sizeof line, f)) {
        int l;
        unsigned e, sign, bits;
        if (sscanf(line, "init %d %u %u %x", &l, &e, &sign, &bits) != 4)
            continue;
        frl_init_scores(seed, &s.layers[l], l, scores);
        uint32_t got;
        memcpy(&got, &scores[e], 4);
        assert_int_equal(got, bits);
        assert_int_equal(frl_network_weight(&net, l, e) > 0, (int)sign);
        checked++;
    }
    fclose(f);
    free(scores);
    frl_network_free(&net);
    assert_int_equal(checked, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet_has_the_reference_layers_and_edges),
        cmocka_unit_test(test_conv8_matches_the_reference_edge_count),
        cmocka_unit_test(test_every_zoo_model_builds_with_distinct_hashes),
        cmocka_unit_test(test_spec_hash_is_stable_and_depends_on_shape),
        cmocka_unit_test(test_unknown_model_and_bad_shapes_are_rejected),
        cmocka_unit_test(test_weight_constants_are_signed_kaiming),
        cmocka_unit_test(test_network_signs_are_balanced_and_tail_bits_zero),
        cmocka_unit_test(test_weights_and_scores_match_independent_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
