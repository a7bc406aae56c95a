/* The server's persistent pieces, kept apart from the event loop so that
 * they are testable alone: the client registry, the seeded client sample,
 * the config hash and the state file.
 *
 * State directory (DESIGN.md §5):
 *
 *   STATE_DIR/state.frl   the checkpoint, replaced atomically after every
 *                         round (frl_file_write_atomic: temp, fsync, rename,
 *                         fsync dir). Little-endian:
 *       0   magic "FRLSTAT\0"                8 bytes
 *       8   version                          u32 (1)
 *       12  rounds done                      u32 (the next round is this + 1)
 *       16  total rounds (informative)       u32
 *       20  model name                       16 bytes, NUL-padded
 *       36  model spec hash                  32 bytes
 *       68  seed                             32 bytes
 *       100 config hash                      32 bytes (frl_server_config_hash)
 *       132 n_layers                         u32
 *       136 per layer: n_edges               u32 each
 *       ..  per layer: the global ranking, packed (proto/frl_rankpack.h)
 *       ..  registry: u32 count, then per client: u8 id length, id bytes,
 *           u32 selected, u32 accepted, u32 rejected, u32 last round
 *       end BLAKE2b-256 of everything before it
 *   STATE_DIR/state.txt   the same header in key = value text, for people
 *                         (written after state.frl; never read back)
 *   STATE_DIR/lock        flock()ed while a server uses the directory
 *
 * A crash at any point leaves state.frl holding either the previous or the
 * new checkpoint in full, so kill -9 loses at most the round in progress. */
#ifndef FRL_SERVER_STATE_H
#define FRL_SERVER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/frl_rng.h"

#define FRL_STATE_MAGIC "FRLSTAT\0"
#define FRL_STATE_VERSION 1u
#define FRL_STATE_FILE "state.frl"
#define FRL_STATE_MAX_LAYERS 64
#define FRL_CLIENT_ID_MAX 128

/* ---- client registry: client id <-> dense index (the vote's client index) ---- */

typedef struct frl_reg_entry_s {
    char id[FRL_CLIENT_ID_MAX + 1];
    uint32_t selected;   /* rounds (tries) it was selected for */
    uint32_t accepted;   /* votes counted */
    uint32_t rejected;   /* submissions rejected */
    uint32_t last_round; /* last round it voted in (0 = never) */
} frl_reg_entry_t;

typedef struct frl_registry_s {
    frl_reg_entry_t *e; /* n entries, index = position */
    uint32_t n, alloc, cap;
    uint32_t *slots; /* open addressing, index + 1 (0 = empty) */
    uint32_t n_slots; /* power of two >= 2 * cap */
} frl_registry_t;

/* Capacity `cap` distinct ids. Returns 0, FRL_EINVAL or FRL_ENOMEM. */
int frl_registry_init(frl_registry_t *r, uint32_t cap);
void frl_registry_free(frl_registry_t *r);
/* Index of `id`, or -1. */
int64_t frl_registry_find(const frl_registry_t *r, const char *id);
/* Index of `id`, added if new. Returns 0, FRL_ETOOBIG (full), FRL_EINVAL
 * (id too long or empty) or FRL_ENOMEM. */
int frl_registry_get(frl_registry_t *r, const char *id, uint32_t *idx);
/* Serialises the registry (the state file's registry section). Caller frees. */
int frl_registry_encode(const frl_registry_t *r, uint8_t **buf, size_t *len);

/* ---- seeded client sample ---- */

/* Picks min(k, n) of the candidates (registry indices) for (round, try):
 * the candidates are first ordered by client id (so the choice does not
 * depend on connection order), then a partial Fisher-Yates shuffle driven
 * by frl_rng stream (FRL_STREAM_SAMPLE, round, try) takes the first k; the
 * result is sorted by client id. out holds min(k, n) indices; returns that
 * count. `cand` is reordered. */
uint32_t frl_server_sample(const uint8_t seed[FRL_SEED_BYTES], uint32_t round, uint32_t try_no, const frl_registry_t *reg,
                           uint32_t *cand, uint32_t n, uint32_t k, uint32_t *out);

/* ---- config hash: the settings a state directory is bound to ---- */

/* BLAKE2b-256 of "frl-server state v1\nmodel=<m>\nspec=<hex>\nkeep=<%.17g>\nrule=<r>\nseed=<hex>\n". */
void frl_server_config_hash(const char *model, const uint8_t spec_hash[32], double keep, const char *rule,
                            const uint8_t seed[FRL_SEED_BYTES], uint8_t out[32]);

/* ---- the state file ---- */

typedef struct frl_state_s {
    uint32_t rounds_done;
    uint32_t total_rounds;
    char model[16];
    uint8_t spec_hash[32];
    uint8_t seed[FRL_SEED_BYTES];
    uint8_t config_hash[32];
    int n_layers;
    uint32_t n_edges[FRL_STATE_MAX_LAYERS];
    uint64_t total_edges;
    uint32_t *ranking; /* total_edges, layers concatenated (owned on decode) */
} frl_state_t;

/* Encodes header + ranking + registry blob (from frl_registry_encode).
 * Caller frees *buf. Returns 0, FRL_EINVAL or FRL_ENOMEM. */
int frl_state_encode(const frl_state_t *st, const uint8_t *reg_blob, size_t reg_len, uint8_t **buf, size_t *len);
/* Decodes and checks a state file: magic, version, checksum, lengths, every
 * layer a permutation. On success st->ranking is malloc'd (free with
 * frl_state_free) and, when `reg` is not NULL, the registry (already
 * initialised, empty) is filled. Returns 0, FRL_EFORMAT, FRL_ETRUNC,
 * FRL_ECHECKSUM, FRL_EUNSUPPORTED, FRL_ETOOBIG (registry) or FRL_ENOMEM. */
int frl_state_decode(const uint8_t *buf, size_t len, frl_state_t *st, frl_registry_t *reg);
void frl_state_free(frl_state_t *st);

/* Writes STATE_DIR/state.frl atomically, then state.txt. */
int frl_state_save(const char *dir, const uint8_t *buf, size_t len, const frl_state_t *st);
/* Reads and decodes STATE_DIR/state.frl: FRL_ENOENT when there is none. */
int frl_state_load(const char *dir, frl_state_t *st, frl_registry_t *reg);

#endif
