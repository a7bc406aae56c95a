/* frl-server: rounds, sessions, checkpoints, evaluation and the final model
 * (the state machine is described in server/frl_server.h and
 * docs/operations.md; the wire conversation in docs/protocol.md
 * "Federation flow").
 *
 * Threading: everything here runs on the loop's thread except the bodies of
 * the uv_queue_work jobs (vote + checkpoint, evaluation, final model). At
 * most one job is in flight (s->work_busy); while it runs, the loop only
 * touches connections, the registry and counters, never the vote round,
 * the rankings or the trainer that the job uses. */
#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "aggregation/frl_vote.h"
#include "aggregation/frl_vote_robust.h"
#include "aggregation/frl_vote_round.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "net/frl_conn.h"
#include "proto/frl_msg.h"
#include "proto/frl_rankpack.h"
#include "quant/frl_quant.h"
#include "server/frl_server_state.h"
#include "server/server_internal.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"
#include "supermask/frl_train.h"

typedef enum {
    ST_INIT = 0,
    ST_WAITING,
    ST_COLLECTING,
    ST_RETRY_WAIT,
    ST_VOTING,
    ST_EVALUATING,
    ST_FINAL,
    ST_STOPPING,
    ST_CLOSED,
} srv_state;

static const char *const state_names[] = {"init",       "waiting", "collecting", "retry_wait", "voting",
                                          "evaluating", "final",   "stopping",   "closed"};

typedef enum { WORK_NONE = 0, WORK_VOTE, WORK_EVAL, WORK_FINAL } work_kind;

/* One authenticated connection. */
typedef struct sess_s {
    frl_conn_t *c;
    uint32_t idx; /* registry index */
    int welcomed;
    struct sess_s *prev, *next;
} sess_t;

struct frl_server_s {
    uv_loop_t *loop;
    frl_server_opts o;
    srv_state state;
    int exit_status;
    int stop_requested;

    /* handles */
    frl_net_t *net;
    int net_open;
    uv_signal_t sig_int, sig_term;
    uv_timer_t timer; /* deadline, retry wait or wait timeout */
    int handles_open;
    frl_http_t *http;
    int lock_fd;

    /* model and vote */
    frl_model_spec_t spec;
    frl_network_t netw;
    int netw_ok;
    frl_vote_layout_t layout;
    frl_vote_round_t *vr;
    frl_vote_policy_t *policy;
    frl_mask_rule rule;
    uint8_t seed[FRL_SEED_BYTES];
    uint8_t config_hash[32];
    uint32_t *global;  /* current global ranking (total_edges) */
    uint32_t *next;    /* next ranking (job output) */
    uint32_t *scratch; /* one submission, unpacked */

    /* clients */
    frl_registry_t reg;
    sess_t **by_idx; /* live welcomed session per registry index */
    uint8_t *flag;   /* per registry index: 0 not selected, 1 selected, 2 answered */
    sess_t *sessions;
    uint32_t n_sessions, n_welcomed;
    uint64_t closed_bytes_in, closed_bytes_out;

    /* rounds */
    uint32_t rounds_done;
    uint32_t try_no;       /* try of the current round, from 0 */
    uint32_t failed_tries; /* of the current round */
    uint32_t *selected;
    uint32_t n_selected, n_answered, quorum_needed, selected_cap;
    int round_begun; /* the vote round of rounds_done + 1 is open (across tries) */
    frl_msgbuf_t *task_buf;
    uint64_t deadline_unix_ms;
    double t_round0, t_try0, t_collect_end;
    uint64_t idle0_ns;
    double pool_s;
    double cpu0_s;
    uint64_t bytes_in0, bytes_out0;
    double agree_sum, loss_sum;
    uint32_t agree_n, loss_n;
    frl_round_metrics_t m;    /* the round in progress */
    frl_round_metrics_t last; /* the last completed round */
    uint64_t rejected_total[9];
    uint64_t accepted_total;

    /* jobs */
    uv_work_t work;
    int work_busy;
    work_kind work_kind;
    int work_rc;
    double work_s[3];
    uint8_t *reg_blob;
    size_t reg_len;

    /* evaluation */
    frl_dataset_t test;
    int have_test;
    frl_trainer_t *trainer;
    frl_train_cfg_t tcfg;
    double last_acc, final_acc_float, final_acc_int;
    uint32_t final_n;
    char model_out[FRL_SERVER_STR + 32];

    FILE *metrics_f;
    frl_server_round_cb round_cb;
    void *round_ud;
};

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static void set_state(frl_server_t *s, srv_state st)
{
    if (s->state == st)
        return;
    FRL_LOG_D("server_state", "from=%s to=%s round=%u", state_names[s->state], state_names[st], s->rounds_done + 1);
    s->state = st;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static double process_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void totals_bytes(const frl_server_t *s, uint64_t *in, uint64_t *out)
{
    uint64_t a = s->closed_bytes_in, b = s->closed_bytes_out;
    for (const sess_t *x = s->sessions; x; x = x->next) {
        a += frl_conn_bytes_in(x->c);
        b += frl_conn_bytes_out(x->c);
    }
    *in = a;
    *out = b;
}

static void send_error(frl_conn_t *c, int code, const char *text)
{
    Frl__V1__Error e = FRL__V1__ERROR__INIT;
    e.code = code;
    e.text = (char *)text;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_ERROR;
    env.error = &e;
    (void)frl_conn_send(c, &env);
}

static void send_ack(frl_conn_t *c, uint32_t round)
{
    Frl__V1__Ack a = FRL__V1__ACK__INIT;
    a.round = round;
    a.accepted = 1;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_ACK;
    env.ack = &a;
    (void)frl_conn_send(c, &env);
}

static double round_lr(const frl_server_t *s, uint32_t round)
{
    return frl_train_round_lr(s->o.lr, s->o.lr_decay, (int)round - 1);
}

static void try_open_round(frl_server_t *s);
static void begin_shutdown(frl_server_t *s);
static void start_final(frl_server_t *s);
static void queue_job(frl_server_t *s, work_kind kind);

/* ---------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------- */

static void send_welcome(frl_server_t *s, frl_conn_t *c)
{
    Frl__V1__HyperParams hp = FRL__V1__HYPER_PARAMS__INIT;
    hp.local_epochs = (uint32_t)s->o.local_epochs;
    hp.lr = s->o.lr;
    hp.lr_decay = s->o.lr_decay;
    hp.momentum = s->o.momentum;
    hp.weight_decay = s->o.weight_decay;
    hp.batch_size = (uint32_t)s->o.batch;
    Frl__V1__Welcome w = FRL__V1__WELCOME__INIT;
    w.federation_id = s->o.federation_id;
    w.model_name = s->spec.name;
    w.model_spec_hash.data = s->spec.hash;
    w.model_spec_hash.len = 32;
    w.seed.data = s->seed;
    w.seed.len = FRL_SEED_BYTES;
    w.keep_fraction = s->o.keep;
    w.mask_rule = (uint32_t)s->rule;
    w.hyper = &hp;
    uint32_t cur = s->rounds_done + 1;
    w.total_rounds = (uint32_t)s->o.rounds;
    w.current_round = cur > w.total_rounds ? w.total_rounds : cur;
    w.ranking_encoding = FRL_RANK_ENC_PACKED;
    w.heartbeat_ms = (uint32_t)s->o.heartbeat_ms;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    int r = frl_conn_send(c, &env);
    if (r)
        FRL_LOG_W("welcome_send", "client=%s error=%s", frl_conn_peer_id(c), frl_err_name(r));
}

static int hash_is_zero(const uint8_t *h, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= h[i];
    return acc == 0;
}

static void on_hello(frl_server_t *s, sess_t *x, const Frl__V1__Hello *h)
{
    frl_conn_t *c = x->c;
    if (s->state >= ST_STOPPING) {
        frl_conn_close(c, 0, "server stopping");
        return;
    }
    if (h->model_name[0] && strcmp(h->model_name, s->spec.name) != 0) {
        FRL_LOG_W("client_mismatch", "client=%s model=\"%s\" server_model=%s", h->client_id, h->model_name, s->spec.name);
        frl_conn_close(c, FRL_EMISMATCH, "model differs from the federation's");
        return;
    }
    /* An all-zero hash means "the client does not know this model" (the
     * Hello validator insists on 32 bytes). */
    if (!hash_is_zero(h->model_spec_hash.data, h->model_spec_hash.len) &&
        (h->model_spec_hash.len != 32 || memcmp(h->model_spec_hash.data, s->spec.hash, 32) != 0)) {
        FRL_LOG_W("client_mismatch", "client=%s reason=spec_hash", h->client_id);
        frl_conn_close(c, FRL_EMISMATCH, "model spec hash differs from the federation's");
        return;
    }
    int enc_ok = h->n_supported_encodings == 0;
    for (size_t i = 0; i < h->n_supported_encodings; i++)
        if (h->supported_encodings[i] == FRL_RANK_ENC_PACKED)
            enc_ok = 1;
    if (!enc_ok) {
        frl_conn_close(c, FRL_EUNSUPPORTED, "no common ranking encoding (server: 0)");
        return;
    }
    if (h->role != 0) {
        frl_conn_close(c, FRL_EUNSUPPORTED, "aggregators are not supported by this server");
        return;
    }
    uint32_t idx;
    int r = frl_registry_get(&s->reg, h->client_id, &idx);
    if (r) {
        FRL_LOG_W("client_refused", "client=%s reason=%s", h->client_id, r == FRL_ETOOBIG ? "registry_full" : frl_err_name(r));
        frl_conn_close(c, r == FRL_ETOOBIG ? FRL_EAGAIN : r, "client registry full (max-clients)");
        return;
    }
    sess_t *old = s->by_idx[idx];
    if (old && old != x) {
        /* The same client again (it reconnected before we noticed the old
         * connection die): the new connection wins. */
        old->welcomed = 0;
        s->n_welcomed--;
        s->by_idx[idx] = NULL;
        frl_conn_close(old->c, 0, "replaced by a new connection of the same client");
    }
    x->idx = idx;
    x->welcomed = 1;
    s->by_idx[idx] = x;
    s->n_welcomed++;
    send_welcome(s, c);
    FRL_LOG_I("client_welcome", "client=%s peer=%s samples=%llu version=\"%s\" connected=%u", h->client_id,
              frl_conn_peer_addr(c), (unsigned long long)h->sample_count, h->software_version, s->n_welcomed);
    if (s->state == ST_COLLECTING && s->flag[idx] == 1 && s->task_buf) {
        /* Selected for the open round and not answered yet: serve it again. */
        r = frl_conn_send_buf(c, s->task_buf);
        FRL_LOG_I("task_resend", "client=%s round=%u rc=%s", h->client_id, s->rounds_done + 1, frl_err_name(r));
    } else if (s->state == ST_WAITING) {
        try_open_round(s);
    }
}

static void close_collecting(frl_server_t *s, const char *why);

static void on_submission(frl_server_t *s, sess_t *x, const Frl__V1__RankSubmission *sub)
{
    frl_conn_t *c = x->c;
    uint32_t round = s->rounds_done + 1;
    const char *id = s->reg.e[x->idx].id;
    int code = 0;
    const char *text = NULL;
    frl_vote_result_t res;
    memset(&res, 0, sizeof res);

    if (s->state != ST_COLLECTING) {
        send_error(c, FRL_EVOTE_ROUND, "no round is collecting submissions");
        FRL_LOG_I("vote_reject", "client=%s round=%u code=FRL_EVOTE_ROUND reason=\"round closed\"", id, sub->round);
        return;
    }
    s->m.received++;
    if (s->flag[x->idx] == 0) {
        code = FRL_EVOTE_UNKNOWN_CLIENT;
        text = "client is not selected for this round";
    } else if (sub->round != round) {
        code = FRL_EVOTE_ROUND;
        text = "submission is for another round";
    } else {
        const Frl__V1__RankingBlob *b = sub->ranking;
        uint32_t lens[FRL_VOTE_MAX_LAYERS];
        if ((int)b->n_layers != s->layout.n_layers) {
            code = FRL_EVOTE_LAYERS;
            text = "ranking has the wrong number of layers";
        }
        for (int l = 0; !code && l < s->layout.n_layers; l++) {
            lens[l] = b->layers[l]->n_edges;
            if (lens[l] != s->layout.n_edges[l]) {
                code = FRL_EVOTE_LENGTH;
                text = "ranking layer has the wrong number of edges";
                break;
            }
            int r = frl_msg_ranking_layer(b, (size_t)l, s->scratch + s->layout.offset[l]);
            if (r) {
                code = r;
                text = r == FRL_EFORMAT ? "packed ranking has non-zero padding bits" : frl_strerror(r);
            }
        }
        if (!code) {
            code = frl_vote_round_submit(s->vr, x->idx, round, s->scratch, s->layout.n_layers, lens, &res);
            text = code ? frl_strerror(code) : NULL;
        }
    }
    frl_reg_entry_t *e = &s->reg.e[x->idx];
    if (code == 0) {
        s->m.accepted++;
        s->accepted_total++;
        e->accepted++;
        e->last_round = round;
        if (!isnan(res.agreement)) {
            s->agree_sum += res.agreement;
            s->agree_n++;
            if (res.agreement < s->m.agree_min || isnan(s->m.agree_min))
                s->m.agree_min = res.agreement;
            if (res.agreement > s->m.agree_max || isnan(s->m.agree_max))
                s->m.agree_max = res.agreement;
        }
        if (res.flagged)
            s->m.flagged++;
        s->loss_sum += sub->train_loss;
        s->loss_n++;
        send_ack(c, round);
        FRL_LOG_D("vote_accept", "client=%s round=%u agreement=%.4f loss=%.4f train_s=%.2f rss_kb=%llu", id, round,
                  res.agreement, sub->train_loss, sub->train_seconds, (unsigned long long)sub->peak_rss_kb);
    } else {
        if (code == FRL_EVOTE_DROPPED) {
            s->m.dropped++;
            if (res.flagged)
                s->m.flagged++;
        } else {
            s->m.rejected++;
            e->rejected++;
        }
        if (code <= FRL_EVOTE_LAYERS && code >= FRL_EVOTE_DROPPED) {
            s->m.rejected_by_code[FRL_EVOTE_LAYERS - code]++;
            s->rejected_total[FRL_EVOTE_LAYERS - code]++;
        } else {
            s->m.rejected_other++;
            s->rejected_total[8]++;
        }
        char msg[256];
        snprintf(msg, sizeof msg, "round %u: %s", round, text ? text : frl_strerror(code));
        send_error(c, code, msg);
        FRL_LOG_W("vote_reject", "client=%s round=%u code=%s reason=\"%s\" layer=%d index=%lld", id, sub->round,
                  frl_err_name(code), text ? text : "", res.reject.layer, (long long)res.reject.index);
    }
    if (s->flag[x->idx] == 1) {
        s->flag[x->idx] = 2;
        s->n_answered++;
        if (s->n_answered == s->n_selected)
            close_collecting(s, "all_answered");
    }
}

static void net_on_open(frl_conn_t *c, void *ud)
{
    frl_server_t *s = ud;
    sess_t *x = calloc(1, sizeof *x);
    if (!x) {
        frl_conn_close(c, FRL_ENOMEM, "out of memory");
        return;
    }
    x->c = c;
    x->next = s->sessions;
    if (s->sessions)
        s->sessions->prev = x;
    s->sessions = x;
    s->n_sessions++;
    frl_conn_set_data(c, x);
}

static void net_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    frl_server_t *s = ud;
    sess_t *x = frl_conn_get_data(c);
    if (!x)
        return;
    switch (m->body_case) {
    case FRL__V1__ENVELOPE__BODY_HELLO:
        on_hello(s, x, m->hello);
        break;
    case FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION:
        if (!x->welcomed) {
            frl_conn_close(c, FRL_EPROTO, "submission before welcome");
            return;
        }
        on_submission(s, x, m->rank_submission);
        break;
    case FRL__V1__ENVELOPE__BODY_PARTIAL_TALLY:
        frl_conn_close(c, FRL_EUNSUPPORTED, "partial tallies are not supported by this server");
        break;
    case FRL__V1__ENVELOPE__BODY_BYE:
        frl_conn_close(c, 0, "bye");
        break;
    case FRL__V1__ENVELOPE__BODY_ERROR:
        FRL_LOG_I("client_error", "client=%s code=%d text=\"%s\"", frl_conn_peer_id(c), m->error->code, m->error->text);
        frl_conn_close(c, 0, "peer sent an error");
        break;
    default:
        break; /* Ack: nothing to do */
    }
}

static void net_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
    frl_server_t *s = ud;
    sess_t *x = frl_conn_get_data(c);
    if (!x)
        return;
    s->closed_bytes_in += frl_conn_bytes_in(c);
    s->closed_bytes_out += frl_conn_bytes_out(c);
    if (x->welcomed) {
        s->n_welcomed--;
        if (s->by_idx[x->idx] == x)
            s->by_idx[x->idx] = NULL;
        FRL_LOG_I("client_gone", "client=%s status=%s reason=\"%s\" connected=%u", s->reg.e[x->idx].id, frl_err_name(status),
                  reason ? reason : "", s->n_welcomed);
    }
    if (x->prev)
        x->prev->next = x->next;
    else
        s->sessions = x->next;
    if (x->next)
        x->next->prev = x->prev;
    s->n_sessions--;
    frl_conn_set_data(c, NULL);
    free(x);
}

/* ---------------------------------------------------------------------------
 * Rounds
 * ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void fail_try(frl_server_t *s, const char *why)
{
    uint32_t round = s->rounds_done + 1;
    s->failed_tries++;
    FRL_LOG_W("round_failed", "round=%u try=%u reason=%s selected=%u accepted=%u quorum=%u connected=%u", round,
              s->try_no + 1, why, s->n_selected, s->m.accepted, s->quorum_needed, s->n_welcomed);
    if (s->failed_tries > (uint32_t)s->o.max_retries) {
        FRL_LOG_E("quorum_lost",
                  "round=%u tries=%u msg=\"round %u did not reach its quorum in %u tries (last: %u of %u needed votes, %u "
                  "clients connected); giving up\"",
                  round, s->failed_tries, round, s->failed_tries, s->m.accepted, s->quorum_needed, s->n_welcomed);
        fprintf(stderr,
                "frl-server: round %u did not reach its quorum after %u tries (last try: %u accepted votes, %u needed, "
                "%u clients connected); giving up. The state directory keeps the %u completed rounds.\n",
                round, s->failed_tries, s->m.accepted, s->quorum_needed, s->n_welcomed, s->rounds_done);
        s->exit_status = FRL_SERVER_EXIT_QUORUM;
        begin_shutdown(s);
        return;
    }
    s->try_no++;
    set_state(s, ST_RETRY_WAIT);
    uv_timer_start(&s->timer, on_timer, (uint64_t)(s->o.retry_wait * 1000.0), 0);
}

static void reset_round_flags(frl_server_t *s)
{
    for (uint32_t i = 0; i < s->n_selected; i++)
        s->flag[s->selected[i]] = 0;
    s->n_selected = s->n_answered = 0;
    if (s->task_buf) {
        frl_msgbuf_unref(s->task_buf);
        s->task_buf = NULL;
    }
}

static void close_collecting(frl_server_t *s, const char *why)
{
    if (s->state != ST_COLLECTING)
        return;
    uv_timer_stop(&s->timer);
    s->t_collect_end = frl_now_s();
    s->m.collect_s = s->t_collect_end - s->t_round0;
    s->m.selected = s->n_selected;
    uint32_t round = s->rounds_done + 1;
    FRL_LOG_D("round_collected", "round=%u why=%s accepted=%u selected=%u", round, why, s->m.accepted, s->n_selected);
    if (s->m.accepted >= s->quorum_needed && s->m.accepted > 0) {
        reset_round_flags(s);
        s->round_begun = 0;
        set_state(s, ST_VOTING);
        queue_job(s, WORK_VOTE);
    } else {
        /* Below quorum. The votes counted so far stay in the tally: a retry
         * adds a new sample to the same round (same global ranking), and the
         * clients of the earlier tries may still answer. */
        fail_try(s, why);
    }
}

/* Opens the round (first try) or extends it with a new sample (retry):
 * picks up to per-round connected clients not yet selected in this round
 * (seeded by round and try), sends them the task with a fresh deadline. */
static void open_round(frl_server_t *s)
{
    uint32_t round = s->rounds_done + 1;
    if (!s->round_begun) {
        int r = frl_vote_round_begin(s->vr, round, s->global, NULL, 0); /* eligibility: s->flag */
        if (r) {
            FRL_LOG_E("round_begin", "round=%u error=%s", round, frl_err_name(r));
            s->exit_status = FRL_SERVER_EXIT_ERROR;
            begin_shutdown(s);
            return;
        }
        s->round_begun = 1;
        memset(&s->m, 0, sizeof s->m);
        s->m.round = round;
        s->m.agree_min = s->m.agree_max = s->m.agree_mean = NAN;
        s->m.accuracy = s->m.loss = NAN;
        s->agree_sum = s->loss_sum = 0;
        s->agree_n = s->loss_n = 0;
        s->n_selected = s->n_answered = 0;
        s->quorum_needed = 0;
        s->t_round0 = frl_now_s();
        s->idle0_ns = uv_metrics_idle_time(s->loop);
        s->cpu0_s = process_cpu_s();
        s->pool_s = 0;
        totals_bytes(s, &s->bytes_in0, &s->bytes_out0);
    }
    uint32_t tries = s->try_no + 1;
    s->m.tries = tries;
    s->t_try0 = frl_now_s();

    uint32_t n = 0;
    uint32_t *cand = malloc((size_t)(s->n_welcomed + 1) * sizeof *cand);
    if (!cand) {
        s->exit_status = FRL_SERVER_EXIT_ERROR;
        begin_shutdown(s);
        return;
    }
    for (sess_t *x = s->sessions; x; x = x->next)
        if (x->welcomed && frl_conn_is_open(x->c) && s->flag[x->idx] == 0 && n < s->n_welcomed)
            cand[n++] = x->idx;
    uint32_t room = s->selected_cap - s->n_selected;
    uint32_t want = (uint32_t)s->o.per_round < room ? (uint32_t)s->o.per_round : room;
    uint32_t *fresh = s->selected + s->n_selected;
    uint32_t k = frl_server_sample(s->seed, round, s->try_no, &s->reg, cand, n, want, fresh);
    free(cand);
    if (s->quorum_needed == 0) {
        uint32_t base = k > 0 ? k : (uint32_t)s->o.per_round;
        s->quorum_needed = s->o.quorum >= 1.0 ? (uint32_t)s->o.quorum : (uint32_t)ceil(s->o.quorum * base - 1e-9);
        if (s->quorum_needed < 1)
            s->quorum_needed = 1;
    }
    s->n_selected += k;
    set_state(s, ST_COLLECTING);
    if (s->n_selected < s->quorum_needed) {
        FRL_LOG_W("round_short", "round=%u try=%u selected=%u quorum=%u", round, tries, s->n_selected, s->quorum_needed);
        close_collecting(s, "too_few_clients");
        return;
    }

    /* Encode the task once, send the same buffer to every newly selected client. */
    const uint32_t *layers[FRL_VOTE_MAX_LAYERS];
    for (int l = 0; l < s->layout.n_layers; l++)
        layers[l] = s->global + s->layout.offset[l];
    Frl__V1__RankingBlob *blob = NULL;
    int r = frl_msg_ranking_new(layers, s->layout.n_edges, (size_t)s->layout.n_layers, &blob);
    if (r == 0) {
        Frl__V1__RoundTask t = FRL__V1__ROUND_TASK__INIT;
        t.round = round;
        s->deadline_unix_ms = unix_ms() + (uint64_t)(s->o.round_deadline * 1000.0);
        t.deadline_unix_ms = s->deadline_unix_ms;
        t.global_ranking = blob;
        t.lr = round_lr(s, round);
        Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
        env.version = FRL_PROTO_VERSION;
        env.body_case = FRL__V1__ENVELOPE__BODY_ROUND_TASK;
        env.round_task = &t;
        if (s->task_buf) {
            frl_msgbuf_unref(s->task_buf);
            s->task_buf = NULL;
        }
        r = frl_net_encode(s->net, &env, &s->task_buf);
        frl_msg_ranking_free(blob);
    }
    if (r) {
        FRL_LOG_E("task_encode", "round=%u error=%s", round, frl_err_name(r));
        s->exit_status = FRL_SERVER_EXIT_ERROR;
        begin_shutdown(s);
        return;
    }
    for (uint32_t i = 0; i < k; i++) {
        uint32_t idx = fresh[i];
        s->flag[idx] = 1;
        s->reg.e[idx].selected++;
        sess_t *x = s->by_idx[idx];
        int sr = x ? frl_conn_send_buf(x->c, s->task_buf) : FRL_ECLOSED;
        if (sr)
            FRL_LOG_W("task_send", "client=%s round=%u error=%s", s->reg.e[idx].id, round, frl_err_name(sr));
    }
    FRL_LOG_I("round_open", "round=%u/%d try=%u selected=%u new=%u connected=%u accepted=%u quorum=%u deadline_s=%g lr=%.6g",
              round, s->o.rounds, tries, s->n_selected, k, s->n_welcomed, s->m.accepted, s->quorum_needed, s->o.round_deadline,
              round_lr(s, round));
    uv_timer_start(&s->timer, on_timer, (uint64_t)(s->o.round_deadline * 1000.0), 0);
}

static void try_open_round(frl_server_t *s)
{
    if (s->state >= ST_STOPPING || s->work_busy)
        return;
    if (s->rounds_done >= (uint32_t)s->o.rounds) {
        start_final(s);
        return;
    }
    uint32_t need = s->o.min_clients > 0 ? (uint32_t)s->o.min_clients : (uint32_t)s->o.per_round;
    if (s->try_no > 0 || s->n_welcomed >= need) {
        uv_timer_stop(&s->timer);
        open_round(s);
        return;
    }
    if (s->state != ST_WAITING) {
        set_state(s, ST_WAITING);
        FRL_LOG_I("round_waiting", "round=%u connected=%u need=%u", s->rounds_done + 1, s->n_welcomed, need);
        if (s->o.wait_timeout > 0)
            uv_timer_start(&s->timer, on_timer, (uint64_t)(s->o.wait_timeout * 1000.0), 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    frl_server_t *s = t->data;
    switch (s->state) {
    case ST_COLLECTING:
        close_collecting(s, "deadline");
        break;
    case ST_RETRY_WAIT:
        set_state(s, ST_WAITING);
        try_open_round(s);
        break;
    case ST_WAITING:
        if (!s->round_begun) {
            memset(&s->m, 0, sizeof s->m);
            s->quorum_needed = 0;
        }
        fail_try(s, "not_enough_clients");
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------
 * Jobs on the thread pool
 * ------------------------------------------------------------------------- */

static int build_state(frl_server_t *s, const uint32_t *ranking, uint32_t rounds_done, uint8_t **buf, size_t *len)
{
    frl_state_t st;
    memset(&st, 0, sizeof st);
    st.rounds_done = rounds_done;
    st.total_rounds = (uint32_t)s->o.rounds;
    snprintf(st.model, sizeof st.model, "%s", s->spec.name);
    memcpy(st.spec_hash, s->spec.hash, 32);
    memcpy(st.seed, s->seed, 32);
    memcpy(st.config_hash, s->config_hash, 32);
    st.n_layers = s->layout.n_layers;
    for (int l = 0; l < st.n_layers; l++)
        st.n_edges[l] = s->layout.n_edges[l];
    st.total_edges = s->layout.total_edges;
    st.ranking = (uint32_t *)ranking;
    return frl_state_encode(&st, s->reg_blob, s->reg_len, buf, len);
}

static int save_state(frl_server_t *s, const uint32_t *ranking, uint32_t rounds_done)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = build_state(s, ranking, rounds_done, &buf, &len);
    if (r == 0) {
        frl_state_t st;
        memset(&st, 0, sizeof st);
        st.rounds_done = rounds_done;
        st.total_rounds = (uint32_t)s->o.rounds;
        snprintf(st.model, sizeof st.model, "%s", s->spec.name);
        memcpy(st.spec_hash, s->spec.hash, 32);
        memcpy(st.config_hash, s->config_hash, 32);
        st.total_edges = s->layout.total_edges;
        r = frl_state_save(s->o.state_dir, buf, len, &st);
    }
    free(buf);
    return r;
}

static int snapshot_registry(frl_server_t *s)
{
    free(s->reg_blob);
    s->reg_blob = NULL;
    return frl_registry_encode(&s->reg, &s->reg_blob, &s->reg_len);
}

static void work_cb(uv_work_t *w)
{
    frl_server_t *s = w->data;
    double t0 = frl_now_s();
    s->work_s[0] = s->work_s[1] = s->work_s[2] = 0;
    switch (s->work_kind) {
    case WORK_VOTE: {
        s->work_rc = frl_vote_round_finalize(s->vr, s->next);
        double t1 = frl_now_s();
        s->work_s[0] = t1 - t0;
        if (s->work_rc == 0)
            s->work_rc = save_state(s, s->next, s->rounds_done + 1);
        s->work_s[1] = frl_now_s() - t1;
        break;
    }
    case WORK_EVAL: {
        double acc = NAN, loss = NAN;
        uint32_t n = s->o.eval_n > 0 && (uint32_t)s->o.eval_n < s->test.n ? (uint32_t)s->o.eval_n : s->test.n;
        s->work_rc = frl_trainer_set_ranking(s->trainer, s->global);
        if (s->work_rc == 0)
            s->work_rc = frl_trainer_evaluate(s->trainer, &s->test, NULL, n, &s->tcfg, &acc, &loss);
        s->m.accuracy = acc;
        s->m.loss = loss;
        s->work_s[0] = frl_now_s() - t0;
        break;
    }
    case WORK_FINAL: {
        double acc = NAN, loss = NAN;
        s->final_acc_float = s->final_acc_int = NAN;
        int r = 0;
        /* A view of the first final-eval-n test images (not owned). */
        frl_dataset_t view = s->test;
        if (s->o.final_eval_n > 0 && (uint32_t)s->o.final_eval_n < view.n)
            view.n = (uint32_t)s->o.final_eval_n;
        s->final_n = view.n;
        if (s->have_test) {
            r = frl_trainer_set_ranking(s->trainer, s->global);
            if (r == 0)
                r = frl_trainer_evaluate(s->trainer, &view, NULL, view.n, &s->tcfg, &acc, &loss);
            s->final_acc_float = acc;
        }
        frl_dataset_t empty;
        memset(&empty, 0, sizeof empty);
        frl_qmodel_t *qm = NULL;
        if (r == 0)
            r = frl_qmodel_from_ranking(&s->spec, s->seed, s->o.keep, s->rule, s->global, s->have_test ? &view : &empty,
                                        NULL, &qm);
        if (r == 0)
            r = frl_qmodel_save(qm, s->model_out);
        if (r == 0 && s->have_test) {
            frl_qeval_t qe;
            r = frl_qmodel_evaluate(qm, &view, 0, 1, &qe, NULL);
            if (r == 0)
                s->final_acc_int = qe.accuracy;
        }
        frl_qmodel_free(qm);
        s->work_rc = r;
        s->work_s[0] = frl_now_s() - t0;
        break;
    }
    default:
        s->work_rc = FRL_EINVAL;
        break;
    }
}

static void finish_round(frl_server_t *s);

static void after_work_cb(uv_work_t *w, int status)
{
    frl_server_t *s = w->data;
    work_kind kind = s->work_kind;
    s->work_busy = 0;
    s->work_kind = WORK_NONE;
    s->pool_s += s->work_s[0] + s->work_s[1];
    if (s->state == ST_STOPPING) {
        /* A stop arrived while the job ran. A finished vote job has already
         * written its checkpoint: count the round, then stop. */
        if (kind == WORK_VOTE && s->work_rc == 0) {
            uint32_t *t = s->global;
            s->global = s->next;
            s->next = t;
            s->rounds_done++;
        }
        begin_shutdown(s);
        return;
    }
    if (s->work_rc) {
        FRL_LOG_E("job_failed", "job=%d round=%u error=%s msg=\"%s\"", (int)kind, s->rounds_done + 1, frl_err_name(s->work_rc),
                  frl_strerror(s->work_rc));
        if (kind != WORK_EVAL) {
            fprintf(stderr, "frl-server: %s failed: %s\n",
                    kind == WORK_VOTE ? "vote/checkpoint" : "final model", frl_strerror(s->work_rc));
            s->exit_status = FRL_SERVER_EXIT_ERROR;
            begin_shutdown(s);
            return;
        }
    }
    switch (kind) {
    case WORK_VOTE: {
        uint32_t *t = s->global;
        s->global = s->next;
        s->next = t;
        s->rounds_done++;
        s->m.vote_s = s->work_s[0];
        s->m.checkpoint_s = s->work_s[1];
        uint32_t r = s->rounds_done;
        if (s->have_test && s->o.eval_every > 0 && (r % (uint32_t)s->o.eval_every == 0 || r == (uint32_t)s->o.rounds)) {
            set_state(s, ST_EVALUATING);
            queue_job(s, WORK_EVAL);
        } else {
            finish_round(s);
        }
        break;
    }
    case WORK_EVAL:
        s->m.eval_s = s->work_s[0];
        if (!isnan(s->m.accuracy))
            s->last_acc = s->m.accuracy;
        finish_round(s);
        break;
    case WORK_FINAL: {
        char accs[128];
        snprintf(accs, sizeof accs, "%.4f", s->final_acc_int);
        FRL_LOG_I("final_model", "path=%s rounds=%u test_accuracy_int=%.4f test_accuracy_float=%.4f test_n=%u seconds=%.2f",
                  s->model_out, s->rounds_done, s->final_acc_int, s->final_acc_float, s->final_n, s->work_s[0]);
        printf("frl-server: final model %s after %u rounds: test accuracy %.4f (integer-only model), %.4f (float masked "
               "model), %u test images\n",
               s->model_out, s->rounds_done, s->final_acc_int, s->final_acc_float, s->final_n);
        fflush(stdout);
        for (sess_t *x = s->sessions; x; x = x->next)
            frl_conn_close(x->c, 0, "done");
        s->exit_status = FRL_SERVER_EXIT_OK;
        begin_shutdown(s);
        break;
    }
    default:
        break;
    }
}

static void queue_job(frl_server_t *s, work_kind kind)
{
    if (kind == WORK_VOTE && snapshot_registry(s) != 0) {
        s->exit_status = FRL_SERVER_EXIT_ERROR;
        begin_shutdown(s);
        return;
    }
    s->work_kind = kind;
    s->work_busy = 1;
    s->work.data = s;
    int r = uv_queue_work(s->loop, &s->work, work_cb, after_work_cb);
    if (r) {
        s->work_busy = 0;
        FRL_LOG_E("queue_work", "error=\"%s\"", uv_strerror(r));
        s->exit_status = FRL_SERVER_EXIT_ERROR;
        begin_shutdown(s);
    }
}

static void write_metrics(frl_server_t *s)
{
    char line[2048];
    int n = frl_round_metrics_json(&s->m, line, sizeof line);
    if (n > 0 && s->metrics_f) {
        fprintf(s->metrics_f, "%s\n", line);
        fflush(s->metrics_f);
    }
}

static void finish_round(frl_server_t *s)
{
    frl_round_metrics_t *m = &s->m;
    double now = frl_now_s();
    m->round_s = now - s->t_round0;
    uint64_t idle = uv_metrics_idle_time(s->loop) - s->idle0_ns;
    double busy = m->round_s - (double)idle * 1e-9;
    if (busy < 0)
        busy = 0;
    m->overhead_s = busy + s->pool_s;
    m->overhead_share = m->round_s > 0 ? m->overhead_s / m->round_s : 0;
    m->cpu_s = process_cpu_s() - s->cpu0_s;
    m->agree_mean = s->agree_n ? s->agree_sum / s->agree_n : NAN;
    m->train_loss_mean = s->loss_n ? s->loss_sum / s->loss_n : NAN;
    uint64_t bi, bo;
    totals_bytes(s, &bi, &bo);
    m->bytes_in = bi - s->bytes_in0;
    m->bytes_out = bo - s->bytes_out0;
    m->connected = s->n_welcomed;
    m->peak_rss_kb = frl_peak_rss_kb();
    s->last = *m;
    write_metrics(s);
    char acc[32];
    if (isnan(m->accuracy))
        snprintf(acc, sizeof acc, "-");
    else
        snprintf(acc, sizeof acc, "%.4f", m->accuracy);
    FRL_LOG_I("round_done",
              "round=%u/%d tries=%u selected=%u accepted=%u rejected=%u dropped=%u acc=%s agree_mean=%.4f train_loss=%.4f "
              "round_s=%.2f collect_s=%.2f vote_s=%.3f checkpoint_s=%.3f eval_s=%.2f overhead_share=%.4f cpu_s=%.2f bytes_in=%llu "
              "bytes_out=%llu",
              m->round, s->o.rounds, m->tries, m->selected, m->accepted, m->rejected, m->dropped, acc, m->agree_mean,
              m->train_loss_mean, m->round_s, m->collect_s, m->vote_s, m->checkpoint_s, m->eval_s, m->overhead_share,
              m->cpu_s, (unsigned long long)m->bytes_in, (unsigned long long)m->bytes_out);
    if (s->round_cb)
        s->round_cb(s, m, s->round_ud);
    s->try_no = 0;
    s->failed_tries = 0;
    set_state(s, ST_INIT); /* try_open_round decides: open, wait or finish */
    try_open_round(s);
}

static void start_final(frl_server_t *s)
{
    if (s->state == ST_FINAL)
        return;
    set_state(s, ST_FINAL);
    FRL_LOG_I("final_start", "rounds=%u model_out=%s", s->rounds_done, s->model_out);
    queue_job(s, WORK_FINAL);
}

/* ---------------------------------------------------------------------------
 * Stop and teardown
 * ------------------------------------------------------------------------- */

static void net_closed_cb(void *ud)
{
    frl_server_t *s = ud;
    s->net = NULL;
}

static void handle_closed(uv_handle_t *h)
{
    frl_server_t *s = h->data;
    s->handles_open--;
}

static void begin_shutdown(frl_server_t *s)
{
    if (s->state == ST_CLOSED)
        return;
    if (s->state != ST_STOPPING)
        set_state(s, ST_STOPPING);
    if (s->work_busy)
        return; /* after_work_cb comes back here */
    set_state(s, ST_CLOSED);
    if (s->task_buf) {
        reset_round_flags(s);
    }
    /* Write the state once more: the registry may know new clients. The
     * ranking is the last completed round's, so this never loses a round. */
    if (s->global && snapshot_registry(s) == 0) {
        int r = save_state(s, s->global, s->rounds_done);
        if (r)
            FRL_LOG_E("state_write", "dir=%s error=%s", s->o.state_dir, frl_err_name(r));
    }
    FRL_LOG_I("server_stop", "rounds_done=%u exit_status=%d", s->rounds_done, s->exit_status);
    if (s->net) {
        frl_net_t *n = s->net;
        frl_net_close(n, net_closed_cb, s);
    }
    if (s->http) {
        frl__http_close(s->http);
        s->http = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&s->sig_int))
        uv_close((uv_handle_t *)&s->sig_int, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&s->sig_term))
        uv_close((uv_handle_t *)&s->sig_term, handle_closed);
}

void frl_server_stop(frl_server_t *s)
{
    if (!s || s->state >= ST_STOPPING)
        return;
    FRL_LOG_I("server_stopping", "round=%u state=%s", s->rounds_done + 1, state_names[s->state]);
    if (s->state == ST_COLLECTING)
        FRL_LOG_I("round_abandoned", "round=%u accepted=%u", s->rounds_done + 1, s->m.accepted);
    uv_timer_stop(&s->timer);
    s->stop_requested = 1;
    begin_shutdown(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    frl_server_t *s = h->data;
    FRL_LOG_I("signal", "signal=%d", signum);
    frl_server_stop(s);
}

/* ---------------------------------------------------------------------------
 * Start-up
 * ------------------------------------------------------------------------- */

static int open_state_dir(frl_server_t *s, int *exit_status)
{
    int r = frl_file_mkdirs(s->o.state_dir);
    if (r) {
        FRL_LOG_E("state_dir", "dir=%s error=%s", s->o.state_dir, frl_err_name(r));
        fprintf(stderr, "frl-server: cannot create state directory %s\n", s->o.state_dir);
        return r;
    }
    char path[FRL_SERVER_STR + 16];
    snprintf(path, sizeof path, "%s/lock", s->o.state_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "frl-server: state directory %s is in use by another server (lock %s)\n", s->o.state_dir, path);
        FRL_LOG_E("state_locked", "dir=%s", s->o.state_dir);
        *exit_status = FRL_SERVER_EXIT_STATE;
        return FRL_ESTATE;
    }
    return 0;
}

static int load_or_init_state(frl_server_t *s, int *exit_status)
{
    frl_state_t st;
    uint8_t given_seed[FRL_SEED_BYTES];
    int have_seed = s->o.seed[0] != '\0';
    if (have_seed && frl_seed_parse(s->o.seed, given_seed) != 0) {
        fprintf(stderr, "frl-server: seed: expected 64 hex digits or an integer\n");
        *exit_status = FRL_SERVER_EXIT_USAGE;
        return FRL_EINVAL;
    }
    int r = frl_state_load(s->o.state_dir, &st, &s->reg);
    if (r == 0) {
        /* Resume: the state's seed unless one was given, and the config hash
         * must match what this configuration would produce. */
        if (!have_seed)
            memcpy(given_seed, st.seed, FRL_SEED_BYTES);
        uint8_t h[32];
        frl_server_config_hash(s->spec.name, s->spec.hash, s->o.keep, s->o.rule, given_seed, h);
        const char *what = NULL;
        if (strcmp(st.model, s->spec.name) != 0)
            what = "model";
        else if (memcmp(st.spec_hash, s->spec.hash, 32) != 0)
            what = "model spec (this build defines the model differently)";
        else if (memcmp(st.seed, given_seed, 32) != 0)
            what = "seed";
        else if (sodium_memcmp(h, st.config_hash, 32) != 0)
            what = "keep or rule";
        else if ((uint64_t)st.total_edges != s->layout.total_edges)
            what = "ranking size";
        if (what) {
            fprintf(stderr,
                    "frl-server: the state directory %s belongs to another federation: its %s differs from this "
                    "configuration (state: model %s, %u rounds done). Use another state-dir, or the original settings.\n",
                    s->o.state_dir, what, st.model, st.rounds_done);
            FRL_LOG_E("state_incompatible", "dir=%s differs=\"%s\"", s->o.state_dir, what);
            frl_state_free(&st);
            *exit_status = FRL_SERVER_EXIT_STATE;
            return FRL_EMISMATCH;
        }
        memcpy(s->seed, st.seed, 32);
        memcpy(s->config_hash, st.config_hash, 32);
        memcpy(s->global, st.ranking, s->layout.total_edges * sizeof *s->global);
        s->rounds_done = st.rounds_done;
        frl_state_free(&st);
        FRL_LOG_I("state_resume", "dir=%s rounds_done=%u next_round=%u clients_known=%u", s->o.state_dir, s->rounds_done,
                  s->rounds_done + 1, s->reg.n);
        return 0;
    }
    if (r != FRL_ENOENT) {
        fprintf(stderr, "frl-server: cannot read %s/%s: %s\n", s->o.state_dir, FRL_STATE_FILE, frl_strerror(r));
        FRL_LOG_E("state_read", "dir=%s error=%s", s->o.state_dir, frl_err_name(r));
        *exit_status = FRL_SERVER_EXIT_STATE;
        return r;
    }
    /* Fresh federation. */
    if (have_seed)
        memcpy(s->seed, given_seed, 32);
    else
        frl_seed_random(s->seed);
    frl_server_config_hash(s->spec.name, s->spec.hash, s->o.keep, s->o.rule, s->seed, s->config_hash);
    s->rounds_done = 0;
    return 1;
}

static int init_network_and_trainer(frl_server_t *s)
{
    int r = frl_network_init(&s->netw, &s->spec, s->seed, 1);
    if (r)
        return r;
    s->netw_ok = 1;
    frl_train_cfg_default(&s->tcfg);
    s->tcfg.keep = s->o.keep;
    s->tcfg.rule = s->rule;
    return frl_trainer_create(&s->netw, 100, s->o.keep, s->rule, &s->trainer);
}

/* Every round allocates and frees buffers of a ranking's size (the frame,
 * the unpacked message, the decoded ranking: megabytes each). glibc would
 * give large ones back to the kernel on free and take them again, zeroed
 * page by page, on the next submission; measured on lenet rounds, that
 * page clearing was ~5% of the server's CPU. Keep them in the heap. */
static void keep_freed_buffers(void)
{
#if defined(__GLIBC__)
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);  /* glibc's maximum */
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20); /* RSS stays near its peak, as it would anyway */
#endif
}

int frl_server_new(uv_loop_t *loop, const frl_server_opts *o, frl_server_t **out, int *exit_status)
{
    keep_freed_buffers();
    int dummy;
    if (!exit_status)
        exit_status = &dummy;
    *exit_status = FRL_SERVER_EXIT_ERROR;
    *out = NULL;
    char err[512];
    if (frl_server_opts_check(o, err, sizeof err)) {
        fprintf(stderr, "frl-server: %s\n", err);
        *exit_status = FRL_SERVER_EXIT_USAGE;
        return FRL_EINVAL;
    }
    frl_log_level lvl;
    if (frl_log_parse_level(o->log_level, &lvl) != 0) {
        fprintf(stderr, "frl-server: log-level: expected debug, info, warn or error\n");
        *exit_status = FRL_SERVER_EXIT_USAGE;
        return FRL_EINVAL;
    }
    frl_log_set_level(lvl);
    frl_log_set_format(strcmp(o->log_format, "json") == 0 ? FRL_LOG_JSON : FRL_LOG_KV);
    if (sodium_init() < 0)
        return FRL_EIO;

    frl_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return FRL_ENOMEM;
    s->loop = loop;
    s->o = *o;
    s->lock_fd = -1;
    s->last_acc = NAN;
    s->final_acc_float = s->final_acc_int = NAN;
    int r;
    if (frl_model_spec_by_name(o->model, &s->spec) != 0) {
        fprintf(stderr, "frl-server: unknown model '%s'\n", o->model);
        *exit_status = FRL_SERVER_EXIT_USAGE;
        r = FRL_EINVAL;
        goto fail;
    }
    frl_mask_rule_parse(o->rule, &s->rule);
    uint32_t n_edges[FRL_MAX_LAYERS];
    for (int l = 0; l < s->spec.n_layers; l++)
        n_edges[l] = s->spec.layers[l].n_edges;
    r = frl_vote_layout_init(&s->layout, s->spec.n_layers, n_edges);
    if (r)
        goto fail;
    size_t te = s->layout.total_edges;
    s->global = malloc(te * sizeof *s->global);
    s->next = malloc(te * sizeof *s->next);
    s->scratch = malloc(te * sizeof *s->scratch);
    s->by_idx = calloc((size_t)o->max_clients, sizeof *s->by_idx);
    s->flag = calloc((size_t)o->max_clients, 1);
    uint64_t cap = (uint64_t)o->per_round * ((uint64_t)o->max_retries + 1);
    s->selected_cap = cap < (uint64_t)o->max_clients ? (uint32_t)cap : (uint32_t)o->max_clients;
    s->selected = malloc((size_t)s->selected_cap * sizeof *s->selected);
    r = FRL_ENOMEM;
    if (!s->global || !s->next || !s->scratch || !s->by_idx || !s->flag || !s->selected)
        goto fail;
    r = frl_registry_init(&s->reg, (uint32_t)o->max_clients);
    if (r)
        goto fail;
    r = open_state_dir(s, exit_status);
    if (r)
        goto fail;
    int fresh = load_or_init_state(s, exit_status);
    if (fresh < 0) {
        r = fresh;
        goto fail;
    }
    r = init_network_and_trainer(s);
    if (r) {
        FRL_LOG_E("model_init", "model=%s error=%s", s->spec.name, frl_err_name(r));
        goto fail;
    }
    if (fresh) {
        /* Round 1's global ranking: argsort of the seed's initial scores. */
        r = frl_trainer_reset_scores(s->trainer);
        if (r == 0)
            r = frl_trainer_get_ranking(s->trainer, s->global);
        if (r == 0)
            r = snapshot_registry(s);
        if (r == 0)
            r = save_state(s, s->global, 0);
        if (r) {
            fprintf(stderr, "frl-server: cannot write the state directory %s: %s\n", o->state_dir, frl_strerror(r));
            *exit_status = FRL_SERVER_EXIT_STATE;
            goto fail;
        }
        char sh[65];
        frl_seed_to_hex(s->seed, sh);
        FRL_LOG_I("state_new", "dir=%s seed=%s seed_source=%s", o->state_dir, sh, o->seed[0] ? "config" : "random");
        sodium_memzero(sh, sizeof sh);
    }
    r = frl_vote_round_create(&s->layout, (uint32_t)o->max_clients, &s->vr);
    /* A submission's large layers are added by two threads when there are
     * two cores (the loop's and a helper): about twice as fast. */
    if (r == 0 && sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        r = frl_vote_tally_set_threads(frl_vote_round_tally(s->vr), 2);
    if (r)
        goto fail;
    if (strcmp(o->policy, "off") != 0) {
        frl_vote_policy_config_t pc;
        frl_vote_policy_config_default(&pc);
        pc.mode = !strcmp(o->policy, "flag") ? FRL_VOTE_POLICY_FLAG
                  : !strcmp(o->policy, "drop") ? FRL_VOTE_POLICY_DROP
                                               : FRL_VOTE_POLICY_DOWNWEIGHT;
        pc.threshold = o->policy_threshold;
        pc.rounds = (uint32_t)o->policy_rounds;
        r = frl_vote_policy_create(&pc, (uint32_t)o->max_clients, &s->policy);
        if (r == 0)
            r = frl_vote_round_set_policy(s->vr, s->policy);
        if (r)
            goto fail;
    }
    if (o->model_out[0])
        snprintf(s->model_out, sizeof s->model_out, "%s", o->model_out);
    else
        snprintf(s->model_out, sizeof s->model_out, "%s/model.frlq", o->state_dir);

    /* Evaluation data (the test split). */
    if (o->eval_data[0] && strcmp(o->eval_data, "none") != 0) {
        r = frl_mnist_load(o->eval_data, "t10k", NULL, 0, &s->test);
        if (r == 0) {
            s->have_test = 1;
        } else {
            FRL_LOG_W("eval_data", "dir=%s error=%s msg=\"no evaluation; the final model is not calibrated\"", o->eval_data,
                      frl_err_name(r));
        }
    }

    if (o->metrics_file[0]) {
        s->metrics_f = fopen(o->metrics_file, "a");
        if (!s->metrics_f) {
            fprintf(stderr, "frl-server: cannot open metrics file %s: %s\n", o->metrics_file, strerror(errno));
            r = FRL_EIO;
            goto fail;
        }
    }

    /* Network. */
    frl_net_config nc;
    frl_net_config_defaults(&nc, FRL_NET_SERVER);
    nc.ca_file = o->ca[0] ? o->ca : NULL;
    nc.cert_file = o->cert[0] ? o->cert : NULL;
    nc.key_file = o->key[0] ? o->key : NULL;
    nc.auth = strcmp(o->auth, "token") == 0 ? FRL_AUTH_TOKEN : FRL_AUTH_MTLS;
    nc.token_file = o->token_file[0] ? o->token_file : NULL;
    nc.insecure_plaintext = o->insecure_plaintext;
    nc.max_conns = (unsigned)o->max_conns;
    nc.heartbeat_ms = (unsigned)o->heartbeat_ms;
    nc.idle_timeout_ms = (unsigned)o->idle_timeout_ms;
    frl_net_callbacks cb = {.on_open = net_on_open, .on_message = net_on_message, .on_close = net_on_close};
    r = frl_net_new(loop, &nc, &cb, s, &s->net);
    if (r) {
        fprintf(stderr, "frl-server: network setup failed: %s (see the log for the file)\n", frl_strerror(r));
        goto fail;
    }
    char host[256];
    int port;
    frl_server_split_hostport(o->listen, host, sizeof host, &port);
    r = frl_net_listen(s->net, host, port);
    if (r) {
        fprintf(stderr, "frl-server: cannot listen on %s: %s\n", o->listen, frl_strerror(r));
        frl_net_close(s->net, NULL, NULL);
        s->net = NULL;
        goto fail;
    }
    if (o->metrics_listen[0] && strcmp(o->metrics_listen, "off") != 0) {
        frl_server_split_hostport(o->metrics_listen, host, sizeof host, &port);
        r = frl__http_start(loop, host, port, s, &s->http);
        if (r) {
            fprintf(stderr, "frl-server: cannot listen on metrics-listen %s\n", o->metrics_listen);
            frl_net_close(s->net, NULL, NULL);
            s->net = NULL;
            goto fail;
        }
    }
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    uv_timer_init(loop, &s->timer);
    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_term);
    s->timer.data = s->sig_int.data = s->sig_term.data = s;
    s->handles_open = 3;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);

    char seed_hex[65], cfg_hex[65];
    frl_seed_to_hex(s->seed, seed_hex);
    hex(s->config_hash, 32, cfg_hex);
    FRL_LOG_I("server_start",
              "version=\"%s\" listen=%s port=%d auth=%s model=%s edges=%llu keep=%g rule=%s rounds=%d per_round=%d "
              "quorum=%g deadline_s=%g state_dir=%s rounds_done=%u config_hash=%.16s eval_data=%s",
              FRL_SERVER_VERSION, o->listen, frl_net_port(s->net), o->insecure_plaintext ? "none" : o->auth, s->spec.name,
              (unsigned long long)s->layout.total_edges, o->keep, o->rule, o->rounds, o->per_round, o->quorum,
              o->round_deadline, o->state_dir, s->rounds_done, cfg_hex, s->have_test ? o->eval_data : "none");
    sodium_memzero(seed_hex, sizeof seed_hex);
    *out = s;
    *exit_status = FRL_SERVER_EXIT_OK;
    s->state = ST_INIT;
    try_open_round(s);
    return 0;
fail:
    if (s->http)
        frl__http_close(s->http);
    s->http = NULL;
    frl_server_free(s); /* everything else goes as on a normal exit */
    return r ? r : FRL_EINVAL;
}

void frl_server_free(frl_server_t *s)
{
    if (!s)
        return;
    if (s->metrics_f)
        fclose(s->metrics_f);
    frl_vote_round_destroy(s->vr);
    frl_vote_policy_destroy(s->policy);
    frl_trainer_destroy(s->trainer);
    if (s->netw_ok)
        frl_network_free(&s->netw);
    frl_dataset_free(&s->test);
    frl_registry_free(&s->reg);
    if (s->task_buf)
        frl_msgbuf_unref(s->task_buf);
    free(s->global);
    free(s->next);
    free(s->scratch);
    free(s->by_idx);
    free(s->flag);
    free(s->selected);
    free(s->reg_blob);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

int frl_server_exit_status(const frl_server_t *s)
{
    return s->exit_status;
}

uint32_t frl_server_rounds_done(const frl_server_t *s)
{
    return s->rounds_done;
}

int frl_server_port(const frl_server_t *s)
{
    return s->net ? frl_net_port(s->net) : -1;
}

double frl_server_last_accuracy(const frl_server_t *s)
{
    return s->last_acc;
}

void frl_server_set_round_cb(frl_server_t *s, frl_server_round_cb cb, void *ud)
{
    s->round_cb = cb;
    s->round_ud = ud;
}

/* ---------------------------------------------------------------------------
 * Metrics
 * ------------------------------------------------------------------------- */

static const char *const reject_names[9] = {"FRL_EVOTE_LAYERS", "FRL_EVOTE_LENGTH",     "FRL_EVOTE_RANGE",
                                            "FRL_EVOTE_DUPLICATE", "FRL_EVOTE_ROUND",  "FRL_EVOTE_REPEAT",
                                            "FRL_EVOTE_UNKNOWN_CLIENT", "FRL_EVOTE_DROPPED", "other"};

static int jnum(char *b, size_t cap, const char *key, double v, int last)
{
    if (isnan(v) || isinf(v))
        return snprintf(b, cap, "\"%s\":null%s", key, last ? "" : ",");
    return snprintf(b, cap, "\"%s\":%.6g%s", key, v, last ? "" : ",");
}

int frl_round_metrics_json(const frl_round_metrics_t *m, char *buf, size_t cap)
{
    size_t n = 0;
#define APP(expr)                                                                                                          \
    do {                                                                                                                   \
        int k_ = (expr);                                                                                                   \
        if (k_ < 0 || (size_t)k_ >= cap - n)                                                                               \
            return FRL_ETOOBIG;                                                                                            \
        n += (size_t)k_;                                                                                                   \
    } while (0)
    APP(snprintf(buf + n, cap - n,
                 "{\"ts_unix_ms\":%llu,\"round\":%u,\"tries\":%u,\"selected\":%u,\"received\":%u,\"accepted\":%u,"
                 "\"rejected\":%u,\"dropped\":%u,\"flagged\":%u,\"rejected_reasons\":{",
                 (unsigned long long)unix_ms(), m->round, m->tries, m->selected, m->received, m->accepted, m->rejected,
                 m->dropped, m->flagged));
    int first = 1;
    for (int i = 0; i < 9; i++) {
        uint32_t v = i < 8 ? m->rejected_by_code[i] : m->rejected_other;
        if (!v)
            continue;
        APP(snprintf(buf + n, cap - n, "%s\"%s\":%u", first ? "" : ",", reject_names[i], v));
        first = 0;
    }
    APP(snprintf(buf + n, cap - n, "},\"agreement\":{"));
    APP(jnum(buf + n, cap - n, "min", m->agree_min, 0));
    APP(jnum(buf + n, cap - n, "mean", m->agree_mean, 0));
    APP(jnum(buf + n, cap - n, "max", m->agree_max, 1));
    APP(snprintf(buf + n, cap - n, "},"));
    APP(jnum(buf + n, cap - n, "accuracy", m->accuracy, 0));
    APP(jnum(buf + n, cap - n, "test_loss", m->loss, 0));
    APP(jnum(buf + n, cap - n, "train_loss_mean", m->train_loss_mean, 0));
    APP(snprintf(buf + n, cap - n, "\"timings\":{"));
    APP(jnum(buf + n, cap - n, "round_s", m->round_s, 0));
    APP(jnum(buf + n, cap - n, "collect_s", m->collect_s, 0));
    APP(jnum(buf + n, cap - n, "vote_s", m->vote_s, 0));
    APP(jnum(buf + n, cap - n, "checkpoint_s", m->checkpoint_s, 0));
    APP(jnum(buf + n, cap - n, "eval_s", m->eval_s, 0));
    APP(jnum(buf + n, cap - n, "overhead_s", m->overhead_s, 0));
    APP(jnum(buf + n, cap - n, "overhead_share", m->overhead_share, 0));
    APP(jnum(buf + n, cap - n, "server_cpu_s", m->cpu_s, 1));
    APP(snprintf(buf + n, cap - n, "},\"bytes_in\":%llu,\"bytes_out\":%llu,\"connected\":%u,\"peak_rss_kb\":%ld}",
                 (unsigned long long)m->bytes_in, (unsigned long long)m->bytes_out, m->connected, m->peak_rss_kb));
#undef APP
    return (int)n;
}

size_t frl__server_prometheus(const frl_server_t *s, char *buf, size_t cap)
{
    size_t n = 0;
    uint64_t bi, bo;
    totals_bytes(s, &bi, &bo);
    const frl_round_metrics_t *m = &s->last;
#define P(...)                                                                                                             \
    do {                                                                                                                   \
        int k_ = snprintf(buf + n, cap - n, __VA_ARGS__);                                                                  \
        if (k_ < 0 || (size_t)k_ >= cap - n)                                                                               \
            return n;                                                                                                      \
        n += (size_t)k_;                                                                                                   \
    } while (0)
    P("# HELP frl_rounds_done Rounds completed and checkpointed.\n# TYPE frl_rounds_done gauge\nfrl_rounds_done %u\n",
      s->rounds_done);
    P("# HELP frl_rounds_total Rounds configured.\n# TYPE frl_rounds_total gauge\nfrl_rounds_total %d\n", s->o.rounds);
    P("# HELP frl_round_state Current state (1 for the active one).\n# TYPE frl_round_state gauge\n");
    for (int i = ST_INIT; i <= ST_CLOSED; i++)
        P("frl_round_state{state=\"%s\"} %d\n", state_names[i], (int)s->state == i);
    P("# HELP frl_clients_connected Authenticated, welcomed connections.\n# TYPE frl_clients_connected gauge\n"
      "frl_clients_connected %u\n",
      s->n_welcomed);
    P("# HELP frl_clients_known Distinct client ids in the registry.\n# TYPE frl_clients_known gauge\nfrl_clients_known %u\n",
      s->reg.n);
    P("# HELP frl_votes_accepted_total Votes counted.\n# TYPE frl_votes_accepted_total counter\nfrl_votes_accepted_total %llu\n",
      (unsigned long long)s->accepted_total);
    P("# HELP frl_votes_rejected_total Submissions rejected, by reason.\n# TYPE frl_votes_rejected_total counter\n");
    for (int i = 0; i < 9; i++)
        P("frl_votes_rejected_total{reason=\"%s\"} %llu\n", reject_names[i], (unsigned long long)s->rejected_total[i]);
    P("# HELP frl_round_votes_accepted Votes counted in the open round.\n# TYPE frl_round_votes_accepted gauge\n"
      "frl_round_votes_accepted %u\n",
      s->state == ST_COLLECTING ? s->m.accepted : 0);
    P("# HELP frl_bytes_in_total Bytes received from clients.\n# TYPE frl_bytes_in_total counter\nfrl_bytes_in_total %llu\n",
      (unsigned long long)bi);
    P("# HELP frl_bytes_out_total Bytes sent to clients.\n# TYPE frl_bytes_out_total counter\nfrl_bytes_out_total %llu\n",
      (unsigned long long)bo);
    if (!isnan(s->last_acc))
        P("# HELP frl_test_accuracy Test accuracy of the last evaluated global model.\n# TYPE frl_test_accuracy gauge\n"
          "frl_test_accuracy %.6f\n",
          s->last_acc);
    if (m->round) {
        P("# HELP frl_last_round_seconds Wall time of the last completed round.\n# TYPE frl_last_round_seconds gauge\n"
          "frl_last_round_seconds %.6f\n",
          m->round_s);
        P("# HELP frl_last_round_overhead_share Server overhead share of the last round.\n"
          "# TYPE frl_last_round_overhead_share gauge\nfrl_last_round_overhead_share %.6f\n",
          m->overhead_share);
        if (!isnan(m->agree_mean))
            P("# HELP frl_last_round_agreement_mean Mean agreement of the last round's votes with the previous ranking.\n"
              "# TYPE frl_last_round_agreement_mean gauge\nfrl_last_round_agreement_mean %.6f\n",
              m->agree_mean);
    }
    P("# HELP frl_peak_rss_kb Peak resident memory of the server.\n# TYPE frl_peak_rss_kb gauge\nfrl_peak_rss_kb %ld\n",
      frl_peak_rss_kb());
#undef P
    return n;
}
