/* Validation of submitted rankings: shape, then per layer a bitmap pass
 * that catches out-of-range and repeated edge indices in O(n). */
#include "aggregation/frl_vote.h"

#include <string.h>

#include "aggregation/vote_internal.h"
#include "common/frl_error.h"

size_t frl_vote_validate_scratch_size(const frl_vote_layout_t *layout)
{
    return frl__vote_bitmap_bytes(layout->max_layer_edges);
}

static int reject_with(frl_vote_reject_t *reject, int code, int layer, int64_t index, uint64_t value)
{
    if (reject) {
        reject->code = code;
        reject->layer = layer;
        reject->index = index;
        reject->value = value;
    }
    return code;
}

int frl__vote_check_shape(const frl_vote_layout_t *layout, int n_layers, const uint32_t *lens, frl_vote_reject_t *reject)
{
    if (n_layers != layout->n_layers)
        return reject_with(reject, FRL_EVOTE_LAYERS, -1, -1, (uint64_t)(n_layers < 0 ? 0 : n_layers));
    if (lens) {
        for (int l = 0; l < n_layers; l++)
            if (lens[l] != layout->n_edges[l])
                return reject_with(reject, FRL_EVOTE_LENGTH, l, -1, lens[l]);
    }
    return reject_with(reject, 0, -1, -1, 0);
}

int frl_vote_validate(const frl_vote_layout_t *layout, const uint32_t *ranking, int n_layers, const uint32_t *lens, void *scratch,
                      frl_vote_reject_t *reject)
{
    if (!layout || !scratch || !ranking)
        return reject_with(reject, FRL_EINVAL, -1, -1, 0);
    int rc = frl__vote_check_shape(layout, n_layers, lens, reject);
    if (rc)
        return rc;
    for (int l = 0; l < n_layers; l++) {
        int64_t bad_index = -1;
        uint64_t bad_value = 0;
        rc = frl__vote_check_perm(ranking + layout->offset[l], layout->n_edges[l], (uint64_t *)scratch, &bad_index, &bad_value);
        if (rc)
            return reject_with(reject, rc, l, bad_index, bad_value);
    }
    return reject_with(reject, 0, -1, -1, 0);
}

int frl__vote_validate_agree(const frl_vote_layout_t *layout, const uint32_t *ranking, int n_layers, const uint32_t *lens,
                             uint64_t *bitmap, const uint32_t *ref_pos, frl_vote_reject_t *reject, double *agreement,
                             double *min_layer)
{
    int rc = frl__vote_check_shape(layout, n_layers, lens, reject);
    if (rc)
        return rc;
    double acc = 0.0, mn = 1.0;
    for (int l = 0; l < n_layers; l++) {
        uint64_t off = layout->offset[l];
        uint32_t n = layout->n_edges[l];
        int64_t bad_index = -1;
        uint64_t bad_value = 0;
        frl__u128 d2 = 0;
        rc = frl__vote_check_perm_d2(ranking + off, n, bitmap, ref_pos + off, &d2, &bad_index, &bad_value);
        if (rc)
            return reject_with(reject, rc, l, bad_index, bad_value);
        double rho = frl__vote_rho(d2, n);
        acc += (double)n * rho;
        mn = rho < mn ? rho : mn;
    }
    *agreement = acc / (double)layout->total_edges;
    *min_layer = mn;
    return reject_with(reject, 0, -1, -1, 0);
}

int frl__vote_reject(frl_vote_reject_t *reject, int code, int layer, int64_t index, uint64_t value)
{
    return reject_with(reject, code, layer, index, value);
}

void frl_vote_positions(const frl_vote_layout_t *layout, const uint32_t *ranking, uint32_t *pos)
{
    for (int l = 0; l < layout->n_layers; l++) {
        const uint32_t *a = ranking + layout->offset[l];
        uint32_t *p = pos + layout->offset[l];
        uint32_t n = layout->n_edges[l];
        for (uint32_t r = 0; r < n; r++)
            p[a[r]] = r;
    }
}

void frl__vote_positions_fast(const frl_vote_layout_t *layout, const uint32_t *ranking, uint32_t *pos, void *scratch)
{
    for (int l = 0; l < layout->n_layers; l++) {
        const uint32_t *a = ranking + layout->offset[l];
        uint32_t *p = pos + layout->offset[l];
        uint32_t n = layout->n_edges[l];
        if (n >= FRL__VOTE_PART_MIN && n <= FRL__VOTE_PART_MAX) {
            frl__vote_positions_part32(p, a, n, scratch);
            continue;
        }
        for (uint32_t r = 0; r < n; r++)
            p[a[r]] = r;
    }
}
