/* Poisoning attacks: pure functions from an attacker's view to a ranking.
 * See frl_attack.h for what each attack does and why. */
#include "attack/frl_attack.h"

#include <math.h>
#include <string.h>

#include "common/frl_error.h"

static const char *const k_names[FRL_ATTACK_COUNT] = {"none", "reverse", "random", "boundary", "labelflip"};

int frl_attack_parse(const char *s, frl_attack_kind *out)
{
    if (!s || !out)
        return FRL_EINVAL;
    for (int k = 0; k < FRL_ATTACK_COUNT; k++) {
        if (strcmp(s, k_names[k]) == 0) {
            *out = (frl_attack_kind)k;
            return 0;
        }
    }
    return FRL_EINVAL;
}

const char *frl_attack_name(frl_attack_kind k)
{
    return ((int)k >= 0 && (int)k < FRL_ATTACK_COUNT) ? k_names[k] : "unknown";
}

unsigned frl_attack_needs(frl_attack_kind k)
{
    switch (k) {
    case FRL_ATTACK_REVERSE:
    case FRL_ATTACK_BOUNDARY:
        return FRL_ATTACK_NEEDS_CONSENSUS;
    case FRL_ATTACK_RANDOM:
        return FRL_ATTACK_NEEDS_RNG;
    case FRL_ATTACK_LABELFLIP:
        return FRL_ATTACK_NEEDS_OWN_TRAINING;
    default:
        return 0;
    }
}

/* Scratch layout: keys (uint64, one per edge of the largest layer), then
 * the radix sort's scratch. Both 8-byte aligned. */
size_t frl_attack_scratch_size(const frl_vote_layout_t *layout)
{
    if (!layout)
        return 0;
    return sizeof(uint64_t) * (size_t)layout->max_layer_edges + frl_vote_argsort_scratch_size(layout->max_layer_edges);
}

static uint64_t *scratch_keys(void *scratch)
{
    return (uint64_t *)scratch;
}

static void *scratch_sort(const frl_vote_layout_t *layout, void *scratch)
{
    return (uint8_t *)scratch + sizeof(uint64_t) * (size_t)layout->max_layer_edges;
}

int frl_attack_reverse(const frl_vote_layout_t *layout, const uint64_t *sums, uint32_t *out, void *scratch)
{
    if (!layout || !sums || !out || !scratch)
        return FRL_EINVAL;
    uint64_t *keys = scratch_keys(scratch);
    void *sort = scratch_sort(layout, scratch);
    for (int l = 0; l < layout->n_layers; l++) {
        const uint32_t n = layout->n_edges[l];
        const uint64_t *s = sums + layout->offset[l];
        uint64_t mx = 0;
        for (uint32_t e = 0; e < n; e++)
            mx = s[e] > mx ? s[e] : mx;
        /* Descending sums with ties by ascending index = ascending (max - S),
         * which the stable radix sort breaks by index. */
        for (uint32_t e = 0; e < n; e++)
            keys[e] = mx - s[e];
        int rc = frl_vote_argsort_u64(keys, n, out + layout->offset[l], sort);
        if (rc)
            return rc;
    }
    return 0;
}

int frl_attack_random(const frl_vote_layout_t *layout, frl_rng_t *rng, uint32_t *out)
{
    if (!layout || !rng || !out)
        return FRL_EINVAL;
    for (int l = 0; l < layout->n_layers; l++) {
        uint32_t *o = out + layout->offset[l];
        for (uint32_t i = 0; i < layout->n_edges[l]; i++)
            o[i] = i;
        frl_rng_shuffle_u32(rng, o, layout->n_edges[l]);
    }
    return 0;
}

/* The position of run [a, z) of a layer of n positions farthest from every
 * cut: its middle when cuts bound it on both sides, else its outer end. */
static uint32_t deepest(uint32_t a, uint32_t z, uint32_t n)
{
    if (a == 0)
        return 0;
    if (z == n)
        return n - 1;
    return a + (z - 1 - a) / 2;
}

int frl_attack_boundary(const frl_vote_layout_t *layout, const uint32_t *consensus, const uint8_t *mask, double band, uint32_t *out,
                        void *scratch)
{
    if (!layout || !consensus || !mask || !out || !scratch || !(band > 0.0 && band <= 0.5))
        return FRL_EINVAL;
    uint64_t *keys = scratch_keys(scratch);
    void *sort = scratch_sort(layout, scratch);
    /* The sort scratch (>= 24 bytes per edge) doubles as the run-end table
     * before the sort needs it. */
    uint32_t *run_end = (uint32_t *)sort;
    for (int l = 0; l < layout->n_layers; l++) {
        const uint32_t n = layout->n_edges[l];
        const uint32_t *ord = consensus + layout->offset[l];
        const uint8_t *m = mask + layout->offset[l];
        for (uint32_t r = 0; r < n; r++)
            if (ord[r] >= n)
                return FRL_EINVAL;
        uint32_t b = (uint32_t)ceil(band * (double)n);
        if (b < 1)
            b = 1;
        /* run_end[r] = end (exclusive) of the run of equal mask holding r. */
        run_end[n - 1] = n;
        for (uint32_t r = n - 1; r-- > 0;)
            run_end[r] = ((m[ord[r]] != 0) == (m[ord[r + 1]] != 0)) ? run_end[r + 1] : r + 1;
        uint32_t s = 0, ps = 0; /* current run [s, e) and the previous run [ps, s) */
        for (uint32_t r = 0; r < n; r++) {
            if (r > 0 && run_end[r - 1] == r) {
                ps = s;
                s = r;
            }
            const uint32_t e = run_end[r];
            const uint32_t dl = r - s, dr = e - 1 - r;
            uint32_t target = r;
            int moved = 0;
            if (s > 0 && dl < b && (e == n || dl <= dr)) {
                target = deepest(ps, s, n);
                moved = 1;
            } else if (e < n && dr < b) {
                target = deepest(e, run_end[e], n);
                moved = 1;
            }
            keys[ord[r]] = 2 * (uint64_t)target + (moved ? 0 : 1);
        }
        int rc = frl_vote_argsort_u64(keys, n, out + layout->offset[l], sort);
        if (rc)
            return rc;
    }
    return 0;
}

void frl_attack_flip_labels(const uint8_t *labels, uint32_t n, uint32_t n_classes, uint8_t *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = labels[i] < n_classes ? (uint8_t)(n_classes - 1 - labels[i]) : labels[i];
}

uint32_t frl_attack_n_malicious(double fraction, uint32_t n_clients)
{
    if (!(fraction > 0.0))
        return 0;
    if (fraction >= 1.0)
        return n_clients;
    double x = floor(fraction * (double)n_clients + 0.5);
    return x >= (double)n_clients ? n_clients : (uint32_t)x;
}
