/* Sans-I/O TLS engine; see frl_tls.h and NET.md §2.2-2.5 (the bug numbers
 * in comments refer to §2.5).
 *
 * Instead of two BIO_s_mem, the SSL object talks to one small custom BIO
 * (the same idea as h2o's socket BIO): reads come straight from the buffer
 * passed to frl_tls_feed (no copy), writes are appended to a plain heap
 * buffer that frl_tls_take_output hands over as is (no copy). A memory BIO
 * would copy both ways, never shrink, and grow with BUF_MEM_grow_clean,
 * which zeroes and copies on every reallocation: profiling showed that as a
 * third of the CPU time of a bulk transfer. */
#include "net/frl_tls.h"
#include "common/frl_error.h"
#include "common/frl_log.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TLS_DEFAULT_HIGH (1u << 20)
#define TLS_DEFAULT_LOW (256u << 10)
/* Smallest output buffer allocated (a handshake flight fits). */
#define TLS_OUT_MIN (4u << 10)

struct frl_tls_config_s {
    SSL_CTX *ctx;
    frl_tls_role role;
};

struct frl_tls_s {
    SSL *ssl;
    BIO *bio;          /* our BIO: SSL reads `pend` then `in`, writes to `out` */
    const uint8_t *in; /* ciphertext being fed (borrowed during frl_tls_feed) */
    size_t in_len;
    uint8_t *pend; /* ciphertext fed earlier and not consumed yet (owned) */
    size_t pend_len, pend_off;
    uint8_t *out; /* ciphertext produced, not yet taken (owned) */
    size_t out_len, out_cap;
    frl_tls_callbacks cb;
    void *ud;
    frl_tls_role role;
    unsigned hs_done : 1;     /* handshake completed and verified */
    unsigned failed : 1;      /* fatal error: no SSL_shutdown, no more input (bug 9) */
    unsigned shut : 1;        /* frl_tls_shutdown called: no more plaintext out or in */
    unsigned peer_closed : 1; /* close_notify received */
    unsigned reported : 1;    /* terminal event (failed handshake / on_close) reported */
    unsigned in_feed : 1;     /* re-entrancy guard (bug 14) */
    unsigned blocked : 1;     /* over the high-water mark until under the low one */
    size_t in_flight;         /* taken by the caller, not yet output_done */
    size_t high, low;
    char *peer_cn;
    char err[256];
};

/* Records the reason of a failure from the OpenSSL error queue (first
 * entry) and, if the peer certificate was rejected, the verify result. */
static void tls_set_error(frl_tls_t *t, const char *what)
{
    char ebuf[160] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, ebuf, sizeof ebuf);
    ERR_clear_error();
    long vr = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(t->err, sizeof t->err, "%s: certificate verify failed: %s", what, X509_verify_cert_error_string(vr));
    else
        snprintf(t->err, sizeof t->err, "%s: %s", what, ebuf[0] ? ebuf : "unexpected EOF or syscall error");
}

/* ---- the BIO ---- */

static BIO_METHOD *g_bio_method;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

static int bio_read_ex(BIO *b, char *dst, size_t len, size_t *got)
{
    frl_tls_t *t = BIO_get_data(b);
    size_t n = 0;
    BIO_clear_retry_flags(b);
    if (t->pend_off < t->pend_len) {
        n = t->pend_len - t->pend_off < len ? t->pend_len - t->pend_off : len;
        memcpy(dst, t->pend + t->pend_off, n);
        t->pend_off += n;
    }
    if (n < len && t->in_len > 0) {
        size_t m = t->in_len < len - n ? t->in_len : len - n;
        memcpy(dst + n, t->in, m);
        t->in += m;
        t->in_len -= m;
        n += m;
    }
    if (n == 0) {
        BIO_set_retry_read(b);
        *got = 0;
        return 0;
    }
    *got = n;
    return 1;
}

/* Grows the output buffer to hold `extra` more bytes (plain realloc: no
 * zeroing, usually in place). Returns 0 or -1. */
static int out_reserve(frl_tls_t *t, size_t extra)
{
    if (t->out_cap - t->out_len >= extra)
        return 0;
    size_t cap = t->out_cap ? t->out_cap : TLS_OUT_MIN;
    while (cap - t->out_len < extra)
        cap *= 2;
    uint8_t *p = realloc(t->out, cap);
    if (!p)
        return -1;
    t->out = p;
    t->out_cap = cap;
    return 0;
}

static int bio_write_ex(BIO *b, const char *src, size_t len, size_t *put)
{
    frl_tls_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (out_reserve(t, len) < 0) {
        *put = 0;
        return 0; /* no retry flag: SSL treats it as fatal */
    }
    memcpy(t->out + t->out_len, src, len);
    t->out_len += len;
    *put = len;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    frl_tls_t *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)(t->pend_len - t->pend_off + t->in_len) : 0;
    case BIO_CTRL_WPENDING:
        return t ? (long)t->out_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    return 1;
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "frl_tls");
    if (!m)
        return;
    if (!BIO_meth_set_read_ex(m, bio_read_ex) || !BIO_meth_set_write_ex(m, bio_write_ex) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
        !BIO_meth_set_create(m, bio_create) || !BIO_meth_set_destroy(m, bio_destroy)) {
        BIO_meth_free(m);
        return;
    }
    g_bio_method = m; /* process lifetime */
}

/* ---- configuration ---- */

static int file_readable(const char *path)
{
    return path && access(path, R_OK) == 0;
}

static void config_log_ssl_error(const char *what, const char *file)
{
    char ebuf[160] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, ebuf, sizeof ebuf);
    ERR_clear_error();
    frl_log(FRL_LOG_ERROR, "tls_config", "what=\"%s\" file=\"%s\" ssl=\"%s\"", what, file ? file : "", ebuf);
}

/* One SSL_CTX per process role. TLS 1.3 only (no renegotiation, bug 12),
 * modern methods without legacy init (bug 13), peer verification always on
 * for clients and on for servers in mTLS mode (bug 11). No tickets and no
 * session cache: nothing is kept per session, every handshake is full. */
int frl_tls_config_new(const frl_tls_config_opts *o, frl_tls_config_t **out)
{
    if (!o || !out)
        return FRL_EINVAL;
    *out = NULL;
    const int server = o->role == FRL_TLS_SERVER;
    if (server && (!o->cert_file || !o->key_file))
        return FRL_EINVAL;
    if ((!server || o->require_client_cert) && !o->ca_file)
        return FRL_EINVAL;
    if (!server && (!o->cert_file) != (!o->key_file))
        return FRL_EINVAL;
    const char *files[3] = {o->ca_file, o->cert_file, o->key_file};
    for (int i = 0; i < 3; i++) {
        if (files[i] && !file_readable(files[i])) {
            frl_log(FRL_LOG_ERROR, "tls_config", "what=\"cannot read file\" file=\"%s\"", files[i]);
            return FRL_ENOENT;
        }
    }
    frl_tls_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return FRL_ENOMEM;
    cfg->role = o->role;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        free(cfg);
        return FRL_ENOMEM;
    }
    cfg->ctx = ctx;
    int err = FRL_ETLS;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
        goto fail;
    /* AES-128-GCM first: the fastest with AES-NI; all three are TLS 1.3 AEADs. */
    if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"))
        goto fail;
    /* Key exchange: X25519, P-256 as the only fallback. The client sends
     * one X25519 key share; both ends run this code, so no
     * HelloRetryRequest happens, and the ClientHello carries no groups
     * (x448, P-384, P-521, FFDHE) that would never be chosen. */
    if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256"))
        goto fail;
    /* Record buffers are freed when idle (kb_per_idle_conn in frl-bench
     * wire). Turning it off changes a handshake's instruction count by
     * under 0.1% (callgrind); bulk still meets its target with it on. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* No resumption: the server issues no tickets (TLS 1.3 would send 2
     * per handshake, costing both ends) and nobody caches sessions. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (server)
        SSL_CTX_set_num_tickets(ctx, 0);
    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
            config_log_ssl_error("bad certificate", o->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            config_log_ssl_error("bad private key", o->key_file);
            goto fail;
        }
    }
    if (o->ca_file && (!server || o->require_client_cert)) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            config_log_ssl_error("bad CA file", o->ca_file);
            goto fail;
        }
    }
    if (server && o->require_client_cert) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
        if (!names) {
            config_log_ssl_error("bad CA file", o->ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else if (!server) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    *out = cfg;
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    free(cfg);
    return err;
}

void frl_tls_config_free(frl_tls_config_t *cfg)
{
    if (!cfg)
        return;
    SSL_CTX_free(cfg->ctx);
    free(cfg);
}

int frl_tls_new(frl_tls_config_t *cfg, const char *servername, const frl_tls_callbacks *cb, void *ud, frl_tls_t **out)
{
    if (!cfg || !cb || !out)
        return FRL_EINVAL;
    *out = NULL;
    if (cfg->role == FRL_TLS_CLIENT && (!servername || !*servername))
        return FRL_EINVAL;
    frl_tls_t *t = calloc(1, sizeof *t);
    if (!t)
        return FRL_ENOMEM;
    t->cb = *cb;
    t->ud = ud;
    t->role = cfg->role;
    t->high = TLS_DEFAULT_HIGH;
    t->low = TLS_DEFAULT_LOW;
    pthread_once(&g_bio_once, bio_method_init);
    ERR_clear_error();
    t->ssl = g_bio_method ? SSL_new(cfg->ctx) : NULL;
    t->bio = g_bio_method ? BIO_new(g_bio_method) : NULL;
    if (!t->ssl || !t->bio) {
        BIO_free(t->bio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return FRL_ENOMEM;
    }
    BIO_set_data(t->bio, t);
    /* Same BIO both ways: SSL takes our one reference; SSL_free frees it. */
    SSL_set_bio(t->ssl, t->bio, t->bio);
    if (cfg->role == FRL_TLS_SERVER) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        unsigned char addr[16];
        int ok;
        if (inet_pton(AF_INET, servername, addr) == 1 || inet_pton(AF_INET6, servername, addr) == 1) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), servername);
        } else {
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(t->ssl, servername) && SSL_set_tlsext_host_name(t->ssl, servername);
        }
        if (!ok) {
            SSL_free(t->ssl);
            free(t);
            ERR_clear_error();
            return FRL_EINVAL;
        }
    }
    *out = t;
    return 0;
}

void frl_tls_free(frl_tls_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t->pend);
    free(t->out);
    free(t->peer_cn);
    free(t);
}

/* The subject CN of the verified peer certificate, if it is a clean
 * string (no embedded NUL). */
static void tls_capture_peer(frl_tls_t *t)
{
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (!cert)
        return;
    X509_NAME *name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0)
        return;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n > 0 && strlen((char *)utf8) == (size_t)n)
        t->peer_cn = strdup((char *)utf8);
    OPENSSL_free(utf8);
    ERR_clear_error();
}

static void tls_report_close(frl_tls_t *t, int status)
{
    if (t->reported)
        return;
    t->reported = 1;
    if (t->cb.on_close)
        t->cb.on_close(t, status, t->ud);
}

/* Handshake step (if needed) then the SSL_read loop, in the same run: the
 * bytes that complete the handshake may carry application data. Every SSL
 * call is preceded by ERR_clear_error (bug 4) and classified through
 * SSL_get_error (bug 3); SSL_read loops until WANT_READ (bug 2). Output is
 * left in `out` for frl_tls_take_output, which the caller runs after every
 * call into the engine (bug 1). */
static void tls_run(frl_tls_t *t)
{
    if (!t->hs_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            /* Fatal: the alert (if any) stays in `out` for the caller to
             * flush before closing (bug 8). */
            t->failed = 1;
            tls_set_error(t, "handshake");
            int status = SSL_get_verify_result(t->ssl) != X509_V_OK ? FRL_EAUTH : FRL_ETLS;
            t->reported = 1;
            if (t->cb.on_handshake)
                t->cb.on_handshake(t, status, t->ud);
            return;
        }
        t->hs_done = 1;
        tls_capture_peer(t);
        if (t->cb.on_handshake)
            t->cb.on_handshake(t, 0, t->ud);
    }
    uint8_t buf[16384];
    while (!t->failed && !t->peer_closed) {
        /* Decrypt straight into the caller's buffer when it offers one (a
         * large frame being received): one copy less per byte. */
        uint8_t *dst = buf;
        size_t cap = sizeof buf;
        if (t->cb.get_read_buffer && !t->shut) {
            size_t want = 0;
            uint8_t *p = t->cb.get_read_buffer(t, &want, t->ud);
            if (p && want > 0) {
                dst = p;
                cap = want > INT_MAX ? INT_MAX : want;
            }
        }
        ERR_clear_error();
        int n = SSL_read(t->ssl, dst, (int)cap);
        if (n > 0) {
            if (!t->shut && t->cb.on_plaintext)
                t->cb.on_plaintext(t, dst, (size_t)n, t->ud);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            t->peer_closed = 1;
            tls_report_close(t, 0);
            break;
        }
        t->failed = 1;
        tls_set_error(t, "read");
        tls_report_close(t, FRL_ETLS);
        break;
    }
}

int frl_tls_start(frl_tls_t *t)
{
    if (!t || t->in_feed || t->failed)
        return FRL_ESTATE;
    if (t->role != FRL_TLS_CLIENT || t->hs_done)
        return 0;
    t->in_feed = 1;
    tls_run(t);
    t->in_feed = 0;
    return 0;
}

int frl_tls_feed(frl_tls_t *t, const uint8_t *data, size_t len)
{
    if (!t || t->in_feed || t->failed || t->peer_closed)
        return FRL_ESTATE;
    if (len == 0)
        return 0;
    t->in = data;
    t->in_len = len;
    t->in_feed = 1;
    tls_run(t);
    t->in_feed = 0;
    /* What SSL did not consume (only possible once it stopped reading:
     * failure, close_notify, or a callback that shut down) is kept, so the
     * caller's buffer is never referenced after this call. */
    if (t->pend_off == t->pend_len) {
        free(t->pend);
        t->pend = NULL;
        t->pend_len = t->pend_off = 0;
    }
    if (t->in_len > 0 && !t->failed && !t->peer_closed) {
        size_t keep = t->pend_len - t->pend_off;
        uint8_t *p = malloc(keep + t->in_len);
        if (!p) {
            t->in = NULL;
            t->in_len = 0;
            return FRL_ENOMEM;
        }
        if (keep)
            memcpy(p, t->pend + t->pend_off, keep);
        memcpy(p + keep, t->in, t->in_len);
        free(t->pend);
        t->pend = p;
        t->pend_len = keep + t->in_len;
        t->pend_off = 0;
    }
    t->in = NULL;
    t->in_len = 0;
    return 0;
}

int frl_tls_feed_eof(frl_tls_t *t)
{
    if (!t || t->in_feed)
        return FRL_ESTATE;
    if (t->peer_closed || t->reported)
        return 0;
    t->failed = 1;
    if (!t->hs_done) {
        snprintf(t->err, sizeof t->err, "handshake: connection closed by peer");
        t->reported = 1;
        if (t->cb.on_handshake)
            t->cb.on_handshake(t, FRL_ECLOSED, t->ud);
    } else {
        /* bug 10: EOF without close_notify is a truncation, not a close. */
        snprintf(t->err, sizeof t->err, "truncated: EOF without close_notify");
        tls_report_close(t, FRL_ETRUNC);
    }
    return 0;
}

size_t frl_tls_pending_output(const frl_tls_t *t)
{
    return t->out_len + t->in_flight;
}

void frl_tls_set_water_marks(frl_tls_t *t, size_t high, size_t low)
{
    if (high == 0)
        high = 1;
    if (low > high)
        low = high;
    t->high = high;
    t->low = low;
}

int frl_tls_write(frl_tls_t *t, const uint8_t *data, size_t len)
{
    if (!t || !t->hs_done || t->failed || t->shut)
        return FRL_ESTATE;
    if (len == 0)
        return 0;
    if (len > INT_MAX)
        return FRL_EINVAL;
    size_t pending = frl_tls_pending_output(t);
    if (t->blocked) {
        if (pending > t->low)
            return FRL_EAGAIN;
        t->blocked = 0;
    }
    if (pending >= t->high) {
        t->blocked = 1;
        return FRL_EAGAIN;
    }
    /* Room for the records in one go: 22 bytes of overhead per 16 KiB record. */
    if (out_reserve(t, len + (len / 16384 + 1) * 32 + 64) < 0)
        return FRL_ENOMEM;
    ERR_clear_error();
    int r = SSL_write(t->ssl, data, (int)len);
    if (r == (int)len)
        return 0;
    t->failed = 1;
    tls_set_error(t, "write");
    return FRL_ETLS;
}

int frl_tls_take_output(frl_tls_t *t, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (t->out_len == 0)
        return 0;
    /* Hand the buffer over as is; the next write starts a new one. */
    *out = t->out;
    *len = t->out_len;
    t->in_flight += t->out_len;
    t->out = NULL;
    t->out_len = t->out_cap = 0;
    return 0;
}

void frl_tls_output_done(frl_tls_t *t, size_t len)
{
    t->in_flight = len > t->in_flight ? 0 : t->in_flight - len;
    if (t->blocked && frl_tls_pending_output(t) <= t->low)
        t->blocked = 0;
}

/* close_notify once (node: SSL_shutdown; the protocol has its own final
 * frame so we do not wait for the peer's). Never after a fatal error. */
int frl_tls_shutdown(frl_tls_t *t)
{
    if (!t || t->shut)
        return 0;
    t->shut = 1;
    if (t->hs_done && !t->failed) {
        ERR_clear_error();
        int r = SSL_shutdown(t->ssl);
        if (r < 0)
            ERR_clear_error();
    }
    return 0;
}

int frl_tls_is_open(const frl_tls_t *t)
{
    return t->hs_done && !t->failed && !t->shut;
}

int frl_tls_has_failed(const frl_tls_t *t)
{
    return t->failed;
}

const char *frl_tls_error(const frl_tls_t *t)
{
    return t->err;
}

const char *frl_tls_peer_cn(const frl_tls_t *t)
{
    return t->peer_cn;
}

const char *frl_tls_version(const frl_tls_t *t)
{
    return SSL_get_version(t->ssl);
}

const char *frl_tls_cipher(const frl_tls_t *t)
{
    const char *c = SSL_get_cipher_name(t->ssl);
    return c ? c : "";
}
