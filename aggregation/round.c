/* One server round: eligibility, once-per-round bookkeeping, validation,
 * agreement, policy and the tally, in that order. */
#include "aggregation/frl_vote_round.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"

#define STATUS_NONE 1 /* client has not submitted this round */

typedef struct client_slot_s {
    double agreement; /* NaN unless a valid vote came this round */
    int32_t status;   /* STATUS_NONE, 0 (counted) or an FRL_E* code */
    uint8_t eligible;
    uint8_t voted; /* a valid vote (counted or dropped) came this round */
} client_slot_t;

struct frl_vote_round_s {
    frl_vote_layout_t layout;
    uint32_t max_clients;
    frl_vote_tally_t *tally;
    uint64_t *bitmap;  /* validation scratch */
    uint32_t *ref_pos; /* total_edges: positions of the reference ranking */
    int has_ref;
    int open;
    uint64_t round;
    client_slot_t *clients;    /* max_clients */
    frl_vote_policy_t *policy; /* borrowed */
    frl_vote_trim_t *trim;     /* owned, or NULL */
    frl_vote_round_stats_t stats;
};

int frl_vote_round_create(const frl_vote_layout_t *layout, uint32_t max_clients, frl_vote_round_t **out)
{
    if (!layout || !out || max_clients == 0)
        return FRL_EINVAL;
    *out = NULL;
    frl_vote_round_t *vr = calloc(1, sizeof *vr);
    if (!vr)
        return FRL_ENOMEM;
    vr->layout = *layout;
    vr->max_clients = max_clients;
    int rc = frl_vote_tally_create(layout, &vr->tally);
    if (rc) {
        free(vr);
        return rc;
    }
    vr->bitmap = malloc(frl_vote_validate_scratch_size(layout));
    vr->ref_pos = frl__vote_alloc_big((size_t)layout->total_edges * sizeof *vr->ref_pos);
    vr->clients = calloc(max_clients, sizeof *vr->clients);
    if (!vr->bitmap || !vr->ref_pos || !vr->clients)
        goto fail;
    *out = vr;
    return 0;
fail:
    frl_vote_round_destroy(vr);
    return FRL_ENOMEM;
}

void frl_vote_round_destroy(frl_vote_round_t *vr)
{
    if (!vr)
        return;
    frl_vote_tally_destroy(vr->tally);
    frl_vote_trim_destroy(vr->trim);
    free(vr->bitmap);
    frl__vote_free_big(vr->ref_pos);
    free(vr->clients);
    free(vr);
}

int frl_vote_round_set_policy(frl_vote_round_t *vr, frl_vote_policy_t *policy)
{
    if (!vr)
        return FRL_EINVAL;
    /* The policy's range must cover every index this round keeper admits. */
    if (policy && frl_vote_policy_max_clients(policy) < vr->max_clients)
        return FRL_EINVAL;
    vr->policy = policy;
    return 0;
}

int frl_vote_round_enable_trim(frl_vote_round_t *vr, uint32_t max_votes, size_t max_bytes)
{
    if (!vr)
        return FRL_EINVAL;
    if (vr->open && frl_vote_tally_votes(vr->tally) > 0)
        return FRL_ESTATE; /* the store would miss this round's earlier votes */
    frl_vote_trim_destroy(vr->trim);
    vr->trim = NULL;
    if (max_votes == 0)
        return 0;
    return frl_vote_trim_create(&vr->layout, max_votes, max_bytes, &vr->trim);
}

int frl_vote_round_begin(frl_vote_round_t *vr, uint64_t round, const uint32_t *reference, const uint32_t *eligible,
                         size_t n_eligible)
{
    if (!vr || (!eligible && n_eligible))
        return FRL_EINVAL;
    if (eligible)
        for (size_t i = 0; i < n_eligible; i++)
            if (eligible[i] >= vr->max_clients)
                return FRL_EINVAL;
    if (reference) {
        if (frl_vote_validate(&vr->layout, reference, vr->layout.n_layers, NULL, vr->bitmap, NULL))
            return FRL_EINVAL;
        frl__vote_positions_fast(&vr->layout, reference, vr->ref_pos, frl__vote_tally_scratch(vr->tally));
    }
    vr->has_ref = reference != NULL;
    for (uint32_t c = 0; c < vr->max_clients; c++) {
        client_slot_t *s = &vr->clients[c];
        s->agreement = NAN;
        s->status = STATUS_NONE;
        s->eligible = eligible ? 0 : 1;
        s->voted = 0;
    }
    if (eligible)
        for (size_t i = 0; i < n_eligible; i++)
            vr->clients[eligible[i]].eligible = 1;
    frl_vote_tally_reset(vr->tally);
    if (vr->trim)
        frl_vote_trim_reset(vr->trim);
    memset(&vr->stats, 0, sizeof vr->stats);
    vr->stats.round = round;
    vr->round = round;
    vr->open = 1;
    return 0;
}

static int finish(frl_vote_round_t *vr, uint32_t client, frl_vote_result_t *res, frl_vote_result_t *r, int code)
{
    r->code = code;
    if (code == 0)
        vr->stats.accepted++;
    else if (code == FRL_EVOTE_DROPPED)
        vr->stats.dropped++;
    else
        vr->stats.rejected++;
    if (client < vr->max_clients && vr->clients[client].eligible)
        vr->clients[client].status = code;
    if (res)
        *res = *r;
    return code;
}

int frl_vote_round_submit(frl_vote_round_t *vr, uint32_t client, uint64_t round, const uint32_t *ranking, int n_layers,
                          const uint32_t *lens, frl_vote_result_t *res)
{
    frl_vote_result_t r;
    memset(&r, 0, sizeof r);
    r.reject.layer = -1;
    r.reject.index = -1;
    r.agreement = NAN;
    r.agreement_min = NAN;
    if (!vr)
        return FRL_EINVAL;
    if (!vr->open)
        return finish(vr, UINT32_MAX, res, &r, FRL_ESTATE);
    if (client >= vr->max_clients || !vr->clients[client].eligible)
        return finish(vr, UINT32_MAX, res, &r, FRL_EVOTE_UNKNOWN_CLIENT);
    client_slot_t *slot = &vr->clients[client];
    if (round != vr->round)
        return finish(vr, UINT32_MAX, res, &r, FRL_EVOTE_ROUND);
    if (slot->voted) /* keep the status of the vote that counted */
        return finish(vr, UINT32_MAX, res, &r, FRL_EVOTE_REPEAT);
    if (!ranking)
        return finish(vr, client, res, &r, FRL_EINVAL);
    /* The trimmed store must have room before anything is counted. */
    if (vr->trim && frl_vote_trim_votes(vr->trim) >= frl_vote_trim_capacity(vr->trim))
        return finish(vr, client, res, &r, FRL_ETOOBIG);

    frl_vote_decision_t d = {1, 0, 0};
    int rc;
    if (!vr->has_ref) {
        /* No agreement this round: the policy decides from history alone. */
        if (vr->policy) {
            rc = frl_vote_policy_observe(vr->policy, client, round, NAN, &d);
            if (rc)
                return finish(vr, client, res, &r, rc);
        }
        if (d.weight == 0)
            rc = frl_vote_validate(&vr->layout, ranking, n_layers, lens, vr->bitmap, &r.reject);
        else
            rc = frl__vote_tally_add_agree(vr->tally, ranking, n_layers, lens, d.weight, NULL, &r.reject, NULL, NULL);
        if (rc)
            return finish(vr, client, res, &r, rc);
    } else {
        /* One pass: validation, agreement and the add with the weight a
         * client in good standing gets. If the policy then decides
         * otherwise (rare), the vote is re-weighted or taken out again,
         * exactly. */
        uint32_t w_opt = 1;
        if (vr->policy && frl_vote_policy_config(vr->policy)->mode == FRL_VOTE_POLICY_DOWNWEIGHT)
            w_opt = frl_vote_policy_config(vr->policy)->weight_ok;
        double agr = NAN, agr_min = NAN;
        rc = frl__vote_tally_add_agree(vr->tally, ranking, n_layers, lens, w_opt, vr->ref_pos, &r.reject, &agr, &agr_min);
        if (rc)
            return finish(vr, client, res, &r, rc);
        r.agreement = agr;
        r.agreement_min = agr_min;
        slot->agreement = agr;
        if (vr->policy) {
            rc = frl_vote_policy_observe(vr->policy, client, round, agr, &d);
            if (rc) {
                frl__vote_tally_reweight(vr->tally, ranking, w_opt, 0);
                return finish(vr, client, res, &r, rc);
            }
            if (d.weight < w_opt)
                frl__vote_tally_reweight(vr->tally, ranking, w_opt, d.weight);
        } else {
            d.weight = w_opt;
        }
    }
    r.streak = d.streak;
    r.flagged = d.flagged;
    if (d.flagged)
        vr->stats.flagged++;
    slot->voted = 1;
    if (d.weight == 0)
        return finish(vr, client, res, &r, FRL_EVOTE_DROPPED);
    if (vr->trim)
        (void)frl_vote_trim_add_valid(vr->trim, ranking); /* room checked above */
    r.weight = d.weight;
    return finish(vr, client, res, &r, 0);
}

int frl_vote_round_finalize(frl_vote_round_t *vr, uint32_t *ranking)
{
    if (!vr || !ranking)
        return FRL_EINVAL;
    if (!vr->open)
        return FRL_ESTATE;
    return frl_vote_tally_finalize(vr->tally, ranking);
}

int frl_vote_round_finalize_trimmed(frl_vote_round_t *vr, uint32_t t, uint32_t *ranking)
{
    if (!vr || !ranking)
        return FRL_EINVAL;
    if (!vr->open || !vr->trim)
        return FRL_ESTATE;
    return frl_vote_trim_finalize(vr->trim, t, ranking, NULL);
}

frl_vote_tally_t *frl_vote_round_tally(frl_vote_round_t *vr)
{
    return vr->tally;
}

double frl_vote_round_agreement(const frl_vote_round_t *vr, uint32_t client)
{
    if (!vr || client >= vr->max_clients)
        return NAN;
    return vr->clients[client].agreement;
}

int frl_vote_round_client_status(const frl_vote_round_t *vr, uint32_t client)
{
    if (!vr || client >= vr->max_clients)
        return STATUS_NONE;
    return vr->clients[client].status;
}

void frl_vote_round_stats(const frl_vote_round_t *vr, frl_vote_round_stats_t *out)
{
    *out = vr->stats;
}

size_t frl_vote_round_memory(const frl_vote_round_t *vr)
{
    const frl_vote_layout_t *L = &vr->layout;
    size_t b = sizeof *vr;
    b += (size_t)L->total_edges * 12 + frl_vote_validate_scratch_size(L) +
         frl_vote_argsort_scratch_size(L->max_layer_edges); /* tally: sums, staging, bitmap, sort */
    b += frl_vote_validate_scratch_size(L);                 /* own bitmap */
    b += (size_t)L->total_edges * 4;                        /* reference positions */
    b += (size_t)vr->max_clients * sizeof(client_slot_t);
    if (vr->trim)
        b += frl_vote_trim_memory(L, frl_vote_trim_capacity(vr->trim));
    return b;
}
