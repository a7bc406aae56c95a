/* Connections: the libuv adapter around the TLS engine, frames,
 * authentication, timeouts and the write queue. See frl_conn.h for the
 * contract and NET.md §2-3 for the reasoning.
 *
 * Per conn: one uv_tcp_t, one uv_timer_t (backoff, handshake deadline,
 * idle/heartbeat, close deadline -- whichever applies to the state), and
 * for clients a connect and a getaddrinfo request. The conn is freed only
 * when every handle is closed and no request is pending. */
#include "net/frl_conn.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_log.h"
#include "common/frl_rng.h"
#include "net/frl_tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READ_BUF_SIZE (256u << 10)
#define TLS_WRITE_CHUNK (64u << 10)
#define TOKEN_FILE_MAX (16u << 20)

typedef enum {
    CS_BACKOFF,   /* client: waiting before a try */
    CS_RESOLVING, /* client: getaddrinfo */
    CS_CONNECTING,
    CS_HANDSHAKE, /* TLS handshake */
    CS_AUTH,      /* server: waiting for Hello */
    CS_OPEN,
    CS_CLOSING,
} conn_state;

static const char *const state_names[] = {"backoff", "resolving", "connecting", "handshake", "auth", "open", "closing"};

typedef struct sendq_s {
    struct sendq_s *next;
    frl_msgbuf_t *buf;
    size_t off; /* bytes already handed to TLS / the socket */
} sendq_t;

typedef struct wreq_s {
    uv_write_t req;
    frl_conn_t *c;
    uint8_t *cipher;  /* TLS output (owned), or NULL */
    frl_msgbuf_t *mb; /* plaintext frame (one ref), or NULL */
    size_t len;
} wreq_t;

typedef struct token_s {
    char id[FRL_MSG_MAX_ID + 1];
    uint8_t hash[32];
} token_t;

struct frl_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai;
    frl_net_t *net;
    frl_conn_t *prev, *next;
    frl_tls_t *tls;
    conn_state state;
    unsigned tcp_inited : 1;  /* tcp handle initialised and not yet closed */
    unsigned connected : 1;   /* tcp usable for reads/writes */
    unsigned gai_pending : 1; /* getaddrinfo in flight */
    unsigned retrying : 1;    /* tcp being closed for another try */
    unsigned authed : 1;      /* peer authenticated: big frames, all messages */
    unsigned up : 1;          /* on_open fired */
    unsigned app_knows : 1;   /* the application holds this conn: on_close is owed */
    unsigned closing : 1;     /* teardown started */
    unsigned fatal : 1;       /* nothing more may be sent (TLS failed, socket error) */
    unsigned handles_closing : 1;
    unsigned want_drain : 1;
    unsigned in_flush : 1;
    unsigned flush_again : 1;
    unsigned got_bye : 1;
    unsigned peer_role; /* Hello.role: 0 client, 1 aggregator */
    int peer_error;     /* code of an Error message received from the peer */
    char peer_error_text[128];
    int handles_open;
    int close_status;
    char close_reason[160];
    uint64_t id;
    char peer_addr[64];
    char *peer_id;
    /* receive buffer: only holds an incomplete frame; freed when empty */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    /* send queue */
    sendq_t *q_head, *q_tail;
    size_t q_bytes;
    size_t plain_inflight; /* plaintext mode: bytes in uv_write */
    unsigned writes_pending;
    uint64_t bytes_in, bytes_out;
    uint64_t last_rx, last_tx; /* uv_now() */
    uint64_t wake_at;          /* CS_BACKOFF: when the next try starts (uv_now) */
    unsigned heartbeat_ms;     /* per conn, from the config or frl_conn_set_timeouts */
    unsigned idle_timeout_ms;
    /* client */
    char *host;
    int port;
    unsigned attempt;
    void *data;
};

struct frl_net_s {
    uv_loop_t *loop;
    frl_net_config cfg;
    char *s_ca, *s_cert, *s_key, *s_server_name, *s_token_file;
    frl_tls_config_t *tls;
    token_t *tokens;
    size_t n_tokens;
    frl_net_callbacks cb;
    void *ud;
    uv_tcp_t listener;
    int listening;
    int port;
    uv_timer_t timer; /* keeps frl_net_close asynchronous */
    int handles_open; /* listener, timer, refused sockets */
    frl_conn_t *conns;
    unsigned n_conns;
    uint64_t next_id;
    int closing;
    void (*done)(void *);
    void *done_ud;
    frl_rng_t rng;
    uint8_t *rbuf; /* shared read buffer: consumed synchronously in read_cb */
};

static void conn_flush(frl_conn_t *c);
static void conn_begin_close(frl_conn_t *c, int status, const char *reason, int send_msg);
static void conn_try_free(frl_conn_t *c);
static void conn_arm_timer(frl_conn_t *c);
static void client_start_try(frl_conn_t *c);
static void net_maybe_done(frl_net_t *net);
static void on_net_handle_closed(uv_handle_t *h);

enum { SEND_NONE = 0, SEND_ERROR = 1, SEND_BYE = 2 };

/* ------------------------------------------------------------------ */
/* configuration                                                       */
/* ------------------------------------------------------------------ */

void frl_net_config_defaults(frl_net_config *cfg, frl_net_role role)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->role = role;
    cfg->auth = FRL_AUTH_MTLS;
    cfg->max_frame = FRL_FRAME_MAX_DEFAULT;
    cfg->preauth_max_frame = FRL_FRAME_MAX_PREAUTH;
    cfg->max_conns = 4096;
    cfg->handshake_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->heartbeat_ms = 15000;
    cfg->close_timeout_ms = 5000;
    cfg->write_high_water = 1u << 20;
    cfg->write_low_water = 256u << 10;
    cfg->max_send_queue = 256u << 20;
    cfg->backoff_base_ms = 500;
    cfg->backoff_max_ms = 30000;
    cfg->max_tries = 0;
}

static char *dup_opt(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = FRL_ENOMEM;
    return d;
}

/* Token file: one "client_id token_hex" per line, blank lines and '#'
 * comments ignored. Only BLAKE2b-256 hashes of the tokens are kept; the
 * file contents are wiped after parsing. */
static int load_tokens(frl_net_t *net, const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = frl_file_read_all(path, TOKEN_FILE_MAX, &buf, &len);
    if (r < 0) {
        frl_log(FRL_LOG_ERROR, "net_config", "what=\"cannot read token file\" file=\"%s\" err=%s", path, frl_err_name(r));
        return r;
    }
    size_t cap = 16, n = 0;
    token_t *tok = calloc(cap, sizeof *tok);
    uint8_t *bin = malloc(FRL_MSG_MAX_TOKEN);
    char *text = malloc(len + 1);
    if (!tok || !bin || !text) {
        r = FRL_ENOMEM;
        goto out;
    }
    memcpy(text, buf, len);
    text[len] = '\0';
    int lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char id[FRL_MSG_MAX_ID + 2], hex[2 * FRL_MSG_MAX_TOKEN + 2];
        char extra[2];
        if (strlen(p) > sizeof id + sizeof hex || sscanf(p, "%129s %513s %1s", id, hex, extra) != 2 ||
            strlen(id) > FRL_MSG_MAX_ID) {
            frl_log(FRL_LOG_ERROR, "net_config", "what=\"bad token line\" file=\"%s\" line=%d", path, lineno);
            r = FRL_EFORMAT;
            goto out;
        }
        size_t bin_len = 0;
        if (sodium_hex2bin(bin, FRL_MSG_MAX_TOKEN, hex, strlen(hex), NULL, &bin_len, NULL) != 0 || bin_len == 0) {
            frl_log(FRL_LOG_ERROR, "net_config", "what=\"bad token hex\" file=\"%s\" line=%d", path, lineno);
            r = FRL_EFORMAT;
            goto out;
        }
        if (n == cap) {
            token_t *t2 = realloc(tok, 2 * cap * sizeof *tok);
            if (!t2) {
                r = FRL_ENOMEM;
                goto out;
            }
            tok = t2;
            cap *= 2;
        }
        memset(&tok[n], 0, sizeof tok[n]);
        memcpy(tok[n].id, id, strlen(id) + 1);
        crypto_generichash(tok[n].hash, sizeof tok[n].hash, bin, bin_len, NULL, 0);
        sodium_memzero(hex, sizeof hex);
        n++;
    }
    net->tokens = tok;
    net->n_tokens = n;
    tok = NULL;
    r = 0;
out:
    sodium_memzero(buf, len);
    free(buf);
    if (text) {
        sodium_memzero(text, len + 1);
        free(text);
    }
    if (bin) {
        sodium_memzero(bin, FRL_MSG_MAX_TOKEN);
        free(bin);
    }
    free(tok);
    return r;
}

static void net_free(frl_net_t *net)
{
    frl_tls_config_free(net->tls);
    if (net->tokens) {
        sodium_memzero(net->tokens, net->n_tokens * sizeof *net->tokens);
        free(net->tokens);
    }
    free(net->s_ca);
    free(net->s_cert);
    free(net->s_key);
    free(net->s_server_name);
    free(net->s_token_file);
    free(net->rbuf);
    free(net);
}

int frl_net_new(uv_loop_t *loop, const frl_net_config *cfg, const frl_net_callbacks *cb, void *ud, frl_net_t **out)
{
    if (!loop || !cfg || !cb || !out || !cb->on_message || !cb->on_close)
        return FRL_EINVAL;
    *out = NULL;
    if (cfg->max_frame < 1 || cfg->preauth_max_frame < 1 || cfg->preauth_max_frame > cfg->max_frame ||
        cfg->max_frame > UINT32_MAX || cfg->write_high_water < 1)
        return FRL_EINVAL;
    if (sodium_init() < 0)
        return FRL_ENOMEM;
    /* libuv writes with plain write(2): a peer that resets would raise
     * SIGPIPE and kill the process. Ignore it unless the program installed
     * its own handler; the write then fails with EPIPE and only that
     * connection closes. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
    frl_net_t *net = calloc(1, sizeof *net);
    if (!net)
        return FRL_ENOMEM;
    net->loop = loop;
    net->cfg = *cfg;
    net->cb = *cb;
    net->ud = ud;
    net->port = -1;
    net->next_id = 1;
    int err = 0;
    net->s_ca = dup_opt(cfg->ca_file, &err);
    net->s_cert = dup_opt(cfg->cert_file, &err);
    net->s_key = dup_opt(cfg->key_file, &err);
    net->s_server_name = dup_opt(cfg->server_name, &err);
    net->s_token_file = dup_opt(cfg->token_file, &err);
    net->rbuf = malloc(READ_BUF_SIZE);
    if (err || !net->rbuf) {
        net_free(net);
        return FRL_ENOMEM;
    }
    net->cfg.ca_file = net->s_ca;
    net->cfg.cert_file = net->s_cert;
    net->cfg.key_file = net->s_key;
    net->cfg.server_name = net->s_server_name;
    net->cfg.token_file = net->s_token_file;

    const int server = cfg->role == FRL_NET_SERVER;
    if (cfg->insecure_plaintext) {
        frl_log(FRL_LOG_WARN, "net_insecure_plaintext",
                "role=%s msg=\"TLS disabled: traffic and tokens travel in clear; for tests only\"", server ? "server" : "client");
    } else {
        frl_tls_config_opts o = {
            .role = server ? FRL_TLS_SERVER : FRL_TLS_CLIENT,
            .ca_file = cfg->ca_file,
            .cert_file = cfg->cert_file,
            .key_file = cfg->key_file,
            .require_client_cert = server && cfg->auth == FRL_AUTH_MTLS,
        };
        if (!server && cfg->auth == FRL_AUTH_TOKEN) {
            o.cert_file = NULL;
            o.key_file = NULL;
        }
        err = frl_tls_config_new(&o, &net->tls);
        if (err < 0) {
            frl_log(FRL_LOG_ERROR, "net_config", "what=\"TLS setup failed\" err=%s", frl_err_name(err));
            net_free(net);
            return err;
        }
    }
    if (server && cfg->token_file) {
        err = load_tokens(net, cfg->token_file);
        if (err < 0) {
            net_free(net);
            return err;
        }
    } else if (server && !cfg->insecure_plaintext && cfg->auth == FRL_AUTH_TOKEN) {
        frl_log(FRL_LOG_ERROR, "net_config", "what=\"token mode needs token_file\"");
        net_free(net);
        return FRL_EINVAL;
    }
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_random(seed);
    frl_rng_init(&net->rng, seed, FRL_STREAM_JITTER, 0, 0);
    if (uv_timer_init(loop, &net->timer) != 0) {
        net_free(net);
        return FRL_ENOMEM;
    }
    net->timer.data = net;
    net->handles_open = 1;
    *out = net;
    return 0;
}

/* ------------------------------------------------------------------ */
/* conn lifetime                                                       */
/* ------------------------------------------------------------------ */

static frl_conn_t *conn_new(frl_net_t *net)
{
    frl_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->net = net;
    c->id = net->next_id++;
    c->close_status = 0;
    c->last_rx = c->last_tx = uv_now(net->loop);
    c->heartbeat_ms = net->cfg.heartbeat_ms;
    c->idle_timeout_ms = net->cfg.idle_timeout_ms;
    if (uv_timer_init(net->loop, &c->timer) != 0) {
        free(c);
        return NULL;
    }
    c->timer.data = c;
    c->handles_open = 1;
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    net->n_conns++;
    return c;
}

static void conn_set_state(frl_conn_t *c, conn_state s)
{
    if (c->state == s)
        return;
    frl_log(FRL_LOG_DEBUG, "conn_state", "conn=%llu from=%s to=%s", (unsigned long long)c->id, state_names[c->state],
            state_names[s]);
    c->state = s;
}

static void queue_clear(frl_conn_t *c, int keep_started)
{
    sendq_t **pp = &c->q_head;
    c->q_tail = NULL;
    while (*pp) {
        sendq_t *q = *pp;
        if (keep_started && q->off > 0) {
            c->q_tail = q;
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        c->q_bytes -= q->buf->len - q->off;
        frl_msgbuf_unref(q->buf);
        free(q);
    }
}

static void conn_free_final(frl_conn_t *c)
{
    frl_net_t *net = c->net;
    if (c->prev)
        c->prev->next = c->next;
    else
        net->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    net->n_conns--;
    if (c->app_knows && net->cb.on_close)
        net->cb.on_close(c, c->close_status, c->close_reason, net->ud);
    queue_clear(c, 0);
    frl_tls_free(c->tls);
    free(c->rx);
    free(c->peer_id);
    free(c->host);
    free(c);
    net_maybe_done(net);
}

static void conn_try_free(frl_conn_t *c)
{
    if (c->handles_open == 0 && !c->gai_pending)
        conn_free_final(c);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    frl_conn_t *c = h->data;
    if (h == (uv_handle_t *)&c->tcp) {
        c->tcp_inited = 0;
        c->connected = 0;
    }
    c->handles_open--;
    conn_try_free(c);
}

/* Closes the conn's handles once; the conn is freed when the last close
 * callback has run (libuv calls pending write callbacks first). */
static void conn_close_handles(frl_conn_t *c)
{
    if (c->handles_closing)
        return;
    c->handles_closing = 1;
    if (c->tcp_inited && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static int conn_can_send(const frl_conn_t *c)
{
    if (c->fatal || !c->connected)
        return 0;
    if (c->tls)
        return frl_tls_is_open(c->tls);
    return 1;
}

static int conn_queue(frl_conn_t *c, frl_msgbuf_t *b)
{
    sendq_t *q = malloc(sizeof *q);
    if (!q)
        return FRL_ENOMEM;
    q->next = NULL;
    q->buf = frl_msgbuf_ref(b);
    q->off = 0;
    if (c->q_tail)
        c->q_tail->next = q;
    else
        c->q_head = q;
    c->q_tail = q;
    c->q_bytes += b->len;
    c->last_tx = uv_now(c->net->loop);
    return 0;
}

/* Queues an Error or Bye as the last frame (best effort, no limits). */
static void conn_queue_final(frl_conn_t *c, int status, const char *reason, int kind)
{
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    Frl__V1__Error err = FRL__V1__ERROR__INIT;
    Frl__V1__Bye bye = FRL__V1__BYE__INIT;
    char text[FRL_MSG_MAX_REASON];
    snprintf(text, sizeof text, "%s", reason ? reason : "");
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
    env.version = FRL_PROTO_VERSION;
    if (kind == SEND_ERROR) {
        err.code = status;
        err.text = text;
        env.body_case = FRL__V1__ENVELOPE__BODY_ERROR;
        env.error = &err;
    } else {
        bye.reason = text;
        env.body_case = FRL__V1__ENVELOPE__BODY_BYE;
        env.bye = &bye;
    }
    frl_msgbuf_t *b = NULL;
    if (frl_frame_encode(&env.base, FRL_FRAME_MAX_PREAUTH, &b) == 0) {
        conn_queue(c, b);
        frl_msgbuf_unref(b);
    }
}

/* The one teardown path. Logs the reason once, stops reading, drops the
 * frames not yet started, optionally queues an Error/Bye, then lets
 * conn_flush send what is left (TLS close_notify last) and close the
 * handles when the writes are done, or when the close timer fires. */
static void conn_begin_close(frl_conn_t *c, int status, const char *reason, int send_msg)
{
    if (c->closing)
        return;
    frl_net_t *net = c->net;
    c->closing = 1;
    c->close_status = status;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
    frl_log(status == 0 ? FRL_LOG_INFO : FRL_LOG_WARN, "conn_close",
            "conn=%llu peer=%s id=%s state=%s status=%s reason=\"%s\" bytes_in=%llu bytes_out=%llu", (unsigned long long)c->id,
            c->peer_addr[0] ? c->peer_addr : "-", c->peer_id ? c->peer_id : "-", state_names[c->state], frl_err_name(status),
            c->close_reason, (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
    conn_set_state(c, CS_CLOSING);
    if (c->gai_pending)
        uv_cancel((uv_req_t *)&c->gai);
    if (c->connected)
        uv_read_stop((uv_stream_t *)&c->tcp);
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
    if (c->fatal || !conn_can_send(c)) {
        queue_clear(c, 0);
    } else {
        queue_clear(c, 1);
        if (send_msg != SEND_NONE)
            conn_queue_final(c, status, c->close_reason, send_msg);
    }
    conn_arm_timer(c);
    (void)net;
    conn_flush(c);
}

/* A fatal condition: nothing more can be sent (any TLS alert still is).
 * During a close already under way it drops what is left and lets the
 * close finish now instead of at the close timeout. */
static void conn_fatal(frl_conn_t *c, int status, const char *reason)
{
    c->fatal = 1;
    if (c->closing) {
        queue_clear(c, 0);
        conn_flush(c);
        return;
    }
    conn_begin_close(c, status, reason, SEND_NONE);
}

/* The peer misbehaved: tell it why when the session still allows it. */
static void conn_fail(frl_conn_t *c, int status, const char *reason)
{
    conn_begin_close(c, status, reason, SEND_ERROR);
}

/* A client try failed before on_open: try again after a backoff delay, or
 * give up and report it through on_close. */
static void client_try_failed(frl_conn_t *c, int status, const char *reason)
{
    frl_net_t *net = c->net;
    const unsigned max = net->cfg.max_tries;
    if (c->closing || net->closing || (max != 0 && c->attempt >= max)) {
        c->fatal = 1;
        conn_begin_close(c, status, reason, SEND_NONE);
        return;
    }
    unsigned delay = frl_net_backoff_ms(net, c->attempt + 1);
    frl_log(FRL_LOG_WARN, "connect_retry", "conn=%llu host=%s port=%d try=%u status=%s reason=\"%s\" delay_ms=%u",
            (unsigned long long)c->id, c->host, c->port, c->attempt, frl_err_name(status), reason ? reason : "", delay);
    if (c->connected)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->connected = 0;
    if (c->tcp_inited && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->retrying = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    }
    /* The TLS engine and buffers of this try go when its writes are done;
     * writes still pending are cancelled by the close above. */
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
    conn_set_state(c, CS_BACKOFF);
    c->wake_at = uv_now(net->loop) + delay;
    conn_arm_timer(c);
}

/* ------------------------------------------------------------------ */
/* writing                                                             */
/* ------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    frl_conn_t *c = w->c;
    c->writes_pending--;
    if (w->cipher) {
        if (c->tls)
            frl_tls_output_done(c->tls, w->len);
        free(w->cipher);
    } else {
        frl_msgbuf_unref(w->mb);
        c->plain_inflight -= w->len;
    }
    if (status == 0)
        c->bytes_out += w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closing) {
        char why[96];
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
        conn_fatal(c, FRL_ECLOSED, why);
        return;
    }
    conn_flush(c);
}

static int conn_uv_write(frl_conn_t *c, uint8_t *cipher, frl_msgbuf_t *mb, const uint8_t *data, size_t len)
{
    wreq_t *w = malloc(sizeof *w);
    if (!w)
        return FRL_ENOMEM;
    w->c = c;
    w->cipher = cipher;
    w->mb = mb;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r != 0) {
        free(w);
        return FRL_ECLOSED;
    }
    c->writes_pending++;
    return 0;
}

/* Moves queued frames into TLS (in chunks, up to the high-water mark) or
 * straight to the socket (plaintext), hands every byte of TLS output to
 * uv_write (after every engine call, NET.md bug 1), and finishes a close
 * once everything is written. Safe to call at any time; re-entrant calls
 * (from on_drain) are folded into the running one. */
static void conn_flush(frl_conn_t *c)
{
    if (c->in_flush) {
        c->flush_again = 1;
        return;
    }
    c->in_flush = 1;
    do {
        c->flush_again = 0;
        if (!c->connected || !c->tcp_inited || uv_is_closing((uv_handle_t *)&c->tcp))
            break;
        if (c->tls) {
            if (!c->fatal && frl_tls_is_open(c->tls)) {
                while (c->q_head) {
                    sendq_t *q = c->q_head;
                    size_t n = q->buf->len - q->off;
                    if (n > TLS_WRITE_CHUNK)
                        n = TLS_WRITE_CHUNK;
                    int r = frl_tls_write(c->tls, q->buf->data + q->off, n);
                    if (r == FRL_EAGAIN)
                        break;
                    if (r < 0) {
                        c->in_flush = 0;
                        conn_fatal(c, FRL_ETLS, frl_tls_error(c->tls));
                        return;
                    }
                    q->off += n;
                    c->q_bytes -= n;
                    if (q->off == q->buf->len) {
                        c->q_head = q->next;
                        if (!c->q_head)
                            c->q_tail = NULL;
                        frl_msgbuf_unref(q->buf);
                        free(q);
                    }
                }
                if (c->closing && !c->q_head)
                    frl_tls_shutdown(c->tls);
            }
            uint8_t *out = NULL;
            size_t len = 0;
            if (frl_tls_take_output(c->tls, &out, &len) < 0) {
                c->in_flush = 0;
                conn_fatal(c, FRL_ENOMEM, "out of memory");
                return;
            }
            if (len > 0 && conn_uv_write(c, out, NULL, out, len) < 0) {
                frl_tls_output_done(c->tls, len);
                free(out);
                c->in_flush = 0;
                conn_fatal(c, FRL_ECLOSED, "write failed");
                return;
            }
        } else if (!c->fatal) {
            while (c->q_head && c->plain_inflight < c->net->cfg.write_high_water) {
                sendq_t *q = c->q_head;
                size_t n = q->buf->len - q->off;
                if (conn_uv_write(c, NULL, q->buf, q->buf->data + q->off, n) < 0) {
                    c->in_flush = 0;
                    conn_fatal(c, FRL_ECLOSED, "write failed");
                    return;
                }
                c->plain_inflight += n;
                c->q_bytes -= n;
                c->q_head = q->next;
                if (!c->q_head)
                    c->q_tail = NULL;
                free(q); /* the write request took the reference */
            }
        }
        if (!c->closing && !c->q_head && c->want_drain) {
            c->want_drain = 0;
            if (c->net->cb.on_drain)
                c->net->cb.on_drain(c, c->net->ud);
        }
    } while (c->flush_again);
    c->in_flush = 0;
    if (c->closing) {
        int drained = c->writes_pending == 0 && (c->fatal || !c->q_head || !c->connected);
        if (c->tls && c->connected && frl_tls_pending_output(c->tls) > 0)
            drained = 0;
        if (drained || !c->connected)
            conn_close_handles(c);
    }
}

int frl_conn_send_buf(frl_conn_t *c, frl_msgbuf_t *b)
{
    if (!c || !b)
        return FRL_EINVAL;
    if (c->closing)
        return FRL_ECLOSED;
    if (c->state != CS_OPEN || !conn_can_send(c))
        return FRL_ESTATE;
    if (c->q_head && c->q_bytes + b->len > c->net->cfg.max_send_queue) {
        c->want_drain = 1;
        return FRL_EAGAIN;
    }
    int r = conn_queue(c, b);
    if (r < 0)
        return r;
    conn_flush(c);
    return 0;
}

int frl_net_encode(const frl_net_t *net, const Frl__V1__Envelope *msg, frl_msgbuf_t **out)
{
    if (!net || !msg || !out)
        return FRL_EINVAL;
    *out = NULL;
    const char *why = NULL;
    if (frl_msg_validate_envelope(msg, &why) < 0) {
        frl_log(FRL_LOG_DEBUG, "net_encode_invalid", "reason=\"%s\"", why);
        return FRL_EINVAL;
    }
    return frl_frame_encode(&msg->base, net->cfg.max_frame, out);
}

int frl_conn_send(frl_conn_t *c, const Frl__V1__Envelope *msg)
{
    if (!c || !msg)
        return FRL_EINVAL;
    if (c->closing)
        return FRL_ECLOSED;
    if (c->state != CS_OPEN || !conn_can_send(c))
        return FRL_ESTATE;
    const char *why = NULL;
    if (frl_msg_validate_envelope(msg, &why) < 0) {
        frl_log(FRL_LOG_DEBUG, "conn_send_invalid", "conn=%llu reason=\"%s\"", (unsigned long long)c->id, why);
        return FRL_EINVAL;
    }
    frl_msgbuf_t *b = NULL;
    int r = frl_frame_encode(&msg->base, c->net->cfg.max_frame, &b);
    if (r < 0)
        return r;
    r = frl_conn_send_buf(c, b);
    frl_msgbuf_unref(b);
    return r;
}

static void conn_send_heartbeat(frl_conn_t *c)
{
    Frl__V1__Heartbeat hb = FRL__V1__HEARTBEAT__INIT;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hb.unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    frl_msgbuf_t *b = NULL;
    if (frl_frame_encode(&env.base, FRL_FRAME_MAX_PREAUTH, &b) == 0) {
        if (conn_queue(c, b) == 0)
            conn_flush(c);
        frl_msgbuf_unref(b);
    }
}

void frl_conn_set_timeouts(frl_conn_t *c, unsigned heartbeat_ms, unsigned idle_timeout_ms)
{
    if (!c || c->closing)
        return;
    c->heartbeat_ms = heartbeat_ms;
    c->idle_timeout_ms = idle_timeout_ms;
    if (c->state == CS_OPEN)
        conn_arm_timer(c);
}

void frl_conn_close(frl_conn_t *c, int status, const char *reason)
{
    if (!c || c->closing)
        return;
    conn_begin_close(c, status, reason ? reason : "closed by application", status < 0 ? SEND_ERROR : SEND_BYE);
}

/* ------------------------------------------------------------------ */
/* timers                                                              */
/* ------------------------------------------------------------------ */

static void on_conn_timer(uv_timer_t *t);

/* Arms the single per-conn timer for the deadline that matters in the
 * current state. In CS_OPEN the timer fires at the earlier of the idle
 * deadline and the heartbeat time; reads and writes only update the
 * timestamps, the callback re-arms. */
static void conn_arm_timer(frl_conn_t *c)
{
    const frl_net_config *cfg = &c->net->cfg;
    uint64_t now = uv_now(c->net->loop);
    uint64_t due = 0;
    switch (c->state) {
    case CS_BACKOFF:
        due = c->wake_at > now ? c->wake_at - now : 0;
        break;
    case CS_RESOLVING:
    case CS_CONNECTING:
    case CS_HANDSHAKE:
    case CS_AUTH:
        due = cfg->handshake_timeout_ms;
        break;
    case CS_OPEN: {
        uint64_t d = UINT64_MAX;
        if (c->idle_timeout_ms) {
            uint64_t at = c->last_rx + c->idle_timeout_ms;
            d = at > now ? at - now : 0;
        }
        if (c->heartbeat_ms) {
            uint64_t at = c->last_tx + c->heartbeat_ms;
            uint64_t d2 = at > now ? at - now : 0;
            if (d2 < d)
                d = d2;
        }
        if (d == UINT64_MAX) {
            uv_timer_stop(&c->timer);
            return;
        }
        due = d;
        break;
    }
    case CS_CLOSING:
        due = cfg->close_timeout_ms;
        break;
    }
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_conn_timer, due, 0);
}

static void on_conn_timer(uv_timer_t *t)
{
    frl_conn_t *c = t->data;
    const frl_net_config *cfg = &c->net->cfg;
    uint64_t now = uv_now(c->net->loop);
    switch (c->state) {
    case CS_BACKOFF:
        if (c->tcp_inited) { /* previous try's handle not closed yet */
            uv_timer_start(&c->timer, on_conn_timer, 1, 0);
            return;
        }
        client_start_try(c);
        return;
    case CS_RESOLVING:
    case CS_CONNECTING:
    case CS_HANDSHAKE:
    case CS_AUTH:
        if (cfg->role == FRL_NET_CLIENT && !c->up)
            client_try_failed(c, FRL_ETIMEDOUT, "handshake timeout");
        else
            conn_fail(c, FRL_ETIMEDOUT, "handshake timeout");
        return;
    case CS_OPEN:
        if (c->idle_timeout_ms && now >= c->last_rx + c->idle_timeout_ms) {
            conn_fail(c, FRL_ETIMEDOUT, "idle timeout");
            return;
        }
        if (c->heartbeat_ms && now >= c->last_tx + c->heartbeat_ms)
            conn_send_heartbeat(c);
        if (!c->closing)
            conn_arm_timer(c);
        return;
    case CS_CLOSING:
        frl_log(FRL_LOG_WARN, "conn_close_timeout", "conn=%llu msg=\"peer did not take the final bytes\"",
                (unsigned long long)c->id);
        conn_close_handles(c);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* reading: frames and messages                                        */
/* ------------------------------------------------------------------ */

/* Server side: checks a Hello against the auth mode. mTLS: the client_id
 * must be the certificate CN (the certificate itself was verified by the
 * handshake). Tokens: BLAKE2b(token) is compared with the stored hash in
 * constant time (sodium_memcmp); an unknown id is compared against a dummy
 * so that both failures cost the same. */
static int auth_hello(frl_conn_t *c, const Frl__V1__Hello *h, const char **why)
{
    frl_net_t *net = c->net;
    if (c->tls && net->cfg.auth == FRL_AUTH_MTLS) {
        const char *cn = frl_tls_peer_cn(c->tls);
        if (!cn || strcmp(cn, h->client_id) != 0) {
            *why = "client_id does not match the certificate CN";
            return FRL_EAUTH;
        }
        return 0;
    }
    if (!net->tokens && net->cfg.insecure_plaintext)
        return 0;
    uint8_t hash[32];
    crypto_generichash(hash, sizeof hash, h->token.data, h->token.len, NULL, 0);
    static const uint8_t dummy[32] = {0};
    const uint8_t *want = dummy;
    int found = 0;
    for (size_t i = 0; i < net->n_tokens; i++) {
        if (strcmp(net->tokens[i].id, h->client_id) == 0) {
            want = net->tokens[i].hash;
            found = 1;
            break;
        }
    }
    int same = sodium_memcmp(hash, want, sizeof hash) == 0;
    sodium_memzero(hash, sizeof hash);
    if (!found || !same || h->token.len == 0) {
        *why = found ? "bad token" : "unknown client_id";
        return FRL_EAUTH;
    }
    return 0;
}

static int allowed_after_auth(frl_net_role role, int body)
{
    switch (body) {
    case FRL__V1__ENVELOPE__BODY_ACK:
    case FRL__V1__ENVELOPE__BODY_ERROR:
    case FRL__V1__ENVELOPE__BODY_BYE:
    case FRL__V1__ENVELOPE__BODY_HEARTBEAT:
        return 1;
    case FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION:
    case FRL__V1__ENVELOPE__BODY_PARTIAL_TALLY:
        return role == FRL_NET_SERVER;
    case FRL__V1__ENVELOPE__BODY_ROUND_TASK:
        return role == FRL_NET_CLIENT;
    default:
        return 0;
    }
}

static void conn_set_open(frl_conn_t *c)
{
    conn_set_state(c, CS_OPEN);
    c->last_rx = c->last_tx = uv_now(c->net->loop);
    conn_arm_timer(c);
}

/* One frame's payload: unpack + validate, check it is allowed in this
 * state, run authentication for a server's first message, deliver. */
static void conn_handle_frame(frl_conn_t *c, const uint8_t *payload, size_t len)
{
    frl_net_t *net = c->net;
    const int server = net->cfg.role == FRL_NET_SERVER;
    Frl__V1__Envelope *env = NULL;
    const char *why = "";
    int r = frl_msg_unpack(payload, len, &env, &why);
    if (r < 0) {
        conn_fail(c, r, why);
        return;
    }
    const int body = env->body_case;
    if (!c->authed) {
        if (server) {
            if (body == FRL__V1__ENVELOPE__BODY_BYE || body == FRL__V1__ENVELOPE__BODY_ERROR) {
                /* A client giving up before its Hello: not an attack, and
                 * the application never saw this conn. */
                frl_msg_free(env);
                conn_begin_close(c, 0, "peer left before hello", SEND_NONE);
                return;
            }
            if (body != FRL__V1__ENVELOPE__BODY_HELLO) {
                frl_msg_free(env);
                conn_fail(c, FRL_EPROTO, "expected hello");
                return;
            }
            r = auth_hello(c, env->hello, &why);
            if (r < 0) {
                frl_log(FRL_LOG_WARN, "auth_failed", "conn=%llu peer=%s client_id=%s reason=\"%s\"", (unsigned long long)c->id,
                        c->peer_addr, env->hello->client_id, why);
                frl_msg_free(env);
                conn_fail(c, r, why);
                return;
            }
            c->authed = 1;
            c->peer_role = env->hello->role;
            free(c->peer_id);
            c->peer_id = strdup(env->hello->client_id);
            if (!c->peer_id) {
                frl_msg_free(env);
                conn_fatal(c, FRL_ENOMEM, "out of memory");
                return;
            }
            conn_set_open(c);
            c->up = 1;
            c->app_knows = 1;
            frl_log(FRL_LOG_INFO, "conn_open", "conn=%llu peer=%s id=%s tls=%s", (unsigned long long)c->id, c->peer_addr,
                    c->peer_id, c->tls ? frl_tls_cipher(c->tls) : "off");
            if (net->cb.on_open)
                net->cb.on_open(c, net->ud);
            if (c->closing) {
                frl_msg_free(env);
                return;
            }
        } else {
            if (body == FRL__V1__ENVELOPE__BODY_WELCOME) {
                c->authed = 1;
            } else if (body != FRL__V1__ENVELOPE__BODY_ERROR && body != FRL__V1__ENVELOPE__BODY_BYE &&
                       body != FRL__V1__ENVELOPE__BODY_HEARTBEAT) {
                frl_msg_free(env);
                conn_fail(c, FRL_EPROTO, "expected welcome");
                return;
            }
        }
    } else if (!allowed_after_auth(net->cfg.role, body) || (body == FRL__V1__ENVELOPE__BODY_PARTIAL_TALLY && c->peer_role != 1)) {
        frl_log(FRL_LOG_WARN, "conn_unexpected", "conn=%llu body=%s", (unsigned long long)c->id, frl_msg_body_name(body));
        frl_msg_free(env);
        conn_fail(c, FRL_EPROTO, "unexpected message");
        return;
    }
    if (body == FRL__V1__ENVELOPE__BODY_HEARTBEAT) {
        frl_msg_free(env);
        return;
    }
    if (body == FRL__V1__ENVELOPE__BODY_ERROR) {
        frl_log(FRL_LOG_WARN, "peer_error", "conn=%llu code=%d text=\"%s\"", (unsigned long long)c->id, (int)env->error->code,
                env->error->text ? env->error->text : "");
        c->peer_error = env->error->code < 0 ? (int)env->error->code : FRL_EPROTO;
        snprintf(c->peer_error_text, sizeof c->peer_error_text, "peer error: %s", env->error->text ? env->error->text : "");
    }
    if (body == FRL__V1__ENVELOPE__BODY_BYE)
        c->got_bye = 1;
    net->cb.on_message(c, env, net->ud);
    frl_msg_free(env);
}

/* Plaintext from TLS (or the socket). Complete frames are decoded in place
 * when the receive buffer is empty; only an incomplete tail is copied. The
 * limit is re-read for every frame because it grows after authentication. */
static void conn_rx(frl_conn_t *c, const uint8_t *data, size_t len)
{
    const frl_net_config *cfg = &c->net->cfg;
    while (len > 0 && !c->closing) {
        const uint8_t *src = data;
        size_t avail = len;
        size_t take = len;
        if (c->rx_len > 0) {
            /* Top up the buffered frame: header first, then its body. */
            if (c->rx_len < FRL_FRAME_HEADER) {
                take = FRL_FRAME_HEADER - c->rx_len < len ? FRL_FRAME_HEADER - c->rx_len : len;
                memcpy(c->rx + c->rx_len, data, take); /* rx_cap >= 64 */
                c->rx_len += take;
                data += take;
                len -= take;
                continue;
            }
            size_t plen = 0;
            ssize_t d = frl_frame_decode(c->rx, c->rx_len, c->authed ? cfg->max_frame : cfg->preauth_max_frame, NULL, &plen);
            if (d == FRL_FRAME_TOO_LARGE) {
                conn_fail(c, FRL_ETOOBIG, "frame too large");
                return;
            }
            size_t need = FRL_FRAME_HEADER + plen;
            if (need > c->rx_cap) {
                uint8_t *nb = realloc(c->rx, need);
                if (!nb) {
                    conn_fatal(c, FRL_ENOMEM, "out of memory");
                    return;
                }
                c->rx = nb;
                c->rx_cap = need;
            }
            take = need - c->rx_len < len ? need - c->rx_len : len;
            if (data != c->rx + c->rx_len) /* else TLS decrypted in place */
                memcpy(c->rx + c->rx_len, data, take);
            c->rx_len += take;
            data += take;
            len -= take;
            if (c->rx_len < need)
                continue;
            src = c->rx;
            avail = c->rx_len;
        }
        const uint8_t *payload = NULL;
        size_t plen = 0;
        ssize_t d = frl_frame_decode(src, avail, c->authed ? cfg->max_frame : cfg->preauth_max_frame, &payload, &plen);
        if (d == FRL_FRAME_TOO_LARGE) {
            conn_fail(c, FRL_ETOOBIG, "frame too large");
            return;
        }
        if (d == FRL_FRAME_INCOMPLETE) {
            /* Only reachable from the direct path: keep the tail. */
            size_t cap = avail < FRL_FRAME_HEADER ? 64 : FRL_FRAME_HEADER + plen;
            uint8_t *nb = malloc(cap);
            if (!nb) {
                conn_fatal(c, FRL_ENOMEM, "out of memory");
                return;
            }
            memcpy(nb, src, avail);
            free(c->rx);
            c->rx = nb;
            c->rx_cap = cap;
            c->rx_len = avail;
            return;
        }
        if (src == c->rx) {
            /* The buffered frame is complete: hand it over, then drop the
             * buffer (idle connections keep none). */
            uint8_t *buf = c->rx;
            c->rx = NULL;
            c->rx_len = c->rx_cap = 0;
            conn_handle_frame(c, payload, plen);
            free(buf);
        } else {
            conn_handle_frame(c, payload, plen);
            data += (size_t)d;
            len -= (size_t)d;
        }
    }
}

/* ------------------------------------------------------------------ */
/* TLS callbacks                                                       */
/* ------------------------------------------------------------------ */

static void tls_on_handshake(frl_tls_t *t, int status, void *ud)
{
    frl_conn_t *c = ud;
    frl_net_t *net = c->net;
    if (c->closing)
        return;
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof why, "TLS handshake failed: %s", frl_tls_error(t));
        if (net->cfg.role == FRL_NET_CLIENT && !c->up)
            client_try_failed(c, status, why);
        else
            conn_fatal(c, status, why);
        return;
    }
    if (net->cfg.role == FRL_NET_SERVER) {
        conn_set_state(c, CS_AUTH);
        return;
    }
    free(c->peer_id);
    c->peer_id = frl_tls_peer_cn(t) ? strdup(frl_tls_peer_cn(t)) : NULL;
    c->attempt = 0;
    c->up = 1;
    conn_set_open(c);
    frl_log(FRL_LOG_INFO, "conn_open", "conn=%llu peer=%s server=%s tls=%s", (unsigned long long)c->id, c->peer_addr,
            c->peer_id ? c->peer_id : "-", frl_tls_cipher(t));
    if (net->cb.on_open)
        net->cb.on_open(c, net->ud);
}

static void tls_on_plaintext(frl_tls_t *t, const uint8_t *data, size_t len, void *ud)
{
    conn_rx(ud, data, len);
}

/* While the body of a large frame is being received, let TLS decrypt
 * straight into its place in the receive buffer (conn_rx then skips the
 * copy). Only offered when at least one full record's worth is missing,
 * so a record never straddles the end of the frame. */
static uint8_t *tls_get_read_buffer(frl_tls_t *t, size_t *len, void *ud)
{
    frl_conn_t *c = ud;
    if (c->closing || c->rx_len < FRL_FRAME_HEADER)
        return NULL;
    size_t plen = ((size_t)c->rx[0] << 24) | ((size_t)c->rx[1] << 16) | ((size_t)c->rx[2] << 8) | (size_t)c->rx[3];
    size_t need = FRL_FRAME_HEADER + plen;
    if (c->rx_cap < need || need - c->rx_len < 16384)
        return NULL;
    *len = need - c->rx_len;
    return c->rx + c->rx_len;
}

static void tls_on_close(frl_tls_t *t, int status, void *ud)
{
    frl_conn_t *c = ud;
    if (c->closing)
        return;
    if (status == 0 && c->peer_error) {
        conn_begin_close(c, c->peer_error, c->peer_error_text, SEND_NONE);
    } else if (status == 0) {
        conn_begin_close(c, 0, c->got_bye ? "peer said bye" : "peer closed (close_notify)", SEND_NONE);
    } else {
        char why[200];
        snprintf(why, sizeof why, "%s", frl_tls_error(t));
        conn_fatal(c, status, why);
    }
}

static const frl_tls_callbacks tls_cbs = {
    .on_handshake = tls_on_handshake,
    .on_plaintext = tls_on_plaintext,
    .on_close = tls_on_close,
    .get_read_buffer = tls_get_read_buffer,
};

/* ------------------------------------------------------------------ */
/* socket callbacks                                                    */
/* ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    frl_conn_t *c = h->data;
    buf->base = (char *)c->net->rbuf;
    buf->len = READ_BUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    frl_conn_t *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (nread > 0) {
        c->bytes_in += (uint64_t)nread;
        c->last_rx = uv_now(c->net->loop);
        if (c->tls) {
            int r = frl_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
            if (r < 0 && !c->closing)
                conn_fatal(c, r, "TLS input refused");
        } else {
            conn_rx(c, (const uint8_t *)buf->base, (size_t)nread);
        }
        conn_flush(c);
        return;
    }
    if (nread == UV_EOF) {
        if (c->tls) {
            frl_tls_feed_eof(c->tls);
            if (!c->closing)
                conn_begin_close(c, c->peer_error, c->peer_error ? c->peer_error_text : "peer closed", SEND_NONE);
        } else if (c->rx_len > 0) {
            conn_fatal(c, FRL_ETRUNC, "EOF inside a frame");
        } else if (c->net->cfg.role == FRL_NET_CLIENT && !c->up) {
            client_try_failed(c, FRL_ECLOSED, "connection closed by peer");
        } else if (c->peer_error) {
            c->fatal = 1;
            conn_begin_close(c, c->peer_error, c->peer_error_text, SEND_NONE);
        } else {
            c->fatal = 1;
            conn_begin_close(c, c->got_bye ? 0 : FRL_ECLOSED, c->got_bye ? "peer said bye" : "peer closed", SEND_NONE);
        }
        conn_flush(c);
        return;
    }
    char why[96];
    snprintf(why, sizeof why, "read failed: %s", uv_strerror((int)nread));
    if (c->net->cfg.role == FRL_NET_CLIENT && !c->up)
        client_try_failed(c, FRL_ECLOSED, why);
    else
        conn_fatal(c, FRL_ECLOSED, why);
}

static void conn_set_peer_addr(frl_conn_t *c)
{
    struct sockaddr_storage ss;
    int n = sizeof ss;
    c->peer_addr[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &n) != 0)
        return;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(c->peer_addr, sizeof c->peer_addr, "%s:%d", ip, port);
}

/* The socket is connected (accepted or connect completed): start reading
 * and, with TLS, create the engine (the client sends its ClientHello). */
static int conn_transport_up(frl_conn_t *c)
{
    frl_net_t *net = c->net;
    const int server = net->cfg.role == FRL_NET_SERVER;
    c->connected = 1;
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    conn_set_peer_addr(c);
    c->last_rx = c->last_tx = uv_now(net->loop);
    if (net->tls) {
        const char *name = net->cfg.server_name ? net->cfg.server_name : c->host;
        frl_tls_free(c->tls);
        c->tls = NULL;
        int r = frl_tls_new(net->tls, server ? NULL : name, &tls_cbs, c, &c->tls);
        if (r < 0)
            return r;
        size_t low = net->cfg.write_low_water;
        frl_tls_set_water_marks(c->tls, net->cfg.write_high_water, low);
        conn_set_state(c, CS_HANDSHAKE);
    } else {
        conn_set_state(c, server ? CS_AUTH : CS_OPEN);
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        return FRL_ECLOSED;
    if (c->state != CS_OPEN) {
        uv_timer_stop(&c->timer);
        conn_arm_timer(c);
    }
    if (c->tls && !server) {
        frl_tls_start(c->tls);
        conn_flush(c);
    }
    if (!server && !c->tls) {
        c->attempt = 0;
        c->up = 1;
        conn_set_open(c);
        frl_log(FRL_LOG_INFO, "conn_open", "conn=%llu peer=%s tls=off", (unsigned long long)c->id, c->peer_addr);
        if (net->cb.on_open)
            net->cb.on_open(c, net->ud);
    }
    return 0;
}

static void on_refused_closed(uv_handle_t *h)
{
    frl_net_t *net = h->data;
    free(h);
    net->handles_open--;
    net_maybe_done(net);
}

static void on_connection(uv_stream_t *server, int status)
{
    frl_net_t *net = server->data;
    if (status < 0) {
        frl_log(FRL_LOG_WARN, "accept_failed", "err=\"%s\"", uv_strerror(status));
        return;
    }
    if (net->closing)
        return;
    if (net->n_conns >= net->cfg.max_conns) {
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t || uv_tcp_init(net->loop, t) != 0) {
            free(t);
            return;
        }
        t->data = net;
        net->handles_open++;
        uv_accept(server, (uv_stream_t *)t);
        frl_log(FRL_LOG_WARN, "conn_refused", "reason=\"max_conns reached\" max_conns=%u", net->cfg.max_conns);
        uv_close((uv_handle_t *)t, on_refused_closed);
        return;
    }
    frl_conn_t *c = conn_new(net);
    if (!c)
        return;
    if (uv_tcp_init(net->loop, &c->tcp) != 0) {
        conn_close_handles(c);
        return;
    }
    c->tcp.data = c;
    c->tcp_inited = 1;
    c->handles_open++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        conn_close_handles(c);
        return;
    }
    int r = conn_transport_up(c);
    if (r < 0) {
        c->fatal = 1;
        conn_begin_close(c, r, "connection setup failed", SEND_NONE);
    }
}

/* ------------------------------------------------------------------ */
/* client connect with backoff                                         */
/* ------------------------------------------------------------------ */

unsigned frl_backoff_ms(unsigned base_ms, unsigned max_ms, unsigned attempt, double u01)
{
    if (attempt <= 1)
        return 0;
    unsigned shift = attempt - 2 > 20 ? 20 : attempt - 2;
    uint64_t d = (uint64_t)base_ms << shift;
    if (d > max_ms)
        d = max_ms;
    if (u01 < 0)
        u01 = 0;
    if (u01 >= 1)
        u01 = 0.999999;
    return (unsigned)(d / 2 + (uint64_t)(u01 * (double)(d - d / 2)));
}

unsigned frl_net_backoff_ms(frl_net_t *net, unsigned attempt)
{
    return frl_backoff_ms(net->cfg.backoff_base_ms, net->cfg.backoff_max_ms, attempt, frl_rng_unit_f64(&net->rng));
}

static void on_connect(uv_connect_t *req, int status)
{
    frl_conn_t *c = req->data;
    if (status == UV_ECANCELED || c->closing || c->retrying)
        return;
    if (status < 0) {
        char why[96];
        snprintf(why, sizeof why, "connect failed: %s", uv_strerror(status));
        client_try_failed(c, FRL_ECLOSED, why);
        return;
    }
    int r = conn_transport_up(c);
    if (r < 0 && !c->closing)
        client_try_failed(c, r, "connection setup failed");
}

static void client_connect_addr(frl_conn_t *c, const struct sockaddr *addr)
{
    frl_net_t *net = c->net;
    if (uv_tcp_init(net->loop, &c->tcp) != 0) {
        client_try_failed(c, FRL_ENOMEM, "tcp init failed");
        return;
    }
    c->tcp.data = c;
    c->tcp_inited = 1;
    c->retrying = 0;
    c->handles_open++;
    c->connect_req.data = c;
    conn_set_state(c, CS_CONNECTING);
    int r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
    if (r != 0) {
        char why[96];
        snprintf(why, sizeof why, "connect failed: %s", uv_strerror(r));
        client_try_failed(c, FRL_ECLOSED, why);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    frl_conn_t *c = req->data;
    c->gai_pending = 0;
    if (c->closing) {
        if (res)
            uv_freeaddrinfo(res);
        conn_try_free(c);
        return;
    }
    if (status < 0 || !res) {
        char why[96];
        snprintf(why, sizeof why, "resolve failed: %s", uv_strerror(status));
        if (res)
            uv_freeaddrinfo(res);
        client_try_failed(c, FRL_ECLOSED, why);
        return;
    }
    /* Try k uses address (k - 1) mod count, so retries walk through every
     * address the name has (IPv6 and IPv4, say) instead of insisting on
     * the first. */
    unsigned count = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        count++;
    struct addrinfo *pick = res;
    for (unsigned i = (c->attempt - 1) % count; i > 0; i--)
        pick = pick->ai_next;
    struct sockaddr_storage ss;
    memcpy(&ss, pick->ai_addr, pick->ai_addrlen < sizeof ss ? pick->ai_addrlen : sizeof ss);
    uv_freeaddrinfo(res);
    client_connect_addr(c, (const struct sockaddr *)&ss);
}

static void client_start_try(frl_conn_t *c)
{
    frl_net_t *net = c->net;
    c->attempt++;
    c->authed = 0;
    frl_tls_free(c->tls);
    c->tls = NULL;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&ss) == 0) {
        conn_set_state(c, CS_CONNECTING);
        conn_arm_timer(c);
        client_connect_addr(c, (const struct sockaddr *)&ss);
        return;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    conn_set_state(c, CS_RESOLVING);
    conn_arm_timer(c);
    int r = uv_getaddrinfo(net->loop, &c->gai, on_resolved, c->host, port, &hints);
    if (r != 0) {
        char why[96];
        snprintf(why, sizeof why, "resolve failed: %s", uv_strerror(r));
        client_try_failed(c, FRL_ECLOSED, why);
        return;
    }
    c->gai_pending = 1;
}

int frl_net_connect(frl_net_t *net, const char *host, int port, unsigned delay_ms, frl_conn_t **out)
{
    if (!net || !host || !*host || port <= 0 || port > 65535 || !out)
        return FRL_EINVAL;
    if (net->cfg.role != FRL_NET_CLIENT || net->closing)
        return FRL_ESTATE;
    frl_conn_t *c = conn_new(net);
    if (!c)
        return FRL_ENOMEM;
    c->host = strdup(host);
    if (!c->host) {
        c->closing = 1;
        conn_close_handles(c); /* freed in its close callback, no on_close */
        return FRL_ENOMEM;
    }
    c->port = port;
    c->app_knows = 1; /* on_close is owed even if it never opens */
    conn_set_state(c, CS_BACKOFF);
    c->wake_at = uv_now(net->loop) + delay_ms;
    conn_arm_timer(c);
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------ */
/* server listen, shutdown                                             */
/* ------------------------------------------------------------------ */

int frl_net_listen(frl_net_t *net, const char *host, int port)
{
    if (!net || !host || port < 0 || port > 65535)
        return FRL_EINVAL;
    if (net->cfg.role != FRL_NET_SERVER || net->listening || net->closing)
        return FRL_ESTATE;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) {
        frl_log(FRL_LOG_ERROR, "listen_failed", "host=%s port=%d reason=\"cannot resolve\"", host, port);
        return FRL_EINVAL;
    }
    int r = uv_tcp_init(net->loop, &net->listener);
    if (r != 0) {
        freeaddrinfo(res);
        return FRL_ENOMEM;
    }
    net->listener.data = net;
    net->handles_open++;
    net->listening = 1;
    r = uv_tcp_bind(&net->listener, res->ai_addr, 0);
    freeaddrinfo(res);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&net->listener, 1024, on_connection);
    if (r != 0) {
        frl_log(FRL_LOG_ERROR, "listen_failed", "host=%s port=%d reason=\"%s\"", host, port, uv_strerror(r));
        net->listening = 0;
        uv_close((uv_handle_t *)&net->listener, on_net_handle_closed);
        return FRL_EIO;
    }
    struct sockaddr_storage ss;
    int n = sizeof ss;
    if (uv_tcp_getsockname(&net->listener, (struct sockaddr *)&ss, &n) == 0)
        net->port =
            ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    frl_log(FRL_LOG_INFO, "listening", "host=%s port=%d tls=%s auth=%s max_conns=%u", host, net->port, net->tls ? "on" : "off",
            net->cfg.auth == FRL_AUTH_MTLS && net->tls ? "mtls" : "token", net->cfg.max_conns);
    return 0;
}

static void on_net_handle_closed(uv_handle_t *h)
{
    frl_net_t *net = h->data;
    net->handles_open--;
    net_maybe_done(net);
}

/* Frees the net once it is closing and its last handle and conn are gone. */
static void net_maybe_done(frl_net_t *net)
{
    if (!net->closing || net->handles_open > 0 || net->n_conns > 0 || net->conns)
        return;
    void (*done)(void *) = net->done;
    void *ud = net->done_ud;
    net_free(net);
    if (done)
        done(ud);
}

void frl_net_close(frl_net_t *net, void (*done)(void *ud), void *ud)
{
    if (!net || net->closing)
        return;
    net->closing = 1;
    net->done = done;
    net->done_ud = ud;
    if (net->listening && !uv_is_closing((uv_handle_t *)&net->listener)) {
        net->listening = 0;
        uv_close((uv_handle_t *)&net->listener, on_net_handle_closed);
    }
    /* conn_begin_close never frees synchronously, so the list is stable. */
    for (frl_conn_t *c = net->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (c->state == CS_OPEN)
            conn_begin_close(c, 0, "shutdown", SEND_BYE);
        else
            conn_fatal(c, c->app_knows && !c->up ? FRL_ECLOSED : 0, "shutdown");
    }
    uv_close((uv_handle_t *)&net->timer, on_net_handle_closed);
}

unsigned frl_net_conn_count(const frl_net_t *net)
{
    return net->n_conns;
}

int frl_net_port(const frl_net_t *net)
{
    return net->port;
}

uint64_t frl_conn_id(const frl_conn_t *c)
{
    return c->id;
}

const char *frl_conn_peer_addr(const frl_conn_t *c)
{
    return c->peer_addr;
}

const char *frl_conn_peer_id(const frl_conn_t *c)
{
    return c->peer_id;
}

unsigned frl_conn_peer_role(const frl_conn_t *c)
{
    return c->peer_role;
}

uint64_t frl_conn_bytes_in(const frl_conn_t *c)
{
    return c->bytes_in;
}

uint64_t frl_conn_bytes_out(const frl_conn_t *c)
{
    return c->bytes_out;
}

size_t frl_conn_queued_bytes(const frl_conn_t *c)
{
    return c->q_bytes;
}

int frl_conn_is_open(const frl_conn_t *c)
{
    return !c->closing && c->state == CS_OPEN && conn_can_send(c);
}

void frl_conn_set_data(frl_conn_t *c, void *data)
{
    c->data = data;
}

void *frl_conn_get_data(const frl_conn_t *c)
{
    return c->data;
}

frl_net_t *frl_conn_net(const frl_conn_t *c)
{
    return c->net;
}
