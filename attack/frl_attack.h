/* Poisoning attacks on the FRL vote: what a malicious client submits.
 *
 * Each attack is one pure function from the attacker's view of the round to
 * a valid model ranking (a permutation of every layer, layers concatenated,
 * layer-local indices, ascending: position 0 = least important, exactly what
 * frl_trainer_get_ranking produces and frl_vote_validate accepts). The same
 * functions serve frl-sim and the frl-client daemon, so a simulated attack
 * is the attack a real client would mount. No I/O, no globals, no
 * allocation: scratch memory is passed in (frl_attack_scratch_size).
 *
 * The view an attack needs (frl_attack_needs):
 *
 *   reverse    The FRL paper's attack (FRL-REFERENCE.md §1 step 10): a few
 *              colluders train benignly from the global ranking on their own
 *              data, their rank positions are summed (S[e] = sum of
 *              pos_u(e), e.g. a frl_vote_tally holding their rankings:
 *              frl_vote_tally_sums(t, 0)), and every malicious client of
 *              the round submits argsort(S) DESCENDING, ties by ascending
 *              edge index (torch.argsort(-S, stable=True) of the reference):
 *              the reverse of the colluders' estimate of the benign
 *              consensus.
 *   random     A uniformly random permutation of every layer (Fisher-Yates
 *              from the caller's stream, FRL_STREAM_ATTACK a=round
 *              b=client in frl-sim).
 *   boundary   VEM-style attack on the mask's cut-offs (see
 *              frl_attack_boundary): starting from the colluders' consensus
 *              order, edges just inside the kept region are moved deep into
 *              the dropped region and edges just outside are moved deep into
 *              the kept region; every other edge keeps its consensus
 *              position, so the vote looks honest to agreement checks.
 *   labelflip  Data poisoning with the honest protocol: the client trains
 *              from the global ranking on its own examples with labels
 *              y -> n_classes - 1 - y (frl_attack_flip_labels) and submits
 *              the ranking it gets.
 *   none       Malicious clients behave honestly.
 */
#ifndef FRL_ATTACK_H
#define FRL_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "aggregation/frl_vote.h"
#include "common/frl_rng.h"

typedef enum {
    FRL_ATTACK_NONE = 0,
    FRL_ATTACK_REVERSE = 1,
    FRL_ATTACK_RANDOM = 2,
    FRL_ATTACK_BOUNDARY = 3,
    FRL_ATTACK_LABELFLIP = 4,
} frl_attack_kind;

#define FRL_ATTACK_COUNT 5

/* What an attack needs from the caller before it can build its ranking. */
enum {
    FRL_ATTACK_NEEDS_CONSENSUS = 1,    /* colluders' summed positions (reverse, boundary) */
    FRL_ATTACK_NEEDS_OWN_TRAINING = 2, /* the client's own training on flipped labels (labelflip) */
    FRL_ATTACK_NEEDS_RNG = 4,          /* a random stream (random) */
};

/* Default half-width of the boundary attack's band, as a fraction of the
 * layer's edges on each side of each cut (see frl_attack_boundary for why
 * 10%). */
#define FRL_ATTACK_DEFAULT_BAND 0.1

/* "none" | "reverse" | "random" | "boundary" | "labelflip" -> kind.
 * Returns 0 or FRL_EINVAL (*out untouched). */
int frl_attack_parse(const char *s, frl_attack_kind *out);
/* The name frl_attack_parse accepts; "unknown" for other values. Never NULL. */
const char *frl_attack_name(frl_attack_kind k);
/* FRL_ATTACK_NEEDS_* flags of an attack (0 for none). */
unsigned frl_attack_needs(frl_attack_kind k);

/* Bytes of scratch frl_attack_reverse and frl_attack_boundary need for
 * `layout`: sort keys and radix-sort scratch for the largest layer
 * (8 + frl_vote_argsort_scratch_size per edge; lenet: about 52 MB).
 * 8-byte aligned memory (malloc) of this size, any content. */
size_t frl_attack_scratch_size(const frl_vote_layout_t *layout);

/* Reverse attack. `sums` holds the colluders' summed positions
 * (layout->total_edges elements, layers concatenated); `out` receives, per
 * layer, argsort(sums) descending with ties by ascending edge index
 * (total_edges elements). With one colluder this is exactly that
 * colluder's ranking reversed. Returns 0 or FRL_EINVAL. */
int frl_attack_reverse(const frl_vote_layout_t *layout, const uint64_t *sums, uint32_t *out, void *scratch);

/* Random attack: every layer of `out` is an independent uniformly random
 * permutation drawn from `rng`. Returns 0 or FRL_EINVAL. */
int frl_attack_random(const frl_vote_layout_t *layout, frl_rng_t *rng, uint32_t *out);

/* Boundary attack.
 *
 * `consensus` is the colluders' consensus order (ascending ranking, e.g.
 * frl_vote_tally_finalize of their tally; or the global ranking when no
 * colluder trains) and `mask` (total_edges bytes, indexed by edge, 1 =
 * kept) the mask that order gives the model (frl_mask_from_ranking per
 * layer). For every layer:
 *
 *   - the cuts are the positions c where the mask changes along the
 *     consensus (frl_vote_mask_cuts): two with the reference's `abs` rule
 *     (both tails kept, the middle dropped), one with `signed`;
 *   - the band of a cut is the b = ceil(band * n) positions on each side
 *     (clipped to the two runs the cut separates);
 *   - an edge in the band on the KEPT side is sent to the "deepest" position
 *     of the dropped run next to it, an edge in the band on the DROPPED side
 *     to the deepest position of the kept run next to it, where the deepest
 *     position of a run is the one farthest from every cut: the run's
 *     middle when cuts bound it on both sides (the dropped middle under
 *     `abs`), its end at the array's edge otherwise (position 0 or n-1);
 *   - every other edge keeps its consensus position;
 *   - out = argsort of (target position, moved edges first, edge index):
 *     a permutation that is the consensus except around the cuts and the
 *     targets.
 *
 * Each vote thus moves the sum of a near-cut edge by about n/4 (abs) in
 * the direction that flips its mask, the most one vote can do for that
 * edge without the vote looking anti-correlated overall (the policy's
 * agreement stays near +1). band in (0, 0.5]; FRL_ATTACK_DEFAULT_BAND is
 * 10%: with m voters per round and a malicious, the colluders move a
 * near-cut edge's mean position by about (a / m) * n / 4 under `abs`, i.e.
 * n/20 for 2 of 10 and n/10 for 4 of 10 (the most the reference sampling
 * rule allows), so a 10% band covers every edge they can flip; edges of
 * the band they cannot flip only move towards the cut. A layer whose mask has no cut (keep 0 or 1) is copied unchanged.
 * Returns 0 or FRL_EINVAL (bad band, NULL, a consensus that is not a
 * permutation of a layer: only checked to the extent needed to stay in
 * bounds). */
int frl_attack_boundary(const frl_vote_layout_t *layout, const uint32_t *consensus, const uint8_t *mask, double band, uint32_t *out,
                        void *scratch);

/* Label flip: out[i] = n_classes - 1 - labels[i] for i < n (labels must
 * be < n_classes; larger labels are copied unchanged). out may equal labels. */
void frl_attack_flip_labels(const uint8_t *labels, uint32_t n, uint32_t n_classes, uint8_t *out);

/* Malicious clients of a federation, as the reference: client ids below
 * round(fraction * n_clients) (round half away from zero). fraction in
 * [0, 1]. */
uint32_t frl_attack_n_malicious(double fraction, uint32_t n_clients);

#endif
