/* The Prometheus endpoint: the smallest HTTP responder that does the job.
 * Any request on the socket ("GET /metrics HTTP/1.1" or anything else that
 * ends its head with an empty line) gets 200 and the metrics text, then the
 * connection is closed (HTTP/1.0 semantics, no keep-alive). Plain HTTP:
 * bind it to loopback or a monitoring network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_log.h"
#include "server/server_internal.h"

#define HTTP_MAX_CONNS 32
#define HTTP_MAX_HEAD 8192
#define HTTP_TIMEOUT_MS 5000
#define HTTP_BODY_MAX 65536

typedef struct http_conn_s {
    uv_tcp_t tcp;  /* first member: handle -> conn */
    uv_timer_t timer;
    uv_write_t wr;
    struct frl_http_s *h;
    struct http_conn_s *prev, *next;
    char head[HTTP_MAX_HEAD];
    size_t head_len;
    char *out;
    int closing, handles;
} http_conn_t;

struct frl_http_s {
    uv_tcp_t listener;
    const frl_server_t *s;
    http_conn_t *conns;
    unsigned n_conns;
    int closing, listener_closed;
};

static void http_maybe_free(frl_http_t *h)
{
    if (h->closing && h->listener_closed && !h->conns)
        free(h);
}

static void conn_handle_closed(uv_handle_t *hd)
{
    http_conn_t *c = hd->data;
    if (--c->handles > 0)
        return;
    frl_http_t *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    free(c->out);
    free(c);
    http_maybe_free(h);
}

static void conn_close(http_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_written(uv_write_t *w, int status)
{
    conn_close(w->data);
}

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = hd->data;
    buf->base = c->head + c->head_len;
    buf->len = sizeof c->head - 1 - c->head_len;
}

static void respond(http_conn_t *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    char *body = malloc(HTTP_BODY_MAX);
    c->out = malloc(HTTP_BODY_MAX + 256);
    if (!body || !c->out) {
        free(body);
        conn_close(c);
        return;
    }
    size_t n = frl__server_prometheus(c->h->s, body, HTTP_BODY_MAX);
    int hl = snprintf(c->out, 256,
                      "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      n);
    memcpy(c->out + hl, body, n);
    free(body);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)(hl + (int)n));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = st->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->head_len += (size_t)nread;
    c->head[c->head_len] = '\0';
    if (strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n")) {
        respond(c);
    } else if (c->head_len >= sizeof c->head - 1) {
        conn_close(c);
    }
}

static void on_connection(uv_stream_t *srv, int status)
{
    frl_http_t *h = srv->data;
    if (status < 0 || h->closing)
        return;
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->h = h;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 || h->n_conns > HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, HTTP_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

static void listener_closed(uv_handle_t *hd)
{
    frl_http_t *h = hd->data;
    h->listener_closed = 1;
    http_maybe_free(h);
}

int frl__http_start(uv_loop_t *loop, const char *host, int port, const frl_server_t *s, frl_http_t **out)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return FRL_EINVAL;
    frl_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return FRL_ENOMEM;
    h->s = s;
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    int r = uv_tcp_bind(&h->listener, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&h->listener, 64, on_connection);
    if (r != 0) {
        FRL_LOG_E("metrics_listen", "host=%s port=%d error=\"%s\"", host, port, uv_strerror(r));
        h->closing = 1;
        uv_close((uv_handle_t *)&h->listener, listener_closed); /* frees h */
        return FRL_EIO;
    }
    FRL_LOG_I("metrics_listen", "addr=%s:%d", host, port);
    *out = h;
    return 0;
}


void frl__http_close(frl_http_t *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    uv_close((uv_handle_t *)&h->listener, listener_closed);
    for (http_conn_t *c = h->conns; c; c = c->next)
        conn_close(c);
}
