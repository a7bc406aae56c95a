/* The integer inference pipeline: layer by layer on the kernels of the
 * chosen path, with the reference kernels as the fallback for any layer
 * shape a fast kernel does not take. Integers only (no float, no division);
 * never allocates.
 *
 * Batching: the conv layers run image by image (their activations stay in
 * L1/L2), writing the last conv output straight into row b of the first
 * dense layer's input; the dense layers then run on the whole batch, so
 * their weights are read once per batch (per K tile) instead of per image. */
#include "quant/qmodel_internal.h"

#include <string.h>

#include "common/frl_error.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

static int o16(int O)
{
    return (O + 15) & ~15;
}

void frl__qlayer_requant(const frl_qmodel_t *m, int l, const int32_t *pooled, uint8_t *out)
{
    const frl__qlayer_t *L = &m->L[l];
    frl_qref_requant(pooled, L->oh, L->ow, L->oc, L->rq, out, L->opad, L->ocs);
}

/* conv accumulators (reference), pooled; returns the pooled pointer. */
static const int32_t *conv_acc_ref(const frl_qmodel_t *m, const frl__qlayer_t *L, const uint8_t *in, int32_t *acc)
{
    if (L->first)
        frl_qref_conv_first(&L->cd, in, m->zin, L->codes, acc);
    else
        frl_qref_conv(&L->cd, in, L->codes, acc);
    if (L->pool <= 1)
        return acc;
    int32_t *pooled = acc + (size_t)L->cd.out_h * L->cd.out_w * L->cd.out_c;
    frl_qref_maxpool(acc, L->cd.out_h, L->cd.out_w, L->cd.out_c, L->pool, pooled);
    return pooled;
}

const int32_t *frl__qlayer_acc_ref(const frl_qmodel_t *m, int l, const uint8_t *in, int32_t *acc)
{
    const frl__qlayer_t *L = &m->L[l];
    if (L->kind == FRL_OP_CONV)
        return conv_acc_ref(m, L, in, acc);
    frl_qref_dense(in, 1, L->xs, L->K, L->O, L->codes, acc);
    if (L->first)
        for (int o = 0; o < L->O; o++)
            acc[o] -= m->zin * L->rowsum[o];
    return acc;
}

static int dense_run(const frl_qmodel_t *m, const frl__qlayer_t *L, const frl_qkern_t *kt, const uint8_t *in, int B, uint8_t *out,
                     size_t out_stride, int32_t *logits, int32_t *acc)
{
    if (kt && L->w8 && !L->first) {
        if (L->last)
            return kt->dense_acc(in, B, L->xs, L->K4, L->O, L->w8, logits, acc);
        if (B == 1 && kt->dense1_rq && L->q2) {
            int rc = kt->dense1_rq(in, L->K4, L->O, L->q2, L->rq, out, acc);
            if (rc != FRL_EUNSUPPORTED)
                return rc;
        }
        return kt->dense_rq(in, B, L->xs, L->K4, L->O, L->w8, L->rq, out, (int)out_stride, acc);
    }
    int32_t *dst = L->last ? logits : acc;
    frl_qref_dense(in, B, L->xs, L->K, L->O, L->codes, dst);
    if (L->first)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < L->O; o++)
                dst[(size_t)b * L->O + o] -= m->zin * L->rowsum[o];
    if (!L->last)
        for (int b = 0; b < B; b++)
            frl_qref_requant(acc + (size_t)b * L->O, 1, 1, L->O, L->rq, out + (size_t)b * out_stride, 0, L->O);
    return 0;
}

int frl__qlayer_run(const frl_qmodel_t *m, int l, const frl_qkern_t *kt, const uint8_t *in, int B, uint8_t *out, size_t out_stride,
                    int32_t *logits, int32_t *acc, uint8_t *pad_scratch)
{
    const frl__qlayer_t *L = &m->L[l];
    if (L->kind == FRL_OP_DENSE)
        return dense_run(m, L, kt, in, B, out, out_stride, logits, acc);
    if (kt && L->w8) {
        int rc = L->first ? kt->conv_first_rq(&L->cd, in, m->zin, L->w8, L->pool, L->rq, out, L->opad, L->ocs, pad_scratch)
                          : kt->conv_rq(&L->cd, in, L->w8, L->pool, L->rq, out, L->opad, L->ocs);
        if (rc != FRL_EUNSUPPORTED)
            return rc;
    }
    frl__qlayer_requant(m, l, conv_acc_ref(m, L, in, acc), out);
    return 0;
}

/* Scratch layout for a batch of B:
 *   per conv layer below first_dense: one image's output tensor
 *   per dense layer (except the last): B rows of its output
 *   the first dense layer's input: B rows of xs bytes
 *   logits: B * n_classes int32 (used when the caller passes none)
 *   acc: int32, max(conv acc_ints, B * O16 of the dense layers)
 *   first-conv pad scratch */
typedef struct {
    uint8_t *conv_out[FRL_MAX_LAYERS];
    uint8_t *dense_out[FRL_MAX_LAYERS];
    uint8_t *dense_in;
    int32_t *logits;
    int32_t *acc;
    uint8_t *pad;
    size_t total;
} layout_t;

static void plan(const frl_qmodel_t *m, int B, uint8_t *base, layout_t *p)
{
    size_t off = 0, acc_ints = 0;
    memset(p, 0, sizeof *p);
    for (int l = 0; l < m->first_dense; l++) {
        const frl__qlayer_t *L = &m->L[l];
        if (l + 1 < m->first_dense) {
            p->conv_out[l] = base ? base + off : NULL;
            off += ALIGN64(L->out_bytes);
        }
        if (L->acc_ints > acc_ints)
            acc_ints = L->acc_ints;
    }
    if (m->first_dense < m->n_layers) {
        const frl__qlayer_t *D = &m->L[m->first_dense];
        p->dense_in = base ? base + off : NULL;
        off += ALIGN64((size_t)B * D->xs);
    }
    for (int l = m->first_dense; l < m->n_layers; l++) {
        const frl__qlayer_t *L = &m->L[l];
        if (!L->last) {
            p->dense_out[l] = base ? base + off : NULL;
            off += ALIGN64((size_t)B * L->ocs);
        }
        size_t need = (size_t)B * o16(L->O);
        if (need > acc_ints)
            acc_ints = need;
    }
    p->logits = base ? (int32_t *)(void *)(base + off) : NULL;
    off += ALIGN64((size_t)B * m->spec.n_classes * sizeof(int32_t));
    p->acc = base ? (int32_t *)(void *)(base + off) : NULL;
    off += ALIGN64(acc_ints * sizeof(int32_t));
    p->pad = base ? base + off : NULL;
    if (m->L[0].kind == FRL_OP_CONV)
        off += ALIGN64(frl_qconv_first_scratch_size(&m->L[0].cd));
    p->total = off;
}

/* The conv kernels write every interior value of their output tensors, so
 * only the zero padding around them (and padding channels, and the bytes
 * of a dense input row past K) needs clearing before a run; the scratch
 * may hold anything. */
static void zero_borders(const frl_qmodel_t *m, const layout_t *p, int B)
{
    for (int l = 0; l < m->first_dense; l++) {
        const frl__qlayer_t *L = &m->L[l];
        uint8_t *o = p->conv_out[l];
        if (!o)
            continue;
        if (L->ocs != L->oc) {
            memset(o, 0, L->out_bytes);
            continue;
        }
        const size_t pw = (size_t)(L->ow + 2 * L->opad), row = pw * L->ocs, side = (size_t)L->opad * L->ocs;
        if (!L->opad)
            continue;
        memset(o, 0, row * L->opad);
        memset(o + row * (L->oh + L->opad), 0, row * L->opad);
        for (int y = L->opad; y < L->oh + L->opad; y++) {
            memset(o + row * y, 0, side);
            memset(o + row * y + row - side, 0, side);
        }
    }
    if (m->first_dense > 0 && m->first_dense < m->n_layers) {
        const frl__qlayer_t *D = &m->L[m->first_dense];
        if (D->xs > D->K)
            for (int b = 0; b < B; b++)
                memset(p->dense_in + (size_t)b * D->xs + D->K, 0, (size_t)(D->xs - D->K));
    }
    for (int l = m->first_dense; l < m->n_layers; l++)
        if (p->dense_out[l] && m->L[l].ocs > m->L[l].O)
            for (int b = 0; b < B; b++)
                memset(p->dense_out[l] + (size_t)b * m->L[l].ocs + m->L[l].O, 0, (size_t)(m->L[l].ocs - m->L[l].O));
}

size_t frl_qmodel_scratch_size(const frl_qmodel_t *m, int max_batch)
{
    layout_t p;
    if (!m || max_batch < 1)
        return 0;
    plan(m, max_batch, NULL, &p);
    return p.total;
}

int frl_qmodel_infer(const frl_qmodel_t *m, const uint8_t *images, int B, int32_t *logits, uint8_t *pred, void *scratch,
                     size_t scratch_size)
{
    layout_t p;
    if (!m || !images || B < 1 || !scratch || ((uintptr_t)scratch & 63))
        return FRL_EINVAL;
    plan(m, B, (uint8_t *)scratch, &p);
    if (p.total > scratch_size)
        return FRL_EINVAL;
    zero_borders(m, &p, B);
    const frl_qkern_t *kt = m->kt;
    int32_t *lg = logits ? logits : p.logits;
    int rc;
    const int fd = m->first_dense;
    if (fd == 0) {
        /* the first layer is dense on raw pixels: input rows are the images */
        const frl__qlayer_t *L = &m->L[0];
        rc = frl__qlayer_run(m, 0, kt, images, B, p.dense_out[0], (size_t)L->ocs, lg, p.acc, p.pad);
        if (rc)
            return rc;
    } else {
        const frl__qlayer_t *D = fd < m->n_layers ? &m->L[fd] : NULL;
        for (int b = 0; b < B; b++) {
            const uint8_t *src = images + (size_t)b * m->img_bytes;
            for (int l = 0; l < fd; l++) {
                uint8_t *dst = l + 1 < fd ? p.conv_out[l] : p.dense_in + (size_t)b * D->xs;
                rc = frl__qlayer_run(m, l, kt, src, 1, dst, 0, NULL, p.acc, p.pad);
                if (rc)
                    return rc;
                src = dst;
            }
        }
    }
    const uint8_t *src = fd == 0 ? p.dense_out[0] : p.dense_in;
    for (int l = fd == 0 ? 1 : fd; l < m->n_layers; l++) {
        const frl__qlayer_t *L = &m->L[l];
        rc = frl__qlayer_run(m, l, kt, src, B, p.dense_out[l], L->last ? 0 : (size_t)L->ocs, lg, p.acc, p.pad);
        if (rc)
            return rc;
        src = p.dense_out[l];
    }
    if (pred)
        for (int b = 0; b < B; b++)
            pred[b] = (uint8_t)frl_qargmax(lg + (size_t)b * m->spec.n_classes, m->spec.n_classes);
    return 0;
}
