/* Model layouts for the vote: layer count and edges per layer. */
#include "aggregation/frl_vote.h"

#include <string.h>

#include "common/frl_error.h"

int frl_vote_layout_init(frl_vote_layout_t *layout, int n_layers, const uint32_t *n_edges)
{
    if (!layout || !n_edges || n_layers < 1 || n_layers > FRL_VOTE_MAX_LAYERS)
        return FRL_EINVAL;
    frl_vote_layout_t l;
    memset(&l, 0, sizeof l);
    l.n_layers = n_layers;
    for (int i = 0; i < n_layers; i++) {
        if (n_edges[i] == 0)
            return FRL_EINVAL;
        l.n_edges[i] = n_edges[i];
        l.offset[i] = l.total_edges;
        l.total_edges += n_edges[i];
        if (n_edges[i] > l.max_layer_edges)
            l.max_layer_edges = n_edges[i];
    }
    *layout = l;
    return 0;
}

int frl_vote_layout_equal(const frl_vote_layout_t *a, const frl_vote_layout_t *b)
{
    if (a->n_layers != b->n_layers)
        return 0;
    for (int i = 0; i < a->n_layers; i++)
        if (a->n_edges[i] != b->n_edges[i])
            return 0;
    return 1;
}
