/* Message validation (proto/frl_msg.h): each validator accepts a
 * well-formed message and rejects the malformed variants. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "proto/frl_msg.h"
#include "proto/frl_rankpack.h"

static uint8_t hash32[32];

static Frl__V1__Hello make_hello(void)
{
    Frl__V1__Hello h = FRL__V1__HELLO__INIT;
    h.client_id = "client-1";
    h.software_version = "frl 0.1";
    h.model_name = "lenet";
    h.model_spec_hash.data = hash32;
    h.model_spec_hash.len = 32;
    h.sample_count = 600;
    return h;
}

/* Packs an envelope and unpacks it again through frl_msg_unpack. */
static int repack(const Frl__V1__Envelope *env, Frl__V1__Envelope **out)
{
    size_t n = frl__v1__envelope__get_packed_size(env);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(frl__v1__envelope__pack(env, buf), n);
    int r = frl_msg_unpack(buf, n, out, NULL);
    free(buf);
    return r;
}

static void test_hello_valid_is_accepted(void **state)
{
    (void)state;
    Frl__V1__Hello h = make_hello();
    assert_int_equal(frl_msg_validate_hello(&h, NULL), 0);
}

static void test_hello_rejects_bad_fields(void **state)
{
    (void)state;
    const char *why = NULL;
    Frl__V1__Hello h = make_hello();
    h.model_spec_hash.len = 31;
    assert_int_equal(frl_msg_validate_hello(&h, &why), FRL_EPROTO);
    assert_non_null(why);
    h = make_hello();
    h.client_id = "";
    assert_int_equal(frl_msg_validate_hello(&h, NULL), FRL_EPROTO);
    h.client_id = "has space";
    assert_int_equal(frl_msg_validate_hello(&h, NULL), FRL_EPROTO);
    h.client_id = "evil\nline";
    assert_int_equal(frl_msg_validate_hello(&h, NULL), FRL_EPROTO);
    h = make_hello();
    h.token.len = FRL_MSG_MAX_TOKEN + 1;
    h.token.data = calloc(1, h.token.len);
    assert_int_equal(frl_msg_validate_hello(&h, NULL), FRL_EPROTO);
    free(h.token.data);
    h = make_hello();
    h.role = 7;
    assert_int_equal(frl_msg_validate_hello(&h, NULL), FRL_EPROTO);
}

static void test_envelope_rejects_missing_body_and_wrong_version(void **state)
{
    (void)state;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    assert_int_equal(frl_msg_validate_envelope(&env, NULL), FRL_EPROTO);
    Frl__V1__Heartbeat hb = FRL__V1__HEARTBEAT__INIT;
    env.body_case = FRL__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    assert_int_equal(frl_msg_validate_envelope(&env, NULL), 0);
    env.version = 2;
    assert_int_equal(frl_msg_validate_envelope(&env, NULL), FRL_EUNSUPPORTED);
    env.version = 0;
    assert_int_equal(frl_msg_validate_envelope(&env, NULL), FRL_EPROTO);
}

static void test_zero_length_payload_is_a_protocol_error(void **state)
{
    (void)state;
    Frl__V1__Envelope *env = (Frl__V1__Envelope *)1;
    uint8_t dummy = 0;
    assert_int_equal(frl_msg_unpack(&dummy, 0, &env, NULL), FRL_EPROTO);
    assert_null(env);
}

static void test_random_bytes_are_rejected_without_leak(void **state)
{
    (void)state;
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(7, seed);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_TEST, 100, 0);
    uint8_t buf[512];
    int accepted = 0;
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + frl_rng_below(&rng, sizeof buf);
        frl_rng_fill(&rng, buf, n);
        Frl__V1__Envelope *env = NULL;
        int r = frl_msg_unpack(buf, n, &env, NULL);
        if (r == 0) {
            accepted++;
            frl_msg_free(env);
        } else {
            assert_true(r == FRL_EPROTO || r == FRL_EUNSUPPORTED);
            assert_null(env);
        }
    }
    assert_int_equal(accepted, 0);
}

static void test_ranking_lengths_are_checked(void **state)
{
    (void)state;
    const uint32_t sizes[2] = {288, 1280};
    uint32_t *idx[2];
    for (int l = 0; l < 2; l++) {
        idx[l] = malloc(sizes[l] * sizeof(uint32_t));
        for (uint32_t i = 0; i < sizes[l]; i++)
            idx[l][i] = sizes[l] - 1 - i;
    }
    Frl__V1__RankingBlob *blob = NULL;
    assert_int_equal(frl_msg_ranking_new((const uint32_t *const *)idx, sizes, 2, &blob), 0);
    assert_int_equal(frl_msg_validate_ranking(blob, NULL), 0);
    uint32_t back[1280];
    assert_int_equal(frl_msg_ranking_layer(blob, 1, back), 0);
    assert_memory_equal(back, idx[1], sizeof back);
    assert_int_equal(frl_msg_ranking_layer(blob, 2, back), FRL_ERANGE);
    blob->layers[0]->packed.len--;
    assert_int_equal(frl_msg_validate_ranking(blob, NULL), FRL_EPROTO);
    blob->layers[0]->packed.len++;
    blob->layers[1]->n_edges = 1281;
    assert_int_equal(frl_msg_validate_ranking(blob, NULL), FRL_EPROTO);
    blob->layers[1]->n_edges = 1280;
    blob->encoding = 3;
    assert_int_equal(frl_msg_validate_ranking(blob, NULL), FRL_EUNSUPPORTED);
    blob->encoding = 0;
    blob->n_layers = 0;
    assert_int_equal(frl_msg_validate_ranking(blob, NULL), FRL_EPROTO);
    frl_msg_ranking_free(blob);
    free(idx[0]);
    free(idx[1]);
}

static void test_welcome_checks_seed_keep_fraction_and_hyper(void **state)
{
    (void)state;
    uint8_t seed[32] = {1};
    Frl__V1__HyperParams hp = FRL__V1__HYPER_PARAMS__INIT;
    hp.local_epochs = 1;
    hp.batch_size = 32;
    hp.lr = 0.1;
    hp.momentum = 0.9;
    Frl__V1__Welcome w = FRL__V1__WELCOME__INIT;
    w.federation_id = "fed";
    w.model_name = "lenet";
    w.model_spec_hash.data = hash32;
    w.model_spec_hash.len = 32;
    w.seed.data = seed;
    w.seed.len = 32;
    w.keep_fraction = 0.5;
    w.hyper = &hp;
    w.total_rounds = 10;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), 0);
    w.keep_fraction = 0;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), FRL_EPROTO);
    w.keep_fraction = NAN;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), FRL_EPROTO);
    w.keep_fraction = 1.0;
    w.seed.len = 16;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), FRL_EPROTO);
    w.seed.len = 32;
    w.hyper = NULL;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), FRL_EPROTO);
    w.hyper = &hp;
    hp.momentum = 1.0;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), FRL_EPROTO);
    hp.momentum = 0.9;
    w.current_round = 11;
    assert_int_equal(frl_msg_validate_welcome(&w, NULL), FRL_EPROTO);
}

static void test_submission_rejects_non_finite_loss(void **state)
{
    (void)state;
    const uint32_t n = 4;
    const uint32_t perm[4] = {3, 1, 0, 2};
    const uint32_t *layers[1] = {perm};
    Frl__V1__RankingBlob *blob = NULL;
    assert_int_equal(frl_msg_ranking_new(layers, &n, 1, &blob), 0);
    Frl__V1__RankSubmission s = FRL__V1__RANK_SUBMISSION__INIT;
    s.round = 3;
    s.ranking = blob;
    s.train_loss = 0.5;
    assert_int_equal(frl_msg_validate_rank_submission(&s, NULL), 0);
    s.train_loss = INFINITY;
    assert_int_equal(frl_msg_validate_rank_submission(&s, NULL), FRL_EPROTO);
    s.train_loss = 0.5;
    s.ranking = NULL;
    assert_int_equal(frl_msg_validate_rank_submission(&s, NULL), FRL_EPROTO);
    frl_msg_ranking_free(blob);
}

static void test_partial_tally_sums_must_be_8_bytes_per_edge(void **state)
{
    (void)state;
    uint8_t sums[8 * 10] = {0};
    Frl__V1__LayerTally lt = FRL__V1__LAYER_TALLY__INIT;
    lt.n_edges = 10;
    lt.sums.data = sums;
    lt.sums.len = sizeof sums;
    Frl__V1__LayerTally *lts[1] = {&lt};
    Frl__V1__PartialTally pt = FRL__V1__PARTIAL_TALLY__INIT;
    pt.round = 1;
    pt.n_votes = 5;
    pt.n_layers = 1;
    pt.layers = lts;
    assert_int_equal(frl_msg_validate_partial_tally(&pt, NULL), 0);
    lt.sums.len = 79;
    assert_int_equal(frl_msg_validate_partial_tally(&pt, NULL), FRL_EPROTO);
    lt.sums.len = 80;
    pt.n_votes = 0;
    assert_int_equal(frl_msg_validate_partial_tally(&pt, NULL), FRL_EPROTO);
}

static void test_error_and_bye_bound_their_text(void **state)
{
    (void)state;
    Frl__V1__Error e = FRL__V1__ERROR__INIT;
    e.code = FRL_EAUTH;
    e.text = "bad token";
    assert_int_equal(frl_msg_validate_error(&e, NULL), 0);
    e.code = 5;
    assert_int_equal(frl_msg_validate_error(&e, NULL), FRL_EPROTO);
    char big[FRL_MSG_MAX_REASON + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    Frl__V1__Bye b = FRL__V1__BYE__INIT;
    b.reason = big;
    assert_int_equal(frl_msg_validate_bye(&b, NULL), FRL_EPROTO);
    b.reason = "done";
    assert_int_equal(frl_msg_validate_bye(&b, NULL), 0);
}

static void test_unpack_round_trip_preserves_the_message(void **state)
{
    (void)state;
    Frl__V1__Hello h = make_hello();
    uint32_t enc[2] = {0, 1};
    h.supported_encodings = enc;
    h.n_supported_encodings = 2;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    Frl__V1__Envelope *back = NULL;
    assert_int_equal(repack(&env, &back), 0);
    assert_int_equal(back->body_case, FRL__V1__ENVELOPE__BODY_HELLO);
    assert_string_equal(back->hello->client_id, "client-1");
    assert_int_equal(back->hello->sample_count, 600);
    size_t n1 = frl__v1__envelope__get_packed_size(&env), n2 = frl__v1__envelope__get_packed_size(back);
    assert_int_equal(n1, n2);
    uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
    frl__v1__envelope__pack(&env, b1);
    frl__v1__envelope__pack(back, b2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    frl_msg_free(back);
}

int main(void)
{
    memset(hash32, 0xab, sizeof hash32);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_valid_is_accepted),
        cmocka_unit_test(test_hello_rejects_bad_fields),
        cmocka_unit_test(test_envelope_rejects_missing_body_and_wrong_version),
        cmocka_unit_test(test_zero_length_payload_is_a_protocol_error),
        cmocka_unit_test(test_random_bytes_are_rejected_without_leak),
        cmocka_unit_test(test_ranking_lengths_are_checked),
        cmocka_unit_test(test_welcome_checks_seed_keep_fraction_and_hyper),
        cmocka_unit_test(test_submission_rejects_non_finite_loss),
        cmocka_unit_test(test_partial_tally_sums_must_be_8_bytes_per_edge),
        cmocka_unit_test(test_error_and_bye_bound_their_text),
        cmocka_unit_test(test_unpack_round_trip_preserves_the_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
