/* Connections for the frl daemons: TLS 1.3 (or, for tests only, plaintext)
 * over libuv, length-prefixed frames, authentication, timeouts and
 * back-pressure, so that the server and the client only deal with
 * validated messages.
 *
 * How a daemon uses it
 * --------------------
 *   frl_net_config cfg;
 *   frl_net_config_defaults(&cfg, FRL_NET_SERVER);      // or FRL_NET_CLIENT
 *   cfg.ca_file = ...; cfg.cert_file = ...; cfg.key_file = ...;
 *   frl_net_callbacks cb = {.on_open = ..., .on_message = ..., .on_close = ...};
 *   frl_net_new(loop, &cfg, &cb, app, &net);
 *   frl_net_listen(net, "0.0.0.0", 7443);                // server
 *   frl_net_connect(net, "server.example", 7443, 0, &c); // client
 *   uv_run(loop, UV_RUN_DEFAULT);
 *   ... on SIGTERM: frl_net_close(net, done_cb, app); the loop then drains
 *   and uv_loop_close(loop) returns 0.
 *
 * Server side, a connection becomes visible to the application only once
 * it is authenticated: TLS handshake done (client certificate verified in
 * mTLS mode), then a valid Hello whose client_id matches the certificate CN
 * (mTLS) or whose token matches the token file (token mode). At that point
 * on_open(c) fires, immediately followed by on_message(c, hello): the
 * application answers with Welcome (or closes with an error, e.g.
 * FRL_EMISMATCH). Client side, on_open(c) fires when the TLS handshake is
 * done (the server certificate and name verified); the application sends
 * its Hello and waits for Welcome.
 *
 * Until authentication only Hello (server side) or Welcome / Error / Bye
 * (client side) is accepted, and frames are limited to preauth_max_frame.
 * Afterwards each side accepts only the messages meant for it (server:
 * RankSubmission, PartialTally (only from a Hello with role 1), Ack, Error,
 * Bye; client: RoundTask, Ack, Error, Bye) up to max_frame. A Bye or Error
 * before the Hello closes the conn quietly (the client gave up).
 * Heartbeats are sent and consumed here and never reach the application.
 * Anything else -- bad frame, bad protobuf,
 * failed validation, wrong message, TLS error, truncation, timeout --
 * closes that one connection: a log line with the reason, an Error message
 * to the peer when the session can still carry one, then on_close.
 *
 * Ownership and lifetimes
 * -----------------------
 *  - frl_conn_t* are owned by the library. A conn is valid from on_open
 *    (server) / frl_net_connect (client) until on_close returns; it is freed
 *    right after. on_close is called exactly once for every client conn and
 *    for every server conn that got on_open.
 *  - The message passed to on_message is owned by the library and freed
 *    when the callback returns; copy what you keep.
 *  - frl_conn_send does not keep `msg`: it is encoded before the call
 *    returns. frl_conn_send_buf takes its own reference on the buffer.
 *  - Callbacks may call frl_conn_send / frl_conn_close / frl_net_close on
 *    any conn; the actual teardown is deferred until it is safe.
 *  - Everything runs on the thread of the net's loop. Several nets may
 *    share a loop (the tests run a server and a client net on one loop);
 *    a process may also run several loops in several threads.
 *  - on_message runs on the loop: heavy work (vote sort, training) belongs
 *    on the thread pool (uv_queue_work) so heartbeats and handshakes go on.
 *  - frl_net_new sets SIGPIPE to SIG_IGN if it still has the default
 *    disposition (a peer's reset must not kill the process).
 *
 * Every function returns 0 or a negative FRL_E* (common/frl_error.h); a
 * call that fails never calls a callback. */
#ifndef FRL_CONN_H
#define FRL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/frl_frame.h"
#include "proto/frl_msg.h"

typedef struct frl_net_s frl_net_t;
typedef struct frl_conn_s frl_conn_t;

typedef enum { FRL_NET_SERVER = 0, FRL_NET_CLIENT = 1 } frl_net_role;

typedef enum {
    FRL_AUTH_MTLS = 0,  /* client certificate from the federation CA, CN = client_id */
    FRL_AUTH_TOKEN = 1, /* server certificate only; Hello.token checked against token_file */
} frl_auth_mode;

/* All limits are named, with the defaults set by frl_net_config_defaults.
 * Strings are copied by frl_net_new. */
typedef struct frl_net_config {
    frl_net_role role;
    /* TLS (ignored with insecure_plaintext). Server: cert_file + key_file
     * required, ca_file required in mTLS mode. Client: ca_file required (the
     * server is always verified); cert_file + key_file in mTLS mode. */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /* Client: the name (or IP literal) the server certificate must carry.
     * NULL = the host passed to frl_net_connect. */
    const char *server_name;
    frl_auth_mode auth;
    /* Server, token mode: lines "client_id token_hex"; '#' comments. Also
     * honoured in plaintext mode; without it a plaintext server accepts any
     * Hello. Tokens are kept as BLAKE2b hashes and compared with
     * sodium_memcmp. */
    const char *token_file;
    /* No TLS at all. For tests only; logs a warning. Default 0. */
    int insecure_plaintext;

    size_t max_frame;              /* payload limit once authenticated: FRL_FRAME_MAX_DEFAULT (32 MiB) */
    size_t preauth_max_frame;      /* payload limit before: FRL_FRAME_MAX_PREAUTH (64 KiB) */
    unsigned max_conns;            /* server: live connections, more are refused at accept: 4096 */
    unsigned handshake_timeout_ms; /* TCP connect + TLS + (server) Hello: 10000 */
    unsigned idle_timeout_ms;      /* nothing received for this long closes the conn: 60000 (0 = off) */
    unsigned heartbeat_ms;         /* nothing sent for this long sends a Heartbeat: 15000 (0 = off) */
    unsigned close_timeout_ms;     /* max time spent flushing on close: 5000 */
    size_t write_high_water;       /* ciphertext (or plaintext) in flight: 1 MiB ... */
    size_t write_low_water;        /* ... resumes under 256 KiB */
    size_t max_send_queue;         /* bytes queued per conn before frl_conn_send says FRL_EAGAIN: 256 MiB */
    /* Client reconnect: delay before try k (k >= 2) is d/2 + jitter * d/2 with
     * d = min(backoff_max_ms, backoff_base_ms * 2^(k-2)). */
    unsigned backoff_base_ms; /* 500 */
    unsigned backoff_max_ms;  /* 30000 */
    unsigned max_tries;       /* 0 = unlimited; default 0 */
} frl_net_config;

typedef struct frl_net_callbacks {
    /* Server: authenticated (the Hello follows). Client: TLS up, send Hello. */
    void (*on_open)(frl_conn_t *c, void *ud);
    /* One validated message (never a Heartbeat). Valid during the call only. */
    void (*on_message)(frl_conn_t *c, const Frl__V1__Envelope *msg, void *ud);
    /* The conn is gone: status 0 for an orderly close (either side),
     * otherwise the FRL_E* reason; `reason` is a short text for logs. For a
     * client conn that never opened, this reports the last failed try. */
    void (*on_close)(frl_conn_t *c, int status, const char *reason, void *ud);
    /* Optional: the send queue emptied after frl_conn_send returned FRL_EAGAIN. */
    void (*on_drain)(frl_conn_t *c, void *ud);
} frl_net_callbacks;

void frl_net_config_defaults(frl_net_config *cfg, frl_net_role role);

/* Creates a net (one TLS context, the token table, the list of conns) on
 * `loop`. Files are read here; errors are logged (event net_config).
 * Returns 0, FRL_EINVAL, FRL_ENOENT, FRL_EFORMAT (token file), FRL_ETLS or
 * FRL_ENOMEM. */
int frl_net_new(uv_loop_t *loop, const frl_net_config *cfg, const frl_net_callbacks *cb, void *ud, frl_net_t **out);

/* Server: listen on host:port (numeric or resolvable; port 0 = any, see
 * frl_net_port). Returns 0, FRL_ESTATE (not a server, or already
 * listening), FRL_EINVAL or FRL_EIO (bind/listen failed, logged). */
int frl_net_listen(frl_net_t *net, const char *host, int port);
/* The bound port after frl_net_listen, or -1. */
int frl_net_port(const frl_net_t *net);

/* Client: connects to host:port, trying again with exponential backoff and
 * jitter after every failure before on_open (resolve, connect, TLS),
 * up to cfg.max_tries. The first try starts after delay_ms (0 = now; a
 * daemon that lost its connection passes frl_net_backoff_ms(net, k)).
 * *out is valid until on_close. Returns 0, FRL_ESTATE (not a client, or
 * closing), FRL_EINVAL or FRL_ENOMEM. */
int frl_net_connect(frl_net_t *net, const char *host, int port, unsigned delay_ms, frl_conn_t **out);
/* The backoff delay for try `attempt` (>= 1; 1 -> 0 ms), with jitter. */
unsigned frl_net_backoff_ms(frl_net_t *net, unsigned attempt);
/* Pure version: u01 in [0, 1) is the jitter. */
unsigned frl_backoff_ms(unsigned base_ms, unsigned max_ms, unsigned attempt, double u01);

/* Stops listening, closes every conn (Bye "shutdown"; on_close is called
 * for each) and every handle. When all are closed, `done(ud)` is called
 * (may be NULL) and the net is freed. Call once. */
void frl_net_close(frl_net_t *net, void (*done)(void *ud), void *ud);
/* Live conns (including ones being closed). */
unsigned frl_net_conn_count(const frl_net_t *net);

/* Validates, encodes and queues one message. The Envelope's version must be
 * FRL_PROTO_VERSION. Returns 0, FRL_EINVAL (invalid message, logged at
 * debug), FRL_ETOOBIG (over max_frame), FRL_ESTATE (not open yet),
 * FRL_ECLOSED (closing), FRL_EAGAIN (send queue over max_send_queue:
 * on_drain fires when it has emptied) or FRL_ENOMEM. */
int frl_conn_send(frl_conn_t *c, const Frl__V1__Envelope *msg);
/* Same with an already encoded frame, which may be shared between conns (a
 * RoundTask broadcast is encoded once with frl_net_encode, sent to every
 * client, then unref'd); takes its own reference, the caller keeps its
 * own. Not validated again. */
int frl_conn_send_buf(frl_conn_t *c, frl_msgbuf_t *buf);

/* Validates and encodes a message for frl_conn_send_buf (limit: max_frame).
 * *out has one reference, owned by the caller. Returns 0, FRL_EINVAL,
 * FRL_ETOOBIG or FRL_ENOMEM. */
int frl_net_encode(const frl_net_t *net, const Frl__V1__Envelope *msg, frl_msgbuf_t **out);

/* Closes the conn: status 0 sends Bye(reason), status < 0 sends
 * Error(status, reason); then TLS close_notify, flush (bounded by
 * close_timeout_ms), close. Logged with the reason. on_close follows
 * (asynchronously). Calling it again, or on a conn already closing, does
 * nothing. */
void frl_conn_close(frl_conn_t *c, int status, const char *reason);

/* Per-conn heartbeat interval and idle timeout (0 = off), e.g. from
 * Welcome.heartbeat_ms on a client. Defaults come from the config. */
void frl_conn_set_timeouts(frl_conn_t *c, unsigned heartbeat_ms, unsigned idle_timeout_ms);

uint64_t frl_conn_id(const frl_conn_t *c);           /* unique per net, for logs */
const char *frl_conn_peer_addr(const frl_conn_t *c); /* "ip:port" */
/* Server: the authenticated client_id (valid from on_open). Client: the
 * server certificate CN (NULL in plaintext mode). */
const char *frl_conn_peer_id(const frl_conn_t *c);
/* Server: Hello.role of the peer (0 client, 1 aggregator). Only role-1
 * conns may send PartialTally; whether that client id is trusted as an
 * aggregator is the application's decision (check it in on_message(hello)). */
unsigned frl_conn_peer_role(const frl_conn_t *c);
uint64_t frl_conn_bytes_in(const frl_conn_t *c);   /* bytes read from the socket */
uint64_t frl_conn_bytes_out(const frl_conn_t *c);  /* bytes written to the socket */
size_t frl_conn_queued_bytes(const frl_conn_t *c); /* frames not yet handed to TLS/socket */
int frl_conn_is_open(const frl_conn_t *c);         /* may send */
void frl_conn_set_data(frl_conn_t *c, void *data);
void *frl_conn_get_data(const frl_conn_t *c);
frl_net_t *frl_conn_net(const frl_conn_t *c);

#endif
