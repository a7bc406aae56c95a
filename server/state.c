/* Client registry, seeded sample, config hash and the state file
 * (server/frl_server_state.h). No libuv, no network: pure data and files. */
#include "server/frl_server_state.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_le.h"
#include "proto/frl_rankpack.h"

/* ---------------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------------- */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int frl_registry_init(frl_registry_t *r, uint32_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0 || cap > (1u << 30))
        return FRL_EINVAL;
    uint32_t ns = 16;
    while (ns < 2 * (uint64_t)cap)
        ns <<= 1;
    r->slots = calloc(ns, sizeof *r->slots);
    if (!r->slots)
        return FRL_ENOMEM;
    r->n_slots = ns;
    r->cap = cap;
    return 0;
}

void frl_registry_free(frl_registry_t *r)
{
    if (!r)
        return;
    free(r->e);
    free(r->slots);
    memset(r, 0, sizeof *r);
}

int64_t frl_registry_find(const frl_registry_t *r, const char *id)
{
    uint32_t mask = r->n_slots - 1;
    for (uint32_t i = (uint32_t)hash_id(id) & mask;; i = (i + 1) & mask) {
        uint32_t v = r->slots[i];
        if (v == 0)
            return -1;
        if (strcmp(r->e[v - 1].id, id) == 0)
            return (int64_t)(v - 1);
    }
}

int frl_registry_get(frl_registry_t *r, const char *id, uint32_t *idx)
{
    size_t len = strlen(id);
    if (len == 0 || len > FRL_CLIENT_ID_MAX)
        return FRL_EINVAL;
    int64_t f = frl_registry_find(r, id);
    if (f >= 0) {
        *idx = (uint32_t)f;
        return 0;
    }
    if (r->n >= r->cap)
        return FRL_ETOOBIG;
    if (r->n == r->alloc) {
        uint32_t na = r->alloc ? r->alloc * 2 : 64;
        if (na > r->cap)
            na = r->cap;
        frl_reg_entry_t *ne = realloc(r->e, (size_t)na * sizeof *ne);
        if (!ne)
            return FRL_ENOMEM;
        r->e = ne;
        r->alloc = na;
    }
    frl_reg_entry_t *e = &r->e[r->n];
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, len + 1);
    uint32_t mask = r->n_slots - 1;
    uint32_t i = (uint32_t)hash_id(id) & mask;
    while (r->slots[i])
        i = (i + 1) & mask;
    r->slots[i] = r->n + 1;
    *idx = r->n++;
    return 0;
}

int frl_registry_encode(const frl_registry_t *r, uint8_t **buf, size_t *len)
{
    size_t n = 4;
    for (uint32_t i = 0; i < r->n; i++)
        n += 1 + strlen(r->e[i].id) + 16;
    uint8_t *b = malloc(n);
    if (!b)
        return FRL_ENOMEM;
    uint8_t *p = b;
    frl_put_le32(p, r->n);
    p += 4;
    for (uint32_t i = 0; i < r->n; i++) {
        const frl_reg_entry_t *e = &r->e[i];
        size_t l = strlen(e->id);
        *p++ = (uint8_t)l;
        memcpy(p, e->id, l);
        p += l;
        frl_put_le32(p, e->selected);
        frl_put_le32(p + 4, e->accepted);
        frl_put_le32(p + 8, e->rejected);
        frl_put_le32(p + 12, e->last_round);
        p += 16;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Sample
 * ------------------------------------------------------------------------- */

typedef struct {
    const char *id;
    uint32_t idx;
} id_ref_t;

static int cmp_ref(const void *a, const void *b)
{
    return strcmp(((const id_ref_t *)a)->id, ((const id_ref_t *)b)->id);
}

/* Sorts v[0..n) (registry indices) by client id. 0 or FRL_ENOMEM. */
static int sort_by_id(const frl_registry_t *reg, uint32_t *v, uint32_t n)
{
    if (n < 2)
        return 0;
    id_ref_t *refs = malloc((size_t)n * sizeof *refs);
    if (!refs)
        return FRL_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        refs[i].id = reg->e[v[i]].id;
        refs[i].idx = v[i];
    }
    qsort(refs, n, sizeof *refs, cmp_ref);
    for (uint32_t i = 0; i < n; i++)
        v[i] = refs[i].idx;
    free(refs);
    return 0;
}

uint32_t frl_server_sample(const uint8_t seed[FRL_SEED_BYTES], uint32_t round, uint32_t try_no, const frl_registry_t *reg,
                           uint32_t *cand, uint32_t n, uint32_t k, uint32_t *out)
{
    if (sort_by_id(reg, cand, n) != 0)
        return 0; /* out of memory: an empty sample (the try fails, is retried) */
    if (k > n)
        k = n;
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_SAMPLE, round, try_no);
    for (uint32_t i = 0; i < k; i++) {
        uint32_t j = i + frl_rng_below(&rng, n - i);
        uint32_t t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
        out[i] = cand[i];
    }
    if (sort_by_id(reg, out, k) != 0)
        return 0;
    sodium_memzero(&rng, sizeof rng);
    return k;
}

/* ---------------------------------------------------------------------------
 * Config hash
 * ------------------------------------------------------------------------- */

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void frl_server_config_hash(const char *model, const uint8_t spec_hash[32], double keep, const char *rule,
                            const uint8_t seed[FRL_SEED_BYTES], uint8_t out[32])
{
    char spec_hex[65], seed_hex[65], text[512];
    to_hex(spec_hash, 32, spec_hex);
    to_hex(seed, FRL_SEED_BYTES, seed_hex);
    int n = snprintf(text, sizeof text, "frl-server state v1\nmodel=%s\nspec=%s\nkeep=%.17g\nrule=%s\nseed=%s\n", model, spec_hex,
                     keep, rule, seed_hex);
    crypto_generichash(out, 32, (const uint8_t *)text, (size_t)n, NULL, 0);
    sodium_memzero(text, sizeof text);
    sodium_memzero(seed_hex, sizeof seed_hex);
}

/* ---------------------------------------------------------------------------
 * State file
 * ------------------------------------------------------------------------- */

#define HDR_FIXED 136

int frl_state_encode(const frl_state_t *st, const uint8_t *reg_blob, size_t reg_len, uint8_t **buf, size_t *len)
{
    if (st->n_layers < 1 || st->n_layers > FRL_STATE_MAX_LAYERS || !st->ranking)
        return FRL_EINVAL;
    size_t n = HDR_FIXED + 4 * (size_t)st->n_layers;
    for (int l = 0; l < st->n_layers; l++)
        n += frl_rank_packed_size(st->n_edges[l]);
    n += reg_len + crypto_generichash_BYTES;
    uint8_t *b = calloc(1, n);
    if (!b)
        return FRL_ENOMEM;
    memcpy(b, FRL_STATE_MAGIC, 8);
    frl_put_le32(b + 8, FRL_STATE_VERSION);
    frl_put_le32(b + 12, st->rounds_done);
    frl_put_le32(b + 16, st->total_rounds);
    memcpy(b + 20, st->model, strnlen(st->model, 16));
    memcpy(b + 36, st->spec_hash, 32);
    memcpy(b + 68, st->seed, 32);
    memcpy(b + 100, st->config_hash, 32);
    frl_put_le32(b + 132, (uint32_t)st->n_layers);
    uint8_t *p = b + HDR_FIXED;
    for (int l = 0; l < st->n_layers; l++, p += 4)
        frl_put_le32(p, st->n_edges[l]);
    const uint32_t *rk = st->ranking;
    for (int l = 0; l < st->n_layers; l++) {
        size_t sz = frl_rank_packed_size(st->n_edges[l]), got = 0;
        int r = frl_rank_pack(rk, st->n_edges[l], p, sz, &got);
        if (r) {
            free(b);
            return r;
        }
        p += sz;
        rk += st->n_edges[l];
    }
    if (reg_len)
        memcpy(p, reg_blob, reg_len);
    p += reg_len;
    crypto_generichash(p, crypto_generichash_BYTES, b, (size_t)(p - b), NULL, 0);
    *buf = b;
    *len = n;
    return 0;
}

void frl_state_free(frl_state_t *st)
{
    if (st) {
        free(st->ranking);
        st->ranking = NULL;
    }
}

int frl_state_decode(const uint8_t *buf, size_t len, frl_state_t *st, frl_registry_t *reg)
{
    memset(st, 0, sizeof *st);
    if (len < HDR_FIXED + crypto_generichash_BYTES)
        return FRL_ETRUNC;
    if (memcmp(buf, FRL_STATE_MAGIC, 8) != 0)
        return FRL_EFORMAT;
    if (frl_get_le32(buf + 8) != FRL_STATE_VERSION)
        return FRL_EUNSUPPORTED;
    uint8_t sum[crypto_generichash_BYTES];
    size_t body = len - crypto_generichash_BYTES;
    crypto_generichash(sum, sizeof sum, buf, body, NULL, 0);
    if (sodium_memcmp(sum, buf + body, sizeof sum) != 0)
        return FRL_ECHECKSUM;
    st->rounds_done = frl_get_le32(buf + 12);
    st->total_rounds = frl_get_le32(buf + 16);
    memcpy(st->model, buf + 20, 16);
    st->model[15] = '\0';
    memcpy(st->spec_hash, buf + 36, 32);
    memcpy(st->seed, buf + 68, 32);
    memcpy(st->config_hash, buf + 100, 32);
    uint32_t nl = frl_get_le32(buf + 132);
    if (nl < 1 || nl > FRL_STATE_MAX_LAYERS)
        return FRL_EFORMAT;
    st->n_layers = (int)nl;
    size_t pos = HDR_FIXED;
    if (body < pos + 4 * (size_t)nl)
        return FRL_ETRUNC;
    uint32_t max_n = 0;
    for (uint32_t l = 0; l < nl; l++) {
        st->n_edges[l] = frl_get_le32(buf + pos + 4 * l);
        if (st->n_edges[l] == 0 || st->n_edges[l] > FRL_RANK_MAX_EDGES)
            return FRL_EFORMAT;
        st->total_edges += st->n_edges[l];
        if (st->n_edges[l] > max_n)
            max_n = st->n_edges[l];
    }
    pos += 4 * (size_t)nl;
    if (st->total_edges > UINT32_MAX)
        return FRL_EFORMAT;
    st->ranking = malloc(st->total_edges * sizeof *st->ranking);
    uint64_t *seen = calloc(((size_t)max_n + 63) / 64, 8);
    int rc = FRL_ENOMEM;
    if (!st->ranking || !seen)
        goto fail;
    uint32_t *rk = st->ranking;
    for (uint32_t l = 0; l < nl; l++) {
        uint32_t ne = st->n_edges[l];
        size_t sz = frl_rank_packed_size(ne);
        rc = FRL_ETRUNC;
        if (body < pos + sz)
            goto fail;
        rc = frl_rank_unpack(buf + pos, sz, ne, rk);
        if (rc) {
            rc = FRL_EFORMAT;
            goto fail;
        }
        memset(seen, 0, ((size_t)ne + 63) / 64 * 8);
        for (uint32_t i = 0; i < ne; i++) {
            uint64_t bit = 1ull << (rk[i] & 63);
            rc = FRL_EFORMAT;
            if (seen[rk[i] >> 6] & bit)
                goto fail; /* not a permutation */
            seen[rk[i] >> 6] |= bit;
        }
        pos += sz;
        rk += ne;
    }
    rc = FRL_ETRUNC;
    if (body < pos + 4)
        goto fail;
    uint32_t nc = frl_get_le32(buf + pos);
    pos += 4;
    for (uint32_t i = 0; i < nc; i++) {
        rc = FRL_ETRUNC;
        if (body < pos + 1)
            goto fail;
        size_t l = buf[pos++];
        if (body < pos + l + 16)
            goto fail;
        rc = FRL_EFORMAT;
        if (l == 0 || l > FRL_CLIENT_ID_MAX)
            goto fail;
        char id[FRL_CLIENT_ID_MAX + 1];
        memcpy(id, buf + pos, l);
        id[l] = '\0';
        if (strlen(id) != l)
            goto fail;
        pos += l;
        if (reg) {
            uint32_t idx;
            rc = frl_registry_get(reg, id, &idx);
            if (rc)
                goto fail;
            frl_reg_entry_t *e = &reg->e[idx];
            e->selected = frl_get_le32(buf + pos);
            e->accepted = frl_get_le32(buf + pos + 4);
            e->rejected = frl_get_le32(buf + pos + 8);
            e->last_round = frl_get_le32(buf + pos + 12);
        }
        pos += 16;
    }
    rc = FRL_EFORMAT;
    if (pos != body)
        goto fail;
    free(seen);
    return 0;
fail:
    free(seen);
    frl_state_free(st);
    return rc;
}

int frl_state_save(const char *dir, const uint8_t *buf, size_t len, const frl_state_t *st)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, FRL_STATE_FILE);
    int r = frl_file_write_atomic(path, buf, len);
    if (r)
        return r;
    char spec_hex[65], cfg_hex[65], txt[1024];
    to_hex(st->spec_hash, 32, spec_hex);
    to_hex(st->config_hash, 32, cfg_hex);
    int n = snprintf(txt, sizeof txt,
                     "# frl-server state (informative; the server reads %s)\n"
                     "rounds_done = %u\ntotal_rounds = %u\nmodel = %s\nspec_hash = %s\nconfig_hash = %s\n"
                     "total_edges = %llu\n",
                     FRL_STATE_FILE, st->rounds_done, st->total_rounds, st->model, spec_hex, cfg_hex,
                     (unsigned long long)st->total_edges);
    snprintf(path, sizeof path, "%s/state.txt", dir);
    return frl_file_write_atomic(path, txt, (size_t)n);
}

int frl_state_load(const char *dir, frl_state_t *st, frl_registry_t *reg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, FRL_STATE_FILE);
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = frl_file_read_all(path, (size_t)1 << 34, &buf, &len);
    if (r)
        return r;
    r = frl_state_decode(buf, len, st, reg);
    free(buf);
    return r;
}
