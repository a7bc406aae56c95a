/* Agreement of a client's ranking with a reference: Spearman's rho. */
#include "aggregation/frl_vote_robust.h"

#include "aggregation/vote_internal.h"

double frl_vote_agreement(const frl_vote_layout_t *layout, const uint32_t *ranking, const uint32_t *ref_pos, double *rho_layers,
                          double *min_layer)
{
    double acc = 0.0, mn = 1.0;
    for (int l = 0; l < layout->n_layers; l++) {
        uint64_t off = layout->offset[l];
        uint32_t n = layout->n_edges[l];
        double rho = frl__vote_rho(frl__vote_d2(ranking + off, n, ref_pos + off), n);
        if (rho_layers)
            rho_layers[l] = rho;
        acc += (double)n * rho;
        mn = rho < mn ? rho : mn;
    }
    if (min_layer)
        *min_layer = mn;
    return acc / (double)layout->total_edges;
}
