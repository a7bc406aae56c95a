/* Policy on persistently anti-correlated clients: a streak counter per
 * client index, and the weight its vote gets. */
#include "aggregation/frl_vote_robust.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"

typedef struct client_state_s {
    uint64_t last_round; /* round of the last observation (valid if seen) */
    uint32_t streak;     /* consecutive low observations, including last_round's */
    uint32_t before;     /* streak before last_round's observation, for a repeated round; bit 31 = seen */
} client_state_t;

#define SEEN_BIT 0x80000000u

struct frl_vote_policy_s {
    frl_vote_policy_config_t cfg;
    uint32_t max_clients;
    client_state_t *st;
};

void frl_vote_policy_config_default(frl_vote_policy_config_t *cfg)
{
    cfg->mode = FRL_VOTE_POLICY_OFF;
    cfg->threshold = FRL_VOTE_POLICY_DEFAULT_THRESHOLD;
    cfg->rounds = FRL_VOTE_POLICY_DEFAULT_ROUNDS;
    cfg->weight_ok = FRL_VOTE_POLICY_DEFAULT_WEIGHT_OK;
    cfg->weight_low = FRL_VOTE_POLICY_DEFAULT_WEIGHT_LOW;
}

int frl_vote_policy_create(const frl_vote_policy_config_t *cfg, uint32_t max_clients, frl_vote_policy_t **out)
{
    if (!cfg || !out || max_clients == 0)
        return FRL_EINVAL;
    *out = NULL;
    if (cfg->mode < FRL_VOTE_POLICY_OFF || cfg->mode > FRL_VOTE_POLICY_DOWNWEIGHT)
        return FRL_EINVAL;
    if (!(cfg->threshold >= -1.0 && cfg->threshold <= 1.0) || cfg->rounds < 1 || cfg->rounds >= SEEN_BIT)
        return FRL_EINVAL;
    if (cfg->weight_ok < 1 ||
        (cfg->mode == FRL_VOTE_POLICY_DOWNWEIGHT && (cfg->weight_low < 1 || cfg->weight_low > cfg->weight_ok)))
        return FRL_EINVAL;
    frl_vote_policy_t *p = calloc(1, sizeof *p);
    if (!p)
        return FRL_ENOMEM;
    p->st = calloc(max_clients, sizeof *p->st);
    if (!p->st) {
        free(p);
        return FRL_ENOMEM;
    }
    p->cfg = *cfg;
    p->max_clients = max_clients;
    *out = p;
    return 0;
}

void frl_vote_policy_destroy(frl_vote_policy_t *p)
{
    if (!p)
        return;
    free(p->st);
    free(p);
}

void frl_vote_policy_reset(frl_vote_policy_t *p)
{
    memset(p->st, 0, (size_t)p->max_clients * sizeof *p->st);
}

const frl_vote_policy_config_t *frl_vote_policy_config(const frl_vote_policy_t *p)
{
    return &p->cfg;
}

uint32_t frl_vote_policy_max_clients(const frl_vote_policy_t *p)
{
    return p->max_clients;
}

uint32_t frl_vote_policy_streak(const frl_vote_policy_t *p, uint32_t client)
{
    return client < p->max_clients ? p->st[client].streak : 0;
}

int frl_vote_policy_observe(frl_vote_policy_t *p, uint32_t client, uint64_t round, double agreement, frl_vote_decision_t *out)
{
    frl_vote_decision_t d = {1, 0, 0};
    if (!p)
        return FRL_EINVAL;
    if (client >= p->max_clients)
        return FRL_EVOTE_UNKNOWN_CLIENT;
    const frl_vote_policy_config_t *c = &p->cfg;
    if (c->mode == FRL_VOTE_POLICY_OFF) {
        if (out)
            *out = d;
        return 0;
    }
    client_state_t *s = &p->st[client];
    int seen = (s->before & SEEN_BIT) != 0;
    if (seen && round < s->last_round)
        return FRL_EVOTE_ROUND;
    if (!isnan(agreement)) {
        uint32_t base = s->streak;
        if (seen && round == s->last_round)
            base = s->before & ~SEEN_BIT; /* a retried round replaces its observation */
        uint32_t streak = agreement < c->threshold ? (base + 1 < SEEN_BIT ? base + 1 : base) : 0;
        s->before = base | SEEN_BIT;
        s->streak = streak;
        s->last_round = round;
    }
    d.streak = s->streak;
    d.flagged = s->streak >= c->rounds;
    d.weight = c->mode == FRL_VOTE_POLICY_DOWNWEIGHT ? c->weight_ok : 1;
    if (d.flagged) {
        if (c->mode == FRL_VOTE_POLICY_DROP)
            d.weight = 0;
        else if (c->mode == FRL_VOTE_POLICY_DOWNWEIGHT)
            d.weight = c->weight_low;
    }
    if (out)
        *out = d;
    return 0;
}
