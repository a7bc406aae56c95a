/* frl-fake-client: a minimal federation client for the end-to-end tests,
 * written directly on net/ + proto/ (no training). It speaks the agreed
 * flow (docs/protocol.md "Federation flow") and takes the frl-client flags
 * the tests need, plus fault-injection flags:
 *
 *   --server HOST:PORT --server-name NAME --ca F --cert F --key F
 *   --client-id ID [--clients N]   N connections: ID-0 .. ID-(N-1) (load test)
 *   --token HEX | --token-file F   (token-file: lines "client_id token", own id's line is used)
 *   --insecure-plaintext --model NAME (spec hash sent in Hello; default: zero hash)
 *   --delay-ms MS                  "training" time before submitting
 *   --die-on-round R               _exit(9) on receiving the task of round R (like kill -9)
 *   --invalid-on-round R           submit a ranking with a duplicate edge in round R
 *   --disconnect-on-round R        drop the connection on the task of round R, reconnect
 *   --max-retries N                reconnect tries (0 = unlimited)
 *   --reconnect-base-ms MS --reconnect-max-ms MS
 *
 * Submissions are the global ranking with a few seeded swaps (a valid
 * permutation that stays close to the consensus). Exits 0 after Bye "done",
 * 1 when it gives up. Logs one line per event on stderr. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/frl_error.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "net/frl_conn.h"
#include "proto/frl_msg.h"
#include "supermask/frl_model.h"

typedef struct fc_s fc_t;

typedef struct {
    fc_t *fc;
    char id[160];
    char token[512];
    frl_conn_t *c;
    unsigned tries;
    uv_timer_t delay;
    Frl__V1__Envelope *pending; /* decoded copy of the task to answer */
    int opened;
    uint32_t pending_round;
    int done;
    int disconnected_once;
} fcl_t;

struct fc_s {
    uv_loop_t *loop;
    frl_net_t *net;
    char host[256];
    int port;
    int n, n_done, n_failed;
    fcl_t *cl;
    unsigned delay_ms;
    int die_round, invalid_round, disconnect_round;
    uint8_t hash[32];
    int closing;
    unsigned max_tries;
};

static void fc_connect(fcl_t *k, unsigned delay_ms);

static void send_hello(fcl_t *k)
{
    Frl__V1__Hello h = FRL__V1__HELLO__INIT;
    h.client_id = k->id;
    h.software_version = "frl-fake-client";
    h.model_name = "";
    h.model_spec_hash.data = k->fc->hash;
    h.model_spec_hash.len = 32;
    uint8_t tok[256];
    size_t tok_len = 0;
    if (k->token[0] && sodium_hex2bin(tok, sizeof tok, k->token, strlen(k->token), NULL, &tok_len, NULL) == 0) {
        h.token.data = tok; /* the token file and --token hold hex; the wire carries the bytes */
        h.token.len = tok_len;
    }
    h.sample_count = 100;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    int r = frl_conn_send(k->c, &env);
    if (r)
        FRL_LOG_E("fake_hello", "client=%s error=%s", k->id, frl_err_name(r));
}

/* Builds the submission from the task's ranking: layer-wise a few swaps. */
static void submit(fcl_t *k)
{
    Frl__V1__RankingBlob *b = k->pending->round_task->global_ranking;
    size_t nl = b->n_layers;
    uint32_t **idx = calloc(nl, sizeof *idx);
    uint32_t *n_edges = calloc(nl, sizeof *n_edges);
    frl_rng_t rng;
    uint8_t seed[32];
    uint64_t h = 1469598103934665603ull;
    for (const char *p = k->id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    frl_seed_from_u64(h, seed);
    frl_rng_init(&rng, seed, FRL_STREAM_TEST, k->pending_round, 0);
    int ok = idx && n_edges;
    for (size_t l = 0; ok && l < nl; l++) {
        n_edges[l] = b->layers[l]->n_edges;
        idx[l] = malloc((size_t)n_edges[l] * sizeof **idx);
        if (!idx[l] || frl_msg_ranking_layer(b, l, idx[l]) != 0) {
            ok = 0;
            break;
        }
        uint32_t n = n_edges[l];
        for (uint32_t s = 0; n > 1 && s < 1 + n / 100; s++) {
            uint32_t i = frl_rng_below(&rng, n), j = frl_rng_below(&rng, n);
            uint32_t t = idx[l][i];
            idx[l][i] = idx[l][j];
            idx[l][j] = t;
        }
    }
    int invalid = (int)k->pending_round == k->fc->invalid_round;
    if (ok && invalid && n_edges[0] > 1)
        idx[0][1] = idx[0][0]; /* duplicate edge: FRL_EVOTE_DUPLICATE */
    Frl__V1__RankingBlob *out = NULL;
    if (ok && frl_msg_ranking_new((const uint32_t *const *)idx, n_edges, nl, &out) == 0) {
        Frl__V1__RankSubmission s = FRL__V1__RANK_SUBMISSION__INIT;
        s.round = k->pending_round;
        s.ranking = out;
        s.sample_count = 100;
        s.train_loss = 1.0;
        s.train_seconds = k->fc->delay_ms / 1000.0;
        Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
        env.version = FRL_PROTO_VERSION;
        env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
        env.rank_submission = &s;
        int r = k->c ? frl_conn_send(k->c, &env) : FRL_ECLOSED;
        FRL_LOG_I("fake_submit", "client=%s round=%u invalid=%d rc=%s", k->id, k->pending_round, invalid, frl_err_name(r));
        frl_msg_ranking_free(out);
    }
    for (size_t l = 0; idx && l < nl; l++)
        free(idx[l]);
    free(idx);
    free(n_edges);
}

static void on_delay(uv_timer_t *t)
{
    fcl_t *k = t->data;
    if (k->pending && k->c) {
        submit(k);
    }
    if (k->pending) {
        frl_msg_free(k->pending);
        k->pending = NULL;
    }
}

static void on_open(frl_conn_t *c, void *ud)
{
    fcl_t *k = frl_conn_get_data(c);
    k->tries = 0;
    k->opened = 1;
    send_hello(k);
}

static void on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    fcl_t *k = frl_conn_get_data(c);
    fc_t *fc = k->fc;
    switch (m->body_case) {
    case FRL__V1__ENVELOPE__BODY_WELCOME:
        FRL_LOG_I("fake_welcome", "client=%s round=%u/%u", k->id, m->welcome->current_round, m->welcome->total_rounds);
        break;
    case FRL__V1__ENVELOPE__BODY_ROUND_TASK: {
        uint32_t round = m->round_task->round;
        FRL_LOG_I("fake_task", "client=%s round=%u", k->id, round);
        if ((int)round == fc->die_round) {
            FRL_LOG_I("fake_die", "client=%s round=%u", k->id, round);
            fflush(stderr);
            _exit(9);
        }
        if ((int)round == fc->disconnect_round && !k->disconnected_once) {
            k->disconnected_once = 1;
            FRL_LOG_I("fake_disconnect", "client=%s round=%u", k->id, round);
            frl_conn_close(c, 0, "test disconnect");
            return;
        }
        /* Keep a copy of the ranking: re-pack the envelope and unpack it. */
        size_t len = frl__v1__envelope__get_packed_size(m);
        uint8_t *buf = malloc(len);
        if (!buf)
            return;
        frl__v1__envelope__pack(m, buf);
        Frl__V1__Envelope *copy = NULL;
        int r = frl_msg_unpack(buf, len, &copy, NULL);
        free(buf);
        if (r)
            return;
        if (k->pending)
            frl_msg_free(k->pending);
        k->pending = copy;
        k->pending_round = round;
        uv_timer_start(&k->delay, on_delay, fc->delay_ms, 0);
        break;
    }
    case FRL__V1__ENVELOPE__BODY_ACK:
        FRL_LOG_I("fake_ack", "client=%s round=%u accepted=%d", k->id, m->ack->round, m->ack->accepted);
        break;
    case FRL__V1__ENVELOPE__BODY_ERROR:
        FRL_LOG_I("fake_error", "client=%s code=%s text=\"%s\"", k->id, frl_err_name(m->error->code), m->error->text);
        break;
    case FRL__V1__ENVELOPE__BODY_BYE:
        FRL_LOG_I("fake_bye", "client=%s reason=\"%s\"", k->id, m->bye->reason);
        if (strcmp(m->bye->reason, "done") == 0)
            k->done = 1;
        break;
    default:
        break;
    }
}

static void net_done(void *ud)
{
    (void)ud;
}

static void on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    fcl_t *k = frl_conn_get_data(c);
    fc_t *fc = k->fc;
    k->c = NULL;
    FRL_LOG_I("fake_close", "client=%s status=%s reason=\"%s\" done=%d", k->id, frl_err_name(status), reason ? reason : "",
              k->done);
    if (fc->closing)
        return;
    if (k->done) {
        fc->n_done++;
    } else if (status == FRL_EAUTH || status == FRL_EMISMATCH || (!k->opened && fc->max_tries)) {
        fc->n_failed++;
    } else {
        k->opened = 0;
        k->tries++;
        fc_connect(k, k->disconnected_once == 1 && k->tries == 1 ? 200 : frl_net_backoff_ms(fc->net, k->tries + 1));
        if (k->disconnected_once == 1)
            k->disconnected_once = 2;
        return;
    }
    if (fc->n_done + fc->n_failed == fc->n) {
        fc->closing = 1;
        for (int i = 0; i < fc->n; i++) {
            uv_timer_stop(&fc->cl[i].delay);
            uv_close((uv_handle_t *)&fc->cl[i].delay, NULL);
        }
        frl_net_close(fc->net, net_done, fc);
    }
}

static void fc_connect(fcl_t *k, unsigned delay_ms)
{
    int r = frl_net_connect(k->fc->net, k->fc->host, k->fc->port, delay_ms, &k->c);
    if (r) {
        FRL_LOG_E("fake_connect", "client=%s error=%s", k->id, frl_err_name(r));
        return;
    }
    frl_conn_set_data(k->c, k);
}

static int read_token(const char *path, const char *id, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[1024];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char a[200], b[400];
        if (sscanf(line, "%199s %399s", a, b) == 2 && a[0] != '#' && strcmp(a, id) == 0) {
            snprintf(out, cap, "%s", b);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    const char *server = "127.0.0.1:7700", *server_name = NULL, *ca = NULL, *cert = NULL, *key = NULL, *id = "fake";
    const char *token = NULL, *token_file = NULL, *model = NULL;
    int plaintext = 0, n = 1;
    unsigned max_tries = 0, base_ms = 200, max_ms = 2000;
    fc_t fc;
    memset(&fc, 0, sizeof fc);
    fc.die_round = fc.invalid_round = fc.disconnect_round = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--server"))
            server = v;
        else if (ARG("--server-name"))
            server_name = v;
        else if (ARG("--ca"))
            ca = v;
        else if (ARG("--cert"))
            cert = v;
        else if (ARG("--key"))
            key = v;
        else if (ARG("--client-id"))
            id = v;
        else if (ARG("--clients"))
            n = atoi(v);
        else if (ARG("--token"))
            token = v;
        else if (ARG("--token-file"))
            token_file = v;
        else if (ARG("--model"))
            model = v;
        else if (ARG("--delay-ms"))
            fc.delay_ms = (unsigned)atoi(v);
        else if (ARG("--die-on-round"))
            fc.die_round = atoi(v);
        else if (ARG("--invalid-on-round"))
            fc.invalid_round = atoi(v);
        else if (ARG("--disconnect-on-round"))
            fc.disconnect_round = atoi(v);
        else if (ARG("--max-retries"))
            max_tries = (unsigned)atoi(v);
        else if (ARG("--reconnect-base-ms"))
            base_ms = (unsigned)atoi(v);
        else if (ARG("--reconnect-max-ms"))
            max_ms = (unsigned)atoi(v);
        else if (strcmp(a, "--insecure-plaintext") == 0)
            plaintext = 1;
        else {
            fprintf(stderr, "frl-fake-client: unknown argument %s\n", a);
            return 2;
        }
#undef ARG
    }
    const char *colon = strrchr(server, ':');
    if (!colon || (size_t)(colon - server) >= sizeof fc.host || n < 1) {
        fprintf(stderr, "frl-fake-client: bad --server\n");
        return 2;
    }
    memcpy(fc.host, server, (size_t)(colon - server));
    fc.port = atoi(colon + 1);
    if (model) {
        frl_model_spec_t spec;
        if (frl_model_spec_by_name(model, &spec) != 0)
            return 2;
        memcpy(fc.hash, spec.hash, 32);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    fc.loop = &loop;
    frl_net_config cfg;
    frl_net_config_defaults(&cfg, FRL_NET_CLIENT);
    cfg.ca_file = ca;
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.server_name = server_name;
    cfg.auth = cert ? FRL_AUTH_MTLS : FRL_AUTH_TOKEN;
    cfg.insecure_plaintext = plaintext;
    cfg.backoff_base_ms = base_ms;
    cfg.backoff_max_ms = max_ms;
    cfg.max_tries = max_tries;
    fc.max_tries = max_tries;
    frl_net_callbacks cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
    if (frl_net_new(&loop, &cfg, &cb, &fc, &fc.net) != 0) {
        fprintf(stderr, "frl-fake-client: net setup failed\n");
        return 1;
    }
    fc.n = n;
    fc.cl = calloc((size_t)n, sizeof *fc.cl);
    for (int i = 0; i < n; i++) {
        fcl_t *k = &fc.cl[i];
        k->fc = &fc;
        if (n == 1)
            snprintf(k->id, sizeof k->id, "%s", id);
        else
            snprintf(k->id, sizeof k->id, "%s-%d", id, i);
        if (token)
            snprintf(k->token, sizeof k->token, "%s", token);
        else if (token_file && read_token(token_file, k->id, k->token, sizeof k->token) != 0) {
            fprintf(stderr, "frl-fake-client: no token for %s in %s\n", k->id, token_file);
            return 2;
        }
        uv_timer_init(&loop, &k->delay);
        k->delay.data = k;
        fc_connect(k, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < n; i++)
        if (fc.cl[i].pending)
            frl_msg_free(fc.cl[i].pending);
    int rc = uv_loop_close(&loop);
    free(fc.cl);
    FRL_LOG_I("fake_exit", "done=%d failed=%d loop_close=%d", fc.n_done, fc.n_failed, rc);
    return fc.n_done == n ? 0 : 1;
}
