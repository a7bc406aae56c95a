/* Internal layout of a quantised model (shared by qmodel.c, infer.c,
 * calib.c, qfile.c, qfloat.c). */
#ifndef FRL_QMODEL_INTERNAL_H
#define FRL_QMODEL_INTERNAL_H

#include "quant/frl_quant.h"

/* One masked layer of the integer pipeline. */
typedef struct frl__qlayer_s {
    int kind;            /* FRL_OP_CONV or FRL_OP_DENSE */
    int first;           /* consumes the raw pixels (q = p - zin) */
    int last;            /* produces the logits (no ReLU) */
    int pool;            /* max-pool window on the accumulators (1 = none) */
    frl_qconv_dims_t cd; /* conv: dims (out_h/out_w before the pool) */
    int K, O;            /* reduction length in the codes layout, outputs */
    int K4;              /* vnni steps (w8 != NULL) */
    int xs;              /* dense: input row stride in bytes */
    uint8_t *codes;      /* (O, K) 2-bit codes, frl_tern_row_bytes(K) bytes per row */
    int8_t *w8;          /* vnni layout, or NULL (reference only) */
    uint8_t *q2;         /* dense: 2-bit form of w8 for batch-1 kernels, or NULL */
    int32_t *rowsum;     /* first dense layer: sum_k T[o, k] (zero point correction) */
    frl_requant_t rq;
    /* output tensor of one image: (oh + 2 opad, ow + 2 opad, ocs); dense: oh = ow = 1 */
    int oh, ow, oc, ocs, opad;
    size_t out_bytes;
    size_t acc_ints; /* int32 scratch of the reference path, one image (before + after pool) */
} frl__qlayer_t;

struct frl_qmodel_s {
    frl_model_spec_t spec;
    uint8_t seed[FRL_SEED_BYTES];
    double keep;
    frl_mask_rule rule;
    int32_t zin;
    int n_layers;
    frl__qlayer_t L[FRL_MAX_LAYERS];
    uint8_t *mask_bits[FRL_MAX_LAYERS]; /* 1 bit per edge */
    uint32_t kept[FRL_MAX_LAYERS];
    frl_qpath path;
    const frl_qkern_t *kt; /* NULL: reference kernels */
    int first_dense;       /* first dense layer (batched from there on) */
    size_t img_bytes;
    uint64_t macs;
};

/* frl_qmodel_create with masks as 1 bit per edge (bit e & 7 of byte e >> 3). */
int frl__qmodel_create_bits(const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES], double keep, frl_mask_rule rule,
                            int32_t zin, const uint8_t *const *bits, frl_qmodel_t **out);

/* Runs layer l on one image (conv) or B rows (dense) with kernel table kt
 * (NULL = reference). in/out as in infer.c. acc: int32 scratch
 * (layer.acc_ints for conv; B * O16 for dense). logits (B, O) for the last
 * layer. pad_scratch: first-conv scratch. */
int frl__qlayer_run(const frl_qmodel_t *m, int l, const frl_qkern_t *kt, const uint8_t *in, int B, uint8_t *out, size_t out_stride,
                    int32_t *logits, int32_t *acc, uint8_t *pad_scratch);
/* Pooled int32 accumulators of layer l for one image (reference kernels;
 * calibration). acc holds layer.acc_ints ints; returns a pointer into it to
 * the pooled (oh, ow, oc) values. */
const int32_t *frl__qlayer_acc_ref(const frl_qmodel_t *m, int l, const uint8_t *in, int32_t *acc);
/* Requantises pooled accumulators of one image into the output tensor. */
void frl__qlayer_requant(const frl_qmodel_t *m, int l, const int32_t *pooled, uint8_t *out);

#endif
