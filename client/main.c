/* frl-client: parse options -> sodium_init -> loop -> client -> uv_run ->
 * orderly teardown. Everything else lives in frl_client_core. */
#include "client/frl_client.h"

#include "common/frl_error.h"
#include "common/frl_log.h"
#include "supermask/frl_ops.h"

#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    frl_client_t *client;
    uv_signal_t sigint, sigterm;
    int signals;
} app_t;

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (++app->signals > 1) {
        /* Second signal: a round may be training and cannot be interrupted. */
        fprintf(stderr, "frl-client: second signal, exiting now\n");
        _exit(FRL_CLIENT_EXIT_FAIL);
    }
    frl_log(FRL_LOG_INFO, "signal", "signum=%d msg=\"stopping\"", signum);
    frl_client_stop(app->client);
}

static void on_done(void *ud)
{
    app_t *app = ud;
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

int main(int argc, char **argv)
{
    frl_blas_fix_core(argv); /* before anything is opened: it may exec us again */
    static frl_client_opts_t o;
    char err[1024];
    frl_client_opts_defaults(&o);
    int r = frl_client_opts_parse(&o, argc, argv, err, sizeof err);
    if (r == 1)
        return FRL_CLIENT_EXIT_OK;
    if (r) {
        fprintf(stderr, "frl-client: %s\n", err);
        frl_client_opts_wipe(&o);
        return FRL_CLIENT_EXIT_USAGE;
    }
    /* Edge devices: buffers of 1 MiB and more (rankings, frames) go straight
     * to mmap and back to the OS when freed. glibc would otherwise raise its
     * mmap threshold after the first such free and keep later ones in the
     * heap, growing the RSS round after round. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    frl_log_set_level(o.log_level);
    frl_log_set_format(o.log_format);
    if (sodium_init() < 0) {
        fprintf(stderr, "frl-client: libsodium failed to initialise\n");
        return FRL_CLIENT_EXIT_FAIL;
    }
    /* --threads sizes libuv's worker pool (read once, before the first
     * queued work); one extra thread keeps name lookups for reconnects free
     * while a round trains. */
    char pool[16];
    snprintf(pool, sizeof pool, "%d", o.threads + 1);
    setenv("UV_THREADPOOL_SIZE", pool, 1);

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "frl-client: cannot create the event loop\n");
        return FRL_CLIENT_EXIT_FAIL;
    }
    app_t app = {0};
    r = frl_client_new(&loop, &o, on_done, &app, &app.client);
    frl_client_opts_wipe(&o);
    if (r) {
        fprintf(stderr, "frl-client: cannot set up the connection: %s (see the log above)\n", frl_strerror(r));
        uv_loop_close(&loop);
        return FRL_CLIENT_EXIT_FAIL;
    }
    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    if ((r = frl_client_start(app.client)) != 0) {
        fprintf(stderr, "frl-client: cannot connect: %s\n", frl_strerror(r));
        frl_client_stop(app.client);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int code = frl_client_exit_code(app.client);
    frl_client_free(app.client);
    if (uv_loop_close(&loop) != 0)
        frl_log(FRL_LOG_WARN, "loop_close", "msg=\"handles left open\"");
    return code;
}
