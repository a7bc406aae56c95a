/* The model zoo as data, and the frozen random network a seed defines.
 *
 * A model is a list of ops (conv, dense, relu, maxpool, flatten) on one
 * input shape. Every conv and dense op is a *masked layer*: bias-free, with
 * frozen signed-constant weights w = sign * c_l and trainable scores.
 * The spec has a stable hash (BLAKE2b-256 of a canonical encoding) so that
 * server, clients and model files can name and check it.
 *
 * Edge order inside a layer is PyTorch's: conv weights are (out_c, in_c, kh,
 * kw) row-major, dense weights are (out, in) row-major. Edge e of a layer is
 * that flat index. Activations are NCHW, flatten is channel-major. */
#ifndef FRL_MODEL_H
#define FRL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/frl_rng.h"

#define FRL_MAX_OPS 40
#define FRL_MAX_LAYERS 16
#define FRL_MODEL_NAME_MAX 16

typedef enum { FRL_OP_CONV = 1, FRL_OP_DENSE = 2, FRL_OP_RELU = 3, FRL_OP_MAXPOOL = 4, FRL_OP_FLATTEN = 5 } frl_op_kind;

typedef struct frl_op_s {
    frl_op_kind kind;
    int in_c, in_h, in_w;    /* input shape of one example (dense: in_c features, h = w = 1) */
    int out_c, out_h, out_w; /* output shape */
    int k, stride, pad;      /* conv: k x k kernel, stride 1, pad; maxpool: k x k window, stride k */
    int layer;               /* masked-layer index for conv/dense, -1 otherwise */
} frl_op_t;

typedef struct frl_layer_info_s {
    int op;           /* index into ops */
    uint32_t n_edges; /* out_c * in_c * k * k, or out * in */
    uint32_t fan_in;  /* in_c * k * k, or in */
    uint32_t n_out;   /* output channels / features */
    uint32_t row;     /* fan_in: edges per output unit */
} frl_layer_info_t;

typedef struct frl_model_spec_s {
    char name[FRL_MODEL_NAME_MAX];
    int in_c, in_h, in_w;
    int n_classes;
    int n_ops;
    frl_op_t ops[FRL_MAX_OPS];
    int n_layers;
    frl_layer_info_t layers[FRL_MAX_LAYERS];
    uint64_t total_edges;
    uint8_t hash[32]; /* BLAKE2b-256 of the canonical encoding (see model.c) */
} frl_model_spec_t;

/* Builds a zoo model: "lenet", "conv2", "conv4", "conv6", "conv8", "mlp".
 * in_c/in_h/in_w/n_classes of 0 take the model's default input (lenet, mlp,
 * conv2: 1x28x28; conv4/6/8: 3x32x32; 10 classes). Returns 0, FRL_EINVAL
 * (unknown name, or a shape the model cannot take). */
int frl_model_spec_build(const char *name, int in_c, int in_h, int in_w, int n_classes, frl_model_spec_t *out);
/* frl_model_spec_build with the default input shape. */
int frl_model_spec_by_name(const char *name, frl_model_spec_t *out);
/* Names of the zoo, NULL-terminated. */
extern const char *const frl_model_names[];
/* Number of floats of activation one example produces at the output of op i. */
size_t frl_op_out_size(const frl_op_t *op);

/* Per-layer constants, bit-identical on every machine:
 *   c_l     = (float)(sqrt(2.0) / sqrt((double)fan_in))   signed-Kaiming constant
 *   bound_l = 1.0 / sqrt((double)fan_in)                  score init U(-bound, bound)
 * (double sqrt and division are correctly rounded IEEE operations). */
float frl_layer_weight_scale(const frl_layer_info_t *l);
double frl_layer_score_bound(const frl_layer_info_t *l);

/* Weight signs of layer `l`: bit (e & 31) of word e >> 5 is 1 for +c, 0 for
 * -c. Words are consecutive little-endian u32 of stream (FRL_STREAM_WEIGHTS,
 * l, 0). `bits` holds (n_edges + 31) / 32 words. */
void frl_weight_signs(const uint8_t seed[FRL_SEED_BYTES], int l, uint32_t n_edges, uint32_t *bits);
/* Initial scores of layer `l`: for e = 0..n-1 in order, u = frl_rng_unit_f32
 * of stream (FRL_STREAM_SCORES, l, 0) and
 *   score[e] = (float)((2.0 * (double)u - 1.0) * bound_l). */
void frl_init_scores(const uint8_t seed[FRL_SEED_BYTES], const frl_layer_info_t *info, int l, float *scores);

/* The frozen network a seed defines: sign bits and constants per layer, and
 * (optionally) each layer's initial scores sorted ascending, which turn a
 * ranking back into scores. */
typedef struct frl_network_s {
    frl_model_spec_t spec;
    uint8_t seed[FRL_SEED_BYTES];
    uint32_t *sign_bits[FRL_MAX_LAYERS];   /* (n_edges + 31) / 32 words each */
    float scale[FRL_MAX_LAYERS];           /* c_l */
    float *sorted_init[FRL_MAX_LAYERS];    /* ascending initial scores, or NULL */
} frl_network_t;

/* Regenerates the network of (spec, seed). With `with_sorted_init`, also the
 * sorted initial scores (4 bytes per edge, and one sort per layer). */
int frl_network_init(frl_network_t *net, const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES],
                     int with_sorted_init);
void frl_network_free(frl_network_t *net);
/* Weight of edge e in layer l: +c or -c. */
static inline float frl_network_weight(const frl_network_t *net, int l, uint32_t e)
{
    return ((net->sign_bits[l][e >> 5] >> (e & 31)) & 1u) ? net->scale[l] : -net->scale[l];
}

#endif
