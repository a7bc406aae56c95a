/* Building a quantised model from a spec, a seed and masks: the integer
 * pipeline's layer plan, 2-bit reference codes and the packed SIMD layouts. */
#include "quant/qmodel_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"

static int round_up(int x, int a)
{
    return (x + a - 1) / a * a;
}

void frl_qmodel_free(frl_qmodel_t *m)
{
    if (!m)
        return;
    for (int l = 0; l < FRL_MAX_LAYERS; l++) {
        free(m->L[l].codes);
        free(m->L[l].w8);
        free(m->L[l].q2);
        free(m->L[l].rowsum);
        free(m->mask_bits[l]);
    }
    free(m);
}

static void set_code(uint8_t *codes, size_t rb, uint32_t o, uint32_t k, int t)
{
    if (t == 0)
        return;
    codes[(size_t)o * rb + (k >> 2)] |= (uint8_t)((t > 0 ? 1u : 3u) << (2 * (k & 3)));
}

/* The op sequence -> layer plan (kinds, pools, shapes, strides). */
static int build_plan(frl_qmodel_t *m)
{
    const frl_model_spec_t *s = &m->spec;
    int relu[FRL_MAX_LAYERS] = {0};
    int cur = -1;
    if (s->n_layers < 1 || s->n_layers > FRL_MAX_LAYERS)
        return FRL_EINVAL;
    for (int i = 0; i < s->n_ops; i++) {
        const frl_op_t *op = &s->ops[i];
        switch (op->kind) {
        case FRL_OP_CONV:
        case FRL_OP_DENSE: {
            if (cur >= 0 && !relu[cur])
                return FRL_EUNSUPPORTED; /* two linear layers without a ReLU between them */
            if (op->layer != cur + 1 || op->layer >= s->n_layers)
                return FRL_EINVAL; /* masked layers are numbered in op order */
            cur = op->layer;
            frl__qlayer_t *L = &m->L[cur];
            L->kind = op->kind;
            L->first = cur == 0;
            L->pool = 1;
            L->O = op->out_c;
            if (op->kind == FRL_OP_CONV) {
                if (op->stride != 1 || op->k < 1)
                    return FRL_EUNSUPPORTED;
                L->cd.in_h = op->in_h;
                L->cd.in_w = op->in_w;
                L->cd.in_c = op->in_c;
                L->cd.k = op->k;
                L->cd.pad = op->pad;
                L->cd.out_h = op->out_h;
                L->cd.out_w = op->out_w;
                L->cd.out_c = op->out_c;
            }
            break;
        }
        case FRL_OP_RELU:
            if (cur < 0 || relu[cur])
                return FRL_EUNSUPPORTED;
            relu[cur] = 1;
            break;
        case FRL_OP_MAXPOOL:
            /* max-pool commutes with ReLU and with the monotone requantisation */
            if (cur < 0 || m->L[cur].pool != 1 || m->L[cur].kind != FRL_OP_CONV || op->k < 1 || op->stride != op->k ||
                m->L[cur].cd.out_h % op->k || m->L[cur].cd.out_w % op->k)
                return FRL_EUNSUPPORTED;
            m->L[cur].pool = op->k;
            break;
        case FRL_OP_FLATTEN:
            break;
        default:
            return FRL_EUNSUPPORTED;
        }
    }
    if (cur != s->n_layers - 1 || relu[cur] || m->L[cur].kind != FRL_OP_DENSE)
        return FRL_EUNSUPPORTED; /* the logits come from a final dense layer without ReLU */
    m->n_layers = s->n_layers;
    m->L[cur].last = 1;
    m->first_dense = m->n_layers;
    for (int l = 0; l < m->n_layers; l++)
        if (m->L[l].kind == FRL_OP_DENSE) {
            m->first_dense = l;
            break;
        }
    for (int l = m->first_dense; l < m->n_layers; l++)
        if (m->L[l].kind != FRL_OP_DENSE)
            return FRL_EUNSUPPORTED; /* conv after dense */
    m->img_bytes = (size_t)s->in_c * s->in_h * s->in_w;

    /* shapes and strides, front to back */
    for (int l = 0; l < m->n_layers; l++) {
        frl__qlayer_t *L = &m->L[l];
        const frl__qlayer_t *P = l > 0 ? &m->L[l - 1] : NULL;
        const frl__qlayer_t *N = l + 1 < m->n_layers ? &m->L[l + 1] : NULL;
        if (L->kind == FRL_OP_CONV) {
            L->cd.in_cs = P ? P->ocs : s->in_c;
            if (P && (P->oc != L->cd.in_c || P->oh != L->cd.in_h || P->ow != L->cd.in_w))
                return FRL_EINVAL;
            L->K = L->cd.k * L->cd.k * L->cd.in_c;
            L->oh = L->cd.out_h / L->pool;
            L->ow = L->cd.out_w / L->pool;
            L->oc = L->cd.out_c;
            L->ocs = N && N->kind == FRL_OP_CONV ? round_up(L->oc, 4) : L->oc;
            L->opad = N && N->kind == FRL_OP_CONV ? N->cd.pad : 0;
            L->acc_ints = (size_t)L->cd.out_h * L->cd.out_w * L->cd.out_c + (size_t)L->oh * L->ow * L->oc;
        } else {
            if (!P) {
                L->K = (int)m->img_bytes;
                L->xs = L->K;
            } else if (P->kind == FRL_OP_CONV) {
                L->K = P->oh * P->ow * P->ocs;
                L->xs = round_up(L->K, 64);
            } else {
                L->K = P->O;
                L->xs = P->ocs;
            }
            L->oh = L->ow = 1;
            L->oc = L->O;
            L->ocs = round_up(L->O, 64);
            L->opad = 0;
            L->acc_ints = (size_t)round_up(L->O, 16);
        }
        L->out_bytes = (size_t)(L->oh + 2 * L->opad) * (L->ow + 2 * L->opad) * L->ocs;
        L->rq.m0 = 1;
        L->rq.shift = 0;
    }
    return 0;
}

/* Reduction index (codes layout) of spec edge e of layer l. */
static uint32_t code_index(const frl_qmodel_t *m, int l, uint32_t e, uint32_t *o)
{
    const frl__qlayer_t *L = &m->L[l];
    const frl_layer_info_t *li = &m->spec.layers[l];
    *o = e / li->row;
    uint32_t i = e % li->row;
    if (L->kind == FRL_OP_CONV) {
        /* (o, c, ky, kx) -> (ky, kx, c) */
        uint32_t kk = (uint32_t)(L->cd.k * L->cd.k);
        uint32_t c = i / kk, t = i % kk;
        return t * (uint32_t)L->cd.in_c + c;
    }
    if (l == 0) {
        /* flattened CHW image -> HWC */
        uint32_t hw = (uint32_t)(m->spec.in_h * m->spec.in_w);
        return (i % hw) * (uint32_t)m->spec.in_c + i / hw;
    }
    const frl__qlayer_t *P = &m->L[l - 1];
    if (P->kind == FRL_OP_CONV) {
        /* PyTorch flatten is channel-major (c, y, x); our tensor is (y, x, c) */
        uint32_t hw = (uint32_t)(P->oh * P->ow);
        return (i % hw) * (uint32_t)P->ocs + i / hw;
    }
    return i;
}

static int build_layers(frl_qmodel_t *m)
{
    frl_network_t net;
    int rc = frl_network_init(&net, &m->spec, m->seed, 0);
    if (rc)
        return rc;
    m->macs = 0;
    for (int l = 0; l < m->n_layers && !rc; l++) {
        frl__qlayer_t *L = &m->L[l];
        const frl_layer_info_t *li = &m->spec.layers[l];
        const size_t rb = frl_tern_row_bytes((uint32_t)L->K);
        L->codes = calloc((size_t)L->O * rb, 1);
        if (!L->codes) {
            rc = FRL_ENOMEM;
            break;
        }
        uint32_t kept = 0;
        for (uint32_t e = 0; e < li->n_edges; e++) {
            if (!((m->mask_bits[l][e >> 3] >> (e & 7)) & 1u))
                continue;
            kept++;
            uint32_t o, k = code_index(m, l, e, &o);
            int sign = ((net.sign_bits[l][e >> 5] >> (e & 31)) & 1u) ? 1 : -1;
            set_code(L->codes, rb, o, k, sign);
        }
        m->kept[l] = kept;
        if (L->kind == FRL_OP_CONV) {
            m->macs += (uint64_t)li->n_edges * (uint64_t)(L->cd.out_h * L->cd.out_w);
            if (L->first && L->cd.in_c == 1 && L->cd.k <= 4) {
                L->w8 = malloc((size_t)L->cd.k * round_up(L->O, 16) * 4);
                if (L->w8)
                    frl_qpack_first(L->codes, L->O, L->cd.k, L->w8);
                L->K4 = L->cd.k;
            } else if (!L->first && (L->cd.in_cs & 3) == 0) {
                L->w8 = malloc(frl_qpack_vnni_size(L->O, L->cd.k, L->cd.in_cs));
                if (L->w8)
                    L->K4 = frl_qpack_vnni(L->codes, L->O, L->cd.k, L->cd.in_c, L->cd.in_cs, L->w8);
            }
        } else {
            m->macs += li->n_edges;
            if (L->first) {
                L->rowsum = calloc((size_t)L->O, sizeof(int32_t));
                if (L->rowsum)
                    for (int o = 0; o < L->O; o++)
                        for (int k = 0; k < L->K; k++)
                            L->rowsum[o] += frl_tern_get(L->codes, rb, (uint32_t)o, (uint32_t)k);
                else
                    rc = FRL_ENOMEM;
            } else {
                L->w8 = malloc(frl_qpack_vnni_size(L->O, 1, L->K));
                if (L->w8) {
                    L->K4 = frl_qpack_vnni(L->codes, L->O, 1, L->K, L->K, L->w8);
                    L->q2 = malloc(frl_qpack_q2_size(L->K4, L->O));
                    if (L->q2)
                        frl_qpack_q2(L->w8, L->K4, L->O, L->q2);
                }
            }
        }
        /* w8 == NULL after a failed malloc only costs speed: the reference runs */
    }
    frl_network_free(&net);
    return rc;
}

int frl__qmodel_create_bits(const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES], double keep, frl_mask_rule rule,
                            int32_t zin, const uint8_t *const *bits, frl_qmodel_t **out)
{
    if (!out)
        return FRL_EINVAL;
    *out = NULL;
    if (!spec || !seed || !bits || !(keep > 0.0 && keep <= 1.0) || zin < 0 || zin > 255 ||
        (rule != FRL_MASK_ABS && rule != FRL_MASK_SIGNED))
        return FRL_EINVAL;
    frl_qmodel_t *m = calloc(1, sizeof *m);
    if (!m)
        return FRL_ENOMEM;
    m->spec = *spec;
    memcpy(m->seed, seed, FRL_SEED_BYTES);
    m->keep = keep;
    m->rule = rule;
    m->zin = zin;
    int rc = build_plan(m);
    for (int l = 0; l < m->n_layers && !rc; l++) {
        size_t nb = ((size_t)spec->layers[l].n_edges + 7) / 8;
        m->mask_bits[l] = malloc(nb);
        if (!m->mask_bits[l] || !bits[l])
            rc = m->mask_bits[l] ? FRL_EINVAL : FRL_ENOMEM;
        else
            memcpy(m->mask_bits[l], bits[l], nb);
    }
    if (!rc)
        rc = build_layers(m);
    if (!rc)
        rc = frl_qmodel_set_path(m, FRL_QPATH_AUTO);
    if (rc) {
        frl_qmodel_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int frl_qmodel_create(const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES], double keep, frl_mask_rule rule,
                      int32_t zin, const uint8_t *const *masks, frl_qmodel_t **out)
{
    if (!out)
        return FRL_EINVAL;
    *out = NULL;
    if (!spec || !masks || spec->n_layers < 1 || spec->n_layers > FRL_MAX_LAYERS)
        return FRL_EINVAL;
    uint8_t *bits[FRL_MAX_LAYERS] = {0};
    int rc = 0;
    for (int l = 0; l < spec->n_layers && !rc; l++) {
        uint32_t n = spec->layers[l].n_edges;
        bits[l] = calloc(((size_t)n + 7) / 8, 1);
        if (!bits[l] || !masks[l]) {
            rc = bits[l] ? FRL_EINVAL : FRL_ENOMEM;
            break;
        }
        for (uint32_t e = 0; e < n; e++)
            if (masks[l][e])
                bits[l][e >> 3] |= (uint8_t)(1u << (e & 7));
    }
    if (!rc)
        rc = frl__qmodel_create_bits(spec, seed, keep, rule, zin, (const uint8_t *const *)bits, out);
    for (int l = 0; l < FRL_MAX_LAYERS; l++)
        free(bits[l]);
    return rc;
}

int frl_qmodel_from_ranking(const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES], double keep, frl_mask_rule rule,
                            const uint32_t *ranking, const frl_dataset_t *calib, const frl_qcalib_opts_t *opts, frl_qmodel_t **out)
{
    if (!out)
        return FRL_EINVAL;
    *out = NULL;
    if (!spec || !seed || !ranking || !calib)
        return FRL_EINVAL;
    frl_network_t net;
    int rc = frl_network_init(&net, spec, seed, 1);
    if (rc)
        return rc;
    uint8_t *masks[FRL_MAX_LAYERS] = {0};
    void *scratch = NULL;
    size_t off = 0;
    for (int l = 0; l < spec->n_layers && !rc; l++) {
        uint32_t n = spec->layers[l].n_edges;
        free(scratch);
        scratch = malloc(frl_topk_scratch_size(n) + frl_ranking_scratch_size(n) + 64);
        masks[l] = malloc(n);
        if (!scratch || !masks[l]) {
            rc = FRL_ENOMEM;
            break;
        }
        rc = frl_mask_from_ranking(ranking + off, net.sorted_init[l], n, keep, rule, masks[l], scratch);
        off += n;
    }
    free(scratch);
    frl_network_free(&net);
    if (!rc)
        rc = frl_qmodel_create(spec, seed, keep, rule, FRL_QZIN_FMNIST, (const uint8_t *const *)masks, out);
    for (int l = 0; l < FRL_MAX_LAYERS; l++)
        free(masks[l]);
    if (rc)
        return rc;
    if (calib->n > 0) {
        rc = frl_qmodel_calibrate(*out, calib->images, calib->n, opts);
        if (rc) {
            frl_qmodel_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

const frl_model_spec_t *frl_qmodel_spec(const frl_qmodel_t *m)
{
    return &m->spec;
}
int frl_qmodel_n_layers(const frl_qmodel_t *m)
{
    return m->n_layers;
}
frl_requant_t frl_qmodel_requant(const frl_qmodel_t *m, int layer)
{
    frl_requant_t z = {0, 0};
    return layer >= 0 && layer < m->n_layers ? m->L[layer].rq : z;
}
int frl_qmodel_set_requant(frl_qmodel_t *m, int layer, frl_requant_t rq)
{
    if (!m || layer < 0 || layer >= m->n_layers || frl_requant_check(rq))
        return FRL_EINVAL;
    m->L[layer].rq = rq;
    return 0;
}
int32_t frl_qmodel_zin(const frl_qmodel_t *m)
{
    return m->zin;
}
double frl_qmodel_keep(const frl_qmodel_t *m)
{
    return m->keep;
}
frl_mask_rule frl_qmodel_rule(const frl_qmodel_t *m)
{
    return m->rule;
}
const uint8_t *frl_qmodel_seed(const frl_qmodel_t *m)
{
    return m->seed;
}
const uint8_t *frl_qmodel_mask_bits(const frl_qmodel_t *m, int layer)
{
    return layer >= 0 && layer < m->n_layers ? m->mask_bits[layer] : NULL;
}
uint64_t frl_qmodel_macs(const frl_qmodel_t *m)
{
    return m->macs;
}

int frl_qmodel_set_path(frl_qmodel_t *m, frl_qpath path)
{
    if (!m)
        return FRL_EINVAL;
    if (path == FRL_QPATH_AUTO)
        path = frl_qpath_best();
    if (!frl_qpath_available(path))
        return FRL_EUNSUPPORTED;
    m->path = path;
    m->kt = path == FRL_QPATH_SCALAR ? NULL : frl_qkern_get(path);
    return 0;
}

frl_qpath frl_qmodel_path(const frl_qmodel_t *m)
{
    return m->path;
}
