/* The float masked model (w = sign * c_l * mask), the reference the integer
 * model is compared with. Runs on supermask/frl_ops (OpenBLAS). */
#include "quant/qmodel_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "supermask/frl_ops.h"

#define FBATCH 100

int frl_qmodel_float_logits(const frl_qmodel_t *m, const uint8_t *images, uint32_t n, float mean, float std, float *logits)
{
    if (!m || !images || !logits || !(std > 0.0f))
        return FRL_EINVAL;
    const frl_model_spec_t *s = &m->spec;
    frl_network_t net;
    int rc = frl_network_init(&net, s, m->seed, 0);
    if (rc)
        return rc;
    float *w[FRL_MAX_LAYERS] = {0};
    size_t maxact = (size_t)s->in_c * s->in_h * s->in_w, scr = 1;
    for (int i = 0; i < s->n_ops; i++) {
        size_t z = frl_op_out_size(&s->ops[i]);
        if (z > maxact)
            maxact = z;
        if (s->ops[i].kind == FRL_OP_CONV) {
            const frl_op_t *op = &s->ops[i];
            size_t c = frl_conv2d_scratch_floats(op->in_c, op->in_h, op->in_w, op->k, op->pad);
            if (c > scr)
                scr = c;
        }
    }
    float *a = malloc(maxact * FBATCH * sizeof(float)), *b = malloc(maxact * FBATCH * sizeof(float));
    float *scratch = malloc(scr * sizeof(float));
    int32_t *am = malloc(maxact * FBATCH * sizeof(int32_t));
    if (!a || !b || !scratch || !am)
        rc = FRL_ENOMEM;
    for (int l = 0; l < s->n_layers && !rc; l++) {
        uint32_t ne = s->layers[l].n_edges;
        w[l] = malloc((size_t)ne * sizeof(float));
        if (!w[l]) {
            rc = FRL_ENOMEM;
            break;
        }
        for (uint32_t e = 0; e < ne; e++)
            w[l][e] = ((m->mask_bits[l][e >> 3] >> (e & 7)) & 1u) ? frl_network_weight(&net, l, e) : 0.0f;
    }
    const size_t img = (size_t)s->in_c * s->in_h * s->in_w;
    for (uint32_t i0 = 0; i0 < n && !rc; i0 += FBATCH) {
        int B = n - i0 < FBATCH ? (int)(n - i0) : FBATCH;
        /* pixels (HWC) -> normalised NCHW floats */
        for (int bb = 0; bb < B; bb++)
            for (int c = 0; c < s->in_c; c++)
                for (int p = 0; p < s->in_h * s->in_w; p++)
                    a[(size_t)bb * img + (size_t)c * s->in_h * s->in_w + p] =
                        ((float)images[(size_t)(i0 + bb) * img + (size_t)p * s->in_c + c] / 255.0f - mean) / std;
        float *x = a, *y = b;
        for (int i = 0; i < s->n_ops && !rc; i++) {
            const frl_op_t *op = &s->ops[i];
            size_t insz = (size_t)op->in_c * op->in_h * op->in_w;
            switch (op->kind) {
            case FRL_OP_CONV:
                rc = frl_conv2d_forward(y, x, w[op->layer], B, op->in_c, op->in_h, op->in_w, op->out_c, op->k, op->pad, scratch);
                break;
            case FRL_OP_DENSE:
                rc = frl_dense_forward(y, x, w[op->layer], B, (int)insz, op->out_c);
                break;
            case FRL_OP_RELU:
                frl_relu_forward(y, x, insz * B);
                break;
            case FRL_OP_MAXPOOL:
                rc = frl_maxpool_forward(y, am, x, B, op->in_c, op->in_h, op->in_w, op->k);
                break;
            case FRL_OP_FLATTEN:
                memcpy(y, x, insz * B * sizeof(float));
                break;
            }
            float *t = x;
            x = y;
            y = t;
        }
        if (!rc)
            memcpy(logits + (size_t)i0 * s->n_classes, x, (size_t)B * s->n_classes * sizeof(float));
    }
    for (int l = 0; l < FRL_MAX_LAYERS; l++)
        free(w[l]);
    free(a);
    free(b);
    free(scratch);
    free(am);
    frl_network_free(&net);
    return rc;
}

int frl_qmodel_float_predict(const frl_qmodel_t *m, const frl_dataset_t *ds, float mean, float std, uint8_t *pred)
{
    if (!m || !ds || !pred)
        return FRL_EINVAL;
    const int nc = m->spec.n_classes;
    float *lg = malloc((size_t)1000 * nc * sizeof(float));
    if (!lg)
        return FRL_ENOMEM;
    int rc = 0;
    const size_t img = m->img_bytes;
    for (uint32_t i0 = 0; i0 < ds->n && !rc; i0 += 1000) {
        uint32_t B = ds->n - i0 < 1000 ? ds->n - i0 : 1000;
        rc = frl_qmodel_float_logits(m, ds->images + (size_t)i0 * img, B, mean, std, lg);
        for (uint32_t b = 0; b < B && !rc; b++) {
            int best = 0;
            for (int c = 1; c < nc; c++)
                if (lg[(size_t)b * nc + c] > lg[(size_t)b * nc + best])
                    best = c;
            pred[i0 + b] = (uint8_t)best;
        }
    }
    free(lg);
    return rc;
}
