/* frl_sim_core: a whole FRL federation in one process, for experiments.
 *
 * Every round, through the same library code as the daemons:
 *   1. sample `per_round` distinct clients (stream FRL_STREAM_SAMPLE
 *      a=round b=try; the "reference" rule redraws while malicious clients
 *      are half or more of the round, as the reference's FRL_train), or
 *      take them from the configured schedule;
 *   2. train every benign selected client from the global ranking on its
 *      own shard (frl_train_local, mini-batch order from FRL_STREAM_SHUFFLE
 *      a=client b=round), in parallel on `threads` worker threads, one
 *      trainer per thread;
 *   3. build the malicious rankings (attack/frl_attack.h): for reverse and
 *      boundary, min(n_attackers, attack_trainers) attackers drawn from all
 *      attackers (FRL_STREAM_ATTACK a=round b=UINT32_MAX) train benignly,
 *      their positions are summed in a frl_vote_tally and every malicious
 *      client of the round submits the attack computed from that view;
 *      random uses FRL_STREAM_ATTACK a=round b=client; labelflip trains the
 *      client on flipped labels;
 *   4. vote with a frl_vote_round_t (validation, agreement with the
 *      previous global ranking, policy, optional trimmed vote), submitting
 *      in ascending client id order, and finalize the next global ranking;
 *   5. margin report at the new global mask's cut-offs, and evaluation of
 *      the global model on the first eval_n test images, in fixed chunks of
 *      FRL_SIM_EVAL_CHUNK examples so the figures do not depend on the
 *      thread count.
 *
 * Malicious clients are the ids below frl_attack_n_malicious(malicious,
 * clients), as in the reference. Same seed and configuration give the same
 * rankings and per-round figures (timings aside) for any thread count
 * (DESIGN.md §7). The first round's global ranking is the ranking of the
 * seed's initial scores (or one set with frl_sim_set_global_ranking).
 * Rounds are numbered from first_round, 0 by default (lr = lr0 *
 * decay^round). No state but the global ranking passes from one round to
 * the next without a policy, so a run continued from its saved ranking
 * with first_round = r ends where the whole run ends, bit for bit.
 *
 * Not thread-safe per object; it runs its own worker threads inside
 * frl_sim_round. */
#ifndef FRL_SIM_H
#define FRL_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "aggregation/frl_vote_robust.h"
#include "aggregation/frl_vote_round.h"
#include "attack/frl_attack.h"
#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "data/frl_partition.h"
#include "supermask/frl_model.h"
#include "supermask/frl_train.h"

#define FRL_SIM_MAX_THREADS 64
#define FRL_SIM_EVAL_CHUNK 500
#define FRL_SIM_EVAL_BATCH 100
/* Redraws the reference sampling rule may take before giving up. */
#define FRL_SIM_MAX_SAMPLE_TRIES 100000

typedef enum { FRL_SIM_SAMPLING_PLAIN = 0, FRL_SIM_SAMPLING_REFERENCE = 1 } frl_sim_sampling;

typedef struct frl_sim_config_s {
    char model[FRL_MODEL_NAME_MAX];  /* "lenet" */
    uint32_t clients;                /* 100 */
    uint32_t per_round;              /* 10 */
    int rounds;                      /* 20 */
    int first_round;                 /* 0: the run plays rounds first_round .. rounds - 1 (numbering sets the lr, the
                                        batch orders and every draw; e.g. continue a run from its saved ranking) */
    frl_part_spec_t partition;       /* dirichlet:1.0 */
    frl_train_cfg_t train;           /* lr = lr0 (0.4), momentum, wd, batch, epochs (1), keep, rule */
    double lr_decay;                 /* 0.999 per round */
    uint8_t seed[FRL_SEED_BYTES];    /* frl_seed_from_u64(0) */
    int threads;                     /* 1 */
    int eval_every;                  /* evaluate every N rounds (and always after the last); 1 */
    uint32_t eval_n;                 /* per-round evaluation on the first eval_n test images; 0 = all */
    double malicious;                /* fraction of malicious clients, [0, 1) */
    frl_attack_kind attack;          /* FRL_ATTACK_NONE */
    uint32_t attack_trainers;        /* colluders that train to build the view; 25 (the reference's default) */
    double boundary_band;            /* FRL_ATTACK_DEFAULT_BAND */
    frl_sim_sampling sampling;       /* FRL_SIM_SAMPLING_REFERENCE */
    frl_vote_policy_config_t policy; /* mode OFF */
    uint32_t trim;                   /* trimmed vote: drop trim highest and lowest positions per edge; 0 = plain vote */
    /* With batch_seed_set, local training's batch orders (honest clients'
     * and colluders') come from batch_seed instead of seed: the same
     * network, data, clients and colluders, trained in other orders. */
    int batch_seed_set;
    uint8_t batch_seed[FRL_SEED_BYTES];
    /* Sampling schedule (NULL = draw): round r's clients are
     * schedule[r * per_round .. + per_round), distinct ids < clients, for
     * r < schedule_rounds >= rounds. Borrowed: it must outlive the
     * simulation. The sampling rule does not apply to it. */
    const uint32_t *schedule;
    uint32_t schedule_rounds;
} frl_sim_config_t;

/* The defaults above (the reference's reduced anchor configuration). */
void frl_sim_config_default(frl_sim_config_t *cfg);
/* "plain" | "reference"; 0 or FRL_EINVAL. */
int frl_sim_sampling_parse(const char *s, frl_sim_sampling *out);
const char *frl_sim_sampling_name(frl_sim_sampling s);
/* Parses a sampling schedule: one line per round, per_round distinct client
 * ids < clients (decimal, separated by spaces, tabs or commas); '#' starts
 * a comment; blank lines are skipped. *ids is malloc'd (rounds x
 * per_round). FRL_EINVAL with "line N: what" in err (if given), or
 * FRL_ENOMEM. */
int frl_sim_schedule_parse(const char *text, size_t len, uint32_t clients, uint32_t per_round, uint32_t **ids, uint32_t *rounds,
                           char *err, size_t errcap);
/* One row: ids < clients (else FRL_ERANGE) and distinct (else FRL_EINVAL);
 * tmp holds per_round ids. */
int frl_sim_schedule_check_row(const uint32_t *ids, uint32_t per_round, uint32_t clients, uint32_t *tmp);
/* "none" | "flag" | "drop" | "downweight"; 0 or FRL_EINVAL. */
int frl_sim_policy_parse(const char *s, frl_vote_policy_mode *out);
const char *frl_sim_policy_name(frl_vote_policy_mode m);

/* One selected client's part in a round, in the order of `selected`.
 * `trained` is 0 for an attacker that submitted a forged ranking (reverse,
 * random, boundary); a labelflip client trains, on flipped labels. The
 * train_* figures are its local training's (loss and accuracy of the last
 * epoch); NaN, or 0 images, when it did not train. `vote` is the round
 * keeper's outcome: code (0 = counted, FRL_EVOTE_DROPPED, ...), agreement
 * with the previous global ranking and its smallest per-layer value,
 * weight, policy streak and flag. */
typedef struct frl_sim_client_s {
    uint32_t id;
    int malicious; /* id < frl_sim_n_malicious */
    int trained;
    uint64_t train_images;
    double train_loss, train_accuracy, train_seconds;
    frl_vote_result_t vote;
} frl_sim_client_t;

/* Per-round record. Pointers are valid until the next frl_sim_round. */
typedef struct frl_sim_round_s {
    int round;
    double lr;
    uint32_t n_selected;
    const uint32_t *selected;                      /* ascending client ids */
    const frl_sim_client_t *clients;               /* n_selected: each selected client's training and vote */
    uint32_t n_malicious;                          /* selected malicious clients */
    uint32_t sample_tries;                         /* draws the sampling rule needed (1 = first; 0 = from the schedule) */
    uint32_t attack_trainings;                     /* colluder trainings this round */
    uint32_t accepted, rejected, dropped, flagged; /* frl_vote_round_stats */
    double agree_min, agree_mean, agree_max;       /* over submitted valid votes (NaN if none) */
    double agree_benign, agree_malicious;          /* means per group (NaN if the group is empty) */
    uint64_t
        margin_edges;    /* edges within w (n_l - 1) / 4 of a mask cut's vote sum (w: weight of a trusted vote), summed over cuts */
    double margin_frac;  /* margin_edges / total_edges */
    double mask_churn;   /* fraction of edges whose mask bit the new global ranking changed */
    double attack_flips; /* fraction of edges whose new mask bit differs from that of the honest clients' plain vote alone
                            (NaN in a round without malicious rankings) */
    int evaluated;       /* accuracy/loss are set */
    uint32_t eval_n;
    double accuracy, loss;
    /* Accuracy, on the same eval_n images, of the honest clients' plain vote
     * alone (the ranking attack_flips compares with): what the round would
     * have given without its malicious rankings. NaN when attack_flips is,
     * or the round is not evaluated. */
    double honest_accuracy;
    uint64_t train_images; /* images processed by local training (benign + attackers) */
    double seconds;        /* wall time of the round excluding evaluation */
    double train_seconds, vote_seconds, eval_seconds;
    double cpu_seconds; /* process CPU time (user + system, all threads) of the round incl. evaluation */
} frl_sim_round_t;

typedef struct frl_sim_s frl_sim_t;

/* Creates a simulation of `cfg` over the caller's data sets (borrowed: they
 * must outlive the simulation and not change). Builds the network, the
 * partition, one trainer per thread (about 40 MB each for lenet) and the
 * round keeper. Returns 0, FRL_EINVAL (bad configuration, e.g. too few
 * benign clients for the reference sampling rule), FRL_EMISMATCH (data
 * shape vs model) or FRL_ENOMEM. */
int frl_sim_create(const frl_sim_config_t *cfg, const frl_dataset_t *train, const frl_dataset_t *test, frl_sim_t **out);
void frl_sim_destroy(frl_sim_t *sim);

/* Runs the next round (first_round, first_round + 1, ...) and fills *rec.
 * FRL_ESTATE after round cfg->rounds - 1. Other errors come from the libraries. */
int frl_sim_round(frl_sim_t *sim, frl_sim_round_t *rec);

/* Progress inside a round: called after each local training of the round
 * with (done, total) trainings, from the worker threads, one call at a
 * time (the simulation serialises them). Keep it short (e.g. redraw a
 * progress line). NULL disables it. */
typedef void (*frl_sim_progress_fn)(void *user, int round, uint32_t done, uint32_t total);
void frl_sim_set_progress(frl_sim_t *sim, frl_sim_progress_fn fn, void *user);

/* Evaluates the current global model on test examples [0, n) (n 0 = all),
 * in parallel chunks (deterministic). */
int frl_sim_evaluate(frl_sim_t *sim, uint32_t n, double *accuracy, double *loss);

/* The current global ranking (total_edges elements, valid while the
 * simulation lives and until the next round). */
const uint32_t *frl_sim_global_ranking(const frl_sim_t *sim);
/* Replaces the current global ranking (e.g. one saved by an earlier run,
 * sim/frl_sim_ranking_file.h): the next round's clients start from it, and
 * agreement and churn are measured against it. It must be a permutation
 * per layer of the simulation's layout: otherwise the frl_vote_validate
 * code (details in `reject`, may be NULL) and nothing changes. 0,
 * FRL_EINVAL or FRL_ENOMEM. */
int frl_sim_set_global_ranking(frl_sim_t *sim, const uint32_t *ranking, frl_vote_reject_t *reject);
const frl_vote_layout_t *frl_sim_layout(const frl_sim_t *sim);
const frl_model_spec_t *frl_sim_spec(const frl_sim_t *sim);
const frl_partition_t *frl_sim_partition(const frl_sim_t *sim);
uint32_t frl_sim_n_malicious(const frl_sim_t *sim);

/* One JSON object (no newline) for a round record into buf. with_timing 0
 * leaves out every wall/CPU time field, so two runs of the same
 * configuration give byte-identical text. Returns the length, or
 * FRL_ETOOBIG when cap is too small (FRL_SIM_ROUND_JSON_CAP(n_selected)
 * is enough). */
#define FRL_SIM_ROUND_JSON_CAP(n_selected) (2048 + 384 * (size_t)(n_selected))
int frl_sim_round_json(const frl_sim_round_t *rec, int with_timing, char *buf, size_t cap);

/* The configuration as a JSON object (no newline). Returns the length or
 * FRL_ETOOBIG. */
int frl_sim_config_json(const frl_sim_config_t *cfg, char *buf, size_t cap);

#endif
