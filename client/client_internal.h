/* Internals of frl_client_core, shared by client.c (connection and round
 * state machine, on the loop), local.c (federation set-up and the local
 * work, pure computation) and the tests. Not a public API. */
#ifndef FRL_CLIENT_INTERNAL_H
#define FRL_CLIENT_INTERNAL_H

#include "client/frl_client.h"

#include "aggregation/frl_vote.h"
#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "net/frl_conn.h"
#include "proto/frl_msg.h"
#include "supermask/frl_model.h"
#include "supermask/frl_train.h"

/* What a Welcome says, copied out of the message (which is freed when
 * on_message returns). */
typedef struct frl__welcome_s {
    char federation_id[FRL_MSG_MAX_ID + 1];
    char model_name[FRL_MSG_MAX_NAME + 1];
    uint8_t spec_hash[32];
    uint8_t seed[FRL_SEED_BYTES];
    double keep;
    unsigned mask_rule;
    unsigned epochs, batch;
    double lr, lr_decay, momentum, weight_decay;
    uint32_t current_round, total_rounds;
    uint32_t heartbeat_ms;
} frl__welcome_t;

void frl__welcome_from_msg(const Frl__V1__Welcome *w, frl__welcome_t *out);

/* The local side of one federation: model, frozen network, this client's
 * shard and its trainer. Built from a Welcome; only the loop thread touches
 * it, except the trainer, data and ranking buffer while a work item runs. */
typedef struct frl__local_s {
    int ready;
    frl__welcome_t w; /* the Welcome it was built from */
    frl_model_spec_t spec;
    frl_vote_layout_t layout; /* the spec's layer sizes */
    uint32_t n_edges[FRL_MAX_LAYERS];
    int load_test; /* no network, data, trainer */
    int have_network;
    frl_network_t network;
    frl_dataset_t data; /* this client's shard only */
    frl_trainer_t *tr;
    frl_train_cfg_t cfg;   /* defaults + Welcome; lr set per round */
    uint32_t *ranking;     /* (total_edges) global ranking in, own ranking out; only
                            * from frl__local_take_task until the result is packed */
    void *scratch;         /* frl_vote_validate scratch */
    uint32_t client_index; /* = --shard: the shuffle / attack stream index */
} frl__local_t;

/* Checks a Welcome against the zoo and the --model expectation: the spec
 * built by name must have the announced hash. Fills *spec. Returns 0, or
 * FRL_EMISMATCH / FRL_EINVAL with a sentence in why. */
int frl__welcome_check(const frl__welcome_t *w, const char *expected_model, frl_model_spec_t *spec, char *why, size_t cap);

/* This client's shard indices: partition of the label file under `seed`
 * (frl_partition_make, the same call the server and frl-sim make), client
 * `shard` of `shards`. *idx is malloc'd (caller frees), *n its length;
 * *n_classes = max label + 1. */
int frl__shard_indices(const char *labels_path, const frl_part_spec_t *spec, uint32_t shard, uint32_t shards,
                       const uint8_t seed[FRL_SEED_BYTES], uint32_t **idx, uint32_t *n, uint32_t *n_classes);

/* (Re)builds `L` for a checked Welcome: reuses the network and shard when
 * the seed and model are unchanged, the trainer when batch/keep/rule are
 * too. Logs what it loads. Returns 0 or an FRL_E* code with why. */
int frl__local_setup(frl__local_t *L, const frl_client_opts_t *o, const frl__welcome_t *w, const frl_model_spec_t *spec, char *why,
                     size_t cap);
void frl__local_free(frl__local_t *L);

/* A copy of a (validated) ranking blob in one malloc block, packed bytes
 * included (frl_msg_ranking_free). NULL when out of memory. A task's
 * ranking is copied packed (4.25 MB for lenet) and expanded on the worker,
 * rather than expanded (6.5 MB) while the received frame and message are
 * still alive: that transient was the client's memory peak. */
Frl__V1__RankingBlob *frl__ranking_copy(const Frl__V1__RankingBlob *g);
/* The shape check alone (layer count and sizes); cheap, on the loop. */
int frl__local_check_shape(const frl__local_t *L, const Frl__V1__RankingBlob *g, char *why, size_t cap);
/* Checks the shape of a task's ranking against the model and, unless
 * load-testing, unpacks it into L->ranking and checks that every layer is a
 * permutation. 0 or an FRL_E* code (FRL_EVOTE_* for bad content). */
int frl__local_take_task(frl__local_t *L, const Frl__V1__RankingBlob *g, char *why, size_t cap);

/* Result of one local round (filled on a worker thread). */
typedef struct frl__round_result_s {
    int status;                 /* 0 or FRL_E* */
    Frl__V1__RankingBlob *blob; /* the ranking to submit (frl_msg_ranking_free) */
    double loss, seconds;
    double cpu_seconds; /* CPU time of the worker thread (load-independent) */
    uint64_t images;
    long peak_rss_kb;
} frl__round_result_t;

/* Progress display (worker thread): NULL = none. */
typedef struct frl__progress_s {
    int tty;
    uint32_t round;
    double t0;
} frl__progress_t;

/* The local work of a round: train from L->ranking (set by
 * frl__local_take_task) with learning rate lr, apply the attack, pack the
 * ranking. Pure computation; runs on a worker thread. */
void frl__local_round(frl__local_t *L, frl_attack_kind attack, uint32_t round, double lr, frl__progress_t *prog,
                      frl__round_result_t *res);

/* The reverse attack with one colluder, in place and without scratch:
 * each layer reversed, which is exactly frl_attack_reverse of one ranking
 * (tests pin the equality) without its ~52 MB of lenet scratch. */
void frl__attack_reverse(uint32_t *ranking, const frl_vote_layout_t *layout);
/* The boundary attack with the own ranking as consensus (in place):
 * mask from the ranking, then frl_attack_boundary. 0 or FRL_E*. */
int frl__attack_boundary(frl__local_t *L);

#endif
