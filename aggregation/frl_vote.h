/* The FRL vote: validation of client rankings and the streaming tally.
 *
 * A model's ranking is one uint32 array: the rankings of its layers
 * concatenated, each holding layer-local edge indices. ranking[r] of a layer
 * is the edge at position r, ascending (position 0 = least important), so
 * the position of edge e in that ranking is the r with ranking[r] == e.
 *
 * The vote (DESIGN.md §2 step 5, FRL_Vote of the reference code): for every
 * layer, S[e] = sum over accepted votes u of w_u * pos_u(e), in uint64; the
 * next global ranking is argsort(S) ascending with ties broken by ascending
 * edge index. With every weight 1 this is exactly the reference's Borda
 * count. Summation commutes, so the result does not depend on the order in
 * which votes arrive, and two partial tallies merge exactly.
 *
 * Everything here is pure computation on caller arrays: no I/O, no globals.
 * Distinct objects may be used from distinct threads at the same time; one
 * object must not be used by two threads at once. Errors are negative FRL_E*
 * codes from common/frl_error.h; rejections of a ranking use the
 * FRL_EVOTE_* codes so the server can log them and send them back. */
#ifndef FRL_VOTE_H
#define FRL_VOTE_H

#include <stddef.h>
#include <stdint.h>

/* Limits, checked with FRL_EINVAL when a layout is made. */
#define FRL_VOTE_MAX_LAYERS 64
/* Edge indices and positions are uint32; a layer has at most 2^32 - 1 edges. */
#define FRL_VOTE_MAX_LAYER_EDGES UINT32_MAX

/* The shape every vote of a model must have. Plain data; fill it with
 * frl_vote_layout_init, which checks the limits and computes the offsets. */
typedef struct frl_vote_layout_s {
    int n_layers;
    uint32_t n_edges[FRL_VOTE_MAX_LAYERS]; /* edges of layer l */
    uint64_t offset[FRL_VOTE_MAX_LAYERS];  /* first element of layer l in a model ranking */
    uint64_t total_edges;                  /* sum of n_edges */
    uint32_t max_layer_edges;              /* largest n_edges */
} frl_vote_layout_t;

/* Fills `layout` from n_edges[0..n_layers). Returns 0, or FRL_EINVAL when
 * n_layers is not in [1, FRL_VOTE_MAX_LAYERS] or a layer has 0 edges. */
int frl_vote_layout_init(frl_vote_layout_t *layout, int n_layers, const uint32_t *n_edges);
/* 1 when both layouts describe the same model shape, 0 otherwise. */
int frl_vote_layout_equal(const frl_vote_layout_t *a, const frl_vote_layout_t *b);

/* ---------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------- */

/* Where a ranking failed validation, for logs and for the Error message. */
typedef struct frl_vote_reject_s {
    int code;       /* 0 or the FRL_EVOTE_* code also returned */
    int layer;      /* failing layer, or -1 when not layer-specific */
    int64_t index;  /* position inside that layer's ranking, or -1 */
    uint64_t value; /* offending value: edge index, length, or layer count */
} frl_vote_reject_t;

/* Bytes of scratch frl_vote_validate needs: one bit per edge of the largest
 * layer, rounded up to 64-bit words. */
size_t frl_vote_validate_scratch_size(const frl_vote_layout_t *layout);

/* Checks a submitted model ranking against `layout` without counting it.
 *
 * The submission says how it is cut: `n_layers` layers of `lens[l]` elements
 * each, concatenated in `ranking` (as unpacked from the wire). In order:
 * n_layers != layout->n_layers -> FRL_EVOTE_LAYERS; a layer length differs
 * -> FRL_EVOTE_LENGTH; then, layer by layer, an element >= n_edges[l] ->
 * FRL_EVOTE_RANGE and an element seen twice -> FRL_EVOTE_DUPLICATE (a
 * layer of n in-range, distinct elements is a permutation of [0, n)).
 * O(total edges) time with a bitmap in `scratch`
 * (frl_vote_validate_scratch_size bytes, any content, 8-byte aligned).
 * `reject` (may be NULL) receives the details. `lens` may be NULL when the
 * caller already knows the lengths are the layout's (then n_layers must
 * still match). Returns 0 or an FRL_EVOTE_* code; FRL_EINVAL for NULL
 * arguments. */
int frl_vote_validate(const frl_vote_layout_t *layout, const uint32_t *ranking, int n_layers, const uint32_t *lens, void *scratch,
                      frl_vote_reject_t *reject);

/* pos[ranking[r]] = r for every layer: positions from a valid ranking (the
 * inverse permutation). Both arrays hold layout->total_edges elements and
 * must not overlap. `ranking` must have passed frl_vote_validate. */
void frl_vote_positions(const frl_vote_layout_t *layout, const uint32_t *ranking, uint32_t *pos);

/* ---------------------------------------------------------------------------
 * Sorting vote sums
 * ------------------------------------------------------------------------- */

/* Bytes of scratch frl_vote_argsort_u64 needs for n keys (n <= 2^32 - 1):
 * 24 bytes per key (ping-pong buffers of uint64 key + uint32 index) plus
 * 2 KiB of histograms. */
size_t frl_vote_argsort_scratch_size(uint64_t n);
/* order = argsort(keys) ascending, ties by ascending index: an LSD radix
 * sort, stable, over (key - min) with digits of at most 5 bits (4 for keys
 * wider than 32 bits), and passes whose digit is constant over all keys
 * skipped (sort.c says why the digits are this narrow). O(n) time. One
 * extra read of the keys for min and max (the tally's finalize knows its
 * bound and skips it). `scratch` holds frl_vote_argsort_scratch_size(n)
 * bytes, 8-byte aligned. Returns 0 or FRL_EINVAL. */
int frl_vote_argsort_u64(const uint64_t *keys, uint32_t n, uint32_t *order, void *scratch);

/* ---------------------------------------------------------------------------
 * Tally
 * ------------------------------------------------------------------------- */

/* The streaming tally of one round: per-edge uint64 sums for every layer,
 * the number of votes and their total weight. Owns O(edges) memory,
 * allocated once at creation: 12 bytes per edge for the sums (uint64 sums
 * plus a uint32 staging copy that the adds touch, see tally.c), plus the
 * validation bitmap and the sort scratch of the largest layer (24 bytes
 * per edge of that layer; the partitioned add of large layers borrows it).
 * lenet: 19.5 MB + 38.5 MB. */
typedef struct frl_vote_tally_s frl_vote_tally_t;

/* Creates an empty tally for `layout` (copied). Returns 0, FRL_EINVAL or
 * FRL_ENOMEM; on success the caller owns *out and frees it with
 * frl_vote_tally_destroy. */
int frl_vote_tally_create(const frl_vote_layout_t *layout, frl_vote_tally_t **out);
/* Frees the tally (NULL is a no-op). */
void frl_vote_tally_destroy(frl_vote_tally_t *t);
/* Back to an empty tally (sums 0, no votes) for the next round. O(edges). */
void frl_vote_tally_reset(frl_vote_tally_t *t);
/* Threads that add a vote's large layers (2^19 edges and more): 1, the
 * default, or 2: the caller's and a helper thread the tally owns from now
 * until it is destroyed or set back to 1. Same sums bit for bit. Returns
 * 0, FRL_EINVAL or FRL_ENOMEM (then it stays as it was). */
int frl_vote_tally_set_threads(frl_vote_tally_t *t, int threads);
/* The tally's layout (valid while the tally lives). */
const frl_vote_layout_t *frl_vote_tally_layout(const frl_vote_tally_t *t);

/* Validates `ranking` (the checks and reject details of frl_vote_validate,
 * with the tally's own bitmap) and adds it if it is valid:
 * S[ranking[r]] += weight * r for every layer. The check and the add share
 * one pass over the ranking; when a check fails, the adds already made are
 * subtracted again (exact), so a rejected ranking leaves the tally bit for
 * bit untouched.
 *
 * `weight` is an integer >= 1 (1 for the reference's vote; the robustness
 * policy uses larger weights for trusted voters, since scaling every weight
 * by a constant does not change the ranking). FRL_ERANGE, with the tally
 * untouched, if the total weight could make a sum exceed UINT64_MAX
 * (total_weight * (max_layer_edges - 1) must fit: at 5 M edges that allows
 * 3.6e12 unit votes). Returns 0, an FRL_EVOTE_* code, FRL_EINVAL (weight 0,
 * NULL) or FRL_ERANGE. `reject` may be NULL. */
int frl_vote_tally_add(frl_vote_tally_t *t, const uint32_t *ranking, int n_layers, const uint32_t *lens, uint32_t weight,
                       frl_vote_reject_t *reject);
/* The same without validation, for rankings that already passed
 * frl_vote_validate against this layout (e.g. a vote checked once and added
 * to several tallies). Returns 0, FRL_EINVAL or FRL_ERANGE. */
int frl_vote_tally_add_valid(frl_vote_tally_t *t, const uint32_t *ranking, uint32_t weight);

/* dst += src: sums, vote counts and weights. Both must have equal layouts
 * (FRL_EMISMATCH otherwise); FRL_ERANGE if the merged total weight could
 * overflow (dst untouched). dst == src doubles the tally. An aggregation
 * tree that merges its partial tallies gives bit for bit the tally of one
 * server that saw every vote. */
int frl_vote_tally_merge(frl_vote_tally_t *dst, const frl_vote_tally_t *src);

/* Number of votes added (merged tallies add their counts). */
uint64_t frl_vote_tally_votes(const frl_vote_tally_t *t);
/* Sum of the weights of those votes. */
uint64_t frl_vote_tally_weight(const frl_vote_tally_t *t);
/* The exact uint64 sums of layer l (n_edges[l] elements, valid while the
 * tally lives and until it changes), or NULL if l is out of range. Whole
 * model: layer 0's pointer covers total_edges elements, layers
 * concatenated. Not const: it first folds the tally's pending uint32 sums
 * into the uint64 ones (O(edges), see tally.c). */
const uint64_t *frl_vote_tally_sums(frl_vote_tally_t *t, int l);
/* Replaces the sums with `sums` (total_edges elements) and the counters with
 * (votes, weight): to restore a checkpoint or receive a partial tally from
 * another aggregator. FRL_ERANGE, with the tally untouched, for sums that
 * no weighted set of permutations can produce: a sum above
 * weight * (n_l - 1), a layer total other than weight * n_l (n_l - 1) / 2,
 * votes > weight, or exactly one of votes and weight zero. */
int frl_vote_tally_load(frl_vote_tally_t *t, const uint64_t *sums, uint64_t votes, uint64_t weight);

/* The next global ranking: per layer, argsort(S) ascending, ties by edge
 * index, written to `ranking` (total_edges elements, layers concatenated).
 * O(edges) time, no allocation (the tally owns the sort scratch). The tally
 * is not changed in value (it may fold its staging sums). FRL_ESTATE when
 * no vote was added. */
int frl_vote_tally_finalize(frl_vote_tally_t *t, uint32_t *ranking);

#endif
