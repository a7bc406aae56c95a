/* server/state.c: the client registry, the seeded sample, the config hash
 * and the state file (round trip, corruption, atomic save and load). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "server/frl_server_state.h"

static void test_registry_assigns_dense_stable_indices(void **st)
{
    frl_registry_t r;
    assert_int_equal(frl_registry_init(&r, 1000), 0);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        uint32_t idx;
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(frl_registry_get(&r, id, &idx), 0);
        assert_int_equal(idx, (uint32_t)i);
    }
    for (int i = 999; i >= 0; i--) {
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(frl_registry_find(&r, id), i);
        uint32_t idx;
        assert_int_equal(frl_registry_get(&r, id, &idx), 0);
        assert_int_equal(idx, (uint32_t)i);
    }
    uint32_t idx;
    assert_int_equal(frl_registry_find(&r, "nobody"), -1);
    assert_int_equal(frl_registry_get(&r, "one-too-many", &idx), FRL_ETOOBIG);
    assert_int_equal(frl_registry_get(&r, "", &idx), FRL_EINVAL);
    frl_registry_free(&r);
}

static void test_sample_is_seeded_and_independent_of_connection_order(void **st)
{
    frl_registry_t r;
    assert_int_equal(frl_registry_init(&r, 64), 0);
    char id[32];
    for (int i = 0; i < 50; i++) {
        uint32_t idx;
        snprintf(id, sizeof id, "c%02d", i);
        assert_int_equal(frl_registry_get(&r, id, &idx), 0);
    }
    uint8_t seed[32];
    frl_seed_from_u64(7, seed);
    uint32_t cand[50], out1[10], out2[10], out3[10];
    for (uint32_t i = 0; i < 50; i++)
        cand[i] = i;
    assert_int_equal(frl_server_sample(seed, 3, 0, &r, cand, 50, 10, out1), 10);
    for (uint32_t i = 0; i < 50; i++)
        cand[i] = 49 - i; /* another connection order */
    assert_int_equal(frl_server_sample(seed, 3, 0, &r, cand, 50, 10, out2), 10);
    assert_memory_equal(out1, out2, sizeof out1);
    /* Distinct, and sorted by id. */
    for (int i = 1; i < 10; i++)
        assert_true(strcmp(r.e[out1[i - 1]].id, r.e[out1[i]].id) < 0);
    /* Another try gives another sample. */
    for (uint32_t i = 0; i < 50; i++)
        cand[i] = i;
    assert_int_equal(frl_server_sample(seed, 3, 1, &r, cand, 50, 10, out3), 10);
    assert_memory_not_equal(out1, out3, sizeof out1);
    /* Fewer candidates than asked: all of them. */
    uint32_t few[3] = {4, 2, 9}, outf[10];
    assert_int_equal(frl_server_sample(seed, 1, 0, &r, few, 3, 10, outf), 3);
    frl_registry_free(&r);
}

static void test_config_hash_binds_model_keep_rule_seed(void **st)
{
    uint8_t spec[32] = {1}, seed[32] = {2}, h0[32], h1[32];
    frl_server_config_hash("lenet", spec, 0.5, "abs", seed, h0);
    frl_server_config_hash("lenet", spec, 0.5, "abs", seed, h1);
    assert_memory_equal(h0, h1, 32);
    frl_server_config_hash("lenet", spec, 0.4, "abs", seed, h1);
    assert_memory_not_equal(h0, h1, 32);
    frl_server_config_hash("lenet", spec, 0.5, "signed", seed, h1);
    assert_memory_not_equal(h0, h1, 32);
    seed[5] ^= 1;
    frl_server_config_hash("lenet", spec, 0.5, "abs", seed, h1);
    assert_memory_not_equal(h0, h1, 32);
}

/* A small two-layer state with a registry of 3 clients. */
static void make_state(frl_state_t *s, uint32_t *ranking, frl_registry_t *reg)
{
    memset(s, 0, sizeof *s);
    s->rounds_done = 7;
    s->total_rounds = 20;
    snprintf(s->model, sizeof s->model, "mlp");
    memset(s->spec_hash, 0xab, 32);
    frl_seed_from_u64(42, s->seed);
    memset(s->config_hash, 0xcd, 32);
    s->n_layers = 2;
    s->n_edges[0] = 100;
    s->n_edges[1] = 7;
    s->total_edges = 107;
    for (uint32_t i = 0; i < 100; i++)
        ranking[i] = (i * 37) % 100;
    for (uint32_t i = 0; i < 7; i++)
        ranking[100 + i] = 6 - i;
    s->ranking = ranking;
    uint32_t idx;
    assert_int_equal(frl_registry_init(reg, 10), 0);
    assert_int_equal(frl_registry_get(reg, "alice", &idx), 0);
    reg->e[idx].accepted = 5;
    reg->e[idx].last_round = 7;
    assert_int_equal(frl_registry_get(reg, "bob", &idx), 0);
    assert_int_equal(frl_registry_get(reg, "carol@site-1", &idx), 0);
    reg->e[idx].rejected = 2;
}

static void test_state_round_trip(void **st)
{
    frl_state_t s, d;
    uint32_t ranking[107];
    frl_registry_t reg, reg2;
    make_state(&s, ranking, &reg);
    uint8_t *blob, *buf;
    size_t blen, len;
    assert_int_equal(frl_registry_encode(&reg, &blob, &blen), 0);
    assert_int_equal(frl_state_encode(&s, blob, blen, &buf, &len), 0);
    assert_int_equal(frl_registry_init(&reg2, 10), 0);
    assert_int_equal(frl_state_decode(buf, len, &d, &reg2), 0);
    assert_int_equal(d.rounds_done, 7);
    assert_int_equal(d.total_rounds, 20);
    assert_string_equal(d.model, "mlp");
    assert_memory_equal(d.seed, s.seed, 32);
    assert_memory_equal(d.config_hash, s.config_hash, 32);
    assert_int_equal(d.n_layers, 2);
    assert_int_equal(d.total_edges, 107);
    assert_memory_equal(d.ranking, ranking, sizeof ranking);
    assert_int_equal(reg2.n, 3);
    assert_int_equal(frl_registry_find(&reg2, "carol@site-1"), 2);
    assert_int_equal(reg2.e[0].accepted, 5);
    assert_int_equal(reg2.e[0].last_round, 7);
    assert_int_equal(reg2.e[2].rejected, 2);
    frl_state_free(&d);
    frl_registry_free(&reg2);
    free(buf);
    free(blob);
    frl_registry_free(&reg);
}

static void test_state_rejects_corruption_truncation_and_non_permutations(void **st)
{
    frl_state_t s, d;
    uint32_t ranking[107];
    frl_registry_t reg;
    make_state(&s, ranking, &reg);
    uint8_t *blob, *buf;
    size_t blen, len;
    assert_int_equal(frl_registry_encode(&reg, &blob, &blen), 0);
    assert_int_equal(frl_state_encode(&s, blob, blen, &buf, &len), 0);
    /* Every single-byte flip is caught (checksum or a structural check). */
    for (size_t i = 0; i < len; i += 7) {
        buf[i] ^= 0x10;
        assert_int_not_equal(frl_state_decode(buf, len, &d, NULL), 0);
        buf[i] ^= 0x10;
    }
    for (size_t cut = 0; cut < len; cut += 13)
        assert_int_not_equal(frl_state_decode(buf, cut, &d, NULL), 0);
    assert_int_equal(frl_state_decode(buf, len, &d, NULL), 0);
    frl_state_free(&d);
    free(buf);
    /* A ranking that is not a permutation (with a valid checksum). */
    ranking[3] = ranking[4];
    assert_int_equal(frl_state_encode(&s, blob, blen, &buf, &len), 0);
    assert_int_equal(frl_state_decode(buf, len, &d, NULL), FRL_EFORMAT);
    free(buf);
    free(blob);
    frl_registry_free(&reg);
}

static void test_state_save_load_in_a_directory(void **st)
{
    char dir[] = "/tmp/frl-test-state-XXXXXX";
    assert_non_null(mkdtemp(dir));
    frl_state_t s, d;
    uint32_t ranking[107];
    frl_registry_t reg;
    make_state(&s, ranking, &reg);
    assert_int_equal(frl_state_load(dir, &d, NULL), FRL_ENOENT);
    uint8_t *blob, *buf;
    size_t blen, len;
    assert_int_equal(frl_registry_encode(&reg, &blob, &blen), 0);
    assert_int_equal(frl_state_encode(&s, blob, blen, &buf, &len), 0);
    assert_int_equal(frl_state_save(dir, buf, len, &s), 0);
    assert_int_equal(frl_state_load(dir, &d, NULL), 0);
    assert_int_equal(d.rounds_done, 7);
    frl_state_free(&d);
    /* A second save replaces the first in full. */
    s.rounds_done = 8;
    free(buf);
    assert_int_equal(frl_state_encode(&s, blob, blen, &buf, &len), 0);
    assert_int_equal(frl_state_save(dir, buf, len, &s), 0);
    assert_int_equal(frl_state_load(dir, &d, NULL), 0);
    assert_int_equal(d.rounds_done, 8);
    frl_state_free(&d);
    char path[128];
    snprintf(path, sizeof path, "%s/state.frl", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/state.txt", dir);
    unlink(path);
    rmdir(dir);
    free(buf);
    free(blob);
    frl_registry_free(&reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_assigns_dense_stable_indices),
        cmocka_unit_test(test_sample_is_seeded_and_independent_of_connection_order),
        cmocka_unit_test(test_config_hash_binds_model_keep_rule_seed),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_rejects_corruption_truncation_and_non_permutations),
        cmocka_unit_test(test_state_save_load_in_a_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
