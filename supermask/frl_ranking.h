/* Scores, rankings and masks.
 *
 * A ranking of a layer is a permutation of its edges, ascending: ranking[0]
 * is the edge with the lowest signed score. Ties are broken by edge index
 * (lower index first), so every machine agrees. A model's ranking is the
 * concatenation of its layers' rankings, each holding layer-local indices.
 *
 * Masks keep a fraction `keep` of each layer: j = floor((1 - keep) * n)
 * edges get mask 0. Rule FRL_MASK_ABS (the reference's): the kept edges are
 * those with the largest |score|; the j dropped ones are the smallest by
 * (|score|, index). Rule FRL_MASK_SIGNED: the same on the signed score. */
#ifndef FRL_RANKING_H
#define FRL_RANKING_H

#include <stddef.h>
#include <stdint.h>

typedef enum { FRL_MASK_ABS = 0, FRL_MASK_SIGNED = 1 } frl_mask_rule;

/* "abs" | "signed" -> rule; 0 or FRL_EINVAL. */
int frl_mask_rule_parse(const char *s, frl_mask_rule *out);
const char *frl_mask_rule_name(frl_mask_rule r);
/* Number of edges with mask 0 in a layer of n edges. */
uint32_t frl_mask_dropped(uint32_t n, double keep);

/* Scratch bytes frl_ranking_from_scores needs for n edges. */
size_t frl_ranking_scratch_size(uint32_t n);
/* ranking = argsort(scores) ascending, ties by index, in O(n) (radix sort on
 * the float bits). `scratch` holds frl_ranking_scratch_size(n) bytes. NaN
 * scores sort after +inf. Returns 0 or FRL_EINVAL. */
int frl_ranking_from_scores(const float *scores, uint32_t n, uint32_t *ranking, void *scratch);
/* scores[ranking[r]] = sorted_init[r] for r in [0, n). `ranking` must be a
 * permutation (validate first when it comes from outside). */
void frl_scores_from_ranking(const uint32_t *ranking, const float *sorted_init, uint32_t n, float *scores);

/* Top-k mask of one layer by O(n) selection, exact with ties by index:
 * mask[e] = 1 for kept edges, 0 for the dropped ones. `scratch` holds
 * frl_topk_scratch_size(n) bytes. */
size_t frl_topk_scratch_size(uint32_t n);
int frl_topk_mask(const float *scores, uint32_t n, double keep, frl_mask_rule rule, uint8_t *mask, void *scratch);

/* The mask the final model uses for a layer, straight from its ranking:
 * scores are rebuilt from sorted_init and masked by `rule`. */
int frl_mask_from_ranking(const uint32_t *ranking, const float *sorted_init, uint32_t n, double keep, frl_mask_rule rule,
                          uint8_t *mask, void *scratch);

#endif
