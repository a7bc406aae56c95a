/* The connection layer (net/frl_conn.h) on 127.0.0.1 with libuv: server
 * and clients on one loop, certificates made at test time. Every test ends
 * with frl_net_close on both sides and uv_loop_close(loop) == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "net/frl_conn.h"
#include "net_test_certs.h"
#include "proto/frl_rankpack.h"

#define MAX_CLIENTS 16

typedef struct cl_s {
    frl_conn_t *c;
    const char *id;
    const char *token;
    size_t submit_edges; /* RankSubmission size to send after Welcome (0 = none) */
    int opened, closed, close_status;
    int welcomes, acks, tasks, errors, error_code;
    int task_matches;
    int drains;
    int send_tally; /* send a PartialTally after Welcome */
    int chaos;      /* test_chaos: 1 close at open, 2 close right after a big send */
} cl_t;

typedef struct fx_s {
    uv_loop_t loop;
    uv_timer_t tick;
    frl_net_t *srv, *cli;
    int srv_open, srv_close, srv_close_status, srv_submissions;
    frl_conn_t *srv_conns[MAX_CLIENTS];
    int echo;                  /* server echoes a submission back as a RoundTask */
    Frl__V1__RankingBlob *big; /* the big ranking, to check the echo */
    cl_t cl[MAX_CLIENTS];
    int nets_done;
} fx_t;

static uint8_t spec_hash[32];

/* ---- callbacks ---- */

static void send_or_fail(frl_conn_t *c, Frl__V1__Envelope *env)
{
    int r = frl_conn_send(c, env);
    assert_int_equal(r, 0);
}

static void srv_on_open(frl_conn_t *c, void *ud)
{
    fx_t *fx = ud;
    if (fx->srv_open < MAX_CLIENTS)
        fx->srv_conns[fx->srv_open] = c;
    fx->srv_open++;
    assert_non_null(frl_conn_peer_id(c));
}

static void srv_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    fx_t *fx = ud;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    if (m->body_case == FRL__V1__ENVELOPE__BODY_HELLO) {
        assert_string_equal(m->hello->client_id, frl_conn_peer_id(c));
        uint8_t seed[32] = {7};
        Frl__V1__HyperParams hp = FRL__V1__HYPER_PARAMS__INIT;
        hp.local_epochs = 1;
        hp.batch_size = 32;
        hp.lr = 0.1;
        Frl__V1__Welcome w = FRL__V1__WELCOME__INIT;
        w.federation_id = "test-fed";
        w.model_name = "lenet";
        w.model_spec_hash.data = spec_hash;
        w.model_spec_hash.len = 32;
        w.seed.data = seed;
        w.seed.len = 32;
        w.keep_fraction = 0.5;
        w.hyper = &hp;
        env.body_case = FRL__V1__ENVELOPE__BODY_WELCOME;
        env.welcome = &w;
        send_or_fail(c, &env);
    } else if (m->body_case == FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION) {
        fx->srv_submissions++;
        if (fx->echo) {
            Frl__V1__RoundTask t = FRL__V1__ROUND_TASK__INIT;
            t.round = m->rank_submission->round + 1;
            t.global_ranking = m->rank_submission->ranking;
            env.body_case = FRL__V1__ENVELOPE__BODY_ROUND_TASK;
            env.round_task = &t;
            send_or_fail(c, &env);
        } else {
            Frl__V1__Ack a = FRL__V1__ACK__INIT;
            a.round = m->rank_submission->round;
            a.accepted = 1;
            env.body_case = FRL__V1__ENVELOPE__BODY_ACK;
            env.ack = &a;
            send_or_fail(c, &env);
        }
    }
}

static void srv_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    fx_t *fx = ud;
    fx->srv_close++;
    fx->srv_close_status = status;
}

static void cli_send_hello(frl_conn_t *c, cl_t *cl)
{
    Frl__V1__Hello h = FRL__V1__HELLO__INIT;
    h.client_id = (char *)cl->id;
    h.software_version = "test";
    h.model_name = "lenet";
    h.model_spec_hash.data = spec_hash;
    h.model_spec_hash.len = 32;
    if (cl->token) {
        h.token.data = (uint8_t *)cl->token;
        h.token.len = strlen(cl->token);
    }
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    int r = frl_conn_send(c, &env);
    assert_int_equal(r, 0);
}

static void cli_on_open(frl_conn_t *c, void *ud)
{
    cl_t *cl = frl_conn_get_data(c);
    cl->opened++;
    if (cl->chaos == 1) {
        frl_conn_close(c, 0, "chaos: leaving at once");
        return;
    }
    if (cl->id)
        cli_send_hello(c, cl);
}

/* A one-layer ranking blob of n edges: a fixed permutation. */
static Frl__V1__RankingBlob *make_blob(uint32_t n)
{
    uint32_t *idx = malloc((size_t)n * sizeof *idx);
    assert_non_null(idx);
    for (uint32_t i = 0; i < n; i++)
        idx[i] = (uint32_t)(((uint64_t)i * 2654435761u) % n);
    const uint32_t *layers[1] = {idx};
    Frl__V1__RankingBlob *b = NULL;
    assert_int_equal(frl_msg_ranking_new(layers, &n, 1, &b), 0);
    free(idx);
    return b;
}

static void cli_submit(frl_conn_t *c, fx_t *fx, cl_t *cl)
{
    Frl__V1__RankingBlob *blob =
        (fx->big && cl->submit_edges == fx->big->layers[0]->n_edges) ? fx->big : make_blob((uint32_t)cl->submit_edges);
    Frl__V1__RankSubmission s = FRL__V1__RANK_SUBMISSION__INIT;
    s.round = 1;
    s.ranking = blob;
    s.sample_count = 10;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
    env.rank_submission = &s;
    int r = frl_conn_send(c, &env);
    assert_int_equal(r, 0);
    if (blob != fx->big)
        frl_msg_ranking_free(blob);
}

static void cli_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    fx_t *fx = ud;
    cl_t *cl = frl_conn_get_data(c);
    switch (m->body_case) {
    case FRL__V1__ENVELOPE__BODY_WELCOME:
        cl->welcomes++;
        if (cl->submit_edges)
            cli_submit(c, fx, cl);
        if (cl->chaos == 2)
            frl_conn_close(c, FRL_EPROTO, "chaos: leaving mid-send");
        if (cl->send_tally) {
            uint8_t sums[8 * 4] = {0};
            Frl__V1__LayerTally lt = FRL__V1__LAYER_TALLY__INIT;
            lt.n_edges = 4;
            lt.sums.data = sums;
            lt.sums.len = sizeof sums;
            Frl__V1__LayerTally *lts[1] = {&lt};
            Frl__V1__PartialTally pt = FRL__V1__PARTIAL_TALLY__INIT;
            pt.round = 1;
            pt.n_votes = 1000;
            pt.n_layers = 1;
            pt.layers = lts;
            Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
            env.version = FRL_PROTO_VERSION;
            env.body_case = FRL__V1__ENVELOPE__BODY_PARTIAL_TALLY;
            env.partial_tally = &pt;
            assert_int_equal(frl_conn_send(c, &env), 0);
        }
        break;
    case FRL__V1__ENVELOPE__BODY_ACK:
        cl->acks++;
        break;
    case FRL__V1__ENVELOPE__BODY_ROUND_TASK: {
        cl->tasks++;
        const Frl__V1__LayerRanking *got = m->round_task->global_ranking->layers[0];
        const Frl__V1__LayerRanking *want = fx->big->layers[0];
        cl->task_matches = got->n_edges == want->n_edges && got->packed.len == want->packed.len &&
                           memcmp(got->packed.data, want->packed.data, got->packed.len) == 0;
        frl_conn_close(c, 0, "done");
        break;
    }
    case FRL__V1__ENVELOPE__BODY_ERROR:
        cl->errors++;
        cl->error_code = m->error->code;
        break;
    default:
        break;
    }
}

static void cli_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    cl_t *cl = frl_conn_get_data(c);
    cl->closed++;
    cl->close_status = status;
    cl->c = NULL;
}

static const frl_net_callbacks srv_cbs = {.on_open = srv_on_open, .on_message = srv_on_message, .on_close = srv_on_close};
static void cli_on_drain(frl_conn_t *c, void *ud)
{
    cl_t *cl = frl_conn_get_data(c);
    cl->drains++;
}

static const frl_net_callbacks cli_cbs = {
    .on_open = cli_on_open, .on_message = cli_on_message, .on_close = cli_on_close, .on_drain = cli_on_drain};

/* ---- fixture ---- */

static void on_tick(uv_timer_t *t)
{
}

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
    *state = fx;
    return 0;
}

static void srv_config(frl_net_config *cfg, frl_auth_mode auth)
{
    frl_net_config_defaults(cfg, FRL_NET_SERVER);
    cfg->auth = auth;
    cfg->ca_file = test_cert_file("ca.crt");
    cfg->cert_file = test_cert_file("server.crt");
    cfg->key_file = test_cert_file("server.key");
    if (auth == FRL_AUTH_TOKEN)
        cfg->token_file = test_cert_file("tokens.txt");
}

static void cli_config(frl_net_config *cfg, const char *cert_id)
{
    static char cert[600], key[600];
    frl_net_config_defaults(cfg, FRL_NET_CLIENT);
    cfg->ca_file = test_cert_file("ca.crt");
    cfg->max_tries = 1;
    if (cert_id) {
        snprintf(cert, sizeof cert, "%s/client-%s.crt", test_certs_path, cert_id);
        snprintf(key, sizeof key, "%s/client-%s.key", test_certs_path, cert_id);
        cfg->cert_file = cert;
        cfg->key_file = key;
    } else {
        cfg->auth = FRL_AUTH_TOKEN;
    }
}

static void fx_start(fx_t *fx, const frl_net_config *scfg, const frl_net_config *ccfg)
{
    assert_int_equal(frl_net_new(&fx->loop, scfg, &srv_cbs, fx, &fx->srv), 0);
    assert_int_equal(frl_net_listen(fx->srv, "127.0.0.1", 0), 0);
    assert_true(frl_net_port(fx->srv) > 0);
    assert_int_equal(frl_net_new(&fx->loop, ccfg, &cli_cbs, fx, &fx->cli), 0);
}

static cl_t *fx_connect(fx_t *fx, int i, const char *id, const char *token)
{
    cl_t *cl = &fx->cl[i];
    cl->id = id;
    cl->token = token;
    assert_int_equal(frl_net_connect(fx->cli, "localhost", frl_net_port(fx->srv), 0, &cl->c), 0);
    frl_conn_set_data(cl->c, cl);
    return cl;
}

/* Runs the loop until pred(fx) holds or timeout_ms passes; returns pred. */
static int fx_run_until(fx_t *fx, int (*pred)(fx_t *), unsigned timeout_ms)
{
    uv_timer_start(&fx->tick, on_tick, 10, 10);
    uv_update_time(&fx->loop);
    uint64_t end = uv_now(&fx->loop) + timeout_ms;
    while (!pred(fx) && uv_now(&fx->loop) < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->tick);
    return pred(fx);
}

static void on_net_done(void *ud)
{
    ((fx_t *)ud)->nets_done++;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    int want = 0;
    if (fx->cli) {
        frl_net_close(fx->cli, on_net_done, fx);
        want++;
    }
    if (fx->srv) {
        frl_net_close(fx->srv, on_net_done, fx);
        want++;
    }
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->nets_done, want);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    if (fx->big)
        frl_msg_ranking_free(fx->big);
    free(fx);
    return 0;
}

/* ---- predicates ---- */

static int p_cl0_closed(fx_t *fx)
{
    return fx->cl[0].closed > 0;
}
static int p_cl0_closed_and_srv_closed(fx_t *fx)
{
    return fx->cl[0].closed > 0 && fx->srv_close > 0;
}
static int p_cl0_welcomed(fx_t *fx)
{
    return fx->cl[0].welcomes > 0;
}
static int p_cl0_closed_cl1_acked(fx_t *fx)
{
    return fx->cl[0].closed > 0 && fx->cl[1].acks > 0;
}
static int p_two_welcomed(fx_t *fx)
{
    return fx->cl[0].welcomes > 0 && fx->cl[1].welcomes > 0;
}

static int p_two_closed(fx_t *fx)
{
    return fx->cl[0].closed > 0 && fx->cl[1].closed > 0;
}

/* ---- tests ---- */

static void test_mtls_10mb_message_round_trip(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    cli_config(&c, "alice");
    fx->echo = 1;
    fx->big = make_blob(4000000); /* 22 bits/edge: 11,000,000 bytes */
    assert_true(fx->big->layers[0]->packed.len > 10u * 1000 * 1000);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", NULL);
    cl->submit_edges = 4000000;
    assert_true(fx_run_until(fx, p_cl0_closed_and_srv_closed, 20000));
    assert_int_equal(cl->opened, 1);
    assert_int_equal(cl->welcomes, 1);
    assert_int_equal(cl->tasks, 1);
    assert_true(cl->task_matches);
    assert_int_equal(cl->close_status, 0);
    assert_int_equal(fx->srv_open, 1);
    assert_int_equal(fx->srv_submissions, 1);
    assert_int_equal(fx->srv_close_status, 0);
}

static void test_hello_with_wrong_cn_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    cli_config(&c, "alice");
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "bob", NULL); /* alice's certificate, says bob */
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->errors, 1);
    assert_int_equal(cl->error_code, FRL_EAUTH);
    assert_int_equal(cl->close_status, FRL_EAUTH);
    assert_int_equal(cl->welcomes, 0);
    assert_int_equal(fx->srv_open, 0);
}

static void test_plaintext_client_on_tls_port_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    cli_config(&c, NULL);
    c.insecure_plaintext = 1;
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "x");
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_true(cl->close_status < 0);
    assert_int_equal(cl->welcomes, 0);
    assert_int_equal(fx->srv_open, 0);
}

static void test_mtls_without_client_cert_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    cli_config(&c, NULL);
    c.auth = FRL_AUTH_MTLS;
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", NULL);
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_true(cl->close_status < 0);
    assert_int_equal(cl->welcomes, 0);
    assert_int_equal(fx->srv_open, 0);
}

static void test_client_rejects_server_from_other_ca(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    cli_config(&c, "alice");
    static char ca[600];
    snprintf(ca, sizeof ca, "%s/other/ca.crt", test_certs_path);
    c.ca_file = ca;
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", NULL);
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->opened, 0);
    assert_int_equal(cl->close_status, FRL_EAUTH);
    assert_int_equal(fx->srv_open, 0);
}

static void test_right_token_is_accepted(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "alice-secret");
    assert_true(fx_run_until(fx, p_cl0_welcomed, 5000));
    assert_int_equal(fx->srv_open, 1);
    assert_string_equal(frl_conn_peer_id(cl->c), "frl-server");
}

static void test_wrong_token_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "bob-secret");
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->errors, 1);
    assert_int_equal(cl->error_code, FRL_EAUTH);
    assert_int_equal(cl->welcomes, 0);
    assert_int_equal(fx->srv_open, 0);
}

static void test_unknown_client_id_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "mallory", "alice-secret");
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->error_code, FRL_EAUTH);
    assert_int_equal(fx->srv_open, 0);
}

static void test_oversized_frame_closes_only_that_connection(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    s.max_frame = 1u << 20;
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *bad = fx_connect(fx, 0, "alice", "alice-secret");
    bad->submit_edges = 1000000; /* 20 bits: 2.5 MB > 1 MiB */
    cl_t *good = fx_connect(fx, 1, "bob", "bob-secret");
    good->submit_edges = 1000;
    assert_true(fx_run_until(fx, p_cl0_closed_cl1_acked, 10000));
    assert_int_equal(bad->error_code, FRL_ETOOBIG);
    assert_int_equal(bad->close_status, FRL_ETOOBIG);
    assert_int_equal(good->closed, 0);
    assert_int_equal(fx->srv_submissions, 1);
    /* The good client keeps working after the bad one is gone. */
    good->acks = 0;
    fx->cl[0].closed = 1;
    cli_submit(good->c, fx, good);
    assert_true(fx_run_until(fx, p_cl0_closed_cl1_acked, 5000));
    assert_int_equal(fx->srv_submissions, 2);
}

static int p_cl0_opened(fx_t *fx)
{
    return fx->cl[0].opened > 0;
}

static void test_preauth_limit_applies_before_hello(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, NULL, NULL); /* TLS up, no Hello */
    assert_true(fx_run_until(fx, p_cl0_opened, 5000));
    cl->submit_edges = 100000; /* 17 bits: 212,500 bytes > 64 KiB */
    cli_submit(cl->c, fx, cl);
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->error_code, FRL_ETOOBIG);
    assert_int_equal(cl->close_status, FRL_ETOOBIG);
    assert_int_equal(fx->srv_open, 0);
    assert_int_equal(fx->srv_submissions, 0);
}

static void test_message_before_hello_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, NULL, NULL);
    assert_true(fx_run_until(fx, p_cl0_opened, 5000));
    cl->submit_edges = 100;
    cli_submit(cl->c, fx, cl);
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->error_code, FRL_EPROTO);
    assert_int_equal(fx->srv_submissions, 0);
}

static void test_one_encoded_frame_broadcast_to_two_clients(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    fx_connect(fx, 0, "alice", "alice-secret");
    fx_connect(fx, 1, "bob", "bob-secret");
    assert_true(fx_run_until(fx, p_two_welcomed, 5000));
    assert_int_equal(fx->srv_open, 2);
    fx->big = make_blob(30000);
    Frl__V1__RoundTask t = FRL__V1__ROUND_TASK__INIT;
    t.round = 2;
    t.global_ranking = fx->big;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_ROUND_TASK;
    env.round_task = &t;
    frl_msgbuf_t *buf = NULL;
    assert_int_equal(frl_net_encode(fx->srv, &env, &buf), 0);
    assert_int_equal(frl_conn_send_buf(fx->srv_conns[0], buf), 0);
    assert_int_equal(frl_conn_send_buf(fx->srv_conns[1], buf), 0);
    frl_msgbuf_unref(buf);
    assert_true(fx_run_until(fx, p_two_closed, 5000)); /* each closes after its task */
    assert_int_equal(fx->cl[0].tasks, 1);
    assert_int_equal(fx->cl[1].tasks, 1);
    assert_true(fx->cl[0].task_matches);
    assert_true(fx->cl[1].task_matches);
    env.version = 0;
    assert_int_equal(frl_net_encode(fx->srv, &env, &buf), FRL_EINVAL);
    assert_null(buf);
}

static int p_cl0_drained(fx_t *fx)
{
    return fx->cl[0].drains > 0;
}

static int p_cl0_two_acks(fx_t *fx)
{
    return fx->cl[0].acks >= 2;
}

static void test_send_queue_limit_gives_eagain_then_drain(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    c.max_send_queue = 100 * 1000;
    c.write_high_water = 64 * 1024;
    c.write_low_water = 16 * 1024;
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "alice-secret");
    assert_true(fx_run_until(fx, p_cl0_welcomed, 5000));
    fx->big = make_blob(300000); /* 19 bits: 712,500 bytes */
    Frl__V1__RankSubmission sub = FRL__V1__RANK_SUBMISSION__INIT;
    sub.round = 1;
    sub.ranking = fx->big;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
    env.rank_submission = &sub;
    assert_int_equal(frl_conn_send(cl->c, &env), 0); /* an empty queue takes any one message */
    assert_true(frl_conn_queued_bytes(cl->c) > 100 * 1000);
    assert_int_equal(frl_conn_send(cl->c, &env), FRL_EAGAIN);
    assert_true(fx_run_until(fx, p_cl0_drained, 5000));
    assert_int_equal(frl_conn_queued_bytes(cl->c), 0);
    assert_int_equal(frl_conn_send(cl->c, &env), 0);
    assert_true(fx_run_until(fx, p_cl0_two_acks, 5000));
    assert_int_equal(fx->srv_submissions, 2);
    assert_true(frl_conn_bytes_out(cl->c) > 2 * 712500);
}

static void test_partial_tally_from_plain_client_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "alice-secret"); /* Hello.role = 0 */
    cl->send_tally = 1;
    assert_true(fx_run_until(fx, p_cl0_closed_and_srv_closed, 5000));
    assert_int_equal(cl->welcomes, 1);
    assert_int_equal(cl->error_code, FRL_EPROTO);
    assert_int_equal(fx->srv_close_status, FRL_EPROTO);
}

static void on_local_done(void *ud)
{
    (*(int *)ud)++;
}

static int p_never(fx_t *fx)
{
    return 0;
}

static void test_listen_on_busy_port_fails_cleanly(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    cli_config(&c, "alice");
    fx_start(fx, &s, &c);
    frl_net_t *other = NULL;
    assert_int_equal(frl_net_new(&fx->loop, &s, &srv_cbs, fx, &other), 0);
    assert_int_equal(frl_net_listen(other, "127.0.0.1", frl_net_port(fx->srv)), FRL_EIO);
    int done = 0;
    frl_net_close(other, on_local_done, &done);
    fx_run_until(fx, p_never, 50);
    assert_int_equal(done, 1);
}

static void test_bad_token_file_is_refused_at_start(void **state)
{
    fx_t *fx = *state;
    static char path[600];
    snprintf(path, sizeof path, "%s/bad-tokens.txt", test_certs_path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "alice not-hex\n");
    fclose(f);
    frl_net_config s;
    srv_config(&s, FRL_AUTH_TOKEN);
    s.token_file = path;
    frl_net_t *net = NULL;
    assert_int_equal(frl_net_new(&fx->loop, &s, &srv_cbs, fx, &net), FRL_EFORMAT);
    assert_null(net);
    s.token_file = NULL;
    assert_int_equal(frl_net_new(&fx->loop, &s, &srv_cbs, fx, &net), FRL_EINVAL); /* token mode needs one */
    s.token_file = "/nonexistent/tokens";
    assert_int_equal(frl_net_new(&fx->loop, &s, &srv_cbs, fx, &net), FRL_ENOENT);
}

/* Many clients doing odd things at once (leaving at once, leaving in the
 * middle of a large send, wrong tokens, normal submissions), and both nets
 * closed at a random moment while all of that is in flight. Under ASan this
 * is the test for the teardown paths: no leak, no use after free, and the
 * loop closes cleanly. Four rounds with different seeds on one loop. */
static void test_chaos_clients_and_shutdown_mid_flight(void **state)
{
    fx_t *fx = *state;
    uint32_t rounds = getenv("FRL_CHAOS_ROUNDS") ? (uint32_t)atoi(getenv("FRL_CHAOS_ROUNDS")) : 4;
    for (uint32_t round = 0; round < rounds; round++) {
        uint8_t seed[FRL_SEED_BYTES];
        frl_seed_from_u64(round, seed);
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_TEST, 900, round);
        frl_net_config s, c;
        srv_config(&s, FRL_AUTH_TOKEN);
        s.max_frame = 1u << 20;
        cli_config(&c, NULL);
        c.max_tries = 2;
        c.backoff_base_ms = 5;
        memset(fx->cl, 0, sizeof fx->cl);
        fx->srv_open = fx->srv_close = fx->srv_submissions = 0;
        fx->echo = frl_rng_below(&rng, 2);
        fx->big = make_blob(200000); /* 18 bits: 450 KB */
        fx_start(fx, &s, &c);
        for (int i = 0; i < 12; i++) {
            uint32_t kind = frl_rng_below(&rng, 5);
            int alice = frl_rng_below(&rng, 2);
            cl_t *cl = fx_connect(fx, i, alice ? "alice" : "bob", kind == 3 ? "wrong" : (alice ? "alice-secret" : "bob-secret"));
            if (kind == 1)
                cl->chaos = 1;
            if (kind == 2 || kind == 4)
                cl->submit_edges = 200000;
            if (kind == 2)
                cl->chaos = 2;
            if (kind == 0)
                cl->submit_edges = 1000 + frl_rng_below(&rng, 5000000); /* some over max_frame */
        }
        fx_run_until(fx, p_never, 20 + frl_rng_below(&rng, 500));
        int done = 0;
        frl_net_close(fx->cli, on_local_done, &done);
        frl_net_close(fx->srv, on_local_done, &done);
        fx->cli = fx->srv = NULL;
        uv_update_time(&fx->loop);
        uint64_t end = uv_now(&fx->loop) + 10000;
        while (done < 2 && uv_now(&fx->loop) < end)
            uv_run(&fx->loop, UV_RUN_ONCE);
        assert_int_equal(done, 2);
        for (int i = 0; i < 12; i++)
            assert_int_equal(fx->cl[i].closed, 1); /* every client conn got exactly one on_close */
        assert_int_equal(fx->srv_close, fx->srv_open);
        frl_msg_ranking_free(fx->big);
        fx->big = NULL;
    }
}

static void test_max_conns_refuses_extra_connection(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    s.max_conns = 1;
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *a = fx_connect(fx, 0, "alice", "alice-secret");
    assert_true(fx_run_until(fx, p_cl0_welcomed, 5000));
    cl_t *b = fx_connect(fx, 1, "bob", "bob-secret");
    (void)a;
    fx->cl[0].closed = 1; /* reuse p_two_closed for "b closed" */
    assert_true(fx_run_until(fx, p_two_closed, 5000));
    assert_true(b->close_status < 0);
    assert_int_equal(b->welcomes, 0);
    assert_int_equal(fx->srv_open, 1);
}

static void test_handshake_timeout_closes_silent_peer(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_MTLS);
    s.handshake_timeout_ms = 200;
    cli_config(&c, NULL);
    c.insecure_plaintext = 1;
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, NULL, NULL); /* connects, never sends */
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(cl->opened, 1);
    assert_true(cl->close_status < 0);
}

static void test_idle_timeout_closes_and_heartbeats_keep_alive(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    s.idle_timeout_ms = 300;
    s.heartbeat_ms = 0;
    cli_config(&c, NULL);
    c.heartbeat_ms = 0;
    c.idle_timeout_ms = 0;
    fx_start(fx, &s, &c);
    cl_t *quiet = fx_connect(fx, 0, "alice", "alice-secret");
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    assert_int_equal(quiet->welcomes, 1);
    assert_int_equal(quiet->error_code, FRL_ETIMEDOUT);
}

static void test_heartbeats_keep_an_idle_connection_open(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    s.idle_timeout_ms = 300;
    cli_config(&c, NULL);
    c.heartbeat_ms = 50;
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "alice-secret");
    assert_false(fx_run_until(fx, p_cl0_closed, 1000));
    assert_int_equal(cl->welcomes, 1);
    assert_int_equal(fx->srv_close, 0);
}

static void test_connect_retries_then_reports_failure(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    c.max_tries = 3;
    c.backoff_base_ms = 20;
    c.backoff_max_ms = 40;
    fx_start(fx, &s, &c);
    /* A port nobody listens on: bind one, note it, close it. */
    uv_tcp_t probe;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&fx->loop, &probe);
    uv_tcp_bind(&probe, (const struct sockaddr *)&a, 0);
    int n = sizeof a;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&a, &n);
    int port = ntohs(a.sin_port);
    uv_close((uv_handle_t *)&probe, NULL);
    cl_t *cl = &fx->cl[0];
    uv_update_time(&fx->loop);
    uint64_t t0 = uv_now(&fx->loop);
    assert_int_equal(frl_net_connect(fx->cli, "127.0.0.1", port, 0, &cl->c), 0);
    frl_conn_set_data(cl->c, cl);
    assert_true(fx_run_until(fx, p_cl0_closed, 5000));
    uint64_t took = uv_now(&fx->loop) - t0;
    assert_int_equal(cl->opened, 0);
    assert_int_equal(cl->close_status, FRL_ECLOSED);
    assert_true(took >= 10 + 20); /* two waits: >= 10 ms and >= 20 ms */
}

static void test_backoff_grows_exponentially_with_cap_and_jitter(void **state)
{
    (void)state;
    assert_int_equal(frl_backoff_ms(500, 30000, 1, 0.5), 0);
    assert_int_equal(frl_backoff_ms(500, 30000, 2, 0.0), 250);
    assert_int_equal(frl_backoff_ms(500, 30000, 2, 0.999), 499);
    assert_int_equal(frl_backoff_ms(500, 30000, 3, 0.0), 500);
    assert_int_equal(frl_backoff_ms(500, 30000, 4, 0.0), 1000);
    assert_int_equal(frl_backoff_ms(500, 30000, 40, 0.0), 15000);
    assert_true(frl_backoff_ms(500, 30000, 40, 0.999) <= 30000);
}

static void test_send_before_open_and_after_close_is_refused(void **state)
{
    fx_t *fx = *state;
    frl_net_config s, c;
    srv_config(&s, FRL_AUTH_TOKEN);
    cli_config(&c, NULL);
    fx_start(fx, &s, &c);
    cl_t *cl = fx_connect(fx, 0, "alice", "alice-secret");
    Frl__V1__Bye bye = FRL__V1__BYE__INIT;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    assert_int_equal(frl_conn_send(cl->c, &env), FRL_ESTATE);
    assert_true(fx_run_until(fx, p_cl0_welcomed, 5000));
    env.version = 9;
    assert_int_equal(frl_conn_send(cl->c, &env), FRL_EINVAL);
    env.version = FRL_PROTO_VERSION;
    frl_conn_t *conn = cl->c;
    frl_conn_close(conn, 0, "test");
    assert_int_equal(frl_conn_send(conn, &env), FRL_ECLOSED);
    assert_true(fx_run_until(fx, p_cl0_closed_and_srv_closed, 5000));
    assert_int_equal(fx->srv_close_status, 0);
}

int main(void)
{
    frl_log_set_level(getenv("FRL_TEST_LOG") ? FRL_LOG_DEBUG : FRL_LOG_OFF);
    memset(spec_hash, 0x5a, sizeof spec_hash);
    test_certs_make("conn");
    FILE *f = fopen(test_cert_file("tokens.txt"), "w");
    if (!f)
        return 1;
    /* hex("alice-secret"), hex("bob-secret") */
    fprintf(f, "# test tokens\nalice 616c6963652d736563726574\n\nbob 626f622d736563726574\n");
    fclose(f);
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_mtls_10mb_message_round_trip),
        T(test_hello_with_wrong_cn_is_refused),
        T(test_plaintext_client_on_tls_port_is_refused),
        T(test_mtls_without_client_cert_is_refused),
        T(test_client_rejects_server_from_other_ca),
        T(test_right_token_is_accepted),
        T(test_wrong_token_is_refused),
        T(test_unknown_client_id_is_refused),
        T(test_oversized_frame_closes_only_that_connection),
        T(test_preauth_limit_applies_before_hello),
        T(test_message_before_hello_is_refused),
        T(test_one_encoded_frame_broadcast_to_two_clients),
        T(test_send_queue_limit_gives_eagain_then_drain),
        T(test_partial_tally_from_plain_client_is_refused),
        T(test_listen_on_busy_port_fails_cleanly),
        T(test_bad_token_file_is_refused_at_start),
        T(test_chaos_clients_and_shutdown_mid_flight),
        T(test_max_conns_refuses_extra_connection),
        T(test_handshake_timeout_closes_silent_peer),
        T(test_idle_timeout_closes_and_heartbeats_keep_alive),
        T(test_heartbeats_keep_an_idle_connection_open),
        T(test_connect_retries_then_reports_failure),
        cmocka_unit_test(test_backoff_grows_exponentially_with_cap_and_jitter),
        T(test_send_before_open_and_after_close_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
