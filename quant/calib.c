/* Calibration (offline; floating point allowed here, never at inference):
 * dyadic multipliers and per-layer activation ranges. */
#include "quant/qmodel_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"

int frl_requant_from_double(double M, frl_requant_t *out)
{
    if (!out || !(M > 0.0) || isinf(M))
        return FRL_EINVAL;
    int e;
    double m = frexp(M, &e);                     /* M = m * 2^e, m in [0.5, 1) */
    int64_t m0 = (int64_t)llround(ldexp(m, 31)); /* half away from zero */
    int s = 31 - e;
    if (m0 == ((int64_t)1 << 31)) {
        m0 = (int64_t)1 << 30;
        s -= 1;
    }
    if (s < 0)
        return FRL_ERANGE;
    if (s > FRL_RQ_MAX_SHIFT) {
        int d = s - FRL_RQ_MAX_SHIFT;
        m0 = d > 62 ? 0 : (m0 + ((int64_t)1 << (d - 1))) >> d;
        s = FRL_RQ_MAX_SHIFT;
    }
    out->m0 = (int32_t)m0;
    out->shift = s;
    return 0;
}

double frl_requant_to_double(frl_requant_t rq)
{
    return ldexp((double)rq.m0, -rq.shift);
}

/* im2col of a padded NHWC tensor for conv layer L: (out_h * out_w, K4 * 4)
 * with the in_cs channel layout of the vnni weights. */
static void im2col(const frl__qlayer_t *L, const uint8_t *in, uint8_t *col)
{
    const frl_qconv_dims_t *d = &L->cd;
    const size_t pw = (size_t)(d->in_w + 2 * d->pad), row = (size_t)L->K4 * 4;
    for (int y = 0; y < d->out_h; y++)
        for (int x = 0; x < d->out_w; x++) {
            uint8_t *c = col + ((size_t)y * d->out_w + x) * row;
            memset(c, 0, row);
            for (int ky = 0; ky < d->k; ky++)
                for (int kx = 0; kx < d->k; kx++)
                    memcpy(c + (size_t)(ky * d->k + kx) * d->in_cs, in + ((size_t)(y + ky) * pw + (x + kx)) * d->in_cs,
                           (size_t)d->in_cs);
        }
}

/* Pooled accumulators of layer l for one image, fast where possible. */
static const int32_t *layer_acc(const frl_qmodel_t *m, int l, const uint8_t *in, int32_t *acc, uint8_t *col, int32_t *tmp)
{
    const frl__qlayer_t *L = &m->L[l];
    const frl_qkern_t *kt = m->kt;
    if (kt && L->w8 && !L->first) {
        if (L->kind == FRL_OP_DENSE) {
            kt->dense_acc(in, 1, L->xs, L->K4, L->O, L->w8, acc, tmp);
            return acc;
        }
        const int npix = L->cd.out_h * L->cd.out_w;
        im2col(L, in, col);
        kt->dense_acc(col, npix, L->K4 * 4, L->K4, L->O, L->w8, acc, tmp);
        if (L->pool <= 1)
            return acc;
        int32_t *pooled = acc + (size_t)npix * L->O;
        frl_qref_maxpool(acc, L->cd.out_h, L->cd.out_w, L->O, L->pool, pooled);
        return pooled;
    }
    return frl__qlayer_acc_ref(m, l, in, acc);
}

int frl_qmodel_calibrate(frl_qmodel_t *m, const uint8_t *images, uint32_t n, const frl_qcalib_opts_t *opts)
{
    if (!m || !images || n == 0)
        return FRL_EINVAL;
    uint32_t nimg = opts && opts->max_images ? opts->max_images : 512;
    double pct = opts && opts->pct > 0.0 ? opts->pct : 0.9999;
    if (pct > 1.0)
        return FRL_EINVAL;
    if (nimg > n)
        nimg = n;
    int rc = 0;
    uint8_t *act[FRL_MAX_LAYERS] = {0};
    size_t col_bytes = 0, acc_ints = 0, tmp_ints = 0;
    for (int l = 0; l < m->n_layers; l++) {
        const frl__qlayer_t *L = &m->L[l];
        size_t ob = L->out_bytes;
        if (l + 1 < m->n_layers && m->L[l + 1].kind == FRL_OP_DENSE && (size_t)m->L[l + 1].xs > ob)
            ob = (size_t)m->L[l + 1].xs;
        act[l] = calloc(ob + 64, 1);
        if (!act[l])
            rc = FRL_ENOMEM;
        size_t npix = L->kind == FRL_OP_CONV ? (size_t)L->cd.out_h * L->cd.out_w : 1;
        if (npix * L->K4 * 4 > col_bytes)
            col_bytes = npix * L->K4 * 4;
        size_t a = L->acc_ints + npix * (size_t)((L->O + 15) & ~15);
        if (a > acc_ints)
            acc_ints = a;
        if (npix * (size_t)((L->O + 15) & ~15) > tmp_ints)
            tmp_ints = npix * (size_t)((L->O + 15) & ~15);
    }
    uint8_t *col = malloc(col_bytes + 64);
    int32_t *acc = malloc(acc_ints * sizeof(int32_t) + 64);
    int32_t *tmp = malloc(tmp_ints * sizeof(int32_t) + 64);
    int32_t *racc = malloc(acc_ints * sizeof(int32_t) + 64);
    uint8_t *pad = malloc(m->L[0].kind == FRL_OP_CONV ? frl_qconv_first_scratch_size(&m->L[0].cd) : 64);
    uint32_t *hist = NULL;
    if (!col || !acc || !tmp || !racc || !pad)
        rc = FRL_ENOMEM;
    for (int l = 0; l + 1 < m->n_layers && !rc; l++) {
        const frl__qlayer_t *L = &m->L[l];
        /* largest possible positive accumulator: K * max|q| */
        uint64_t qmax = L->first ? (uint64_t)(m->zin > 255 - m->zin ? m->zin : 255 - m->zin) : 255;
        uint64_t vmax = (uint64_t)L->K * qmax;
        free(hist);
        hist = calloc(vmax + 2, sizeof(uint32_t));
        if (!hist) {
            rc = FRL_ENOMEM;
            break;
        }
        uint64_t npos = 0;
        const size_t nval = (size_t)L->oh * L->ow * L->oc;
        for (uint32_t i = 0; i < nimg && !rc; i++) {
            const uint8_t *src = images + (size_t)i * m->img_bytes;
            for (int j = 0; j < l && !rc; j++) {
                rc = frl__qlayer_run(m, j, m->kt, src, 1, act[j], (size_t)m->L[j].ocs, NULL, racc, pad);
                src = act[j];
            }
            const int32_t *a = layer_acc(m, l, src, acc, col, tmp);
            for (size_t v = 0; v < nval; v++)
                if (a[v] > 0) {
                    hist[(uint64_t)a[v] > vmax ? vmax + 1 : (uint64_t)a[v]]++;
                    npos++;
                }
        }
        if (rc)
            break;
        uint64_t amax = 1;
        if (npos > 0) {
            uint64_t target = (uint64_t)ceil(pct * (double)npos), cum = 0;
            if (target < 1)
                target = 1;
            for (uint64_t v = 0; v <= vmax + 1; v++) {
                cum += hist[v];
                if (cum >= target) {
                    amax = v ? v : 1;
                    break;
                }
            }
        }
        frl_requant_t rq;
        rc = frl_requant_from_double(255.0 / (double)amax, &rq);
        if (!rc)
            m->L[l].rq = rq;
    }
    free(hist);
    free(col);
    free(acc);
    free(tmp);
    free(racc);
    free(pad);
    for (int l = 0; l < FRL_MAX_LAYERS; l++)
        free(act[l]);
    return rc;
}
