/* frl-client: the federated client daemon as a library (frl_client_core).
 *
 * What it does, on one libuv loop:
 *   connect (TLS 1.3, server always verified; mTLS or an enrolment token)
 *   -> Hello -> Welcome: build the model named by the server, CHECK its spec
 *      hash, regenerate the frozen network from the seed, work out this
 *      client's shard of the partition from the seed, load only that shard,
 *      create one trainer
 *   -> RoundTask: train on the libuv thread pool (the loop keeps the
 *      connection and its heartbeats alive), then RankSubmission
 *   -> Ack / Error / Bye "done" (exit 0).
 * A lost connection is retried with exponential backoff and jitter; after a
 * server restart the server sends Welcome again and everything that still
 * matches (same federation id, seed, model) is reused.
 *
 * main() (client/main.c) stays thin:
 *   frl_client_opts_defaults(&o); frl_client_opts_parse(&o, argc, argv, ...)
 *   sodium_init(); uv_loop_init(&loop);
 *   frl_client_new(&loop, &o, done_cb, ud, &cl); frl_client_start(cl);
 *   uv_run(...)   (SIGINT/SIGTERM -> frl_client_stop(cl))
 *   frl_client_exit_code(cl); frl_client_free(cl); uv_loop_close(&loop).
 *
 * Several clients may share one loop (the tests do, with a fake server): no
 * global state except the process-wide log settings chosen by main(). */
#ifndef FRL_CLIENT_H
#define FRL_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "attack/frl_attack.h"
#include "common/frl_log.h"
#include "data/frl_partition.h"

#define FRL_CLIENT_VERSION "frl-client 0.1"
#define FRL_CLIENT_PATH_MAX 1024
#define FRL_CLIENT_HOST_MAX 256
#define FRL_CLIENT_ID_MAX 128
#define FRL_CLIENT_TOKEN_MAX 256

/* Exit statuses of frl-client. */
#define FRL_CLIENT_EXIT_OK 0    /* Bye "done" from the server, or stopped by a signal */
#define FRL_CLIENT_EXIT_FAIL 1  /* gave up reconnecting, refused by the server, model mismatch, bad data */
#define FRL_CLIENT_EXIT_USAGE 2 /* bad flags or config file */

/* --attack: the attacks of attack/frl_attack.h, seen by ONE client (a
 * daemon knows no colluders):
 *   none       honest.
 *   reverse    train benignly, submit the reverse of the own ranking
 *              (frl_attack_reverse with this client as the only colluder).
 *   random     a uniformly random permutation per layer, no training
 *              (frl_attack_random, stream FRL_STREAM_ATTACK a=round-1 b=shard,
 *              frl-sim's numbering).
 *   boundary   train benignly, then frl_attack_boundary with the own
 *              ranking as the consensus (mask, attack scratch and output
 *              during that step: about +50 MB for lenet, ~104 MB peak).
 *   labelflip  honest protocol on labels y -> n_classes - 1 - y
 *              (frl_attack_flip_labels). */

/* Every option, with the same names as the flags and the config keys
 * (deploy/frl-client.conf lists them all). Plain data, no pointers to
 * free; the token is wiped by frl_client_opts_wipe. */
typedef struct frl_client_opts_s {
    char server_host[FRL_CLIENT_HOST_MAX]; /* --server HOST:PORT (required) */
    int server_port;
    char server_name[FRL_CLIENT_HOST_MAX]; /* --server-name: TLS name to verify ("localhost") */
    char ca[FRL_CLIENT_PATH_MAX];          /* --ca: federation CA (required with TLS) */
    char cert[FRL_CLIENT_PATH_MAX];        /* --cert / --key: mTLS client certificate */
    char key[FRL_CLIENT_PATH_MAX];
    char client_id[FRL_CLIENT_ID_MAX + 1]; /* --client-id (required) */
    uint8_t token[FRL_CLIENT_TOKEN_MAX];   /* --token HEX / --token-file FILE: token mode */
    size_t token_len;
    char token_file[FRL_CLIENT_PATH_MAX];
    int token_given;                    /* --token seen (to refuse it together with --token-file) */
    char data_dir[FRL_CLIENT_PATH_MAX]; /* --data: MNIST-layout IDX dir ("" = Fashion-MNIST) */
    frl_part_spec_t partition;          /* --partition iid|dirichlet:A|shards:K */
    uint32_t shard, shards;             /* --shard U --shards N: this client holds part U of N */
    char model[64];                     /* --model: expected model ("" = whatever the server says) */
    int threads;                        /* --threads: libuv worker threads for local work (>= 1) */
    frl_attack_kind attack;             /* --attack */
    int load_test;                      /* --load-test: random valid rankings, no data, no trainer */
    unsigned reconnect_base_ms;         /* --reconnect-base-ms (500) */
    unsigned reconnect_max_ms;          /* --reconnect-max-ms (30000) */
    unsigned max_retries;               /* --max-retries: consecutive failed tries, 0 = forever */
    frl_log_level log_level;            /* --log-level */
    frl_log_format log_format;          /* --log-format kv|json */
    int quiet;                          /* --quiet: no progress display */
    int insecure_plaintext;             /* --insecure-plaintext: tests only */
    char config[FRL_CLIENT_PATH_MAX];   /* --config FILE (flags override it) */
} frl_client_opts_t;

void frl_client_opts_defaults(frl_client_opts_t *o);
/* Sets one option by name (flag name without "--", or config key) from its
 * text value (NULL or "" for the boolean flags given without a value).
 * Returns 0 or FRL_EINVAL with a full sentence in err. */
int frl_client_opts_set(frl_client_opts_t *o, const char *key, const char *value, char *err, size_t err_cap);
/* Parses argv: --config FILE is read first (wherever it appears), then the
 * flags override it; then cross-checks (frl_client_opts_check). Accepts
 * "--key value" and "--key=value". Returns 0, 1 when --help or --version
 * was printed (exit 0), or FRL_EINVAL with a message in err (exit 2). */
int frl_client_opts_parse(frl_client_opts_t *o, int argc, char **argv, char *err, size_t err_cap);
/* Cross-option checks and the token file; 0 or FRL_EINVAL with err. */
int frl_client_opts_check(frl_client_opts_t *o, char *err, size_t err_cap);
void frl_client_opts_wipe(frl_client_opts_t *o);
void frl_client_usage(FILE *f);

typedef struct frl_client_s frl_client_t;

/* Creates a client on `loop` (builds the TLS context; files are read here).
 * `done(ud)` is called once on the loop when the client has finished (Bye,
 * giving up, fatal error or frl_client_stop) and closed its handles; the
 * loop then has nothing of the client's left. Returns 0, FRL_EINVAL,
 * FRL_ENOMEM or an frl_net_new error (logged). */
int frl_client_new(uv_loop_t *loop, const frl_client_opts_t *o, void (*done)(void *ud), void *ud, frl_client_t **out);
/* Starts connecting. 0 or an frl_net_connect error. */
int frl_client_start(frl_client_t *c);
/* Graceful stop (SIGINT/SIGTERM): Bye to the server, close. A round being
 * trained on the thread pool cannot be interrupted: the client finishes
 * once it returns (its result is dropped). Safe to call more than once. */
void frl_client_stop(frl_client_t *c);
/* FRL_CLIENT_EXIT_* once done. */
int frl_client_exit_code(const frl_client_t *c);
/* 1 while a round is being trained (queued or running on the pool). */
int frl_client_training(const frl_client_t *c);
/* Rounds submitted so far (for tests and the final log line). */
unsigned frl_client_rounds_submitted(const frl_client_t *c);
/* Frees the client; only after `done` was called (or if never started). */
void frl_client_free(frl_client_t *c);

#endif
