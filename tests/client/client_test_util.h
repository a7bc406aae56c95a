/* Test helpers for frl-client: a tiny IDX data set written at test time,
 * rankings as permutations, and an in-process fake server built on net/ and
 * proto/ that runs a federation of N rounds on the test's loop. */
#ifndef FRL_CLIENT_TEST_UTIL_H
#define FRL_CLIENT_TEST_UTIL_H

/* Not every test file uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aggregation/frl_vote.h"
#include "client/client_internal.h"
#include "common/frl_error.h"
#include "common/frl_rng.h"

/* ---- a small MNIST-layout data set (uncompressed IDX) ---- */

static void put_be32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, f);
}

/* Writes n 28x28 images whose pixels depend on the label (so training
 * learns something) into dir/train-*-ubyte. Returns dir. */
static const char *test_make_data(char *dir, size_t cap, const char *name, uint32_t n)
{
    snprintf(dir, cap, "%s/test-client-data-%s-%d", FRL_BINARY_DIR, name, (int)getpid());
    mkdir(dir, 0700);
    char path[1200];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fl = fopen(path, "wb");
    assert_non_null(fi);
    assert_non_null(fl);
    put_be32(fi, 0x00000803);
    put_be32(fi, n);
    put_be32(fi, 28);
    put_be32(fi, 28);
    put_be32(fl, 0x00000801);
    put_be32(fl, n);
    uint8_t seed[32];
    frl_seed_from_u64(99, seed);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_TEST, 1, 0);
    uint8_t img[784];
    for (uint32_t i = 0; i < n; i++) {
        uint8_t y = (uint8_t)(i % 10);
        for (int p = 0; p < 784; p++)
            img[p] = (uint8_t)((p / 78 == y ? 200 : 0) + frl_rng_below(&rng, 50));
        fwrite(img, 1, 784, fi);
        fputc(y, fl);
    }
    fclose(fi);
    fclose(fl);
    return dir;
}

static void test_remove_data(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    unlink(path);
    rmdir(dir);
}

/* A RankingBlob whose layer l is the permutation i -> (i * 7919 + l) mod n. */
static Frl__V1__RankingBlob *test_blob_for(const frl_model_spec_t *spec)
{
    const uint32_t *layers[FRL_MAX_LAYERS];
    uint32_t n_edges[FRL_MAX_LAYERS];
    uint32_t *bufs[FRL_MAX_LAYERS];
    for (int l = 0; l < spec->n_layers; l++) {
        uint32_t n = spec->layers[l].n_edges;
        n_edges[l] = n;
        bufs[l] = malloc((size_t)n * sizeof(uint32_t));
        assert_non_null(bufs[l]);
        for (uint32_t i = 0; i < n; i++)
            bufs[l][i] = i;
        layers[l] = bufs[l];
    }
    Frl__V1__RankingBlob *b = NULL;
    assert_int_equal(frl_msg_ranking_new(layers, n_edges, (size_t)spec->n_layers, &b), 0);
    for (int l = 0; l < spec->n_layers; l++)
        free(bufs[l]);
    return b;
}

/* 0 when the blob is a valid ranking for spec (every layer a permutation). */
static int test_blob_check(const frl_model_spec_t *spec, const Frl__V1__RankingBlob *b)
{
    if (frl_msg_validate_ranking(b, NULL))
        return FRL_EPROTO;
    frl_vote_layout_t lay;
    uint32_t n_edges[FRL_MAX_LAYERS], lens[FRL_MAX_LAYERS];
    for (int l = 0; l < spec->n_layers; l++)
        n_edges[l] = spec->layers[l].n_edges;
    if (frl_vote_layout_init(&lay, spec->n_layers, n_edges))
        return FRL_EINVAL;
    if ((int)b->n_layers != spec->n_layers)
        return FRL_EVOTE_LAYERS;
    uint32_t *all = malloc((size_t)spec->total_edges * sizeof *all);
    void *scratch = malloc(frl_vote_validate_scratch_size(&lay));
    int r = 0;
    for (int l = 0; l < spec->n_layers && !r; l++) {
        lens[l] = b->layers[l]->n_edges;
        if (lens[l] != n_edges[l])
            r = FRL_EVOTE_LENGTH;
        else
            r = frl_msg_ranking_layer(b, (size_t)l, all + lay.offset[l]);
    }
    if (!r)
        r = frl_vote_validate(&lay, all, spec->n_layers, lens, scratch, NULL);
    free(all);
    free(scratch);
    return r;
}

/* ---- the fake server ---- */

typedef struct fake_s {
    uv_loop_t loop;
    uv_timer_t guard;
    frl_net_t *srv;
    int port;
    const char *model;
    frl_model_spec_t spec;
    uint8_t seed[32];
    Frl__V1__RankingBlob *global;
    uint32_t rounds;       /* Bye "done" after this many accepted rounds */
    uint32_t round;        /* current round, from 1 */
    int bad_hash;          /* announce a wrong spec hash */
    int drop_after_submit; /* close (Bye "restarting") instead of Ack on the Nth submission */
    int drop_after_task;   /* close right after sending the Nth task (client trains disconnected) */
    int reject_round;      /* Ack accepted=0 for this round (then re-send nothing, go on) */
    int tasks_sent, hellos, submissions, valid_submissions, bad_submissions, acks, drops;
    int client_errors; /* Error messages from the client */
    int last_client_error;
    uint64_t last_sample_count;
    double last_train_seconds;
    frl_client_t *client;
    int client_done, srv_done, timed_out;
    int standalone;       /* fake_server_main: close the server after the last round */
    int stop_on_task;     /* frl_client_stop once training the Nth task (SIGTERM mid-round) */
    int stopped_training; /* it was stopped while training */
    int polls;
    int resend_task;        /* after a drop, re-send the open round's task on the new conn (as frl-server does) */
    int double_task;        /* after Welcome: task for round 1, then at once round 2 (the server moved on) */
    const char *token_file; /* fake_init with certs: token mode instead of mTLS */
} fake_t;

static void fake_send(frl_conn_t *c, Frl__V1__Envelope *env)
{
    env->version = FRL_PROTO_VERSION;
    assert_int_equal(frl_conn_send(c, env), 0);
}

static void fake_send_task(fake_t *f, frl_conn_t *c)
{
    Frl__V1__RoundTask t = FRL__V1__ROUND_TASK__INIT;
    t.round = f->round;
    t.global_ranking = f->global;
    t.lr = 0.2;
    t.deadline_unix_ms = 0;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.body_case = FRL__V1__ENVELOPE__BODY_ROUND_TASK;
    env.round_task = &t;
    fake_send(c, &env);
    f->tasks_sent++;
    if (f->drop_after_task && f->tasks_sent == f->drop_after_task) {
        f->drops++;
        frl_conn_close(c, 0, "restarting");
    }
}

static void fake_bye(frl_conn_t *c, const char *reason)
{
    frl_conn_close(c, 0, reason);
}

static void fake_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    fake_t *f = ud;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    if (m->body_case == FRL__V1__ENVELOPE__BODY_HELLO) {
        f->hellos++;
        uint8_t hash[32];
        memcpy(hash, f->spec.hash, 32);
        if (f->bad_hash)
            hash[0] ^= 0xff;
        Frl__V1__HyperParams hp = FRL__V1__HYPER_PARAMS__INIT;
        hp.local_epochs = 1;
        hp.batch_size = 8;
        hp.lr = 0.2;
        hp.lr_decay = 1.0;
        hp.momentum = 0.9;
        hp.weight_decay = 1e-4;
        Frl__V1__Welcome w = FRL__V1__WELCOME__INIT;
        w.federation_id = "fake-fed";
        w.model_name = (char *)f->model;
        w.model_spec_hash.data = hash;
        w.model_spec_hash.len = 32;
        w.seed.data = f->seed;
        w.seed.len = 32;
        w.keep_fraction = 0.5;
        w.hyper = &hp;
        w.current_round = f->round;
        w.total_rounds = f->rounds;
        env.body_case = FRL__V1__ENVELOPE__BODY_WELCOME;
        env.welcome = &w;
        fake_send(c, &env);
        /* After a drop mid-training the client holds its result: no new
         * task for that round, it must send what it has. */
        if (!(f->drop_after_task && f->drops > 0 && f->valid_submissions < (int)f->round) || f->resend_task)
            fake_send_task(f, c);
        if (f->double_task && f->round == 1) {
            f->round = 2;
            fake_send_task(f, c);
        }
    } else if (m->body_case == FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION) {
        const Frl__V1__RankSubmission *s = m->rank_submission;
        f->submissions++;
        f->last_sample_count = s->sample_count;
        f->last_train_seconds = s->train_seconds;
        int ok = s->round == f->round && test_blob_check(&f->spec, s->ranking) == 0;
        if (!ok) {
            f->bad_submissions++;
            return;
        }
        if (f->drop_after_submit && f->submissions == f->drop_after_submit) {
            f->drops++;
            fake_bye(c, "restarting");
            return;
        }
        f->valid_submissions++;
        Frl__V1__Ack a = FRL__V1__ACK__INIT;
        a.round = s->round;
        a.accepted = f->reject_round != (int)s->round;
        a.code = a.accepted ? 0 : FRL_EVOTE_DROPPED;
        env.body_case = FRL__V1__ENVELOPE__BODY_ACK;
        env.ack = &a;
        fake_send(c, &env);
        f->acks++;
        if (f->round >= f->rounds) {
            fake_bye(c, "done");
            return;
        }
        f->round++;
        fake_send_task(f, c);
    } else if (m->body_case == FRL__V1__ENVELOPE__BODY_ERROR) {
        f->client_errors++;
        f->last_client_error = m->error->code;
    }
}

static void fake_srv_closed(void *ud)
{
    fake_t *f = ud;
    f->srv_done = 1;
}

static void fake_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    fake_t *f = ud;
    (void)c;
    (void)status;
    (void)reason;
    if (f->standalone && f->acks >= (int)f->rounds && !f->srv_done) {
        uv_close((uv_handle_t *)&f->guard, NULL);
        frl_net_close(f->srv, fake_srv_closed, f);
    }
}

static void fake_client_done(void *ud)
{
    fake_t *f = ud;
    f->client_done = 1;
    uv_timer_stop(&f->guard);
    frl_net_close(f->srv, fake_srv_closed, f);
}

static void fake_guard(uv_timer_t *t)
{
    fake_t *f = t->data;
    if (f->stop_on_task && ++f->polls < 30000) {
        /* Polling (1 ms) for the client to be training the Nth task, then
         * stopping it; gives up after about 30 s. */
        if (f->tasks_sent < f->stop_on_task || !frl_client_training(f->client))
            return;
        f->stopped_training = 1;
        uv_timer_stop(t);
        frl_client_stop(f->client);
        return;
    }
    f->timed_out = 1;
    frl_client_stop(f->client);
}

/* Server on 127.0.0.1, plaintext unless certs are given (dir from
 * gen-certs.sh: mTLS). */
static void fake_init_token(fake_t *f, const char *model, uint32_t rounds, const char *certs, const char *token_file)
{
    memset(f, 0, sizeof *f);
    f->token_file = token_file;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->model = model;
    f->rounds = rounds;
    f->round = 1;
    assert_int_equal(frl_model_spec_by_name(model, &f->spec), 0);
    frl_seed_from_u64(42, f->seed);
    f->global = test_blob_for(&f->spec);
    frl_net_config cfg;
    frl_net_config_defaults(&cfg, FRL_NET_SERVER);
    char ca[1200], crt[1200], key[1200];
    if (certs) {
        snprintf(ca, sizeof ca, "%s/ca.crt", certs);
        snprintf(crt, sizeof crt, "%s/server.crt", certs);
        snprintf(key, sizeof key, "%s/server.key", certs);
        cfg.ca_file = ca;
        cfg.cert_file = crt;
        cfg.key_file = key;
        if (token_file) {
            cfg.auth = FRL_AUTH_TOKEN;
            cfg.token_file = token_file;
        }
    } else {
        cfg.insecure_plaintext = 1;
    }
    frl_net_callbacks cb = {.on_message = fake_on_message, .on_close = fake_on_close};
    assert_int_equal(frl_net_new(&f->loop, &cfg, &cb, f, &f->srv), 0);
    assert_int_equal(frl_net_listen(f->srv, "127.0.0.1", 0), 0);
    f->port = frl_net_port(f->srv);
    assert_true(f->port > 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
}

static void fake_init(fake_t *f, const char *model, uint32_t rounds, const char *certs)
{
    fake_init_token(f, model, rounds, certs, NULL);
}

/* Client options for the fake server. */
static void fake_client_opts(const fake_t *f, frl_client_opts_t *o, const char *data_dir)
{
    frl_client_opts_defaults(o);
    snprintf(o->server_host, sizeof o->server_host, "127.0.0.1");
    o->server_port = f->port;
    snprintf(o->client_id, sizeof o->client_id, "c0");
    o->insecure_plaintext = 1;
    if (data_dir)
        snprintf(o->data_dir, sizeof o->data_dir, "%s", data_dir);
    o->quiet = 1;
    o->reconnect_base_ms = 20;
    o->reconnect_max_ms = 100;
    o->max_retries = 5;
}

/* Runs the client against the fake server until both are closed, or
 * `limit_s` seconds pass (then the client is stopped and the test fails). */
static int fake_run(fake_t *f, const frl_client_opts_t *o, double limit_s)
{
    assert_int_equal(frl_client_new(&f->loop, o, fake_client_done, f, &f->client), 0);
    assert_int_equal(frl_client_start(f->client), 0);
    if (f->stop_on_task)
        uv_timer_start(&f->guard, fake_guard, 1, 1); /* poll; limit_s is not enforced then */
    else
        uv_timer_start(&f->guard, fake_guard, (uint64_t)(limit_s * 1000), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->client_done);
    assert_true(f->srv_done);
    assert_false(f->timed_out);
    int code = frl_client_exit_code(f->client);
    frl_client_free(f->client);
    f->client = NULL;
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    frl_msg_ranking_free(f->global);
    return code;
}

#endif
