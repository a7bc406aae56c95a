/* frl-bench wire: the network layer over TLS 1.3 on loopback.
 *
 *   frl-bench wire [--json] [--mb N] [--reps N] [--conns N] [--handshakes N] [--certs DIR]
 *
 * A server (its own uv loop, in a forked process, with frl-server's
 * allocator settings) and the client (the main thread's loop), one core
 * each at most and nothing shared, as on two machines:
 *
 *  - idle memory: N authenticated, idle TLS connections (TLS handshake +
 *    Hello/Welcome); RSS delta of both processes / N, so the figure counts
 *    a client end AND a server end per connection (kb_per_idle_conn);
 *    kb_per_idle_end is half of it. Measured first,
 *    before the bulk phase has grown the heaps.
 *  - handshakes: full TLS 1.3 handshakes (ECDHE X25519, ECDSA P-256
 *    certificate verified by the client), 32 in flight, each closed as soon
 *    as it is up; handshakes_per_s = the median over --hs-batches batches
 *    of completed / wall time. Never resumed:
 *    the TLS layer issues no tickets and keeps no session cache, so every
 *    one is a full handshake (the JSON says so: "resumed_handshakes": 0).
 *    handshake_client_cpu_us / handshake_server_cpu_us are the CPU time per
 *    handshake of each side (CPU clocks), the figures to compare
 *    when the machine is shared and wall time is not trustworthy.
 *
 * The machine may be shared, so every timed phase also reports figures per
 * CPU-second (CPU clocks of the client thread and the server process):
 * mb_per_cpu_s and handshakes_per_cpu_s divide by the busier side's CPU
 * time, i.e. what one dedicated core per side would sustain;
 * handshakes_per_server_cpu_s is the server's handshake capacity (the
 * client verifies two ECDSA signatures per handshake and is the busier
 * side here).
 *  - bulk: RankSubmissions of a lenet-sized ranking (layers 288, 18432,
 *    1605632, 1280 edges, about 4.25 MB encoded) sent back to back; the
 *    server unpacks + validates each and answers Ack; MB/s = payload bytes
 *    / time from first send to last Ack, median of --reps runs of --mb MB.
 *  - the ranking bit-packer itself on the 1605632-edge layer (MB/s of
 *    packed bytes).
 *
 * Certificates: --certs DIR (ca.crt, server.crt, server.key), or made with
 * deploy/gen-certs.sh in a temporary directory. */
#include "bench/frl_bench.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "net/frl_conn.h"
#include "proto/frl_rankpack.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_TOKEN "62656e63682d746f6b656e" /* hex("bench-token") */

static uint8_t g_hash[32];

/* ---------------- server process ---------------- */

/* Lives in a shared mapping: the server runs in a forked process, so that
 * each side has its own core, allocator and OpenSSL state, as in a real
 * deployment (in one process the two sides' OpenSSL 3 locks and caches are
 * shared and contended). */
typedef struct server_s {
    uv_loop_t loop;
    uv_signal_t stop;
    frl_net_t *net;
    frl_net_config cfg;
    atomic_int port;    /* 0 until listening, -1 on failure */
    atomic_int loop_rc; /* the server loop's uv_loop_close result, 1 until then */
    pid_t pid;
} server_t;

static void srv_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    if (m->body_case == FRL__V1__ENVELOPE__BODY_HELLO) {
        uint8_t seed[32] = {1};
        Frl__V1__HyperParams hp = FRL__V1__HYPER_PARAMS__INIT;
        hp.local_epochs = 1;
        hp.batch_size = 64;
        hp.lr = 0.1;
        Frl__V1__Welcome w = FRL__V1__WELCOME__INIT;
        w.federation_id = "bench";
        w.model_name = "lenet";
        w.model_spec_hash.data = g_hash;
        w.model_spec_hash.len = 32;
        w.seed.data = seed;
        w.seed.len = 32;
        w.keep_fraction = 0.5;
        w.hyper = &hp;
        env.body_case = FRL__V1__ENVELOPE__BODY_WELCOME;
        env.welcome = &w;
        frl_conn_send(c, &env);
    } else if (m->body_case == FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION) {
        Frl__V1__Ack a = FRL__V1__ACK__INIT;
        a.round = m->rank_submission->round;
        a.accepted = 1;
        env.body_case = FRL__V1__ENVELOPE__BODY_ACK;
        env.ack = &a;
        frl_conn_send(c, &env);
    }
}

static void srv_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
}

static void srv_on_stop(uv_signal_t *h, int signum)
{
    (void)signum;
    server_t *s = h->data;
    frl_net_close(s->net, NULL, NULL);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

/* The server process: serves until SIGTERM, then closes everything. */
static void server_main(server_t *s)
{
#if defined(__GLIBC__)
    /* As frl-server does (server.c): ranking-sized buffers stay in the heap. */
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
    uv_loop_init(&s->loop);
    uv_signal_init(&s->loop, &s->stop);
    s->stop.data = s;
    uv_signal_start(&s->stop, srv_on_stop, SIGTERM);
    frl_net_callbacks cb = {.on_message = srv_on_message, .on_close = srv_on_close};
    if (frl_net_new(&s->loop, &s->cfg, &cb, s, &s->net) < 0 || frl_net_listen(s->net, "127.0.0.1", 0) < 0) {
        atomic_store(&s->port, -1);
        uv_close((uv_handle_t *)&s->stop, NULL);
        if (s->net)
            frl_net_close(s->net, NULL, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        atomic_store(&s->loop_rc, uv_loop_close(&s->loop));
        return;
    }
    atomic_store(&s->port, frl_net_port(s->net));
    uv_run(&s->loop, UV_RUN_DEFAULT);
    atomic_store(&s->loop_rc, uv_loop_close(&s->loop));
}

/* ---------------- client side ---------------- */

enum { PH_IDLE, PH_HANDSHAKE, PH_BULK };

typedef struct bench_s {
    uv_loop_t loop;
    frl_net_t *net;
    int phase;
    /* idle */
    int welcomed, closed;
    /* handshakes */
    int hs_target, hs_started, hs_done, hs_inflight;
    char host[32];
    int port;
    /* bulk */
    frl_conn_t *bulk;
    frl_msgbuf_t *sub;
    int acks, want_acks, to_send;
    double t0, t1;
} bench_t;

static void cli_send_hello(frl_conn_t *c)
{
    static const uint8_t token[] = "bench-token";
    Frl__V1__Hello h = FRL__V1__HELLO__INIT;
    h.client_id = "bench";
    h.model_name = "lenet";
    h.software_version = "frl-bench";
    h.model_spec_hash.data = g_hash;
    h.model_spec_hash.len = 32;
    h.token.data = (uint8_t *)token;
    h.token.len = sizeof token - 1;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    frl_conn_send(c, &env);
}

static void hs_start_more(bench_t *b);

static void bulk_pump(bench_t *b)
{
    while (b->to_send > 0) {
        int r = frl_conn_send_buf(b->bulk, b->sub);
        if (r == FRL_EAGAIN)
            return; /* on_drain resumes */
        if (r < 0) {
            fprintf(stderr, "frl-bench wire: send failed: %s\n", frl_strerror(r));
            b->to_send = 0;
            return;
        }
        b->to_send--;
    }
}

static void cli_on_open(frl_conn_t *c, void *ud)
{
    bench_t *b = ud;
    if (b->phase == PH_HANDSHAKE) {
        b->hs_done++;
        frl_conn_close(c, 0, "bench");
        return;
    }
    cli_send_hello(c);
}

static void cli_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    bench_t *b = ud;
    if (m->body_case == FRL__V1__ENVELOPE__BODY_WELCOME) {
        b->welcomed++;
    } else if (m->body_case == FRL__V1__ENVELOPE__BODY_ACK) {
        b->acks++;
        if (b->acks == b->want_acks)
            b->t1 = frl_now_s();
    }
}

static void cli_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    bench_t *b = ud;
    b->closed++;
    if (b->phase == PH_HANDSHAKE) {
        b->hs_inflight--;
        hs_start_more(b);
    }
    if (c == b->bulk)
        b->bulk = NULL;
}

static void cli_on_drain(frl_conn_t *c, void *ud)
{
    bench_t *b = ud;
    if (c == b->bulk)
        bulk_pump(b);
}

static void hs_start_more(bench_t *b)
{
    int window = getenv("FRL_BENCH_INFLIGHT") ? atoi(getenv("FRL_BENCH_INFLIGHT")) : 32;
    while (b->hs_inflight < window && b->hs_started < b->hs_target) {
        frl_conn_t *c = NULL;
        if (frl_net_connect(b->net, b->host, b->port, 0, &c) < 0)
            return;
        b->hs_started++;
        b->hs_inflight++;
    }
}

static void run_until(bench_t *b, int *counter, int target, double timeout_s)
{
    double end = frl_now_s() + timeout_s;
    while (*counter < target && frl_now_s() < end)
        uv_run(&b->loop, UV_RUN_ONCE);
}

/* ---------------- helpers ---------------- */

static double clock_s(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds used so far by the client (this) thread and the server process. */
typedef struct cpu_s {
    double cli, srv;
} cpu_t;

static cpu_t cpu_now(pid_t srv)
{
    cpu_t c = {clock_s(CLOCK_THREAD_CPUTIME_ID), 0};
    clockid_t id;
    if (clock_getcpuclockid(srv, &id) == 0)
        c.srv = clock_s(id);
    return c;
}

/* Resident set of another process, in kB (0 if unknown). */
static long rss_kb_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The busier side's CPU seconds between a and b: what one core per side
 * would take, whatever else the machine is doing. */
static double cpu_busiest(cpu_t a, cpu_t b)
{
    double cli = b.cli - a.cli, srv = b.srv - a.srv;
    return cli > srv ? cli : srv;
}

static void raise_nofile(unsigned want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The lenet ranking, as one encoded RankSubmission frame. */
static frl_msgbuf_t *make_submission(size_t *payload_bytes)
{
    const uint32_t sizes[4] = {288, 18432, 1605632, 1280};
    uint32_t *idx[4];
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(1, seed);
    for (int l = 0; l < 4; l++) {
        idx[l] = malloc(sizes[l] * sizeof(uint32_t));
        if (!idx[l])
            return NULL;
        for (uint32_t i = 0; i < sizes[l]; i++)
            idx[l][i] = i;
        frl_rng_t rng;
        frl_rng_init(&rng, seed, FRL_STREAM_TEST, (uint32_t)l, 0);
        frl_rng_shuffle_u32(&rng, idx[l], sizes[l]);
    }
    Frl__V1__RankingBlob *blob = NULL;
    int r = frl_msg_ranking_new((const uint32_t *const *)idx, sizes, 4, &blob);
    for (int l = 0; l < 4; l++)
        free(idx[l]);
    if (r < 0)
        return NULL;
    Frl__V1__RankSubmission s = FRL__V1__RANK_SUBMISSION__INIT;
    s.round = 1;
    s.ranking = blob;
    s.sample_count = 600;
    s.train_loss = 0.3;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
    env.rank_submission = &s;
    frl_msgbuf_t *mb = NULL;
    r = frl_frame_encode(&env.base, FRL_FRAME_MAX_DEFAULT, &mb);
    frl_msg_ranking_free(blob);
    if (r < 0)
        return NULL;
    *payload_bytes = mb->len;
    return mb;
}

/* Pack / unpack speed on the big lenet layer, MB/s of packed bytes. */
static void bench_pack(double *pack_mbps, double *unpack_mbps)
{
    const uint32_t n = 1605632;
    uint32_t *idx = malloc(n * sizeof *idx), *back = malloc(n * sizeof *back);
    size_t size = frl_rank_packed_size(n);
    uint8_t *buf = malloc(size);
    *pack_mbps = *unpack_mbps = 0;
    if (!idx || !back || !buf)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        idx[i] = (uint32_t)(((uint64_t)i * 2654435761u) % n);
    double tp[7], tu[7];
    for (int rep = 0; rep < 7; rep++) {
        size_t len = 0;
        double t = clock_s(CLOCK_THREAD_CPUTIME_ID);
        frl_rank_pack(idx, n, buf, size, &len);
        tp[rep] = clock_s(CLOCK_THREAD_CPUTIME_ID) - t;
        t = clock_s(CLOCK_THREAD_CPUTIME_ID);
        frl_rank_unpack(buf, len, n, back);
        tu[rep] = clock_s(CLOCK_THREAD_CPUTIME_ID) - t;
    }
    *pack_mbps = (double)size / 1e6 / frl_bench_median(tp, 7);
    *unpack_mbps = (double)size / 1e6 / frl_bench_median(tu, 7);
out:
    free(idx);
    free(back);
    free(buf);
}

static void usage(void)
{
    fprintf(stderr, "usage: frl-bench wire [--json] [--mb N] [--reps N] [--conns N] [--handshakes N] [--hs-batches K] "
                    "[--certs DIR]\n"
                    "  --mb N          MB sent per bulk run (default 64)\n"
                    "  --reps N        bulk runs, the median is reported (default 5)\n"
                    "  --conns N       idle connections for the memory figure (default 1000)\n"
                    "  --handshakes N  full TLS handshakes per timed batch (default 1000)\n"
                    "  --hs-batches K  handshake batches, the median rate is reported (default 5)\n"
                    "  --certs DIR     use ca.crt/server.crt/server.key from DIR\n");
}

int frl_bench_wire(int argc, char **argv)
{
    int json = 0, reps = 5, conns = 1000, handshakes = 1000, hs_batches = 5;
    double mb = 64;
    const char *certs = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc)
            conns = atoi(argv[++i]);
        else if (strcmp(argv[i], "--handshakes") == 0 && i + 1 < argc)
            handshakes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hs-batches") == 0 && i + 1 < argc)
            hs_batches = atoi(argv[++i]);
        else if (strcmp(argv[i], "--certs") == 0 && i + 1 < argc)
            certs = argv[++i];
        else {
            usage();
            return strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ? 0 : 2;
        }
    }
    if (reps < 1 || reps > 100 || conns < 1 || conns > 100000 || handshakes < 1 || hs_batches < 1 || hs_batches > 32 || mb <= 0) {
        usage();
        return 2;
    }
    if (reps > 31)
        reps = 31;
    frl_log_set_level(getenv("FRL_BENCH_LOG") ? FRL_LOG_WARN : FRL_LOG_ERROR);
    memset(g_hash, 0x42, sizeof g_hash);
    raise_nofile((unsigned)conns * 2 + 256);

    char dir[256];
    if (certs) {
        snprintf(dir, sizeof dir, "%s", certs);
    } else if (frl_bench_make_certs("frl-bench-certs", dir, sizeof dir) < 0) {
        fprintf(stderr, "frl-bench wire: deploy/gen-certs.sh failed (use --certs DIR)\n");
        return 1;
    }
    char ca[300], crt[300], key[300], tokens[300];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/server.crt", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(tokens, sizeof tokens, "%s/bench-tokens.txt", dir);
    FILE *tf = fopen(tokens, "w");
    if (!tf) {
        fprintf(stderr, "frl-bench wire: cannot write %s\n", tokens);
        return 1;
    }
    fprintf(tf, "bench %s\n", BENCH_TOKEN);
    fclose(tf);

    /* Server process. */
    server_t *srv = mmap(NULL, sizeof *srv, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    bench_t *b = calloc(1, sizeof *b);
    if (srv == MAP_FAILED || !b)
        return 1;
    memset(srv, 0, sizeof *srv);
    atomic_store(&srv->loop_rc, 1);
    frl_net_config_defaults(&srv->cfg, FRL_NET_SERVER);
    srv->cfg.auth = FRL_AUTH_TOKEN;
    srv->cfg.ca_file = ca;
    srv->cfg.cert_file = crt;
    srv->cfg.key_file = key;
    srv->cfg.token_file = tokens;
    srv->cfg.max_conns = (unsigned)conns + 1024;
    srv->cfg.idle_timeout_ms = 0;
    srv->cfg.heartbeat_ms = 0;
    fflush(NULL);
    pid_t child = fork(); /* not straight into the shared srv: the child would write 0 there */
    if (child < 0)
        return 1;
    if (child == 0) {
        server_main(srv);
        _exit(0);
    }
    srv->pid = child;
    while (atomic_load(&srv->port) == 0)
        usleep(1000);
    if (atomic_load(&srv->port) < 0) {
        waitpid(srv->pid, NULL, 0);
        fprintf(stderr, "frl-bench wire: server failed to start\n");
        return 1;
    }

    /* Client. */
    uv_loop_init(&b->loop);
    frl_net_config cc;
    frl_net_config_defaults(&cc, FRL_NET_CLIENT);
    cc.auth = FRL_AUTH_TOKEN;
    cc.ca_file = ca;
    cc.server_name = "localhost";
    cc.max_tries = 1;
    cc.idle_timeout_ms = 0;
    cc.heartbeat_ms = 0;
    cc.max_send_queue = 32u << 20;
    if (getenv("FRL_BENCH_HW")) {
        cc.write_high_water = (size_t)atol(getenv("FRL_BENCH_HW")) << 10;
        cc.write_low_water = cc.write_high_water / 4;
    }
    frl_net_callbacks cb = {
        .on_open = cli_on_open, .on_message = cli_on_message, .on_close = cli_on_close, .on_drain = cli_on_drain};
    if (frl_net_new(&b->loop, &cc, &cb, b, &b->net) < 0) {
        fprintf(stderr, "frl-bench wire: client setup failed\n");
        return 1;
    }
    snprintf(b->host, sizeof b->host, "127.0.0.1");
    b->port = atomic_load(&srv->port);

    /* 1. idle memory */
    b->phase = PH_IDLE;
    uv_run(&b->loop, UV_RUN_NOWAIT);
    usleep(100000);
    long rss0 = frl_rss_kb() + rss_kb_of(srv->pid);
    int opened = 0;
    for (int i = 0; i < conns; i++) {
        frl_conn_t *c = NULL;
        if (frl_net_connect(b->net, b->host, b->port, 0, &c) == 0)
            opened++;
        if (i % 64 == 63)
            run_until(b, &b->welcomed, i + 1 - 32, 10);
    }
    run_until(b, &b->welcomed, opened, 30);
    usleep(200000); /* let the server settle */
    uv_run(&b->loop, UV_RUN_NOWAIT);
    long rss1 = frl_rss_kb() + rss_kb_of(srv->pid);
    int idle_ok = b->welcomed;
    double kb_per_conn = idle_ok > 0 ? (double)(rss1 - rss0) / idle_ok : 0;
    /* close them all (a fresh client net for the next phases) */
    frl_net_close(b->net, NULL, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    b->net = NULL;
    if (frl_net_new(&b->loop, &cc, &cb, b, &b->net) < 0)
        return 1;

    /* 2. handshakes: batches of `handshakes`, the median batch rate (the
     * machine may be shared: one slow stretch then moves one batch). */
    b->phase = PH_HANDSHAKE;
    double hs_rates[32];
    int hs_nb = 0;
    double th = 0;
    cpu_t hc0 = cpu_now(srv->pid);
    for (int k = 0; k < hs_batches; k++) {
        int done0 = b->hs_done;
        b->hs_target += handshakes;
        double t0 = frl_now_s();
        hs_start_more(b);
        run_until(b, &b->closed, b->closed + handshakes, 60);
        double dt = frl_now_s() - t0;
        th += dt;
        if (b->hs_done - done0 == handshakes && dt > 0)
            hs_rates[hs_nb++] = handshakes / dt;
    }
    cpu_t hc1 = cpu_now(srv->pid);
    double hs_min = hs_nb ? hs_rates[0] : 0, hs_max = hs_min;
    for (int k = 1; k < hs_nb; k++) {
        hs_min = hs_rates[k] < hs_min ? hs_rates[k] : hs_min;
        hs_max = hs_rates[k] > hs_max ? hs_rates[k] : hs_max;
    }
    double hs_per_s = frl_bench_median(hs_rates, hs_nb);
    double hs_per_cpu_s = b->hs_done / cpu_busiest(hc0, hc1);
    double hs_per_srv_cpu_s = hc1.srv > hc0.srv ? b->hs_done / (hc1.srv - hc0.srv) : 0;
    double hs_cli_us = b->hs_done > 0 ? (hc1.cli - hc0.cli) * 1e6 / b->hs_done : 0;
    double hs_srv_us = b->hs_done > 0 ? (hc1.srv - hc0.srv) * 1e6 / b->hs_done : 0;
    if (getenv("FRL_BENCH_DEBUG"))
        fprintf(stderr, "handshakes: wall %.3f s, client cpu %.3f s, server cpu %.3f s\n", th, hc1.cli - hc0.cli,
                hc1.srv - hc0.srv);

    /* 3. bulk */
    b->phase = PH_BULK;
    size_t sub_bytes = 0;
    b->sub = make_submission(&sub_bytes);
    double mbps = 0, mb_per_cpu_s = 0;
    double runs[32], cruns[32];
    int nruns = 0;
    if (b->sub) {
        int welcomed0 = b->welcomed;
        frl_conn_t *c = NULL;
        if (frl_net_connect(b->net, b->host, b->port, 0, &c) == 0) {
            b->bulk = c;
            run_until(b, &b->welcomed, welcomed0 + 1, 10);
        }
        int per_run = (int)(mb * 1e6 / (double)sub_bytes + 0.5);
        if (per_run < 1)
            per_run = 1;
        for (int r = 0; r < reps && b->bulk; r++) {
            b->acks = 0;
            b->want_acks = per_run;
            b->to_send = per_run;
            cpu_t c0 = cpu_now(srv->pid);
            b->t0 = frl_now_s();
            bulk_pump(b);
            run_until(b, &b->acks, per_run, 60);
            if (b->acks == per_run) {
                runs[nruns] = (double)sub_bytes * per_run / 1e6 / (b->t1 - b->t0);
                cpu_t c1 = cpu_now(srv->pid);
                if (getenv("FRL_BENCH_DEBUG"))
                    fprintf(stderr, "bulk run: wall %.3f s, client cpu %.3f s, server cpu %.3f s\n", b->t1 - b->t0, c1.cli - c0.cli,
                            c1.srv - c0.srv);
                cruns[nruns++] = (double)sub_bytes * per_run / 1e6 / cpu_busiest(c0, c1);
            }
        }
        if (nruns > 0) {
            mbps = frl_bench_median(runs, nruns);
            mb_per_cpu_s = frl_bench_median(cruns, nruns);
        }
        frl_msgbuf_unref(b->sub);
    }
    double pack_mbps = 0, unpack_mbps = 0;
    bench_pack(&pack_mbps, &unpack_mbps);

    frl_net_close(b->net, NULL, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    int loop_rc = uv_loop_close(&b->loop);
    kill(srv->pid, SIGTERM);
    int wst = 0;
    waitpid(srv->pid, &wst, 0);
    int srv_loop_rc = WIFEXITED(wst) && WEXITSTATUS(wst) == 0 ? atomic_load(&srv->loop_rc) : -1;

    if (json) {
        printf("{\"mb_per_s\": %.1f, \"handshakes_per_s\": %.0f, \"kb_per_idle_conn\": %.1f, "
               "\"mb_per_cpu_s\": %.1f, \"handshakes_per_cpu_s\": %.0f, \"handshakes_per_server_cpu_s\": %.0f, "
               "\"handshake_client_cpu_us\": %.0f, \"handshake_server_cpu_us\": %.0f, \"resumed_handshakes\": 0, "
               "\"handshake_batches\": %d, \"handshakes_per_s_min\": %.0f, \"handshakes_per_s_max\": %.0f, "
               "\"kb_per_idle_end\": %.1f, \"idle_conns\": %d, \"handshakes\": %d, \"bulk_message_bytes\": %zu, "
               "\"bulk_runs\": %d, \"pack_mb_per_s\": %.0f, \"unpack_mb_per_s\": %.0f, \"server_process\": \"forked\", "
               "\"loops_closed_cleanly\": %s}\n",
               mbps, hs_per_s, kb_per_conn, mb_per_cpu_s, hs_per_cpu_s, hs_per_srv_cpu_s, hs_cli_us, hs_srv_us, hs_nb, hs_min,
               hs_max, kb_per_conn / 2, idle_ok, b->hs_done, sub_bytes, nruns, pack_mbps, unpack_mbps,
               loop_rc == 0 && srv_loop_rc == 0 ? "true" : "false");
    } else {
        printf("wire (TLS 1.3 on loopback, server and client in two processes)\n");
        printf("  bulk:        %.1f MB/s wall, %.1f MB per CPU-second of the busier side (median of %d runs, %.2f MB "
               "messages)\n",
               mbps, mb_per_cpu_s, nruns, sub_bytes / 1e6);
        printf("  handshakes:  %.0f /s wall (median of %d batches, %.0f-%.0f), %.0f per CPU-second of the busier side, "
               "%.0f per server CPU-second (%d full handshakes, none resumed; CPU per handshake: client %.0f us, server "
               "%.0f us)\n",
               hs_per_s, hs_nb, hs_min, hs_max, hs_per_cpu_s, hs_per_srv_cpu_s, b->hs_done, hs_cli_us, hs_srv_us);
        printf("  idle memory: %.1f KB per connection, both ends (%.1f per end), %d connections\n", kb_per_conn, kb_per_conn / 2,
               idle_ok);
        printf("  rank pack:   %.0f MB/s, unpack %.0f MB/s per CPU-second (1605632 edges x 21 bits)\n", pack_mbps, unpack_mbps);
    }
    free(b);
    munmap(srv, sizeof *srv);
    if (!certs) { /* the temporary directory holds private keys: remove it */
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "frl-bench wire: could not remove %s\n", dir);
    }
    return 0;
}
