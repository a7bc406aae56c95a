/* frl-client against an in-process fake server (net/ + proto/) on
 * 127.0.0.1: full rounds with training off the loop, reconnects, held
 * results, load-test mode, a refused Welcome, giving up, and mutual TLS. */
#include "client_test_util.h"

#include "common/frl_log.h"

static char data_dir[1024];

static int setup(void **state)
{
    (void)state;
    frl_log_set_level(FRL_LOG_WARN);
    test_make_data(data_dir, sizeof data_dir, "round", 400);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_remove_data(data_dir);
    return 0;
}

static void test_two_rounds_train_submit_ack_then_bye_exits_0(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 2, NULL);
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    o.shards = 2;
    o.shard = 1;
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.hellos, 1);
    assert_int_equal(f.submissions, 2);
    assert_int_equal(f.valid_submissions, 2);
    assert_int_equal(f.bad_submissions, 0);
    assert_int_equal(f.acks, 2);
    assert_int_equal(f.last_sample_count, 200); /* IID half of 400 */
    assert_true(f.last_train_seconds > 0);
}

static void test_rejected_vote_keeps_the_client_connected(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 2, NULL);
    f.reject_round = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.hellos, 1);
    assert_int_equal(f.valid_submissions, 2);
}

static void test_reconnects_after_server_drops_and_finishes(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 2, NULL);
    f.drop_after_submit = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.hellos, 2);
    assert_int_equal(f.drops, 1);
    assert_int_equal(f.valid_submissions, 2);
}

static void test_result_trained_while_disconnected_is_sent_after_reconnect(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 1, NULL);
    f.drop_after_task = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.hellos, 2);
    assert_int_equal(f.tasks_sent, 1); /* trained once, submitted on the new conn */
    assert_int_equal(f.valid_submissions, 1);
}

/* Same, but the new conn gets that round's task again (frl-server re-sends
 * it to a selected client that reconnects): still one submission. */
static void test_round_resent_after_reconnect_is_answered_once(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 1, NULL);
    f.drop_after_task = 1;
    f.resend_task = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    /* Reconnect after 1.5-3 s, so that the round has usually finished
     * training (the held-result path; the test above covers the other). */
    o.reconnect_base_ms = 3000;
    o.reconnect_max_ms = 3000;
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.hellos, 2);
    assert_int_equal(f.tasks_sent, 2);
    assert_int_equal(f.submissions, 1);
    assert_int_equal(f.valid_submissions, 1);
}

/* A task for round 2 while round 1 trains: round 1's result is dropped,
 * round 2 is trained next and submitted. */
static void test_newer_task_while_training_replaces_the_round(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 2, NULL);
    f.double_task = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.tasks_sent, 2);
    assert_int_equal(f.submissions, 1); /* only round 2 */
    assert_int_equal(f.valid_submissions, 1);
    assert_int_equal(f.bad_submissions, 0);
}

static void test_load_test_submits_valid_permutations_without_data(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "lenet", 2, NULL);
    frl_client_opts_t o;
    fake_client_opts(&f, &o, "/nonexistent"); /* no data is read */
    o.load_test = 1;
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.valid_submissions, 2);
    assert_int_equal(f.bad_submissions, 0);
}

static void test_spec_hash_mismatch_closes_and_exits_1(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 1, NULL);
    f.bad_hash = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    int code = fake_run(&f, &o, 30);
    assert_int_equal(code, FRL_CLIENT_EXIT_FAIL);
    assert_int_equal(f.hellos, 1); /* no reconnect */
    assert_int_equal(f.submissions, 0);
    assert_int_equal(f.client_errors, 1);
    assert_int_equal(f.last_client_error, FRL_EMISMATCH);
}

static void test_gives_up_after_max_retries_without_server(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 1, NULL);
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    o.server_port = 1; /* nothing listens there */
    o.max_retries = 3;
    o.reconnect_base_ms = 5;
    o.reconnect_max_ms = 20;
    int code = fake_run(&f, &o, 30);
    assert_int_equal(code, FRL_CLIENT_EXIT_FAIL);
    assert_int_equal(f.hellos, 0);
}

static void test_mutual_tls_round(void **state)
{
    (void)state;
    char certs[512], cmd[3000];
    snprintf(certs, sizeof certs, "%s/test-certs/client", FRL_BINARY_DIR);
    snprintf(cmd, sizeof cmd, "'%s/deploy/gen-certs.sh' '%s' c0 >/dev/null 2>&1", FRL_SOURCE_DIR, certs);
    assert_int_equal(system(cmd), 0);
    fake_t f;
    fake_init(&f, "mlp", 1, certs);
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    o.insecure_plaintext = 0;
    snprintf(o.ca, sizeof o.ca, "%s/ca.crt", certs);
    snprintf(o.cert, sizeof o.cert, "%s/client-c0.crt", certs);
    snprintf(o.key, sizeof o.key, "%s/client-c0.key", certs);
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.valid_submissions, 1);
}

static void test_token_mode_round(void **state)
{
    (void)state;
    char certs[512], cmd[3000], tokens[600];
    snprintf(certs, sizeof certs, "%s/test-certs/client", FRL_BINARY_DIR);
    snprintf(cmd, sizeof cmd, "'%s/deploy/gen-certs.sh' '%s' c0 >/dev/null 2>&1", FRL_SOURCE_DIR, certs);
    assert_int_equal(system(cmd), 0);
    snprintf(tokens, sizeof tokens, "%s/tokens", certs);
    FILE *tf = fopen(tokens, "w");
    assert_non_null(tf);
    fprintf(tf, "# id token\nc0 00112233445566778899aabbccddeeff\n");
    fclose(tf);
    fake_t f;
    fake_init_token(&f, "mlp", 1, certs, tokens);
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    o.insecure_plaintext = 0;
    snprintf(o.ca, sizeof o.ca, "%s/ca.crt", certs);
    char err[256];
    assert_int_equal(frl_client_opts_set(&o, "token", "00112233445566778899aabbccddeeff", err, sizeof err), 0);
    int code = fake_run(&f, &o, 60);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_int_equal(f.valid_submissions, 1);
    unlink(tokens);
}

static void test_bad_token_is_refused_and_exits_1(void **state)
{
    (void)state;
    char certs[512], tokens[600];
    snprintf(certs, sizeof certs, "%s/test-certs/client", FRL_BINARY_DIR); /* made by the test above */
    snprintf(tokens, sizeof tokens, "%s/tokens-bad", certs);
    FILE *tf = fopen(tokens, "w");
    assert_non_null(tf);
    fprintf(tf, "c0 00112233445566778899aabbccddeeff\n");
    fclose(tf);
    fake_t f;
    fake_init_token(&f, "mlp", 1, certs, tokens);
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    o.insecure_plaintext = 0;
    snprintf(o.ca, sizeof o.ca, "%s/ca.crt", certs);
    char err[256];
    assert_int_equal(frl_client_opts_set(&o, "token", "ffff", err, sizeof err), 0);
    int code = fake_run(&f, &o, 30);
    assert_int_equal(code, FRL_CLIENT_EXIT_FAIL);
    assert_int_equal(f.hellos, 0); /* refused by the connection layer */
    unlink(tokens);
}

/* SIGTERM while a round trains: the client says Bye, waits for the
 * worker, drops the result, exits 0 with nothing leaked. */
static void test_stop_during_training_exits_0(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, "mlp", 3, NULL);
    f.stop_on_task = 1;
    frl_client_opts_t o;
    fake_client_opts(&f, &o, data_dir);
    int code = fake_run(&f, &o, 30);
    assert_int_equal(code, FRL_CLIENT_EXIT_OK);
    assert_true(f.stopped_training);
    assert_int_equal(f.submissions, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_rounds_train_submit_ack_then_bye_exits_0),
        cmocka_unit_test(test_rejected_vote_keeps_the_client_connected),
        cmocka_unit_test(test_reconnects_after_server_drops_and_finishes),
        cmocka_unit_test(test_result_trained_while_disconnected_is_sent_after_reconnect),
        cmocka_unit_test(test_round_resent_after_reconnect_is_answered_once),
        cmocka_unit_test(test_newer_task_while_training_replaces_the_round),
        cmocka_unit_test(test_load_test_submits_valid_permutations_without_data),
        cmocka_unit_test(test_spec_hash_mismatch_closes_and_exits_1),
        cmocka_unit_test(test_gives_up_after_max_retries_without_server),
        cmocka_unit_test(test_mutual_tls_round),
        cmocka_unit_test(test_token_mode_round),
        cmocka_unit_test(test_bad_token_is_refused_and_exits_1),
        cmocka_unit_test(test_stop_during_training_exits_0),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
