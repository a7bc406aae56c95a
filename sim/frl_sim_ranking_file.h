/* Ranking files: a simulation's global ranking saved to disk (frl-sim
 * --ranking-out) and loaded back (--init-ranking), so that an experiment
 * can start from a given model: e.g. replay a ranking an attack damaged in
 * several programs or with several client draws (docs/experiments.md
 * "Ranking files").
 *
 * Layout, all integers little-endian:
 *   8 bytes   "FRLRANK1"
 *   32 bytes  model spec hash (frl_model_spec_t.hash)
 *   32 bytes  network seed
 *   u32       n_layers
 *   u32 x n_layers   edges of each layer
 *   u32 x total_edges  the ranking: per layer, the layer's edge indices in
 *                      ascending order of score, layers concatenated
 * A ranking is only meaningful on the network it was made on, so loading
 * checks the model hash and the seed as well as the shape. */
#ifndef FRL_SIM_RANKING_FILE_H
#define FRL_SIM_RANKING_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "aggregation/frl_vote.h"
#include "common/frl_rng.h"

#define FRL_SIM_RANKING_MAGIC "FRLRANK1"

/* Bytes of the ranking file of `layout`. */
size_t frl_sim_ranking_file_size(const frl_vote_layout_t *layout);

/* Encodes `ranking` (layout->total_edges elements) into a malloc'd *buf.
 * 0, FRL_EINVAL or FRL_ENOMEM. */
int frl_sim_ranking_encode(const uint8_t spec_hash[32], const uint8_t seed[FRL_SEED_BYTES], const frl_vote_layout_t *layout,
                           const uint32_t *ranking, uint8_t **buf, size_t *len);

/* Decodes a ranking file made for the same model spec, seed and layout into
 * `ranking` (layout->total_edges elements) and checks it is a permutation
 * per layer. FRL_EFORMAT (not a ranking file), FRL_ETRUNC / FRL_ETOOBIG
 * (length), FRL_EMISMATCH (another model, seed or shape) or an
 * FRL_EVOTE_* code, with a sentence in err (if given); FRL_ENOMEM.
 * `ranking` is unspecified after an error. */
int frl_sim_ranking_decode(const uint8_t *buf, size_t len, const uint8_t spec_hash[32], const uint8_t seed[FRL_SEED_BYTES],
                           const frl_vote_layout_t *layout, uint32_t *ranking, char *err, size_t errcap);

#endif
