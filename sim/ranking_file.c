/* Ranking files (frl_sim_ranking_file.h): a fixed header, then the ranking
 * as little-endian u32, written byte by byte so that the file is the same
 * on any host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_le.h"
#include "sim/frl_sim_ranking_file.h"

#define MAGIC_LEN 8
#define HEADER_FIXED (MAGIC_LEN + 32 + FRL_SEED_BYTES + 4)

size_t frl_sim_ranking_file_size(const frl_vote_layout_t *layout)
{
    return HEADER_FIXED + 4 * (size_t)layout->n_layers + 4 * (size_t)layout->total_edges;
}

int frl_sim_ranking_encode(const uint8_t spec_hash[32], const uint8_t seed[FRL_SEED_BYTES], const frl_vote_layout_t *layout,
                           const uint32_t *ranking, uint8_t **buf, size_t *len)
{
    if (!spec_hash || !seed || !layout || !ranking || !buf || !len || layout->n_layers < 1 ||
        layout->n_layers > FRL_VOTE_MAX_LAYERS)
        return FRL_EINVAL;
    size_t head = HEADER_FIXED + 4 * (size_t)layout->n_layers;
    size_t n = frl_sim_ranking_file_size(layout);
    uint8_t *b = malloc(n);
    if (!b)
        return FRL_ENOMEM;
    memcpy(b, FRL_SIM_RANKING_MAGIC, MAGIC_LEN);
    memcpy(b + MAGIC_LEN, spec_hash, 32);
    memcpy(b + MAGIC_LEN + 32, seed, FRL_SEED_BYTES);
    frl_put_le32(b + MAGIC_LEN + 32 + FRL_SEED_BYTES, (uint32_t)layout->n_layers);
    for (int l = 0; l < layout->n_layers; l++)
        frl_put_le32(b + HEADER_FIXED + 4 * (size_t)l, layout->n_edges[l]);
    for (uint64_t i = 0; i < layout->total_edges; i++)
        frl_put_le32(b + head + 4 * i, ranking[i]);
    *buf = b;
    *len = n;
    return 0;
}

int frl_sim_ranking_decode(const uint8_t *buf, size_t len, const uint8_t spec_hash[32], const uint8_t seed[FRL_SEED_BYTES],
                           const frl_vote_layout_t *layout, uint32_t *ranking, char *err, size_t errcap)
{
    if (!buf || !spec_hash || !seed || !layout || !ranking)
        return FRL_EINVAL;
    if (len < MAGIC_LEN || memcmp(buf, FRL_SIM_RANKING_MAGIC, MAGIC_LEN) != 0)
        return frl_errorf(FRL_EFORMAT, err, errcap, "not a ranking file (no %s header)", FRL_SIM_RANKING_MAGIC);
    if (len < HEADER_FIXED)
        return frl_errorf(FRL_ETRUNC, err, errcap, "truncated header (%zu bytes)", len);
    if (memcmp(buf + MAGIC_LEN, spec_hash, 32) != 0)
        return frl_errorf(FRL_EMISMATCH, err, errcap, "made for another model");
    if (memcmp(buf + MAGIC_LEN + 32, seed, FRL_SEED_BYTES) != 0)
        return frl_errorf(FRL_EMISMATCH, err, errcap, "made on the network of another seed");
    uint32_t n_layers = frl_get_le32(buf + MAGIC_LEN + 32 + FRL_SEED_BYTES);
    if (n_layers != (uint32_t)layout->n_layers)
        return frl_errorf(FRL_EMISMATCH, err, errcap, "%u layers, the model has %d", n_layers, layout->n_layers);
    size_t head = HEADER_FIXED + 4 * (size_t)n_layers;
    if (len < head)
        return frl_errorf(FRL_ETRUNC, err, errcap, "truncated header (%zu bytes)", len);
    for (uint32_t l = 0; l < n_layers; l++) {
        uint32_t e = frl_get_le32(buf + HEADER_FIXED + 4 * (size_t)l);
        if (e != layout->n_edges[l])
            return frl_errorf(FRL_EMISMATCH, err, errcap, "layer %u has %u edges, the model's has %u", l, e, layout->n_edges[l]);
    }
    size_t want = head + 4 * (size_t)layout->total_edges;
    if (len < want)
        return frl_errorf(FRL_ETRUNC, err, errcap, "truncated: %zu bytes, %zu expected", len, want);
    if (len > want)
        return frl_errorf(FRL_ETOOBIG, err, errcap, "%zu bytes after the ranking", len - want);
    for (uint64_t i = 0; i < layout->total_edges; i++)
        ranking[i] = frl_get_le32(buf + head + 4 * i);
    void *scratch = malloc(frl_vote_validate_scratch_size(layout));
    if (!scratch)
        return FRL_ENOMEM;
    frl_vote_reject_t rj;
    int rc = frl_vote_validate(layout, ranking, layout->n_layers, NULL, scratch, &rj);
    free(scratch);
    if (rc)
        return frl_errorf(rc, err, errcap, "layer %d, position %lld: %s (value %llu)", rj.layer, (long long)rj.index,
                          frl_strerror(rc), (unsigned long long)rj.value);
    return 0;
}
