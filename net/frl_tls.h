/* A sans-I/O TLS 1.3 engine over OpenSSL with an in-memory BIO (docs: NET.md
 * §2). It only moves bytes between buffers: the caller feeds ciphertext
 * read from the network (frl_tls_feed), writes plaintext
 * (frl_tls_write), and takes ciphertext to send (frl_tls_take_output).
 * Events come back through callbacks fired from inside frl_tls_feed (and
 * frl_tls_start / frl_tls_feed_eof). net/frl_conn.h glues it to libuv;
 * tests drive two engines against each other in memory.
 *
 * Rules:
 *  - Every function returns 0 or a negative FRL_E*; a call that fails never
 *    fires a callback.
 *  - Terminal events are reported once: on_handshake(t, err < 0) if the
 *    handshake fails, otherwise on_handshake(t, 0) and later at most one
 *    on_close(t, status). status 0 = the peer sent close_notify;
 *    FRL_ETLS = fatal TLS error (bad record, alert received, ...);
 *    FRL_ETRUNC = EOF without close_notify (frl_tls_feed_eof). After a
 *    fatal error the engine refuses further input (FRL_ESTATE) and never
 *    sends close_notify, but any alert it produced is still returned by
 *    frl_tls_take_output: flush it before closing the socket.
 *  - Callbacks may call frl_tls_write and frl_tls_shutdown; they must not
 *    call frl_tls_feed or frl_tls_free (re-entrant feed returns
 *    FRL_ESTATE). After frl_tls_shutdown no more plaintext is delivered.
 *  - Back-pressure: pending output = ciphertext not yet taken + taken but
 *    not yet acknowledged with frl_tls_output_done. frl_tls_write returns
 *    FRL_EAGAIN (accepting nothing) once pending >= high water, and keeps
 *    doing so until pending drops to <= low water.
 *
 * Not thread-safe: one engine is used by one thread at a time. */
#ifndef FRL_TLS_H
#define FRL_TLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct frl_tls_config_s frl_tls_config_t;
typedef struct frl_tls_s frl_tls_t;

typedef enum { FRL_TLS_CLIENT = 0, FRL_TLS_SERVER = 1 } frl_tls_role;

typedef struct frl_tls_config_opts {
    frl_tls_role role;
    /* PEM CA bundle used to verify the peer. Required for a client (the
     * server certificate is always verified) and for a server that
     * requires client certificates. */
    const char *ca_file;
    /* Own certificate chain and private key (PEM). Required for a server;
     * for a client only in mTLS mode. */
    const char *cert_file;
    const char *key_file;
    /* Server: demand a client certificate signed by ca_file (mTLS). */
    int require_client_cert;
} frl_tls_config_opts;

/* Builds one SSL_CTX: TLS 1.3 only, no session tickets or cache (every
 * connection is a full handshake, nothing kept per session),
 * SSL_MODE_RELEASE_BUFFERS (idle connections hold no record buffers). The
 * reason for a failure is logged (event tls_config). Returns 0, FRL_EINVAL,
 * FRL_ENOENT (unreadable file), FRL_ETLS or FRL_ENOMEM. */
int frl_tls_config_new(const frl_tls_config_opts *opts, frl_tls_config_t **out);
/* Drops the caller's reference. Engines created from it keep the SSL_CTX
 * alive (OpenSSL refcount), so this may be called while they exist. */
void frl_tls_config_free(frl_tls_config_t *cfg);

typedef struct frl_tls_callbacks {
    /* Handshake finished (status 0; the peer is verified) or failed. */
    void (*on_handshake)(frl_tls_t *t, int status, void *ud);
    /* Decrypted application data; valid only during the call. */
    void (*on_plaintext)(frl_tls_t *t, const uint8_t *data, size_t len, void *ud);
    /* The session ended after a successful handshake (see rules above). */
    void (*on_close)(frl_tls_t *t, int status, void *ud);
    /* Optional: a buffer the next decrypted bytes may be written into
     * (*len = its size). The bytes then arrive through on_plaintext with
     * `data` pointing into it. NULL = use the engine's own buffer. */
    uint8_t *(*get_read_buffer)(frl_tls_t *t, size_t *len, void *ud);
} frl_tls_callbacks;

/* New engine for one connection. `servername` (client only, required)
 * is the name or IP literal the server certificate must match; it is also
 * sent as SNI when it is a name. `cb` is copied; `ud` is passed back.
 * Returns 0, FRL_EINVAL or FRL_ENOMEM. */
int frl_tls_new(frl_tls_config_t *cfg, const char *servername, const frl_tls_callbacks *cb, void *ud, frl_tls_t **out);
/* Frees the engine. Never from inside one of its callbacks. */
void frl_tls_free(frl_tls_t *t);

/* Client: produces the ClientHello (then take the output). Server: no-op. */
int frl_tls_start(frl_tls_t *t);

/* Feeds ciphertext received from the peer and runs the engine: handshake,
 * then every complete record is decrypted and handed to on_plaintext.
 * Returns 0 (errors found in the peer's data are reported through the
 * callbacks), FRL_ESTATE (engine already failed or closed, or re-entrant
 * call) or FRL_ENOMEM. */
int frl_tls_feed(frl_tls_t *t, const uint8_t *data, size_t len);

/* The transport reached EOF. Without a prior close_notify this is a
 * truncation: on_close(t, FRL_ETRUNC), or on_handshake(t, FRL_ECLOSED)
 * during the handshake. Returns 0 or FRL_ESTATE. */
int frl_tls_feed_eof(frl_tls_t *t);

/* Encrypts data[0..len) (whole or nothing). Returns 0, FRL_EAGAIN (over the
 * high-water mark, see above), FRL_ESTATE (handshake not done, shut down,
 * or failed) or FRL_ETLS (the engine is now failed; no callback). */
int frl_tls_write(frl_tls_t *t, const uint8_t *data, size_t len);

/* Hands over all pending ciphertext: *out is a malloc'd buffer the caller
 * owns and frees (NULL and *len = 0 when nothing is pending). Once those
 * bytes are written to the network, call frl_tls_output_done(t, len).
 * Returns 0 or FRL_ENOMEM. */
int frl_tls_take_output(frl_tls_t *t, uint8_t **out, size_t *len);
void frl_tls_output_done(frl_tls_t *t, size_t len);
/* Ciphertext not yet taken + taken and not yet done. */
size_t frl_tls_pending_output(const frl_tls_t *t);
/* Back-pressure marks in bytes (defaults 1 MiB / 256 KiB). */
void frl_tls_set_water_marks(frl_tls_t *t, size_t high, size_t low);

/* Queues close_notify (once) if the session is open and healthy; stops
 * plaintext delivery in every case. Never fires a callback. Returns 0. */
int frl_tls_shutdown(frl_tls_t *t);

int frl_tls_is_open(const frl_tls_t *t);    /* handshake done, not failed, not shut down */
int frl_tls_has_failed(const frl_tls_t *t); /* fatal error or truncation seen */
/* Last error, for logs ("" if none). Valid until the next call. */
const char *frl_tls_error(const frl_tls_t *t);
/* After the handshake: the peer certificate's subject CN, or NULL if the
 * peer sent no certificate. Valid until frl_tls_free. */
const char *frl_tls_peer_cn(const frl_tls_t *t);
/* Negotiated protocol and cipher, for logs ("TLSv1.3", "TLS_AES_256_GCM_SHA384"). */
const char *frl_tls_version(const frl_tls_t *t);
const char *frl_tls_cipher(const frl_tls_t *t);

#endif
