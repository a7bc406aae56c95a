/* The quantised model file (layout in frl_quant.h): versioned, BLAKE2b-256
 * checksummed, mask at 1 bit per edge; weights are regenerated from the
 * seed on load. */
#include "quant/qmodel_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_file.h"
#include "common/frl_le.h"

#define HDR_FIXED 132
#define PER_LAYER 16
#define SUM_BYTES 32
#define MAX_FILE ((size_t)1 << 30)

static size_t file_size(const frl_model_spec_t *s)
{
    size_t z = HDR_FIXED + (size_t)s->n_layers * PER_LAYER + SUM_BYTES;
    for (int l = 0; l < s->n_layers; l++)
        z += ((size_t)s->layers[l].n_edges + 7) / 8;
    return z;
}

int frl_qmodel_to_bytes(const frl_qmodel_t *m, uint8_t **buf, size_t *len)
{
    if (!m || !buf || !len)
        return FRL_EINVAL;
    *buf = NULL;
    *len = 0;
    const frl_model_spec_t *s = &m->spec;
    size_t z = file_size(s);
    if (z > UINT32_MAX)
        return FRL_ETOOBIG;
    uint8_t *b = calloc(z, 1);
    if (!b)
        return FRL_ENOMEM;
    memcpy(b, FRL_QMODEL_MAGIC, 8);
    frl_put_le32(b + 8, FRL_QMODEL_VERSION);
    frl_put_le32(b + 12, (uint32_t)z);
    memcpy(b + 16, s->name, FRL_MODEL_NAME_MAX);
    memcpy(b + 32, s->hash, 32);
    memcpy(b + 64, m->seed, FRL_SEED_BYTES);
    uint64_t kb;
    memcpy(&kb, &m->keep, 8);
    frl_put_le64(b + 96, kb);
    frl_put_le32(b + 104, (uint32_t)m->rule);
    frl_put_le32(b + 108, FRL_QROUND_SINGLE_UP);
    frl_put_le32(b + 112, (uint32_t)m->zin);
    frl_put_le32(b + 116, (uint32_t)s->in_c);
    frl_put_le32(b + 120, (uint32_t)s->in_h);
    frl_put_le32(b + 124, (uint32_t)s->in_w);
    frl_put_le32(b + 128, (uint32_t)s->n_layers);
    uint8_t *p = b + HDR_FIXED;
    for (int l = 0; l < s->n_layers; l++, p += PER_LAYER) {
        frl_put_le32(p, s->layers[l].n_edges);
        frl_put_le32(p + 4, m->kept[l]);
        frl_put_le32(p + 8, (uint32_t)m->L[l].rq.m0);
        frl_put_le32(p + 12, (uint32_t)m->L[l].rq.shift);
    }
    for (int l = 0; l < s->n_layers; l++) {
        size_t nb = ((size_t)s->layers[l].n_edges + 7) / 8;
        memcpy(p, m->mask_bits[l], nb);
        p += nb;
    }
    crypto_generichash(p, SUM_BYTES, b, z - SUM_BYTES, NULL, 0);
    *buf = b;
    *len = z;
    return 0;
}

static uint32_t popcount_bits(const uint8_t *bits, uint32_t n)
{
    uint32_t c = 0;
    for (uint32_t e = 0; e < n; e++)
        c += (bits[e >> 3] >> (e & 7)) & 1u;
    return c;
}

int frl_qmodel_from_bytes(const uint8_t *b, size_t len, const frl_model_spec_t *expect, frl_qmodel_t **out)
{
    if (!out)
        return FRL_EINVAL;
    *out = NULL;
    if (!b)
        return FRL_EINVAL;
    if (len < 8)
        return FRL_ETRUNC;
    if (memcmp(b, FRL_QMODEL_MAGIC, 8) != 0)
        return FRL_EFORMAT;
    if (len < 16)
        return FRL_ETRUNC;
    if (frl_get_le32(b + 8) != FRL_QMODEL_VERSION)
        return FRL_EUNSUPPORTED;
    size_t stated = frl_get_le32(b + 12);
    if (stated < HDR_FIXED + SUM_BYTES)
        return FRL_EFORMAT;
    if (len < stated)
        return FRL_ETRUNC;
    if (len > stated)
        return FRL_EFORMAT; /* trailing bytes */
    uint8_t sum[SUM_BYTES];
    crypto_generichash(sum, SUM_BYTES, b, len - SUM_BYTES, NULL, 0);
    if (sodium_memcmp(sum, b + len - SUM_BYTES, SUM_BYTES) != 0)
        return FRL_ECHECKSUM;

    /* checksum is good: the fields are what the writer wrote */
    char name[FRL_MODEL_NAME_MAX + 1];
    memcpy(name, b + 16, FRL_MODEL_NAME_MAX);
    name[FRL_MODEL_NAME_MAX] = 0;
    frl_model_spec_t spec;
    uint32_t in_c = frl_get_le32(b + 116), in_h = frl_get_le32(b + 120), in_w = frl_get_le32(b + 124);
    if (in_c > 4096 || in_h > 4096 || in_w > 4096)
        return FRL_EFORMAT;
    if (frl_model_spec_build(name, (int)in_c, (int)in_h, (int)in_w, 0, &spec) != 0)
        return FRL_EMISMATCH;
    /* the class count is not stored separately: it is part of the spec hash;
     * try the default, then the expected spec's */
    if (memcmp(spec.hash, b + 32, 32) != 0 && expect &&
        frl_model_spec_build(name, (int)in_c, (int)in_h, (int)in_w, expect->n_classes, &spec) != 0)
        return FRL_EMISMATCH;
    if (memcmp(spec.hash, b + 32, 32) != 0)
        return FRL_EMISMATCH;
    if (expect && memcmp(expect->hash, spec.hash, 32) != 0)
        return FRL_EMISMATCH;
    if ((int)frl_get_le32(b + 128) != spec.n_layers || stated != file_size(&spec))
        return FRL_EFORMAT;
    uint64_t kb = frl_get_le64(b + 96);
    double keep;
    memcpy(&keep, &kb, 8);
    uint32_t rule = frl_get_le32(b + 104);
    if (!(keep > 0.0 && keep <= 1.0) || rule > 1)
        return FRL_EFORMAT;
    if (frl_get_le32(b + 108) != FRL_QROUND_SINGLE_UP)
        return FRL_EUNSUPPORTED;
    int32_t zin = (int32_t)frl_get_le32(b + 112);
    if (zin < 0 || zin > 255)
        return FRL_EFORMAT;
    const uint8_t *p = b + HDR_FIXED;
    const uint8_t *bits[FRL_MAX_LAYERS] = {0};
    const uint8_t *mp = p + (size_t)spec.n_layers * PER_LAYER;
    frl_requant_t rq[FRL_MAX_LAYERS];
    for (int l = 0; l < spec.n_layers; l++, p += PER_LAYER) {
        uint32_t n = frl_get_le32(p), kept = frl_get_le32(p + 4);
        rq[l].m0 = (int32_t)frl_get_le32(p + 8);
        rq[l].shift = (int32_t)frl_get_le32(p + 12);
        if (n != spec.layers[l].n_edges || frl_requant_check(rq[l]) || kept != n - frl_mask_dropped(n, keep))
            return FRL_EFORMAT;
        bits[l] = mp;
        if ((n & 7) && (mp[n >> 3] >> (n & 7)))
            return FRL_EFORMAT; /* bits past the last edge must be 0 */
        if (popcount_bits(mp, n) != kept)
            return FRL_EFORMAT;
        mp += ((size_t)n + 7) / 8;
    }
    frl_qmodel_t *m;
    int rc = frl__qmodel_create_bits(&spec, b + 64, keep, (frl_mask_rule)rule, zin, bits, &m);
    if (rc)
        return rc;
    for (int l = 0; l < spec.n_layers; l++)
        m->L[l].rq = rq[l];
    *out = m;
    return 0;
}

int frl_qmodel_save(const frl_qmodel_t *m, const char *path)
{
    if (!m || !path)
        return FRL_EINVAL;
    uint8_t *buf;
    size_t len;
    int rc = frl_qmodel_to_bytes(m, &buf, &len);
    if (rc)
        return rc;
    rc = frl_file_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

int frl_qmodel_load(const char *path, const frl_model_spec_t *expect, frl_qmodel_t **out)
{
    if (!out)
        return FRL_EINVAL;
    *out = NULL;
    if (!path)
        return FRL_EINVAL;
    uint8_t *buf;
    size_t len;
    int rc = frl_file_read_all(path, MAX_FILE, &buf, &len);
    if (rc)
        return rc;
    rc = frl_qmodel_from_bytes(buf, len, expect, out);
    free(buf);
    return rc;
}
