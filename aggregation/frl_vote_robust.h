/* Poisoning-robustness signals and policies for the FRL vote
 * (DESIGN.md §2 "Robustness checks"). All off by default: the plain vote of
 * frl_vote.h stays the reference.
 *
 *  - agreement: Spearman rank correlation of a client's ranking with a
 *    reference ranking (the previous global ranking), per layer and
 *    overall, in O(edges);
 *  - policy: flag, drop or down-weight clients whose agreement stays below
 *    a threshold for R consecutive observations;
 *  - trimmed vote: per edge, ignore the t highest and t lowest positions
 *    (exact; keeps every vote's positions: 4 bytes x clients x edges);
 *  - margin report: how many edges sit within a given sum distance of the
 *    mask's cut-off positions in the consensus ranking.
 *
 * Pure computation, no globals; distinct objects are independent. */
#ifndef FRL_VOTE_ROBUST_H
#define FRL_VOTE_ROBUST_H

#include <stddef.h>
#include <stdint.h>

#include "aggregation/frl_vote.h"

/* ---------------------------------------------------------------------------
 * Agreement
 * ------------------------------------------------------------------------- */

/* Spearman's rho between a client's ranking and the reference, per layer:
 *   rho_l = 1 - 6 * sum_r (r - ref_pos[ranking[r]])^2 / (n (n^2 - 1)),
 * which is exact for permutations (no ties): +1 identical, -1 reversed,
 * about 0 (sd 1/sqrt(n-1)) for an unrelated ranking. A 1-edge layer has
 * rho = +1. Computed in O(edges) without inverting the client's ranking;
 * the squared differences are summed exactly in 128-bit integers.
 *
 * `ranking` must be valid (frl_vote_validate); `ref_pos` holds the
 * reference's positions (frl_vote_positions of the previous global
 * ranking), total_edges elements. `rho_layers` (may be NULL) receives
 * n_layers values. Returns the overall agreement: the edge-weighted mean of
 * the per-layer rhos (sum_l n_l rho_l / total_edges). `min_layer` (may be
 * NULL) receives the smallest per-layer rho, which exposes an attack on a
 * small layer that the edge-weighted mean hides. */
double frl_vote_agreement(const frl_vote_layout_t *layout, const uint32_t *ranking, const uint32_t *ref_pos, double *rho_layers,
                          double *min_layer);

/* ---------------------------------------------------------------------------
 * Policy on persistently anti-correlated clients
 * ------------------------------------------------------------------------- */

typedef enum {
    FRL_VOTE_POLICY_OFF = 0,        /* observe nothing, weight always weight_ok (the reference vote) */
    FRL_VOTE_POLICY_FLAG = 1,       /* report low-agreement clients, count them normally */
    FRL_VOTE_POLICY_DROP = 2,       /* do not count them (FRL_EVOTE_DROPPED) */
    FRL_VOTE_POLICY_DOWNWEIGHT = 3, /* count them with weight_low instead of weight_ok */
} frl_vote_policy_mode;

/* Defaults (frl_vote_policy_config_default), and why:
 *  - threshold -0.1: honest clients start each round from the previous
 *    global ranking and train a few local epochs, so their agreement with
 *    it is strongly positive; an unrelated (random) ranking sits at
 *    0 +- 1/sqrt(n) (+-0.0008 for lenet's 1.6 M-edge layer); the FRL
 *    reversal attack sits near -1 times the consensus' self-agreement.
 *    -0.1 is far below anything an honest or merely noisy client produces
 *    (no false positives from noise), and far above what a reversal gives.
 *  - rounds 2: two consecutive low observations of the same client (the
 *    rounds it took part in, not wall-clock rounds), so that a single odd
 *    round never costs an honest client its vote, while a persistent
 *    attacker is acted on from its second participation.
 *  - weight_ok 2 / weight_low 1: down-weighting halves a vote. Only the
 *    ratio matters, because scaling every weight does not change argsort.
 * A client recovers as soon as one observation is at or above the
 * threshold. */
#define FRL_VOTE_POLICY_DEFAULT_THRESHOLD (-0.1)
#define FRL_VOTE_POLICY_DEFAULT_ROUNDS 2
#define FRL_VOTE_POLICY_DEFAULT_WEIGHT_OK 2
#define FRL_VOTE_POLICY_DEFAULT_WEIGHT_LOW 1

typedef struct frl_vote_policy_config_s {
    frl_vote_policy_mode mode; /* default FRL_VOTE_POLICY_OFF */
    double threshold;          /* agreement below this is "low" */
    uint32_t rounds;           /* consecutive low observations before acting, >= 1 */
    uint32_t weight_ok;        /* DOWNWEIGHT: weight of a client in good standing, >= 1 (other modes: 1) */
    uint32_t weight_low;       /* DOWNWEIGHT: weight of a low client, 1 <= weight_low <= weight_ok */
} frl_vote_policy_config_t;

/* Fills the documented defaults (mode OFF). */
void frl_vote_policy_config_default(frl_vote_policy_config_t *cfg);

/* Per-client standing, keyed by client index in [0, max_clients). */
typedef struct frl_vote_policy_s frl_vote_policy_t;

/* What the policy decided for one vote. */
typedef struct frl_vote_decision_s {
    uint32_t weight; /* weight to count the vote with; 0 = do not count (DROP) */
    uint32_t streak; /* consecutive low observations including this one */
    int flagged;     /* 1 when streak >= rounds (any mode but OFF) */
} frl_vote_decision_t;

/* Creates the policy for client indices [0, max_clients) (16 bytes each).
 * Returns 0, FRL_EINVAL (bad config, max_clients 0) or FRL_ENOMEM. */
int frl_vote_policy_create(const frl_vote_policy_config_t *cfg, uint32_t max_clients, frl_vote_policy_t **out);
void frl_vote_policy_destroy(frl_vote_policy_t *p);
/* Forgets every client's history. */
void frl_vote_policy_reset(frl_vote_policy_t *p);
const frl_vote_policy_config_t *frl_vote_policy_config(const frl_vote_policy_t *p);
/* The max_clients the policy was created with. */
uint32_t frl_vote_policy_max_clients(const frl_vote_policy_t *p);

/* Records client's agreement for `round` and decides the weight of the vote
 * it came with. A NaN agreement (no reference yet) leaves the history
 * unchanged. One observation counts per (client, round): observing the same
 * round again (a retried round) replaces that round's observation instead
 * of adding to the streak. Rounds must not go backwards per client
 * (FRL_EVOTE_ROUND, nothing changed). FRL_EVOTE_UNKNOWN_CLIENT for
 * client >= max_clients. Mode OFF: weight 1, nothing recorded. Returns 0 or
 * one of those codes. */
int frl_vote_policy_observe(frl_vote_policy_t *p, uint32_t client, uint64_t round, double agreement, frl_vote_decision_t *out);
/* Current streak of low observations of a client (0 if unknown). */
uint32_t frl_vote_policy_streak(const frl_vote_policy_t *p, uint32_t client);

/* ---------------------------------------------------------------------------
 * Trimmed vote
 * ------------------------------------------------------------------------- */

/* Keeps every accepted vote's positions so that, per edge, the t highest
 * and t lowest positions can be ignored: T[e] = sum of the middle
 * (m - 2t) positions of the m votes, then argsort(T) ascending, ties by
 * edge index. Exact (integer sums over the exact multiset).
 *
 * Memory: 4 bytes x max_votes x total_edges, allocated at creation (lenet,
 * 1,625,632 edges: 6.5 MB per vote, 65 MB for 10 votes, 650 MB for 100;
 * conv8: 21 MB per vote), against 12 bytes per edge for the plain tally,
 * plus finalize scratch (32 bytes per edge of the largest layer and
 * 0.7 MB of write-combining buffers), so that finalize never allocates.
 * Time: add O(edges); finalize O(edges x m log m) (a per-edge sort of m
 * values). Votes are unweighted (each accepted vote counts once). */
typedef struct frl_vote_trim_s frl_vote_trim_t;

/* Bytes frl_vote_trim_create would allocate, or 0 on overflow. */
size_t frl_vote_trim_memory(const frl_vote_layout_t *layout, uint32_t max_votes);
/* Creates the store for up to `max_votes` votes. `max_bytes` caps the
 * allocation (FRL_ETOOBIG beyond it; 0 = no cap). Returns 0, FRL_EINVAL,
 * FRL_ETOOBIG or FRL_ENOMEM. */
int frl_vote_trim_create(const frl_vote_layout_t *layout, uint32_t max_votes, size_t max_bytes, frl_vote_trim_t **out);
void frl_vote_trim_destroy(frl_vote_trim_t *tr);
void frl_vote_trim_reset(frl_vote_trim_t *tr);
/* Stores a ranking that passed frl_vote_validate. FRL_ETOOBIG when
 * max_votes are already stored. */
int frl_vote_trim_add_valid(frl_vote_trim_t *tr, const uint32_t *ranking);
/* Votes stored, and the most it can hold. */
uint32_t frl_vote_trim_votes(const frl_vote_trim_t *tr);
uint32_t frl_vote_trim_capacity(const frl_vote_trim_t *tr);
/* Trimmed ranking with t dropped at each end per edge into `ranking`
 * (total_edges elements); `sums` (may be NULL) receives the trimmed sums
 * (total_edges elements). Needs m > 2t stored votes (FRL_ESTATE
 * otherwise). t = 0 equals the plain unit-weight vote. */
int frl_vote_trim_finalize(frl_vote_trim_t *tr, uint32_t t, uint32_t *ranking, uint64_t *sums);

/* ---------------------------------------------------------------------------
 * Margin report
 * ------------------------------------------------------------------------- */

/* One cut-off of a layer's mask in the consensus ranking: the boundary
 * between positions cut - 1 and cut. */
typedef struct frl_vote_margin_s {
    uint32_t cut;     /* position of the first edge after the boundary */
    uint64_t cut_sum; /* S of the edge at that position */
    uint64_t n_near;  /* edges with |S[e] - cut_sum| <= delta */
    uint64_t n_below; /* ... of which sit before the boundary (positions < cut) */
    uint64_t n_above; /* ... of which sit at or after it */
} frl_vote_margin_t;

/* For one layer with sums S (n elements) and its consensus ranking `order`
 * (argsort of S, as finalize gives), reports for each cut position in
 * cuts[0..n_cuts) (each in [1, n-1]) how many edges have a sum within
 * `delta` of the sum at the cut. Those are the edges a few colluders can
 * push across the boundary: one vote moves an edge's sum by at most n - 1,
 * so delta = k (n - 1) counts the edges k colluding votes could reach.
 * O(n_cuts log n): the near edges are a contiguous run of `order`.
 * `order` must sort `sums` (not checked). Returns 0 or FRL_EINVAL. */
int frl_vote_margin(const uint64_t *sums, const uint32_t *order, uint32_t n, const uint32_t *cuts, size_t n_cuts, uint64_t delta,
                    frl_vote_margin_t *out);

/* The cut positions of a layer's mask along its consensus ranking: every r
 * in [1, n) where mask[order[r]] != mask[order[r - 1]]. With the reference's
 * `abs` rule the mask keeps both tails of the ranking, so there are two
 * cuts; with `signed`, one. Writes at most max_cuts positions to `cuts` and
 * returns how many there are (which may exceed max_cuts). O(n). */
size_t frl_vote_mask_cuts(const uint32_t *order, const uint8_t *mask, uint32_t n, uint32_t *cuts, size_t max_cuts);

#endif
