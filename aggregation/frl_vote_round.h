/* One round of voting on the server: the gatekeeper that turns submissions
 * into the next global ranking.
 *
 * It combines, for one model layout and a fixed set of client indices
 * [0, max_clients) (the server maps its string client ids to indices):
 *   - the streaming tally (frl_vote.h), owned;
 *   - per-round bookkeeping: the round number, which clients may vote, and
 *     which already did, so every client counts at most once per round;
 *   - the agreement of every vote with the previous global ranking, kept
 *     per client for the round's metrics;
 *   - optionally a robustness policy (borrowed, it outlives rounds) and a
 *     trimmed-vote store (owned).
 *
 * A submission goes through, in this order (the first failure is returned
 * and nothing is counted):
 *   client < max_clients and eligible this round  FRL_EVOTE_UNKNOWN_CLIENT
 *   round number equals the open round            FRL_EVOTE_ROUND
 *   client has not voted in this round            FRL_EVOTE_REPEAT
 *   layer count, layer lengths, range, duplicates FRL_EVOTE_LAYERS/_LENGTH/_RANGE/_DUPLICATE
 *   agreement with the reference -> policy        FRL_EVOTE_DROPPED (policy DROP)
 *   add to the tally (and the trimmed store)
 * A malformed ranking does not mark the client as having voted (a corrupt
 * transfer may be retried); a valid vote, counted or dropped by the policy,
 * does.
 *
 * Order independence: sums commute, finalisation breaks ties by edge
 * index, and each policy decision depends only on that client's own
 * history, so a round's result does not depend on arrival order.
 *
 * Not thread-safe per object (the server calls it from one thread or under
 * its own lock); distinct objects are independent. */
#ifndef FRL_VOTE_ROUND_H
#define FRL_VOTE_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include "aggregation/frl_vote.h"
#include "aggregation/frl_vote_robust.h"

typedef struct frl_vote_round_s frl_vote_round_t;

/* Outcome of one submission, for the server's log line and reply. */
typedef struct frl_vote_result_s {
    int code;                 /* 0 (counted) or the FRL_E* code also returned */
    frl_vote_reject_t reject; /* details when the ranking itself was malformed */
    double agreement;         /* Spearman rho with the reference; NaN if none or not computed */
    double agreement_min;     /* smallest per-layer rho; NaN likewise */
    uint32_t weight;          /* weight the vote was counted with; 0 if not counted */
    uint32_t streak;          /* policy: consecutive low-agreement observations */
    int flagged;              /* policy flagged the client (streak >= rounds) */
} frl_vote_result_t;

/* Counters of the open round. */
typedef struct frl_vote_round_stats_s {
    uint64_t round;
    uint32_t accepted; /* votes counted */
    uint32_t dropped;  /* valid votes the policy did not count */
    uint32_t rejected; /* submissions rejected for any other reason */
    uint32_t flagged;  /* counted or dropped votes from flagged clients */
} frl_vote_round_stats_t;

/* Creates the round keeper for `layout` and client indices [0, max_clients).
 * Allocates the tally, a validation bitmap, the reference positions (4
 * bytes per edge) and 16 bytes per client. No round is open until
 * frl_vote_round_begin. Returns 0, FRL_EINVAL or FRL_ENOMEM. */
int frl_vote_round_create(const frl_vote_layout_t *layout, uint32_t max_clients, frl_vote_round_t **out);
void frl_vote_round_destroy(frl_vote_round_t *vr);

/* Attaches a policy (borrowed: the caller keeps it alive and destroys it
 * after the round keeper; it carries client history across rounds). NULL
 * detaches. Its client range must cover max_clients (FRL_EINVAL). */
int frl_vote_round_set_policy(frl_vote_round_t *vr, frl_vote_policy_t *policy);
/* Keeps every counted vote's positions for frl_vote_round_finalize_trimmed
 * (see frl_vote_trim_t for the memory cost); max_votes 0 disables it. Call
 * it before a round's first vote (FRL_ESTATE otherwise: the store would
 * miss the earlier votes). Returns 0, FRL_EINVAL, FRL_ESTATE, FRL_ETOOBIG
 * or FRL_ENOMEM. */
int frl_vote_round_enable_trim(frl_vote_round_t *vr, uint32_t max_votes, size_t max_bytes);

/* Opens round `round`: empties the tally, the trimmed store and the
 * per-client state. `reference` (total_edges elements, may be NULL) is the
 * global ranking the clients trained from; agreement is measured against
 * it (NULL: no agreement this round, the policy observes nothing). It is
 * validated (FRL_EINVAL if it is not a valid ranking of the layout) and
 * copied as positions. `eligible` lists the client indices selected for the
 * round (n_eligible of them); NULL admits every index < max_clients.
 * Returns 0 or FRL_EINVAL. */
int frl_vote_round_begin(frl_vote_round_t *vr, uint64_t round, const uint32_t *reference, const uint32_t *eligible,
                         size_t n_eligible);

/* Checks and counts one submission (see the order above). `n_layers` and
 * `lens` describe how the submission is cut (lens may be NULL when the
 * lengths are known to be the layout's). `res` (may be NULL) receives the
 * outcome. Returns 0 when counted, otherwise the rejection code: an
 * FRL_EVOTE_* code, FRL_ESTATE (no round open), FRL_EINVAL (NULL ranking),
 * FRL_ERANGE (total weight limit, see frl_vote_tally_add) or FRL_ETOOBIG
 * (the trimmed store is full). O(edges): with a reference, validation,
 * agreement and the add share one pass over the ranking (the vote is added
 * with the weight of a client in good standing and, if the policy then
 * decides to drop or down-weight it, taken out or re-weighted exactly). */
int frl_vote_round_submit(frl_vote_round_t *vr, uint32_t client, uint64_t round, const uint32_t *ranking, int n_layers,
                          const uint32_t *lens, frl_vote_result_t *res);

/* The next global ranking from the counted votes (total_edges elements).
 * FRL_ESTATE if no vote was counted. The round stays open (more votes may
 * still be added and finalize called again). */
int frl_vote_round_finalize(frl_vote_round_t *vr, uint32_t *ranking);
/* The same from the trimmed vote (t dropped at each end per edge); needs
 * frl_vote_round_enable_trim and more than 2t counted votes (FRL_ESTATE). */
int frl_vote_round_finalize_trimmed(frl_vote_round_t *vr, uint32_t t, uint32_t *ranking);

/* The round's tally (for sums, margins, merging into a parent aggregator). */
frl_vote_tally_t *frl_vote_round_tally(frl_vote_round_t *vr);
/* Agreement of `client`'s valid vote this round, NaN if none. */
double frl_vote_round_agreement(const frl_vote_round_t *vr, uint32_t client);
/* Code of client's last submission this round: 0 counted, an FRL_E* code,
 * or 1 when it has not submitted. */
int frl_vote_round_client_status(const frl_vote_round_t *vr, uint32_t client);
void frl_vote_round_stats(const frl_vote_round_t *vr, frl_vote_round_stats_t *out);
/* Bytes this object owns (tally, scratch, reference, per-client state,
 * trimmed store). */
size_t frl_vote_round_memory(const frl_vote_round_t *vr);

#endif
