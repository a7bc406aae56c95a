/* Edge-popup training of supermask scores for one client (one thread).
 *
 * A trainer holds, per masked layer, the scores, the SGD momentum, the
 * score gradient and the effective weights w * mask, plus the activations of
 * one batch. Its buffers are allocated once by frl_trainer_create; several trainers
 * may run in parallel threads on the same (read-only) network. Local
 * training allocates only the epoch order (4 bytes per example).
 *
 * Typical client round:
 *   frl_trainer_set_ranking(tr, global_ranking);     // scores from the vote
 *   frl_train_local(tr, &data, idx, n, &cfg, &rng, &stats, NULL, NULL);
 *   frl_trainer_get_ranking(tr, my_ranking);         // what the client uploads
 */
#ifndef FRL_TRAIN_H
#define FRL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "common/frl_rng.h"
#include "data/frl_idx.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"

typedef struct frl_train_cfg_s {
    double keep;         /* fraction of edges kept per layer (0.5) */
    frl_mask_rule rule;  /* FRL_MASK_ABS, the reference's rule */
    double lr;           /* learning rate of this round: lr0 * decay^round (0.4 in round 0) */
    double momentum;     /* 0.9 */
    double weight_decay; /* 1e-4, applied to the scores */
    int batch;           /* 8; the last partial batch of an epoch is kept */
    int epochs;          /* local epochs (1) */
    int cosine;          /* 1: epoch i uses lr * (1 + cos(pi * i / epochs)) / 2 */
    float mean, std;     /* input normalisation x = (p / 255 - mean) / std (0.2860, 0.3530) */
} frl_train_cfg_t;

/* The reference's defaults (FRL-REFERENCE.md §2), Fashion-MNIST normalisation. */
void frl_train_cfg_default(frl_train_cfg_t *cfg);
/* Learning rate of `round` (from 0) with per-round decay: lr0 * decay^round. */
double frl_train_round_lr(double lr0, double decay, int round);

typedef struct frl_train_stats_s {
    uint64_t images;     /* examples processed (all epochs) */
    uint64_t steps;      /* SGD steps */
    double loss;         /* mean training loss over the last epoch */
    double accuracy;     /* training accuracy over the last epoch */
    double seconds;      /* wall time in frl_train_local */
    uint64_t full_selects; /* exact selections that had to scan a whole layer */
} frl_train_stats_t;

typedef struct frl_trainer_s frl_trainer_t;

/* Creates a trainer for `net` and batches up to `max_batch` examples. `net`
 * must outlive the trainer; it needs net->sorted_init only for
 * frl_trainer_set_ranking. Scores start at the seed's initial scores.
 * Returns 0, FRL_EINVAL or FRL_ENOMEM. */
int frl_trainer_create(const frl_network_t *net, int max_batch, double keep, frl_mask_rule rule, frl_trainer_t **out);
void frl_trainer_destroy(frl_trainer_t *tr);
/* Bytes the trainer holds (for memory reports). */
size_t frl_trainer_bytes(const frl_trainer_t *tr);

/* Scores of layer l (n_edges floats, read/write; call frl_trainer_refresh
 * after writing them). */
float *frl_trainer_scores(frl_trainer_t *tr, int l);
/* Recomputes the masks after scores were written directly. */
int frl_trainer_refresh(frl_trainer_t *tr);
/* Scores from a model ranking (layers concatenated, layer-local indices):
 * scores[l][ranking[r]] = sorted_init[l][r]. The ranking must be a valid
 * permutation per layer (validate first when it comes from outside). */
int frl_trainer_set_ranking(frl_trainer_t *tr, const uint32_t *ranking);
/* Scores back to the seed's initial scores (round 1 of FRL). */
int frl_trainer_reset_scores(frl_trainer_t *tr);
/* The model ranking of the current scores (argsort ascending, ties by index). */
int frl_trainer_get_ranking(frl_trainer_t *tr, uint32_t *ranking);

typedef void (*frl_train_progress_fn)(void *user, int epoch, uint64_t step, uint64_t steps_total, double running_loss);

/* Local training: cfg->epochs epochs of SGD on data examples idx[0..n)
 * (idx NULL = the first n examples), reshuffled each epoch from `rng`. Momentum
 * starts from zero (a fresh optimizer per round, as the reference).
 * `progress` (may be NULL) is called about every 1% of the steps. */
int frl_train_local(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *idx, uint32_t n, const frl_train_cfg_t *cfg,
                    frl_rng_t *rng, frl_train_stats_t *stats, frl_train_progress_fn progress, void *user);

/* Float logits (B, n_classes) of B <= max_batch images (B x in_c*in_h*in_w
 * bytes) under the current masks. */
int frl_trainer_logits(frl_trainer_t *tr, const uint8_t *images, int B, const frl_train_cfg_t *cfg, float *logits);
/* Accuracy and mean loss on examples idx[0..n) of data (idx NULL = the
 * first n examples). */
int frl_trainer_evaluate(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *idx, uint32_t n,
                         const frl_train_cfg_t *cfg, double *accuracy, double *loss);

/* Loss and straight-through score gradients dL/dscores of one batch
 * (examples ex[0..B) of data) without updating anything: dscores[l] holds
 * n_edges floats per layer. For tests and for gradient inspection. */
int frl_trainer_score_grads(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *ex, int B, const frl_train_cfg_t *cfg,
                            float *loss, float *const *dscores);

/* Effective weights w * mask of layer l under the current masks (read-only). */
const float *frl_trainer_weights(const frl_trainer_t *tr, int l);

#endif
