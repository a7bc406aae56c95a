/* The model zoo as data, its stable hash, and the frozen random network. */
#include "supermask/frl_model.h"
#include "common/frl_error.h"
#include "supermask/frl_ranking.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const char *const frl_model_names[] = {"lenet", "conv2", "conv4", "conv6", "conv8", "mlp", NULL};

/* Shape-tracking builder: each add_* appends one op at the current shape. */
typedef struct {
    frl_model_spec_t *s;
    int c, h, w;
    int err;
} builder;

static frl_op_t *push(builder *b, frl_op_kind kind)
{
    if (b->err || b->s->n_ops >= FRL_MAX_OPS) {
        b->err = FRL_EINVAL;
        return NULL;
    }
    frl_op_t *op = &b->s->ops[b->s->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->in_c = b->c;
    op->in_h = b->h;
    op->in_w = b->w;
    op->layer = -1;
    op->stride = 1;
    return op;
}

static void finish(builder *b, frl_op_t *op)
{
    b->c = op->out_c;
    b->h = op->out_h;
    b->w = op->out_w;
    if (b->c <= 0 || b->h <= 0 || b->w <= 0)
        b->err = FRL_EINVAL;
}

static void add_masked(builder *b, frl_op_t *op, uint32_t fan_in)
{
    if (b->s->n_layers >= FRL_MAX_LAYERS) {
        b->err = FRL_EINVAL;
        return;
    }
    int l = b->s->n_layers++;
    op->layer = l;
    frl_layer_info_t *li = &b->s->layers[l];
    li->op = b->s->n_ops - 1;
    li->fan_in = fan_in;
    li->row = fan_in;
    li->n_out = (uint32_t)op->out_c;
    li->n_edges = (uint32_t)op->out_c * fan_in;
    b->s->total_edges += li->n_edges;
}

static void add_conv(builder *b, int out_c, int k, int pad)
{
    frl_op_t *op = push(b, FRL_OP_CONV);
    if (!op)
        return;
    op->k = k;
    op->pad = pad;
    op->out_c = out_c;
    op->out_h = b->h + 2 * pad - k + 1;
    op->out_w = b->w + 2 * pad - k + 1;
    finish(b, op);
    if (!b->err)
        add_masked(b, op, (uint32_t)(op->in_c * k * k));
}

static void add_relu(builder *b)
{
    frl_op_t *op = push(b, FRL_OP_RELU);
    if (!op)
        return;
    op->out_c = b->c;
    op->out_h = b->h;
    op->out_w = b->w;
    finish(b, op);
}

static void add_pool(builder *b, int k)
{
    frl_op_t *op = push(b, FRL_OP_MAXPOOL);
    if (!op)
        return;
    op->k = k;
    op->stride = k;
    op->out_c = b->c;
    op->out_h = b->h / k;
    op->out_w = b->w / k;
    finish(b, op);
}

static void add_flatten(builder *b)
{
    frl_op_t *op = push(b, FRL_OP_FLATTEN);
    if (!op)
        return;
    op->out_c = b->c * b->h * b->w;
    op->out_h = op->out_w = 1;
    finish(b, op);
}

static void add_dense(builder *b, int out)
{
    frl_op_t *op = push(b, FRL_OP_DENSE);
    if (!op)
        return;
    op->out_c = out;
    op->out_h = op->out_w = 1;
    finish(b, op);
    if (!b->err)
        add_masked(b, op, (uint32_t)op->in_c);
}

/* Canonical encoding: "frl-spec-v1", name (16 bytes, NUL padded), input
 * shape and classes, then per op its 11 integer fields, all le32. */
static void spec_hash(frl_model_spec_t *s)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof s->hash);
    crypto_generichash_update(&st, (const unsigned char *)"frl-spec-v1", 11);
    unsigned char name[FRL_MODEL_NAME_MAX] = {0};
    memcpy(name, s->name, strnlen(s->name, FRL_MODEL_NAME_MAX));
    crypto_generichash_update(&st, name, sizeof name);
    int32_t head[5] = {s->in_c, s->in_h, s->in_w, s->n_classes, s->n_ops};
    for (int i = 0; i < 5; i++) {
        unsigned char le[4] = {(unsigned char)head[i], (unsigned char)(head[i] >> 8), (unsigned char)(head[i] >> 16),
                               (unsigned char)(head[i] >> 24)};
        crypto_generichash_update(&st, le, 4);
    }
    for (int i = 0; i < s->n_ops; i++) {
        const frl_op_t *o = &s->ops[i];
        int32_t f[11] = {(int32_t)o->kind, o->in_c, o->in_h, o->in_w, o->out_c, o->out_h, o->out_w, o->k, o->stride, o->pad, o->layer};
        for (int j = 0; j < 11; j++) {
            unsigned char le[4] = {(unsigned char)f[j], (unsigned char)(f[j] >> 8), (unsigned char)(f[j] >> 16),
                                   (unsigned char)(f[j] >> 24)};
            crypto_generichash_update(&st, le, 4);
        }
    }
    crypto_generichash_final(&st, s->hash, sizeof s->hash);
}

/* conv stack of edge-popup's ConvN: pairs of 3x3 convs (pad 1), each pair
 * followed by a 2x2 max-pool. */
static void conv_stack(builder *b, const int *widths, int pairs)
{
    for (int p = 0; p < pairs; p++) {
        add_conv(b, widths[p], 3, 1);
        add_relu(b);
        add_conv(b, widths[p], 3, 1);
        add_relu(b);
        add_pool(b, 2);
    }
}

int frl_model_spec_build(const char *name, int in_c, int in_h, int in_w, int n_classes, frl_model_spec_t *out)
{
    if (!name || !out)
        return FRL_EINVAL;
    int big = strcmp(name, "conv4") == 0 || strcmp(name, "conv6") == 0 || strcmp(name, "conv8") == 0;
    memset(out, 0, sizeof *out);
    if (strlen(name) >= FRL_MODEL_NAME_MAX)
        return FRL_EINVAL;
    strcpy(out->name, name);
    out->in_c = in_c ? in_c : (big ? 3 : 1);
    out->in_h = in_h ? in_h : (big ? 32 : 28);
    out->in_w = in_w ? in_w : (big ? 32 : 28);
    out->n_classes = n_classes ? n_classes : 10;
    if (out->in_c < 0 || out->in_h < 0 || out->in_w < 0 || out->n_classes < 2 || out->in_c > 4096 || out->in_h > 4096 ||
        out->in_w > 4096)
        return FRL_EINVAL;
    builder b = {out, out->in_c, out->in_h, out->in_w, 0};
    static const int widths[4] = {64, 128, 256, 512};
    if (strcmp(name, "lenet") == 0) {
        /* FRL's MNIST model (models/small.py LeNet). */
        add_conv(&b, 32, 3, 1);
        add_relu(&b);
        add_conv(&b, 64, 3, 1);
        add_relu(&b);
        add_pool(&b, 2);
        add_flatten(&b);
        add_dense(&b, 128);
        add_relu(&b);
        add_dense(&b, out->n_classes);
    } else if (strcmp(name, "conv2") == 0 || big) {
        conv_stack(&b, widths, (name[4] - '0') / 2); /* conv2: 1 pair, conv8: 4 pairs */
        add_flatten(&b);
        add_dense(&b, 256);
        add_relu(&b);
        add_dense(&b, 256);
        add_relu(&b);
        add_dense(&b, out->n_classes);
    } else if (strcmp(name, "mlp") == 0) {
        add_flatten(&b);
        add_dense(&b, 128);
        add_relu(&b);
        add_dense(&b, out->n_classes);
    } else {
        return FRL_EINVAL;
    }
    if (b.err || out->total_edges > UINT32_MAX)
        return FRL_EINVAL;
    spec_hash(out);
    return 0;
}

int frl_model_spec_by_name(const char *name, frl_model_spec_t *out)
{
    return frl_model_spec_build(name, 0, 0, 0, 0, out);
}

size_t frl_op_out_size(const frl_op_t *op)
{
    return (size_t)op->out_c * (size_t)op->out_h * (size_t)op->out_w;
}

float frl_layer_weight_scale(const frl_layer_info_t *l)
{
    return (float)(sqrt(2.0) / sqrt((double)l->fan_in));
}

double frl_layer_score_bound(const frl_layer_info_t *l)
{
    return 1.0 / sqrt((double)l->fan_in);
}

void frl_weight_signs(const uint8_t seed[FRL_SEED_BYTES], int l, uint32_t n_edges, uint32_t *bits)
{
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_WEIGHTS, (uint32_t)l, 0);
    uint32_t words = (n_edges + 31) / 32;
    for (uint32_t i = 0; i < words; i++)
        bits[i] = frl_rng_u32(&rng);
    if (n_edges % 32) /* keep the unused tail bits zero so the array is canonical */
        bits[words - 1] &= (1u << (n_edges % 32)) - 1u;
}

void frl_init_scores(const uint8_t seed[FRL_SEED_BYTES], const frl_layer_info_t *info, int l, float *scores)
{
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_SCORES, (uint32_t)l, 0);
    double bound = frl_layer_score_bound(info);
    for (uint32_t e = 0; e < info->n_edges; e++) {
        double u = (double)frl_rng_unit_f32(&rng);
        scores[e] = (float)((2.0 * u - 1.0) * bound);
    }
}

int frl_network_init(frl_network_t *net, const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES],
                     int with_sorted_init)
{
    memset(net, 0, sizeof *net);
    net->spec = *spec;
    memcpy(net->seed, seed, FRL_SEED_BYTES);
    for (int l = 0; l < spec->n_layers; l++) {
        const frl_layer_info_t *li = &spec->layers[l];
        net->scale[l] = frl_layer_weight_scale(li);
        net->sign_bits[l] = malloc(sizeof(uint32_t) * ((li->n_edges + 31) / 32));
        if (!net->sign_bits[l])
            goto fail;
        frl_weight_signs(seed, l, li->n_edges, net->sign_bits[l]);
        if (with_sorted_init) {
            /* Values only (no indices), so any correct sort gives the same
             * array; the O(n) radix argsort beats qsort 10x on 1.6 M edges. */
            float *init = malloc(sizeof(float) * li->n_edges);
            uint32_t *order = malloc(sizeof(uint32_t) * li->n_edges);
            uint32_t *scratch = malloc(frl_ranking_scratch_size(li->n_edges));
            net->sorted_init[l] = malloc(sizeof(float) * li->n_edges);
            int ok = init && order && scratch && net->sorted_init[l];
            if (ok) {
                frl_init_scores(seed, li, l, init);
                frl_ranking_from_scores(init, li->n_edges, order, scratch);
                for (uint32_t r = 0; r < li->n_edges; r++)
                    net->sorted_init[l][r] = init[order[r]];
            }
            free(init);
            free(order);
            free(scratch);
            if (!ok)
                goto fail;
        }
    }
    return 0;
fail:
    frl_network_free(net);
    return FRL_ENOMEM;
}

void frl_network_free(frl_network_t *net)
{
    for (int l = 0; l < FRL_MAX_LAYERS; l++) {
        free(net->sign_bits[l]);
        free(net->sorted_init[l]);
        net->sign_bits[l] = NULL;
        net->sorted_init[l] = NULL;
    }
}
