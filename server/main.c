/* frl-server: parse the options, run the server on one libuv loop, exit
 * with its status. Everything else lives in frl_server_core (server/). */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "server/frl_server.h"
#include "supermask/frl_ops.h"

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv)
{
    frl_blas_fix_core(argv); /* before anything is opened: it may exec us again */
    frl_server_opts o;
    char err[512];
    frl_server_opts_defaults(&o);
    int r = frl_server_opts_parse(&o, argc, argv, err, sizeof err);
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "frl-server: %s\n", err);
        return FRL_SERVER_EXIT_USAGE;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "frl-server: cannot create the event loop\n");
        return FRL_SERVER_EXIT_ERROR;
    }
    frl_server_t *s = NULL;
    int status = FRL_SERVER_EXIT_ERROR;
    if (frl_server_new(&loop, &o, &s, &status) == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        status = frl_server_exit_status(s);
    }
    /* Nothing should be left; if something is, close it rather than leak. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "frl-server: handles left open at exit (bug)\n");
        uv_walk(&loop, close_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        if (status == 0)
            status = FRL_SERVER_EXIT_ERROR;
    }
    frl_server_free(s);
    return status;
}
