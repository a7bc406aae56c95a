/* Internals shared by the files of frl_server_core. Not a public API. */
#ifndef FRL_SERVER_INTERNAL_H
#define FRL_SERVER_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "server/frl_server.h"

typedef struct frl_http_s frl_http_t;

/* The Prometheus text of the server's current figures, written into buf
 * (cap bytes); returns the length (truncated output is cut at a line). */
size_t frl__server_prometheus(const frl_server_t *s, char *buf, size_t cap);

/* A tiny HTTP/1.0 responder on `loop`: every request gets the body of
 * frl__server_prometheus(s) and the connection is closed. At most 32
 * connections at once, each at most 5 s, request head at most 8 KiB.
 * Returns 0, FRL_EINVAL or FRL_EIO (bind/listen, logged). */
int frl__http_start(uv_loop_t *loop, const char *host, int port, const frl_server_t *s, frl_http_t **out);
/* Closes the listener and every open connection; frees itself when all
 * handles are closed. */
void frl__http_close(frl_http_t *h);

#endif
