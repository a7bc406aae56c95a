/* frl-client's connection and round state machine (on the loop thread).
 *
 * States of the client (one enum, changed only by set_state, which logs):
 *
 *   CONNECTING --on_open--> HELLO --Welcome--> READY <--> (work on the pool)
 *        ^                    |                  |
 *        +---- on_close (backoff, jitter) -------+        Bye "done" -> DONE
 *
 * The local work of a round is independent of the connection: it runs on
 * the libuv thread pool (uv_queue_work) while the loop keeps heartbeats
 * going, and it may finish while the client is disconnected.
 *
 * Results and lost connections (documented in frl-client --help and
 * deploy/frl-client.conf): a ranking computed while disconnected is HELD
 * (one, the latest round). After reconnecting it is sent if the server's
 * Welcome says that round is still current, or when a RoundTask for that
 * same round arrives (then without training again); a task for any other
 * round drops it. A task for the round already being trained is ignored
 * (the result goes out when ready); a task for another round while busy is
 * kept (one, the latest) and started when the worker is free, the stale
 * result being dropped. A task for a round already submitted on the same
 * conn and not yet answered (frl-server re-sends the open round's task to a
 * selected client that reconnects, before it reads the held result) is
 * answered; a retried round (same number, after the server's Ack/Error)
 * is trained again.
 *
 * A Welcome that arrives while the worker runs (a reconnect mid-round) is
 * applied when the worker returns, since the worker uses the trainer and
 * its configuration; a different federation (id, seed or model) then drops
 * the round's result and rebuilds everything, the same one reuses it all.
 *
 * Ending: Bye "done" -> exit 0. Error FRL_EAUTH / FRL_EMISMATCH /
 * FRL_EUNSUPPORTED from the server, a model spec mismatch, unusable local
 * data, or --max-retries consecutive failures -> exit 1. Any other close
 * (including Bye "shutdown" from a server that is restarting) -> reconnect
 * with backoff. */
#include "client/client_internal.h"

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { CL_IDLE, CL_CONNECTING, CL_HELLO, CL_READY, CL_STOPPING, CL_DONE } cl_state;

static const char *state_name(cl_state s)
{
    static const char *const n[] = {"idle", "connecting", "hello", "ready", "stopping", "done"};
    return n[s];
}

struct frl_client_s {
    uv_loop_t *loop;
    frl_client_opts_t o;
    void (*done)(void *ud);
    void *ud;
    cl_state state;
    frl_net_t *net;
    frl_conn_t *conn;        /* current conn, NULL between conns */
    int conn_welcomed;       /* Welcome received on the current conn */
    int64_t conn_sent_round; /* round submitted on this conn, not answered yet (Ack/Error); -1 = none */
    unsigned fails;          /* consecutive conns that ended before a Welcome */
    int exit_code;
    int fatal;    /* stop instead of reconnecting */
    int bye_done; /* got Bye "done" */
    int net_closed;
    unsigned submitted;

    frl__local_t local;

    /* The worker. */
    uv_work_t work;
    int busy;
    uint32_t work_round;
    double work_lr;
    uint64_t work_deadline_ms; /* the task's deadline_unix_ms (0 = none) */
    uint64_t deadline_ms;      /* of the latest task, for the next start_work */
    uv_timer_t kick;           /* queues the work on the next loop turn */
    int kick_open;
    int kick_pending;                /* started, not fired: the work is not on the pool yet */
    Frl__V1__RankingBlob *work_task; /* the global ranking, packed; the worker frees it */
    char work_why[256];
    frl__progress_t progress;
    frl__round_result_t result;

    /* The round the server wants now (latest task), and the held result. */
    int have_task;
    uint32_t cur_round;
    Frl__V1__RankingBlob *held; /* a result not sent yet */
    uint32_t held_round;
    double held_loss, held_seconds;
    long held_rss;
    /* A task that came while busy: its ranking (packed, a deep copy). */
    Frl__V1__RankingBlob *pending_task;
    uint32_t pending_round;
    double pending_lr;
    /* A Welcome that came while busy, applied when the worker returns. */
    int pending_welcome;
    frl__welcome_t pending_w;
};

static void set_state(frl_client_t *c, cl_state s)
{
    if (c->state == s)
        return;
    FRL_LOG_D("client_state", "id=%s from=%s to=%s", c->o.client_id, state_name(c->state), state_name(s));
    c->state = s;
}

static void on_net_done(void *ud);
static void maybe_done(frl_client_t *c);
static void connect_next(frl_client_t *c, unsigned delay_ms);
static void start_work(frl_client_t *c, uint32_t round, double lr, Frl__V1__RankingBlob *task);

static void on_kick_closed(uv_handle_t *h)
{
    frl_client_t *c = h->data;
    c->kick_open = 0;
    if (c->kick_pending) {
        c->kick_pending = 0;
        /* Work was being kicked off: it never reached the pool. */
        c->busy = 0;
        frl_msg_ranking_free(c->work_task);
        c->work_task = NULL;
    }
    maybe_done(c);
}

/* Stop for good: close the net (the current conn gets Bye) and the kick
 * timer, then `done` once both are closed and the worker is idle. */
static void shutdown_client(frl_client_t *c, int exit_code)
{
    if (c->state == CL_STOPPING || c->state == CL_DONE)
        return;
    c->exit_code = exit_code;
    set_state(c, CL_STOPPING);
    if (c->kick_open && !uv_is_closing((uv_handle_t *)&c->kick))
        uv_close((uv_handle_t *)&c->kick, on_kick_closed);
    frl_net_close(c->net, on_net_done, c);
}

static void maybe_done(frl_client_t *c)
{
    if (c->state != CL_STOPPING || !c->net_closed || c->busy || c->kick_open)
        return;
    set_state(c, CL_DONE);
    FRL_LOG_I("client_done", "id=%s exit=%d rounds_submitted=%u peak_rss_kb=%ld", c->o.client_id, c->exit_code, c->submitted,
              frl_peak_rss_kb());
    if (c->done)
        c->done(c->ud);
}

static void on_net_done(void *ud)
{
    frl_client_t *c = ud;
    c->net = NULL;
    c->net_closed = 1;
    maybe_done(c);
}

static void drop_held(frl_client_t *c, const char *why)
{
    if (!c->held)
        return;
    FRL_LOG_I("result_dropped", "id=%s round=%u reason=\"%s\"", c->o.client_id, c->held_round, why);
    frl_msg_ranking_free(c->held);
    c->held = NULL;
}

static void drop_pending(frl_client_t *c)
{
    frl_msg_ranking_free(c->pending_task);
    c->pending_task = NULL;
}

static void send_hello(frl_client_t *c)
{
    static const uint8_t zero_hash[32];
    Frl__V1__Hello h = FRL__V1__HELLO__INIT;
    frl_model_spec_t spec;
    h.client_id = c->o.client_id;
    h.software_version = FRL_CLIENT_VERSION;
    h.model_name = "";
    /* proto validation wants exactly 32 bytes: all zero = "no claim". */
    h.model_spec_hash.data = (uint8_t *)zero_hash;
    h.model_spec_hash.len = 32;
    if (c->o.model[0] && frl_model_spec_by_name(c->o.model, &spec) == 0) {
        h.model_name = c->o.model;
        h.model_spec_hash.data = spec.hash;
    }
    h.token.data = c->o.token;
    h.token.len = c->o.token_len;
    h.sample_count = c->local.ready ? c->local.data.n : 0;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    int r = frl_conn_send(c->conn, &env);
    if (r)
        frl_conn_close(c->conn, r, "cannot send hello");
    else
        set_state(c, CL_HELLO);
}

static void send_submission(frl_client_t *c, Frl__V1__RankingBlob *blob, uint32_t round, double loss, double secs, long rss)
{
    Frl__V1__RankSubmission s = FRL__V1__RANK_SUBMISSION__INIT;
    s.round = round;
    s.ranking = blob;
    s.sample_count = c->local.load_test ? 0 : c->local.data.n;
    s.train_loss = loss;
    s.train_seconds = secs;
    s.peak_rss_kb = rss > 0 ? (uint64_t)rss : 0;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
    env.rank_submission = &s;
    int r = frl_conn_send(c->conn, &env);
    if (r) {
        FRL_LOG_W("submit_failed", "id=%s round=%u err=%s", c->o.client_id, round, frl_err_name(r));
        return;
    }
    c->submitted++;
    c->conn_sent_round = round;
    FRL_LOG_I("submitted", "id=%s round=%u queued_bytes=%llu rss_kb=%ld", c->o.client_id, round,
              (unsigned long long)frl_conn_queued_bytes(c->conn), frl_rss_kb());
}

/* Sends the held result now if the conn is welcomed. */
static void flush_held(frl_client_t *c)
{
    if (!c->held || !c->conn || !c->conn_welcomed || !frl_conn_is_open(c->conn))
        return;
    send_submission(c, c->held, c->held_round, c->held_loss, c->held_seconds, c->held_rss);
    frl_msg_ranking_free(c->held);
    c->held = NULL;
}

/* ---- welcome ---- */

static void apply_welcome(frl_client_t *c, const frl__welcome_t *w)
{
    char why[512];
    frl_model_spec_t spec;
    int r = frl__welcome_check(w, c->o.model, &spec, why, sizeof why);
    if (r == 0)
        r = frl__local_setup(&c->local, &c->o, w, &spec, why, sizeof why);
    if (r) {
        FRL_LOG_E("welcome_refused", "id=%s federation=\"%s\" model=%s err=%s reason=\"%s\"", c->o.client_id, w->federation_id,
                  w->model_name, frl_err_name(r), why);
        c->fatal = 1;
        c->exit_code = FRL_CLIENT_EXIT_FAIL;
        if (c->conn)
            frl_conn_close(c->conn, r == FRL_EMISMATCH || r == FRL_EUNSUPPORTED ? r : FRL_EMISMATCH, why);
        else
            shutdown_client(c, FRL_CLIENT_EXIT_FAIL);
        return;
    }
    char seedhex[65];
    frl_seed_to_hex(w->seed, seedhex);
    seedhex[16] = '\0';
    FRL_LOG_I("welcome",
              "id=%s federation=\"%s\" model=%s seed=%s... round=%u total_rounds=%u epochs=%u batch=%u lr=%g keep=%g "
              "mode=%s examples=%u rss_kb=%ld",
              c->o.client_id, w->federation_id, w->model_name, seedhex, w->current_round, w->total_rounds, w->epochs, w->batch,
              w->lr, w->keep, c->o.load_test ? "load-test" : frl_attack_name(c->o.attack), c->local.load_test ? 0 : c->local.data.n,
              frl_rss_kb());
}

/* The set-up of `L` can be reused for `w`: same federation, seed, model. */
static int same_fed(const frl__local_t *L, const frl__welcome_t *w)
{
    return L->ready && strcmp(L->w.federation_id, w->federation_id) == 0 && memcmp(L->w.seed, w->seed, 32) == 0 &&
           strcmp(L->w.model_name, w->model_name) == 0;
}

static void on_welcome(frl_client_t *c, const Frl__V1__Welcome *m)
{
    frl__welcome_t w;
    frl__welcome_from_msg(m, &w);
    c->conn_welcomed = 1;
    c->fails = 0;
    set_state(c, CL_READY);
    if (w.heartbeat_ms) {
        unsigned idle = 4 * w.heartbeat_ms > 60000 ? 4 * w.heartbeat_ms : 60000;
        frl_conn_set_timeouts(c->conn, w.heartbeat_ms, idle);
    }
    const int same = same_fed(&c->local, &w);
    if (!same) {
        drop_held(c, "new federation");
        drop_pending(c);
        c->have_task = 0;
    }
    if (c->busy) {
        /* The worker uses the trainer and its configuration: apply the
         * Welcome (even an identical one) when it returns. */
        c->pending_welcome = 1;
        c->pending_w = w;
        FRL_LOG_I("welcome_deferred", "id=%s federation=\"%s\" msg=\"worker busy\"", c->o.client_id, w.federation_id);
        return;
    }
    apply_welcome(c, &w);
    if (c->fatal)
        return;
    if (c->held && w.current_round == c->held_round)
        flush_held(c);
}

/* ---- round tasks ---- */

static void on_round_task(frl_client_t *c, const Frl__V1__RoundTask *t)
{
    uint32_t round = t->round;
    double lr = t->lr > 0 ? t->lr : frl_train_round_lr(c->local.w.lr, c->local.w.lr_decay, round > 0 ? (int)round - 1 : 0);
    FRL_LOG_I("task", "id=%s round=%u lr=%g deadline_unix_ms=%llu busy=%d rss_kb=%ld", c->o.client_id, round, lr,
              (unsigned long long)t->deadline_unix_ms, c->busy, frl_rss_kb());
    if (!c->local.ready) {
        FRL_LOG_W("task_ignored", "id=%s round=%u reason=\"no federation set up\"", c->o.client_id, round);
        return;
    }
    if (c->conn_sent_round == (int64_t)round) {
        /* A held result went out right after the Welcome and the server
         * re-sent that round's task before it read the submission: it is
         * answered. (A retried round's task comes after the server's
         * Ack/Error for the old submission, which clears this.) */
        FRL_LOG_I("task_answered", "id=%s round=%u msg=\"already submitted on this connection\"", c->o.client_id, round);
        return;
    }
    c->have_task = 1;
    c->cur_round = round;
    c->deadline_ms = t->deadline_unix_ms;
    if (c->held) {
        if (c->held_round == round) {
            flush_held(c);
            return;
        }
        drop_held(c, "server moved to another round");
    }
    if (c->busy) {
        if (c->work_round == round) {
            drop_pending(c);
            return; /* already working on it */
        }
        drop_pending(c);
        char why[256];
        int r = frl__local_check_shape(&c->local, t->global_ranking, why, sizeof why);
        if (r) {
            FRL_LOG_E("task_refused", "id=%s round=%u err=%s reason=\"%s\"", c->o.client_id, round, frl_err_name(r), why);
            return;
        }
        if (!(c->pending_task = frl__ranking_copy(t->global_ranking))) {
            FRL_LOG_W("task_ignored", "id=%s round=%u reason=\"out of memory\"", c->o.client_id, round);
            return;
        }
        c->pending_round = round;
        c->pending_lr = lr;
        FRL_LOG_I("task_queued", "id=%s round=%u training_round=%u", c->o.client_id, round, c->work_round);
        return;
    }
    char why[256];
    int r = frl__local_check_shape(&c->local, t->global_ranking, why, sizeof why);
    if (r) {
        FRL_LOG_E("task_refused", "id=%s round=%u err=%s reason=\"%s\"", c->o.client_id, round, frl_err_name(r), why);
        frl_conn_close(c->conn, FRL_EMISMATCH, why);
        return;
    }
    Frl__V1__RankingBlob *copy = c->local.load_test ? NULL : frl__ranking_copy(t->global_ranking);
    if (!c->local.load_test && !copy) {
        FRL_LOG_E("task_refused", "id=%s round=%u err=FRL_ENOMEM", c->o.client_id, round);
        return;
    }
    start_work(c, round, lr, copy);
}

/* ---- the worker ---- */

static void work_cb(uv_work_t *req)
{
    frl_client_t *c = req->data;
    if (c->work_task) {
        /* Expand and check the global ranking here, off the loop. */
        int r = frl__local_take_task(&c->local, c->work_task, c->work_why, sizeof c->work_why);
        frl_msg_ranking_free(c->work_task);
        c->work_task = NULL;
        if (r) {
            memset(&c->result, 0, sizeof c->result);
            c->result.status = r;
            return;
        }
    }
    frl__local_round(&c->local, c->o.attack, c->work_round, c->work_lr, &c->progress, &c->result);
}

static void after_work_cb(uv_work_t *req, int status)
{
    frl_client_t *c = req->data;
    c->busy = 0;
    frl__round_result_t res = c->result;
    memset(&c->result, 0, sizeof c->result);
    if (status == 0 && res.status == 0 && c->work_deadline_ms) {
        uv_timeval64_t tv;
        if (uv_gettimeofday(&tv) == 0 && (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u > c->work_deadline_ms)
            FRL_LOG_W("round_late", "id=%s round=%u msg=\"finished after the round's deadline; submitting anyway\"", c->o.client_id,
                      c->work_round);
    }
    if (status == 0 && res.status == 0)
        FRL_LOG_I("round_done", "id=%s round=%u seconds=%.2f cpu_seconds=%.2f images=%llu loss=%.4f peak_rss_kb=%ld",
                  c->o.client_id, c->work_round, res.seconds, res.cpu_seconds, (unsigned long long)res.images, res.loss,
                  res.peak_rss_kb);
    else
        FRL_LOG_E("round_failed", "id=%s round=%u err=%s reason=\"%s\"", c->o.client_id, c->work_round,
                  frl_err_name(status ? FRL_EIO : res.status), c->work_why[0] ? c->work_why : "local training failed");
    if (c->state == CL_STOPPING || c->state == CL_DONE || status || res.status) {
        frl_msg_ranking_free(res.blob);
        maybe_done(c);
        return;
    }
    if (c->pending_welcome) {
        c->pending_welcome = 0;
        const int same = same_fed(&c->local, &c->pending_w);
        apply_welcome(c, &c->pending_w);
        if (c->fatal || !same) {
            FRL_LOG_I("result_dropped", "id=%s round=%u reason=\"%s\"", c->o.client_id, c->work_round,
                      c->fatal ? "welcome refused" : "new federation");
            frl_msg_ranking_free(res.blob);
            return;
        }
    }
    if (c->have_task && c->cur_round != c->work_round) {
        FRL_LOG_I("result_dropped", "id=%s round=%u reason=\"server moved to round %u\"", c->o.client_id, c->work_round,
                  c->cur_round);
        frl_msg_ranking_free(res.blob);
    } else {
        drop_held(c, "replaced");
        c->held = res.blob;
        c->held_round = c->work_round;
        c->held_loss = res.loss;
        c->held_seconds = res.seconds;
        c->held_rss = res.peak_rss_kb;
        if (!c->conn || !c->conn_welcomed)
            FRL_LOG_W("result_held", "id=%s round=%u msg=\"not connected; sent if the round is still current after reconnecting\"",
                      c->o.client_id, c->work_round);
        flush_held(c);
    }
    if (c->pending_task) {
        Frl__V1__RankingBlob *g = c->pending_task;
        c->pending_task = NULL;
        start_work(c, c->pending_round, c->pending_lr, g);
    }
}

static void on_kick(uv_timer_t *t)
{
    frl_client_t *c = t->data;
    c->kick_pending = 0;
    int r = uv_queue_work(c->loop, &c->work, work_cb, after_work_cb);
    if (r) {
        FRL_LOG_E("round_failed", "id=%s round=%u err=\"uv_queue_work: %s\"", c->o.client_id, c->work_round, uv_strerror(r));
        frl_msg_ranking_free(c->work_task);
        c->work_task = NULL;
        c->busy = 0;
        maybe_done(c);
    }
}

/* Queues the local round; takes `task` (the global ranking, packed; NULL
 * in load-test mode). The work is queued on the NEXT loop turn, once the
 * received frame and message are freed: a worker expanding the ranking
 * while they are still alive was the client's memory peak. busy is set at
 * once, so that tasks arriving meanwhile are queued behind it. */
static void start_work(frl_client_t *c, uint32_t round, double lr, Frl__V1__RankingBlob *task)
{
    c->work_task = task;
    c->work_deadline_ms = c->deadline_ms;
    c->work_why[0] = '\0';
    c->work_round = round;
    c->work_lr = lr;
    c->progress.round = round;
    c->progress.tty = !c->o.quiet && isatty(2);
    c->work.data = c;
    c->busy = 1;
    c->kick_pending = 1;
    uv_timer_start(&c->kick, on_kick, 0, 0);
}

/* ---- net callbacks ---- */

static void on_open(frl_conn_t *conn, void *ud)
{
    frl_client_t *c = ud;
    if (conn != c->conn)
        return;
    send_hello(c);
}

static void on_message(frl_conn_t *conn, const Frl__V1__Envelope *m, void *ud)
{
    frl_client_t *c = ud;
    if (conn != c->conn || c->state == CL_STOPPING)
        return;
    switch (m->body_case) {
    case FRL__V1__ENVELOPE__BODY_WELCOME:
        on_welcome(c, m->welcome);
        break;
    case FRL__V1__ENVELOPE__BODY_ROUND_TASK:
        on_round_task(c, m->round_task);
        break;
    case FRL__V1__ENVELOPE__BODY_ACK:
        c->conn_sent_round = -1;
        if (m->ack->accepted)
            FRL_LOG_I("ack", "id=%s round=%u accepted=1", c->o.client_id, m->ack->round);
        else
            FRL_LOG_W("vote_rejected", "id=%s round=%u code=%s reason=\"%s\"", c->o.client_id, m->ack->round,
                      frl_err_name(m->ack->code), frl_strerror(m->ack->code));
        break;
    case FRL__V1__ENVELOPE__BODY_ERROR: {
        int code = m->error->code;
        c->conn_sent_round = -1;
        /* The net layer logged it and closes the conn; decide what follows. */
        if (code <= FRL_EVOTE_LAYERS && code >= FRL_EQUORUM) {
            /* A rejected vote: frl-server says so with an Error and keeps
             * the connection; so do we. */
            FRL_LOG_W("vote_rejected", "id=%s code=%s text=\"%s\"", c->o.client_id, frl_err_name(code),
                      m->error->text ? m->error->text : "");
        } else if (code == FRL_EAUTH || code == FRL_EMISMATCH || code == FRL_EUNSUPPORTED) {
            FRL_LOG_E("server_refused", "id=%s code=%s text=\"%s\" msg=\"not retrying\"", c->o.client_id, frl_err_name(code),
                      m->error->text ? m->error->text : "");
            c->fatal = 1;
            c->exit_code = FRL_CLIENT_EXIT_FAIL;
        }
        break;
    }
    case FRL__V1__ENVELOPE__BODY_BYE:
        FRL_LOG_I("bye", "id=%s reason=\"%s\"", c->o.client_id, m->bye->reason ? m->bye->reason : "");
        if (m->bye->reason && strcmp(m->bye->reason, "done") == 0)
            c->bye_done = 1;
        break;
    default:
        break;
    }
}

static void on_close(frl_conn_t *conn, int status, const char *reason, void *ud)
{
    frl_client_t *c = ud;
    if (conn != c->conn)
        return;
    const int opened = c->state == CL_HELLO || c->state == CL_READY;
    const int welcomed = c->conn_welcomed;
    c->conn = NULL;
    c->conn_welcomed = 0;
    if (c->state == CL_STOPPING || c->state == CL_DONE)
        return;
    if (c->bye_done) {
        shutdown_client(c, FRL_CLIENT_EXIT_OK);
        return;
    }
    if (c->fatal) {
        shutdown_client(c, c->exit_code ? c->exit_code : FRL_CLIENT_EXIT_FAIL);
        return;
    }
    if (!opened) {
        /* frl_net_connect ran out of tries (--max-retries). */
        FRL_LOG_E("giving_up", "id=%s server=%s:%d tries=%u status=%s reason=\"%s\"", c->o.client_id, c->o.server_host,
                  c->o.server_port, c->o.max_retries, frl_err_name(status), reason ? reason : "");
        shutdown_client(c, FRL_CLIENT_EXIT_FAIL);
        return;
    }
    if (!welcomed)
        c->fails++;
    if (c->o.max_retries && c->fails >= c->o.max_retries) {
        FRL_LOG_E("giving_up", "id=%s server=%s:%d failures=%u status=%s reason=\"%s\"", c->o.client_id, c->o.server_host,
                  c->o.server_port, c->fails, frl_err_name(status), reason ? reason : "");
        shutdown_client(c, FRL_CLIENT_EXIT_FAIL);
        return;
    }
    /* Try 2 of the backoff schedule at least: base/2 + jitter, so that a
     * thousand clients of a restarting server do not all come back at once. */
    unsigned delay = frl_net_backoff_ms(c->net, c->fails + 2);
    FRL_LOG_W("reconnecting", "id=%s status=%s reason=\"%s\" delay_ms=%u failures=%u training=%d", c->o.client_id,
              frl_err_name(status), reason ? reason : "", delay, c->fails, c->busy);
    connect_next(c, delay);
}

static void connect_next(frl_client_t *c, unsigned delay_ms)
{
    frl_conn_t *conn = NULL;
    int r = frl_net_connect(c->net, c->o.server_host, c->o.server_port, delay_ms, &conn);
    if (r) {
        FRL_LOG_E("connect_failed", "id=%s err=%s", c->o.client_id, frl_err_name(r));
        shutdown_client(c, FRL_CLIENT_EXIT_FAIL);
        return;
    }
    c->conn = conn;
    c->conn_welcomed = 0;
    c->conn_sent_round = -1;
    set_state(c, CL_CONNECTING);
}

/* ---- public API ---- */

int frl_client_new(uv_loop_t *loop, const frl_client_opts_t *o, void (*done)(void *ud), void *ud, frl_client_t **out)
{
    if (!loop || !o || !out)
        return FRL_EINVAL;
    frl_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return FRL_ENOMEM;
    c->loop = loop;
    c->o = *o;
    c->done = done;
    c->ud = ud;
    frl_net_config cfg;
    frl_net_config_defaults(&cfg, FRL_NET_CLIENT);
    cfg.ca_file = o->ca[0] ? o->ca : NULL;
    cfg.cert_file = o->cert[0] ? o->cert : NULL;
    cfg.key_file = o->key[0] ? o->key : NULL;
    cfg.server_name = o->server_name[0] ? o->server_name : NULL;
    cfg.auth = o->token_len ? FRL_AUTH_TOKEN : FRL_AUTH_MTLS;
    cfg.insecure_plaintext = o->insecure_plaintext;
    cfg.backoff_base_ms = o->reconnect_base_ms;
    cfg.backoff_max_ms = o->reconnect_max_ms;
    cfg.max_tries = o->max_retries;
    frl_net_callbacks cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
    int r = frl_net_new(loop, &cfg, &cb, c, &c->net);
    if (r) {
        frl_client_opts_wipe(&c->o);
        free(c);
        return r;
    }
    uv_timer_init(loop, &c->kick);
    c->kick.data = c;
    c->kick_open = 1;
    *out = c;
    return 0;
}

int frl_client_start(frl_client_t *c)
{
    if (c->state != CL_IDLE)
        return FRL_ESTATE;
    if (c->o.insecure_plaintext)
        FRL_LOG_W("insecure_plaintext", "id=%s msg=\"no TLS: for tests only\"", c->o.client_id);
    FRL_LOG_I("client_start", "id=%s server=%s:%d auth=%s mode=%s shard=%u shards=%u version=\"%s\"", c->o.client_id,
              c->o.server_host, c->o.server_port,
              c->o.insecure_plaintext ? "plaintext"
              : c->o.token_len        ? "token"
                                      : "mtls",
              c->o.load_test ? "load-test" : frl_attack_name(c->o.attack), c->o.shard, c->o.shards, FRL_CLIENT_VERSION);
    frl_conn_t *conn = NULL;
    int r = frl_net_connect(c->net, c->o.server_host, c->o.server_port, 0, &conn);
    if (r)
        return r;
    c->conn = conn;
    c->conn_sent_round = -1;
    set_state(c, CL_CONNECTING);
    return 0;
}

void frl_client_stop(frl_client_t *c)
{
    if (!c || c->state == CL_STOPPING || c->state == CL_DONE)
        return;
    FRL_LOG_I("client_stopping", "id=%s training=%d", c->o.client_id, c->busy);
    shutdown_client(c, FRL_CLIENT_EXIT_OK);
}

int frl_client_exit_code(const frl_client_t *c)
{
    return c->exit_code;
}

int frl_client_training(const frl_client_t *c)
{
    return c->busy;
}

unsigned frl_client_rounds_submitted(const frl_client_t *c)
{
    return c->submitted;
}

void frl_client_free(frl_client_t *c)
{
    if (!c)
        return;
    frl_msg_ranking_free(c->held);
    frl_msg_ranking_free(c->pending_task);
    frl_msg_ranking_free(c->result.blob);
    frl_msg_ranking_free(c->work_task);
    frl__local_free(&c->local);
    frl_client_opts_wipe(&c->o);
    free(c);
}
