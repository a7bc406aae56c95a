/* frl-fake-server: the tests' fake server as a program, for measuring a
 * real frl-client process (memory, time per round) without frl-server.
 *
 *   frl-fake-server MODEL ROUNDS PORT [CERT_DIR]
 *
 * Serves one client at a time on 127.0.0.1:PORT (plaintext, or mTLS with
 * certificates from deploy/gen-certs.sh in CERT_DIR): Welcome (seed 42,
 * batch 8, 1 local epoch), then ROUNDS tasks, checking every submission is
 * a valid ranking, then Bye "done". Exits 0 when all rounds were valid. */
#include "client_test_util.h"

#include "common/frl_log.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: frl-fake-server MODEL ROUNDS PORT [CERT_DIR]\n");
        return 2;
    }
    frl_log_set_level(FRL_LOG_WARN);
    fake_t f;
    fake_init(&f, argv[1], (uint32_t)atoi(argv[2]), argc > 4 ? argv[4] : NULL);
    /* fake_init listened on port 0: listen again on the requested port. */
    frl_net_close(f.srv, NULL, NULL);
    frl_net_config cfg;
    frl_net_config_defaults(&cfg, FRL_NET_SERVER);
    char ca[1200], crt[1200], key[1200];
    if (argc > 4) {
        snprintf(ca, sizeof ca, "%s/ca.crt", argv[4]);
        snprintf(crt, sizeof crt, "%s/server.crt", argv[4]);
        snprintf(key, sizeof key, "%s/server.key", argv[4]);
        cfg.ca_file = ca;
        cfg.cert_file = crt;
        cfg.key_file = key;
    } else {
        cfg.insecure_plaintext = 1;
    }
    frl_net_callbacks cb = {.on_message = fake_on_message, .on_close = fake_on_close};
    if (frl_net_new(&f.loop, &cfg, &cb, &f, &f.srv) || frl_net_listen(f.srv, "127.0.0.1", atoi(argv[3]))) {
        fprintf(stderr, "frl-fake-server: cannot listen on %s\n", argv[3]);
        return 1;
    }
    f.standalone = 1;
    fprintf(stderr, "frl-fake-server: %s, %u rounds, port %s\n", argv[1], f.rounds, argv[3]);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "frl-fake-server: hellos=%d submissions=%d valid=%d bad=%d\n", f.hellos, f.submissions, f.valid_submissions,
            f.bad_submissions);
    frl_msg_ranking_free(f.global);
    uv_loop_close(&f.loop);
    return f.valid_submissions == (int)f.rounds && f.bad_submissions == 0 ? 0 : 1;
}
