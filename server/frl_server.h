/* frl-server: the federation server daemon as a library (frl_server_core),
 * so that main.c stays thin and tests and benchmarks can run a server
 * in-process.
 *
 * Lifecycle (one libuv loop, owned by the caller):
 *
 *   frl_server_opts o;
 *   frl_server_opts_defaults(&o);
 *   frl_server_opts_parse(&o, argc, argv, err, sizeof err);  // --config FILE, then flags
 *   frl_server_t *s;
 *   frl_server_new(loop, &o, &s);        // state dir, model, eval data, listen
 *   uv_run(loop, UV_RUN_DEFAULT);        // returns when the federation ended or stopped
 *   int status = frl_server_exit_status(s);
 *   frl_server_free(s);
 *   uv_loop_close(loop) == 0
 *
 * The round state machine (DESIGN.md §5, docs/operations.md):
 *
 *   WAITING    fewer than min-clients welcomed clients are connected
 *   COLLECTING a seeded sample got the RoundTask; submissions are validated
 *              and tallied as they arrive; ends when every selected client
 *              answered, or at the deadline
 *   RETRY_WAIT below quorum: wait retry-wait seconds, then extend the
 *              round with a new sample of clients not yet selected (the
 *              votes already counted stay; late answers of earlier tries
 *              still count); after max-retries failed retries the server
 *              exits with status FRL_SERVER_EXIT_QUORUM and a clear message
 *   VOTING     thread pool: finalize the vote, write the checkpoint
 *   EVALUATING thread pool: test accuracy of the new global model
 *   FINAL      thread pool: final model file and its accuracy; then Bye
 *              "done" to every client and the loop ends
 *
 * Everything but the thread-pool work runs on the loop's thread. */
#ifndef FRL_SERVER_H
#define FRL_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#define FRL_SERVER_VERSION "frl-server 0.1"

/* Process exit statuses. */
#define FRL_SERVER_EXIT_OK 0
#define FRL_SERVER_EXIT_ERROR 1  /* start-up or fatal run-time error (logged) */
#define FRL_SERVER_EXIT_USAGE 2  /* bad flags or config */
#define FRL_SERVER_EXIT_QUORUM 3 /* a round stayed below quorum after every retry */
#define FRL_SERVER_EXIT_STATE 4  /* state directory incompatible with the config, or locked */

#define FRL_SERVER_STR 1024

/* Every option, by its flag / config key name (see server/options.c for the
 * table and deploy/frl-server.conf for the documented defaults). */
typedef struct frl_server_opts_s {
    char listen[FRL_SERVER_STR]; /* HOST:PORT, default 127.0.0.1:7700 */
    char cert[FRL_SERVER_STR];
    char key[FRL_SERVER_STR];
    char ca[FRL_SERVER_STR];
    char auth[16]; /* mtls | token */
    char token_file[FRL_SERVER_STR];
    int insecure_plaintext;
    char federation_id[129];
    char model[32];
    double keep;
    char rule[16];
    char seed[80]; /* 64 hex or a decimal integer; empty = random (recorded in the state dir) */
    int rounds;
    int per_round;
    int min_clients; /* 0 = per-round */
    double quorum;   /* < 1: fraction of the selected clients; >= 1: count */
    double round_deadline;
    double retry_wait;
    int max_retries;
    double wait_timeout; /* WAITING longer than this is a failed try (0 = wait for ever) */
    int local_epochs;
    double lr;
    double lr_decay;
    double momentum;
    double weight_decay;
    int batch;
    char state_dir[FRL_SERVER_STR];
    char metrics_file[FRL_SERVER_STR];
    char metrics_listen[FRL_SERVER_STR]; /* HOST:PORT or empty/off */
    int eval_every;                       /* 0 = only the final model */
    char eval_data[FRL_SERVER_STR];
    int eval_n; /* 0 = the whole test split */
    char model_out[FRL_SERVER_STR];      /* empty = STATE_DIR/model.frlq */
    int final_eval_n;                     /* test images for the final model's accuracy (0 = all) */
    char log_level[16];
    char log_format[16];
    char policy[16]; /* off | flag | drop | downweight */
    double policy_threshold;
    int policy_rounds;
    int max_clients; /* client registry capacity */
    int max_conns;
    int heartbeat_ms;
    int idle_timeout_ms;
    char config_file[FRL_SERVER_STR]; /* informative: the --config used */
} frl_server_opts;

void frl_server_opts_defaults(frl_server_opts *o);
/* Sets one option by key (flag name without "--", or config key). Returns
 * 0, FRL_EINVAL (bad value) or FRL_ENOENT (unknown key); `err` gets a
 * message. */
int frl_server_opts_set(frl_server_opts *o, const char *key, const char *value, char *err, size_t err_cap);
/* Loads --config FILE (if any) then applies the flags. Returns 0, 1 when
 * --help / --version / --print-config was handled (exit 0), or a negative
 * FRL_E* with `err` filled. */
int frl_server_opts_parse(frl_server_opts *o, int argc, char **argv, char *err, size_t err_cap);
/* Checks cross-option consistency after parsing. */
int frl_server_opts_check(const frl_server_opts *o, char *err, size_t err_cap);
/* Writes every option as "key = value" lines (the config file format). */
void frl_server_opts_print(const frl_server_opts *o, FILE *f, int commented_help);
/* Splits "HOST:PORT" / "[v6]:PORT". Returns 0 or FRL_EINVAL. */
int frl_server_split_hostport(const char *s, char *host, size_t host_cap, int *port);

typedef struct frl_server_s frl_server_t;

/* Creates the server on `loop`: applies the log settings, opens (or
 * creates) the state directory, checks its compatibility, loads the
 * evaluation data, listens, and opens round 1 (or the next round) as soon
 * as enough clients are connected. On failure returns a negative FRL_E*,
 * logs why, and sets *exit_status (may be NULL) to the status main should
 * exit with; nothing is left on the loop. */
int frl_server_new(uv_loop_t *loop, const frl_server_opts *o, frl_server_t **out, int *exit_status);
/* Graceful stop (what SIGINT/SIGTERM do): stop accepting, abandon the open
 * round, write the state, close every handle. Safe to call twice. */
void frl_server_stop(frl_server_t *s);
/* Exit status once uv_run returned. */
int frl_server_exit_status(const frl_server_t *s);
/* Rounds completed (persisted). */
uint32_t frl_server_rounds_done(const frl_server_t *s);
/* The bound port (listen port 0 = any). */
int frl_server_port(const frl_server_t *s);
/* Last measured test accuracy of the float global model (NaN if none). */
double frl_server_last_accuracy(const frl_server_t *s);
/* Frees the server after uv_run returned. */
void frl_server_free(frl_server_t *s);

/* Per-round figures (also the JSON line of the metrics file). */
typedef struct frl_round_metrics_s {
    uint32_t round;
    uint32_t tries;
    uint32_t selected, received, accepted, rejected, dropped, flagged;
    uint32_t rejected_by_code[8]; /* FRL_EVOTE_LAYERS (-30) .. FRL_EVOTE_DROPPED (-37) */
    uint32_t rejected_other;      /* malformed packed ranking (FRL_EFORMAT) and the like */
    double agree_min, agree_mean, agree_max; /* NaN without reference */
    double accuracy, loss;                   /* NaN when not evaluated */
    double train_loss_mean;                  /* mean RankSubmission.train_loss of accepted votes */
    double round_s, collect_s, vote_s, checkpoint_s, eval_s;
    double overhead_s;     /* loop busy time + thread-pool work during the round */
    double overhead_share; /* overhead_s / round_s */
    double cpu_s;          /* CPU time (user + system, all threads) the server process used during the round */
    uint64_t bytes_in, bytes_out;
    uint32_t connected;
    long peak_rss_kb;
} frl_round_metrics_t;

/* Called after every completed round (tests, benchmarks). */
typedef void (*frl_server_round_cb)(frl_server_t *s, const frl_round_metrics_t *m, void *ud);
void frl_server_set_round_cb(frl_server_t *s, frl_server_round_cb cb, void *ud);

/* Formats the metrics JSON line (no newline); returns its length or a
 * negative FRL_E* when it does not fit. */
int frl_round_metrics_json(const frl_round_metrics_t *m, char *buf, size_t cap);

#endif
