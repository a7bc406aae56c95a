/* frl-bench round: what the server costs per round, and whether one server
 * process carries a round of 1,000 concurrent TLS clients.
 *
 *   frl-bench round [--json] [--model lenet] [--clients 10] [--train-ms 6000] [--rounds 3]
 *                   [--load-model mlp] [--load-clients 1000] [--skip-overhead] [--skip-load] [--certs DIR]
 *
 * Two scenarios, each with the server (frl_server_core, exactly what
 * frl-server runs) in one forked process and all its clients in another
 * forked process (one libuv loop, every client its own TLS 1.3 connection,
 * server certificate verified, enrolment-token authentication so that 1,000
 * client certificates need not be minted), so that the server's peak RSS
 * (VmHWM) is its own:
 *
 *  1. overhead: `--clients` clients on `--model`, `--rounds` rounds. Each
 *     client answers a RoundTask after `--train-ms` (standing in for local
 *     training: 6000 ms is 10 clients x 600 images at ~500 images/s on 2
 *     cores, the reference setting) with a valid random ranking. Reported
 *     per round: round time (task sent -> next global ranking
 *     checkpointed), server overhead = time the server's loop was busy
 *     (TLS, decoding, validation + tally as votes arrive, task encoding) +
 *     thread-pool work (vote sort, checkpoint write), and its share of the
 *     round. Evaluation is off (eval-every 0); it is optional and measured
 *     by frl-bench train/infer.
 *  2. load: `--load-clients` clients in load-test mode (valid random
 *     rankings at once, no training) on `--load-model`, one round: time to
 *     connect them all (TLS handshakes + Hello/Welcome), the round time,
 *     votes accepted, and the server's peak RSS.
 *
 * RLIMIT_NOFILE is raised to the hard limit in both processes. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "bench/frl_bench.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "net/frl_conn.h"
#include "proto/frl_msg.h"
#include "server/frl_server.h"
#include "supermask/frl_model.h"

#define MAX_ROUNDS 64
#define N_PERMS 4

/* ---- client process ---------------------------------------------------- */

typedef struct lc_s lc_t;
typedef struct {
    lc_t *lc;
    char id[32];
    frl_conn_t *c;
    uv_timer_t t;
    uint32_t round;
    int done;
} lcl_t;

struct lc_s {
    uv_loop_t loop;
    frl_net_t *net;
    int port;
    int n, n_closed;
    unsigned train_ms;
    lcl_t *cl;
    frl_model_spec_t spec;
    uint32_t bufs_round;
    frl_msgbuf_t *bufs[N_PERMS];
    int closing;
};

/* N_PERMS random valid rankings for `round`, encoded once, shared by all. */
static int lc_make_bufs(lc_t *lc, uint32_t round)
{
    if (lc->bufs_round == round && lc->bufs[0])
        return 0;
    for (int i = 0; i < N_PERMS; i++)
        if (lc->bufs[i]) {
            frl_msgbuf_unref(lc->bufs[i]);
            lc->bufs[i] = NULL;
        }
    const frl_model_spec_t *sp = &lc->spec;
    uint32_t *idx[FRL_MAX_LAYERS] = {0};
    uint32_t n_edges[FRL_MAX_LAYERS];
    int rc = 0;
    for (int p = 0; p < N_PERMS && !rc; p++) {
        frl_rng_t rng;
        frl_rng_init(&rng, (const uint8_t *)"frl-bench-round-load-ranking-32b", FRL_STREAM_TEST, round, (uint32_t)p);
        for (int l = 0; l < sp->n_layers; l++) {
            n_edges[l] = sp->layers[l].n_edges;
            if (!idx[l])
                idx[l] = malloc((size_t)n_edges[l] * sizeof **idx);
            if (!idx[l]) {
                rc = FRL_ENOMEM;
                break;
            }
            for (uint32_t e = 0; e < n_edges[l]; e++)
                idx[l][e] = e;
            frl_rng_shuffle_u32(&rng, idx[l], n_edges[l]);
        }
        Frl__V1__RankingBlob *blob = NULL;
        if (!rc)
            rc = frl_msg_ranking_new((const uint32_t *const *)idx, n_edges, (size_t)sp->n_layers, &blob);
        if (!rc) {
            Frl__V1__RankSubmission s = FRL__V1__RANK_SUBMISSION__INIT;
            s.round = round;
            s.ranking = blob;
            s.sample_count = 1;
            Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
            env.version = FRL_PROTO_VERSION;
            env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
            env.rank_submission = &s;
            rc = frl_net_encode(lc->net, &env, &lc->bufs[p]);
            frl_msg_ranking_free(blob);
        }
    }
    for (int l = 0; l < FRL_MAX_LAYERS; l++)
        free(idx[l]);
    lc->bufs_round = round;
    return rc;
}

static void lc_submit(uv_timer_t *t)
{
    lcl_t *k = t->data;
    lc_t *lc = k->lc;
    if (!k->c || lc_make_bufs(lc, k->round) != 0)
        return;
    int i = (int)(k - lc->cl);
    (void)frl_conn_send_buf(k->c, lc->bufs[i % N_PERMS]);
}

/* The enrolment token of a bench client: 16 bytes derived from its id. */
static void bench_token(const char *id, uint8_t tok[16])
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (int i = 0; i < 16; i++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (uint8_t)(h >> 56);
    }
}

static void lc_on_open(frl_conn_t *c, void *ud)
{
    lcl_t *k = frl_conn_get_data(c);
    Frl__V1__Hello h = FRL__V1__HELLO__INIT;
    h.client_id = k->id;
    h.software_version = "frl-bench-round";
    h.model_name = k->lc->spec.name;
    h.model_spec_hash.data = k->lc->spec.hash;
    h.model_spec_hash.len = 32;
    uint8_t tok[16];
    bench_token(k->id, tok);
    h.token.data = tok;
    h.token.len = sizeof tok;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    (void)frl_conn_send(c, &env);
}

static void lc_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    lcl_t *k = frl_conn_get_data(c);
    if (m->body_case == FRL__V1__ENVELOPE__BODY_ROUND_TASK) {
        k->round = m->round_task->round;
        /* The ranking is made now, as part of the stand-in's "training":
         * made at submission time, the client process would compete with
         * the server for this machine while the server's time is measured
         * (a real client is on its own machine). */
        (void)lc_make_bufs(k->lc, k->round);
        uv_timer_start(&k->t, lc_submit, k->lc->train_ms, 0);
    } else if (m->body_case == FRL__V1__ENVELOPE__BODY_BYE) {
        k->done = 1;
    }
}

static void lc_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    lcl_t *k = frl_conn_get_data(c);
    lc_t *lc = k->lc;
    k->c = NULL;
    if (!k->done && !lc->closing && status != FRL_EAUTH) {
        /* Not connected yet (the server may still be starting): try again. */
        if (frl_net_connect(lc->net, "127.0.0.1", lc->port, 200, &k->c) == 0) {
            frl_conn_set_data(k->c, k);
            return;
        }
    }
    if (++lc->n_closed == lc->n && !lc->closing) {
        lc->closing = 1;
        for (int i = 0; i < lc->n; i++)
            uv_close((uv_handle_t *)&lc->cl[i].t, NULL);
        frl_net_close(lc->net, NULL, NULL);
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int run_clients(const char *certs, int port, int n, const char *model, unsigned train_ms)
{
    lc_t lc;
    memset(&lc, 0, sizeof lc);
    lc.port = port;
    lc.n = n;
    lc.train_ms = train_ms;
    if (frl_model_spec_by_name(model, &lc.spec) != 0)
        return 1;
    uv_loop_init(&lc.loop);
    char ca[1100];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    frl_net_config cfg;
    frl_net_config_defaults(&cfg, FRL_NET_CLIENT);
    cfg.ca_file = ca;
    cfg.auth = FRL_AUTH_TOKEN;
    cfg.server_name = "localhost";
    cfg.backoff_base_ms = 100;
    cfg.backoff_max_ms = 1000;
    cfg.handshake_timeout_ms = 60000;
    cfg.idle_timeout_ms = 0;
    frl_net_callbacks cb = {.on_open = lc_on_open, .on_message = lc_on_message, .on_close = lc_on_close};
    if (frl_net_new(&lc.loop, &cfg, &cb, &lc, &lc.net) != 0)
        return 1;
    lc.cl = calloc((size_t)n, sizeof *lc.cl);
    for (int i = 0; i < n; i++) {
        lcl_t *k = &lc.cl[i];
        k->lc = &lc;
        snprintf(k->id, sizeof k->id, "bench-%d", i);
        uv_timer_init(&lc.loop, &k->t);
        k->t.data = k;
        if (frl_net_connect(lc.net, "127.0.0.1", port, 0, &k->c) == 0)
            frl_conn_set_data(k->c, k);
    }
    uv_run(&lc.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < N_PERMS; i++)
        if (lc.bufs[i])
            frl_msgbuf_unref(lc.bufs[i]);
    uv_loop_close(&lc.loop);
    free(lc.cl);
    return 0;
}

/* ---- server process ---------------------------------------------------- */

typedef struct {
    int n_rounds;
    frl_round_metrics_t m[MAX_ROUNDS];
    double connect_s; /* server start -> first round open */
    long peak_rss_kb;
    int exit_status;
} srv_result_t;

typedef struct {
    srv_result_t *res;
    double t0;
} srv_ctx_t;

static void on_round(frl_server_t *s, const frl_round_metrics_t *m, void *ud)
{
    srv_ctx_t *ctx = ud;
    if (ctx->res->n_rounds < MAX_ROUNDS)
        ctx->res->m[ctx->res->n_rounds++] = *m;
    if (m->round == 1)
        ctx->res->connect_s = (frl_now_s() - ctx->t0) - m->round_s;
}

static int run_server(const char *certs, int port, int n, const char *model, int rounds, srv_result_t *res)
{
    frl_server_opts o;
    frl_server_opts_defaults(&o);
    snprintf(o.listen, sizeof o.listen, "127.0.0.1:%d", port);
    snprintf(o.cert, sizeof o.cert, "%s/server.crt", certs);
    snprintf(o.key, sizeof o.key, "%s/server.key", certs);
    snprintf(o.auth, sizeof o.auth, "token");
    snprintf(o.token_file, sizeof o.token_file, "%s/tokens-%d", certs, n);
    snprintf(o.model, sizeof o.model, "%s", model);
    snprintf(o.seed, sizeof o.seed, "1");
    o.rounds = rounds;
    o.per_round = n;
    o.min_clients = n;
    o.quorum = n;
    o.round_deadline = 600;
    o.wait_timeout = 300; /* never wait for ever if the clients fail */
    o.max_retries = 0;
    o.eval_every = 0;
    snprintf(o.eval_data, sizeof o.eval_data, "none");
    snprintf(o.state_dir, sizeof o.state_dir, "%s/state-%s-%d", certs, model, n);
    snprintf(o.log_level, sizeof o.log_level, "%s", getenv("FRL_BENCH_DEBUG") ? "info" : "warn");
    o.max_conns = n + 64;
    o.max_clients = n + 64;
    o.idle_timeout_ms = 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    frl_server_t *s = NULL;
    int st = 1;
    srv_ctx_t ctx = {res, frl_now_s()};
    if (frl_server_new(&loop, &o, &s, &st) == 0) {
        frl_server_set_round_cb(s, on_round, &ctx);
        uv_run(&loop, UV_RUN_DEFAULT);
        st = frl_server_exit_status(s);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    frl_server_free(s);
    res->exit_status = st;
    res->peak_rss_kb = frl_peak_rss_kb();
    return st;
}

/* ---- driver ------------------------------------------------------------- */

static int free_port(void)
{
    uv_loop_t loop;
    uv_tcp_t t;
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof ss, port = -1;
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (uv_tcp_bind(&t, (const struct sockaddr *)&a, 0) == 0 && uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return port;
}

/* Runs one scenario: server and clients in two child processes. */
static int scenario(const char *certs, const char *model, int n, int rounds, unsigned train_ms, srv_result_t *res)
{
    memset(res, 0, sizeof *res);
    char path[700];
    snprintf(path, sizeof path, "%s/tokens-%d", certs, n);
    FILE *tf = fopen(path, "w");
    if (!tf)
        return -1;
    for (int i = 0; i < n; i++) {
        char id[32];
        uint8_t tok[16];
        snprintf(id, sizeof id, "bench-%d", i);
        bench_token(id, tok);
        fprintf(tf, "%s ", id);
        for (int j = 0; j < 16; j++)
            fprintf(tf, "%02x", tok[j]);
        fputc('\n', tf);
    }
    fclose(tf);
    int port = free_port();
    int fds[2];
    if (port <= 0 || pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t sp = fork();
    if (sp == 0) {
        close(fds[0]);
        raise_nofile();
        /* The server prints its final-model line on stdout: keep the
         * benchmark's JSON clean. */
        if (!freopen("/dev/null", "w", stdout))
            _exit(1);
        srv_result_t r;
        memset(&r, 0, sizeof r);
        run_server(certs, port, n, model, rounds, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    pid_t cp = fork();
    if (cp == 0) {
        close(fds[0]);
        raise_nofile();
        _exit(run_clients(certs, port, n, model, train_ms));
    }
    size_t got = 0;
    while (got < sizeof *res) {
        ssize_t k = read(fds[0], (char *)res + got, sizeof *res - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fds[0]);
    int st;
    waitpid(sp, &st, 0);
    /* The clients end when the server said Bye; give them a moment. */
    for (int i = 0; i < 100; i++) {
        if (waitpid(cp, &st, WNOHANG) == cp)
            return got == sizeof *res ? 0 : -1;
        usleep(100000);
    }
    kill(cp, SIGKILL);
    waitpid(cp, &st, 0);
    return got == sizeof *res ? 0 : -1;
}

static double med(double *v, int n)
{
    return frl_bench_median(v, n);
}

int frl_bench_round(int argc, char **argv)
{
    int json = 0, n_over = 10, rounds = 3, n_load = 1000, skip_over = 0, skip_load = 0;
    unsigned train_ms = 6000;
    const char *model = "lenet", *load_model = "mlp", *certs_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--skip-overhead"))
            skip_over = 1;
        else if (!strcmp(a, "--skip-load"))
            skip_load = 1;
        else if (!strcmp(a, "--model") && v)
            model = argv[++i];
        else if (!strcmp(a, "--load-model") && v)
            load_model = argv[++i];
        else if (!strcmp(a, "--clients") && v)
            n_over = atoi(argv[++i]);
        else if (!strcmp(a, "--load-clients") && v)
            n_load = atoi(argv[++i]);
        else if (!strcmp(a, "--rounds") && v)
            rounds = atoi(argv[++i]);
        else if (!strcmp(a, "--train-ms") && v)
            train_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--certs") && v)
            certs_arg = argv[++i];
        else {
            fprintf(stderr, "usage: frl-bench round [--json] [--model lenet] [--clients 10] [--train-ms 6000] [--rounds 3]\n"
                            "                       [--load-model mlp] [--load-clients 1000] [--skip-overhead] [--skip-load]\n"
                            "                       [--certs DIR with ca.crt server.crt server.key]\n");
            return strcmp(a, "--help") == 0 ? 0 : 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || n_over < 1 || n_load < 1)
        return 2;
    frl_log_set_level(getenv("FRL_BENCH_DEBUG") ? FRL_LOG_INFO : FRL_LOG_WARN);
    char certs[512];
    if (certs_arg)
        snprintf(certs, sizeof certs, "%s", certs_arg);
    else if (frl_bench_make_certs("frl-bench-round", certs, sizeof certs) != 0) {
        fprintf(stderr, "frl-bench round: deploy/gen-certs.sh failed\n");
        return 1;
    }
    srv_result_t over, load;
    int rc_over = skip_over ? 1 : scenario(certs, model, n_over, rounds, train_ms, &over);
    int rc_load = skip_load ? 1 : scenario(certs, load_model, n_load, 1, 0, &load);

    FILE *o = stdout;
    if (json)
        fprintf(o, "{\"bench\":\"round\",\"clients_process\":\"separate forked process, one libuv loop, one TLS 1.3 "
                   "connection per client (server certificate verified; enrolment-token auth)\"");
    if (!skip_over) {
        if (rc_over != 0 || over.n_rounds < 1) {
            fprintf(stderr, "frl-bench round: overhead scenario failed (server exit %d)\n", over.exit_status);
        } else {
            double share[MAX_ROUNDS], ovs[MAX_ROUNDS], rs[MAX_ROUNDS], vote[MAX_ROUNDS], ck[MAX_ROUNDS];
            for (int i = 0; i < over.n_rounds; i++) {
                share[i] = over.m[i].overhead_share;
                ovs[i] = over.m[i].overhead_s;
                rs[i] = over.m[i].round_s;
                vote[i] = over.m[i].vote_s;
                ck[i] = over.m[i].checkpoint_s;
            }
            double max_share = 0;
            for (int i = 0; i < over.n_rounds; i++)
                max_share = share[i] > max_share ? share[i] : max_share;
            if (json) {
                fprintf(o, ",\"overhead\":{\"model\":\"%s\",\"clients\":%d,\"train_ms\":%u,\"rounds\":%d,\"per_round\":[", model,
                        n_over, train_ms, over.n_rounds);
                for (int i = 0; i < over.n_rounds; i++)
                    fprintf(o, "%s{\"round\":%u,\"round_s\":%.4f,\"overhead_s\":%.4f,\"overhead_share\":%.5f,\"vote_s\":%.4f,"
                               "\"checkpoint_s\":%.4f,\"server_cpu_s\":%.4f,\"cpu_share\":%.5f,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                               "\"accepted\":%u}",
                            i ? "," : "", over.m[i].round, over.m[i].round_s, over.m[i].overhead_s, over.m[i].overhead_share,
                            over.m[i].vote_s, over.m[i].checkpoint_s, over.m[i].cpu_s, over.m[i].cpu_s / over.m[i].round_s, (unsigned long long)over.m[i].bytes_in,
                            (unsigned long long)over.m[i].bytes_out, over.m[i].accepted);
                int n = over.n_rounds;
                fprintf(o, "],\"overhead_s_median\":%.4f,\"round_s_median\":%.4f,\"vote_s_median\":%.4f,"
                           "\"checkpoint_s_median\":%.4f,\"overhead_share_median\":%.5f,\"overhead_share_max\":%.5f,"
                           "\"server_peak_rss_kb\":%ld,\"target_share\":0.05}",
                        med(ovs, n), med(rs, n), med(vote, n), med(ck, n), med(share, n), max_share, over.peak_rss_kb);
            } else {
                printf("overhead: %s, %d clients, %u ms of training per round, %d rounds\n", model, n_over, train_ms,
                       over.n_rounds);
                for (int i = 0; i < over.n_rounds; i++)
                    printf("  round %u: %.3f s, server overhead %.3f s (%.2f%%), vote %.3f s, checkpoint %.3f s\n",
                           over.m[i].round, over.m[i].round_s, over.m[i].overhead_s, 100 * over.m[i].overhead_share,
                           over.m[i].vote_s, over.m[i].checkpoint_s);
                printf("  median overhead share %.2f%% (target <= 5%%), server peak RSS %ld KB\n",
                       100 * med(share, over.n_rounds), over.peak_rss_kb);
            }
        }
    }
    if (!skip_load) {
        if (rc_load != 0 || load.n_rounds < 1) {
            fprintf(stderr, "frl-bench round: load scenario failed (server exit %d)\n", load.exit_status);
            if (json)
                fprintf(o, ",\"load\":{\"clients\":%d,\"completed\":false}", n_load);
        } else if (json) {
            fprintf(o, ",\"load\":{\"model\":\"%s\",\"clients\":%d,\"completed\":true,\"accepted\":%u,\"connect_s\":%.3f,"
                       "\"round_s\":%.3f,\"overhead_s\":%.3f,\"server_cpu_s\":%.3f,\"vote_s\":%.4f,\"checkpoint_s\":%.4f,\"bytes_in\":%llu,"
                       "\"bytes_out\":%llu,\"server_peak_rss_kb\":%ld}",
                    load_model, n_load, load.m[0].accepted, load.connect_s, load.m[0].round_s, load.m[0].overhead_s, load.m[0].cpu_s,
                    load.m[0].vote_s, load.m[0].checkpoint_s, (unsigned long long)load.m[0].bytes_in,
                    (unsigned long long)load.m[0].bytes_out, load.peak_rss_kb);
        } else {
            printf("load: %d TLS clients (%s, load-test mode): all connected in %.2f s; round %.3f s, %u votes accepted; "
                   "server peak RSS %ld KB\n",
                   n_load, load_model, load.connect_s, load.m[0].round_s, load.m[0].accepted, load.peak_rss_kb);
        }
    }
    if (json)
        fprintf(o, "}\n");
    if (!certs_arg) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
        if (system(cmd) != 0)
            fprintf(stderr, "frl-bench round: could not remove %s\n", certs);
    }
    return (skip_over || rc_over == 0) && (skip_load || rc_load == 0) ? 0 : 1;
}
