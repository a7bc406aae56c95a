/* Edge-popup training: forward with the top-k masked weights, straight-
 * through backward to the scores, SGD with momentum and weight decay, and an
 * exact per-layer top-k mask recomputed after every update.
 *
 * Keeping the mask exact every step is the expensive part on big layers
 * (lenet's fc1 has 1.6 M edges): a full selection costs ~10 ms. Scores move
 * little per step, so the trainer remembers each layer's threshold key and
 * collects, during the SGD pass, the keys in a narrow band around it. The
 * new threshold is selected inside the band when the band holds it (almost
 * always), else by a full selection, so the mask is always the exact one. */
#include "supermask/frl_train.h"
#include "common/frl_error.h"
#include "supermask/frl_ops.h"
#include "supermask/ranking_internal.h"
#include "common/frl_file.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FRL_BAND_MIN_EDGES 65536 /* smaller layers just select in full */
#define FRL_FUSED_MAX_B 64        /* largest step the fused dense SGD pass takes */

typedef struct {
    uint32_t n;
    float *scores, *mom, *grad, *weff; /* n floats each; grad doubles as selection scratch */
    uint32_t t_key;                    /* threshold key: keys < t_key are dropped */
    uint32_t eq_drop;                  /* keys == t_key dropped, lowest index first */
    uint32_t j;                        /* edges dropped */
    int have_t;
    /* The threshold of any scores set from a ranking: they are a permutation
     * of sorted_init, so their keys are the same multiset whatever the
     * ranking, and so are t_key and eq_drop. Found once, reused. */
    uint32_t init_t_key, init_eq_drop;
    int have_init_t;
    uint32_t delta;     /* half-width of the band, in key units */
    uint32_t *band;     /* band keys, capacity band_cap */
    uint32_t band_cap;
    uint32_t band_n, below_lo; /* filled by the SGD pass */
    int band_overflow;
    /* Big dense layers fuse dL/dweff = dout^T * inp into the SGD pass, so
     * the (out x in) gradient is never written: dout is copied here, inp
     * stays in the activations until the next forward. */
    int fused;
    float *dout;       /* (B, out) */
    const float *inp;  /* (B, in) */
    int fused_B;
} layer_state;

struct frl_trainer_s {
    const frl_network_t *net;
    const frl_model_spec_t *spec;
    int max_batch;
    double keep;
    frl_mask_rule rule;
    layer_state L[FRL_MAX_LAYERS];
    float *input;                 /* (B, in_c, in_h, in_w) */
    float *act[FRL_MAX_OPS];      /* output of op i (aliases for relu/flatten) */
    int32_t *argmax[FRL_MAX_OPS]; /* maxpool winners */
    float *dbuf[2];               /* activation-gradient ping-pong */
    float *conv_scratch;
    float *probs;
    uint8_t *labels;
    size_t bytes;
    uint64_t full_selects;
};

/* ------------------------------------------------------------------ keys */

static inline uint32_t score_key(float s, frl_mask_rule rule)
{
    return rule == FRL_MASK_ABS ? frl__float_key(fabsf(s)) : frl__float_key(s);
}

/* Exact threshold by a full selection over the layer (grad is scratch). */
static void full_select(frl_trainer_t *tr, layer_state *ls)
{
    uint32_t *keys = (uint32_t *)ls->grad;
    for (uint32_t e = 0; e < ls->n; e++)
        keys[e] = score_key(ls->scores[e], tr->rule);
    uint32_t t = frl__select_kth(keys, ls->n, ls->j - 1);
    uint32_t below = 0;
    for (uint32_t e = 0; e < ls->n; e++)
        below += score_key(ls->scores[e], tr->rule) < t;
    ls->t_key = t;
    ls->eq_drop = ls->j - below;
    ls->have_t = 1;
    tr->full_selects++;
}

/* Threshold from the band collected by the SGD pass, or a full selection
 * when the band missed it. Adapts the band width. */
static void update_threshold(frl_trainer_t *tr, layer_state *ls)
{
    if (ls->j == 0)
        return;
    if (ls->n < FRL_BAND_MIN_EDGES || !ls->have_t || ls->band_overflow || ls->below_lo >= ls->j ||
        ls->below_lo + ls->band_n < ls->j) {
        if (ls->band_overflow && ls->delta > 1)
            ls->delta /= 2;
        else if (ls->have_t && ls->n >= FRL_BAND_MIN_EDGES)
            ls->delta = ls->delta > (UINT32_MAX >> 3) ? UINT32_MAX >> 2 : ls->delta * 4;
        full_select(tr, ls);
        return;
    }
    uint32_t t = frl__select_kth(ls->band, ls->band_n, ls->j - 1 - ls->below_lo);
    uint32_t below = ls->below_lo;
    for (uint32_t i = 0; i < ls->band_n; i++)
        below += ls->band[i] < t;
    ls->t_key = t;
    ls->eq_drop = ls->j - below;
    /* Keep the band between 1/16 and 1/2 of its capacity. */
    if (ls->band_n > ls->band_cap / 2 && ls->delta > 1)
        ls->delta /= 2;
    else if (ls->band_n < ls->band_cap / 16 && ls->delta < (UINT32_MAX >> 3))
        ls->delta *= 2;
}

/* Hot per-edge loops are written branch-free so that the compiler
 * vectorises them; target_clones picks AVX-512 / AVX2 / SSE2 at run time
 * (the portable build has no -march). Mispredicted branches on random signs
 * cost ~30 ns per edge on the 1.6 M-edge layer otherwise. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FRL_SANITIZE)
#define FRL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FRL_CLONES
#endif

/* Signed constant of edge e from its sign bit: +c for 1, -c for 0. */
static inline float weight_of(const uint32_t *bits, uint32_t e, float c)
{
    return (float)(int)(((bits[e >> 5] >> (e & 31)) & 1u) * 2u - 1u) * c;
}

static inline uint32_t abs_key(float s)
{
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    return (u & 0x7fffffffu) | 0x80000000u;
}

/* Branch-free key of a float's bits (see float_key). */
static inline __attribute__((always_inline)) uint32_t key_bits(uint32_t u, int abs_rule)
{
    return abs_rule ? ((u & 0x7fffffffu) | 0x80000000u) : (u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u));
}

/* Loops run over whole 32-edge words of sign bits so that the sign of each
 * lane is a variable shift of one broadcast word (vectorises cleanly). The
 * tail (n % 32 edges) goes through the same body with a shorter count. */
static inline __attribute__((always_inline)) uint32_t weff_loop(float *restrict weff, const float *restrict s,
                                                                 const uint32_t *restrict bits, float c, uint32_t n, uint32_t t,
                                                                 const int abs_rule)
{
    uint32_t eq = 0;
    for (uint32_t base = 0; base < n; base += 32) {
        const uint32_t b = bits[base >> 5];
        const uint32_t cnt = n - base < 32 ? n - base : 32;
        float *restrict wo = weff + base;
        const float *restrict so = s + base;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t u;
            memcpy(&u, &so[i], sizeof u);
            uint32_t k = key_bits(u, abs_rule);
            float w = (float)(int)(((b >> i) & 1u) * 2u - 1u) * c;
            wo[i] = w * (float)(k > t);
            eq += k == t;
        }
    }
    return eq;
}

FRL_CLONES
static uint32_t weff_pass(float *restrict weff, const float *restrict s, const uint32_t *restrict bits, float c, uint32_t n,
                          uint32_t t, int abs_rule)
{
    return abs_rule ? weff_loop(weff, s, bits, c, n, t, 1) : weff_loop(weff, s, bits, c, n, t, 0);
}

/* weff = w * mask under the current threshold. Keys equal to the threshold
 * are dropped lowest index first (eq_drop of them), the rest kept. The pass
 * drops them all; only when more keys tie than are dropped (rare: usually
 * exactly one key equals the threshold) does a fix-up keep the later ones. */
static void build_weff(frl_trainer_t *tr, int l)
{
    layer_state *ls = &tr->L[l];
    const uint32_t *bits = tr->net->sign_bits[l];
    const float c = tr->net->scale[l];
    const uint32_t t = ls->j ? ls->t_key : 0;
    uint32_t eq = weff_pass(ls->weff, ls->scores, bits, c, ls->n, t, tr->rule == FRL_MASK_ABS);
    if (ls->j == 0 || eq <= ls->eq_drop)
        return;
    uint32_t seen = 0;
    for (uint32_t e = 0; e < ls->n; e++) {
        if (score_key(ls->scores[e], tr->rule) == t && seen++ >= ls->eq_drop)
            ls->weff[e] = weight_of(bits, e, c);
    }
}

static void refresh_layer(frl_trainer_t *tr, int l)
{
    layer_state *ls = &tr->L[l];
    if (ls->j)
        full_select(tr, ls);
    build_weff(tr, l);
}

int frl_trainer_refresh(frl_trainer_t *tr)
{
    for (int l = 0; l < tr->spec->n_layers; l++)
        refresh_layer(tr, l);
    return 0;
}

/* --------------------------------------------------------------- create */

void frl_train_cfg_default(frl_train_cfg_t *cfg)
{
    cfg->keep = 0.5;
    cfg->rule = FRL_MASK_ABS;
    cfg->lr = 0.4;
    cfg->momentum = 0.9;
    cfg->weight_decay = 1e-4;
    cfg->batch = 8;
    cfg->epochs = 1;
    cfg->cosine = 1;
    cfg->mean = 0.2860f;
    cfg->std = 0.3530f;
}

double frl_train_round_lr(double lr0, double decay, int round)
{
    return lr0 * pow(decay, (double)round);
}

static void *xalloc(frl_trainer_t *tr, size_t bytes)
{
    bytes = bytes ? bytes : 1;
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (p)
        tr->bytes += bytes;
    return p;
}

void frl_trainer_destroy(frl_trainer_t *tr)
{
    if (!tr)
        return;
    for (int l = 0; l < FRL_MAX_LAYERS; l++) {
        free(tr->L[l].scores);
        free(tr->L[l].mom);
        free(tr->L[l].grad);
        free(tr->L[l].weff);
        free(tr->L[l].band);
        free(tr->L[l].dout);
    }
    for (int i = 0; i < FRL_MAX_OPS; i++) {
        const frl_op_t *op = &tr->spec->ops[i];
        if (i < tr->spec->n_ops && (op->kind == FRL_OP_CONV || op->kind == FRL_OP_DENSE || op->kind == FRL_OP_MAXPOOL))
            free(tr->act[i]);
        free(tr->argmax[i]);
    }
    free(tr->input);
    free(tr->dbuf[0]);
    free(tr->dbuf[1]);
    free(tr->conv_scratch);
    free(tr->probs);
    free(tr->labels);
    free(tr);
}

int frl_trainer_create(const frl_network_t *net, int max_batch, double keep, frl_mask_rule rule, frl_trainer_t **out)
{
    *out = NULL;
    if (!net || max_batch < 1 || max_batch > 65536 || keep < 0.0 || keep > 1.0)
        return FRL_EINVAL;
    frl_trainer_t *tr = calloc(1, sizeof *tr);
    if (!tr)
        return FRL_ENOMEM;
    tr->net = net;
    tr->spec = &net->spec;
    tr->max_batch = max_batch;
    tr->keep = keep;
    tr->rule = rule;
    const frl_model_spec_t *s = tr->spec;
    size_t B = (size_t)max_batch;
    size_t in_size = (size_t)s->in_c * s->in_h * s->in_w;
    size_t max_act = in_size, conv_scratch = 0;
    tr->input = xalloc(tr, sizeof(float) * B * in_size);
    if (!tr->input)
        goto oom;
    const float *prev = tr->input;
    for (int i = 0; i < s->n_ops; i++) {
        const frl_op_t *op = &s->ops[i];
        size_t osz = frl_op_out_size(op);
        if (osz > max_act)
            max_act = osz;
        switch (op->kind) {
        case FRL_OP_CONV: {
            size_t cs = frl_conv2d_scratch_floats(op->in_c, op->in_h, op->in_w, op->k, op->pad);
            if (cs > conv_scratch)
                conv_scratch = cs;
        } /* fall through */
        case FRL_OP_DENSE:
            tr->act[i] = xalloc(tr, sizeof(float) * B * osz);
            break;
        case FRL_OP_MAXPOOL:
            tr->act[i] = xalloc(tr, sizeof(float) * B * osz);
            tr->argmax[i] = xalloc(tr, sizeof(int32_t) * B * osz);
            if (!tr->argmax[i])
                goto oom;
            break;
        case FRL_OP_RELU:
        case FRL_OP_FLATTEN:
            tr->act[i] = (float *)prev; /* in place */
            break;
        }
        if (!tr->act[i])
            goto oom;
        prev = tr->act[i];
    }
    tr->dbuf[0] = xalloc(tr, sizeof(float) * B * max_act);
    tr->dbuf[1] = xalloc(tr, sizeof(float) * B * max_act);
    tr->conv_scratch = xalloc(tr, sizeof(float) * conv_scratch);
    tr->probs = xalloc(tr, sizeof(float) * B * (size_t)s->n_classes);
    tr->labels = xalloc(tr, B);
    if (!tr->dbuf[0] || !tr->dbuf[1] || !tr->conv_scratch || !tr->probs || !tr->labels)
        goto oom;
    for (int l = 0; l < s->n_layers; l++) {
        layer_state *ls = &tr->L[l];
        ls->n = s->layers[l].n_edges;
        ls->j = frl_mask_dropped(ls->n, keep);
        ls->scores = xalloc(tr, sizeof(float) * ls->n);
        ls->mom = xalloc(tr, sizeof(float) * ls->n);
        ls->grad = xalloc(tr, sizeof(float) * ls->n);
        ls->weff = xalloc(tr, sizeof(float) * ls->n);
        ls->band_cap = ls->n / 128 > 4096 ? ls->n / 128 : 4096;
        ls->band = xalloc(tr, sizeof(uint32_t) * ls->band_cap);
        ls->delta = 1u << 14;
        const frl_op_t *op = &s->ops[s->layers[l].op];
        /* Fused for steps of at most FRL_FUSED_MAX_B examples (training
         * batches), whatever max_batch the trainer also serves (a
         * simulator's trainer evaluates in batches of 500): the same
         * arithmetic for a client's steps wherever it runs. */
        ls->fused = op->kind == FRL_OP_DENSE && ls->n >= FRL_BAND_MIN_EDGES && op->in_c % 32 == 0;
        if (ls->fused && !(ls->dout = xalloc(tr, sizeof(float) * (B < FRL_FUSED_MAX_B ? B : FRL_FUSED_MAX_B) * (size_t)op->out_c)))
            goto oom;
        if (!ls->scores || !ls->mom || !ls->grad || !ls->weff || !ls->band)
            goto oom;
    }
    frl_trainer_reset_scores(tr);
    *out = tr;
    return 0;
oom:
    frl_trainer_destroy(tr);
    return FRL_ENOMEM;
}

size_t frl_trainer_bytes(const frl_trainer_t *tr)
{
    return tr->bytes;
}

float *frl_trainer_scores(frl_trainer_t *tr, int l)
{
    return (l >= 0 && l < tr->spec->n_layers) ? tr->L[l].scores : NULL;
}

const float *frl_trainer_weights(const frl_trainer_t *tr, int l)
{
    return (l >= 0 && l < tr->spec->n_layers) ? tr->L[l].weff : NULL;
}

int frl_trainer_reset_scores(frl_trainer_t *tr)
{
    for (int l = 0; l < tr->spec->n_layers; l++)
        frl_init_scores(tr->net->seed, &tr->spec->layers[l], l, tr->L[l].scores);
    return frl_trainer_refresh(tr);
}

int frl_trainer_set_ranking(frl_trainer_t *tr, const uint32_t *ranking)
{
    if (!ranking)
        return FRL_EINVAL;
    for (int l = 0; l < tr->spec->n_layers; l++) {
        if (!tr->net->sorted_init[l])
            return FRL_ESTATE;
        frl_scores_from_ranking(ranking, tr->net->sorted_init[l], tr->L[l].n, tr->L[l].scores);
        ranking += tr->L[l].n;
    }
    for (int l = 0; l < tr->spec->n_layers; l++) {
        layer_state *ls = &tr->L[l];
        if (ls->j && ls->have_init_t) {
            ls->t_key = ls->init_t_key;
            ls->eq_drop = ls->init_eq_drop;
            ls->have_t = 1;
        } else if (ls->j) {
            full_select(tr, ls);
            ls->init_t_key = ls->t_key;
            ls->init_eq_drop = ls->eq_drop;
            ls->have_init_t = 1;
        }
        build_weff(tr, l);
    }
    return 0;
}

int frl_trainer_get_ranking(frl_trainer_t *tr, uint32_t *ranking)
{
    for (int l = 0; l < tr->spec->n_layers; l++) {
        layer_state *ls = &tr->L[l];
        /* grad is free between steps: it is the radix sort's scratch. */
        int rc = frl_ranking_from_scores(ls->scores, ls->n, ranking, ls->grad);
        if (rc)
            return rc;
        ranking += ls->n;
    }
    return 0;
}

/* ------------------------------------------------------------- forward */

static void load_batch(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *ex, int B, const frl_train_cfg_t *cfg)
{
    size_t px = (size_t)data->rows * data->cols;
    /* x = (p / 255 - mean) / std, computed as p * a + b with a, b in float */
    const float a = 1.0f / (255.0f * cfg->std), b = -cfg->mean / cfg->std;
    for (int i = 0; i < B; i++) {
        const uint8_t *src = data->images + (size_t)ex[i] * px;
        float *dst = tr->input + (size_t)i * px;
        for (size_t k = 0; k < px; k++)
            dst[k] = (float)src[k] * a + b;
        tr->labels[i] = data->labels[ex[i]];
    }
}

static int forward(frl_trainer_t *tr, int B)
{
    const frl_model_spec_t *s = tr->spec;
    const float *in = tr->input;
    for (int i = 0; i < s->n_ops; i++) {
        const frl_op_t *op = &s->ops[i];
        int rc = 0;
        switch (op->kind) {
        case FRL_OP_CONV:
            rc = frl_conv2d_forward(tr->act[i], in, tr->L[op->layer].weff, B, op->in_c, op->in_h, op->in_w, op->out_c, op->k,
                                    op->pad, tr->conv_scratch);
            break;
        case FRL_OP_DENSE:
            rc = frl_dense_forward(tr->act[i], in, tr->L[op->layer].weff, B, op->in_c, op->out_c);
            break;
        case FRL_OP_RELU:
            frl_relu_forward(tr->act[i], in, (size_t)B * frl_op_out_size(op));
            break;
        case FRL_OP_MAXPOOL:
            rc = frl_maxpool_forward(tr->act[i], tr->argmax[i], in, B, op->in_c, op->in_h, op->in_w, op->k);
            break;
        case FRL_OP_FLATTEN:
            break;
        }
        if (rc)
            return rc;
        in = tr->act[i];
    }
    return 0;
}

/* Backward from dlogits (in dbuf[0]) to every layer's grad = dL/dweff. */
static int backward(frl_trainer_t *tr, int B)
{
    const frl_model_spec_t *s = tr->spec;
    int cur = 0;
    for (int i = s->n_ops - 1; i >= 0; i--) {
        const frl_op_t *op = &s->ops[i];
        const float *in = i ? tr->act[i - 1] : tr->input;
        float *dout = tr->dbuf[cur];
        float *dinp = i ? tr->dbuf[cur ^ 1] : NULL;
        int rc = 0;
        switch (op->kind) {
        case FRL_OP_CONV:
            rc = frl_conv2d_backward(dinp, tr->L[op->layer].grad, dout, in, tr->L[op->layer].weff, B, op->in_c, op->in_h,
                                     op->in_w, op->out_c, op->k, op->pad, tr->conv_scratch);
            cur ^= 1;
            break;
        case FRL_OP_DENSE: {
            layer_state *ls = &tr->L[op->layer];
            if (ls->fused && B <= FRL_FUSED_MAX_B) {
                /* dinp (B, in) = dout (B, out) * weff (out, in); the weight
                 * gradient is left to the fused SGD pass. */
                memcpy(ls->dout, dout, sizeof(float) * (size_t)B * (size_t)op->out_c);
                ls->inp = in;
                ls->fused_B = B;
                if (dinp)
                    rc = frl_dense_backward(dinp, NULL, dout, NULL, ls->weff, B, op->in_c, op->out_c);
            } else {
                ls->fused_B = 0; /* this step's gradient is materialised */
                rc = frl_dense_backward(dinp, ls->grad, dout, in, ls->weff, B, op->in_c, op->out_c);
            }
            cur ^= 1;
            break;
        }
        case FRL_OP_RELU:
            frl_relu_backward(dout, dout, tr->act[i], (size_t)B * frl_op_out_size(op));
            break;
        case FRL_OP_MAXPOOL:
            if (dinp)
                rc = frl_maxpool_backward(dinp, dout, tr->argmax[i], B, op->in_c, op->in_h, op->in_w, op->k);
            cur ^= 1;
            break;
        case FRL_OP_FLATTEN:
            break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* The band of keys around the previous threshold, [lo, lo + width],
 * gathered over one or several ranges of a layer's scores. */
typedef struct {
    uint32_t lo, width, cap, below, bn;
    uint32_t *band;
} band_acc;

static inline void band_begin(band_acc *a, const layer_state *ls)
{
    a->lo = ls->t_key > ls->delta ? ls->t_key - ls->delta : 0;
    uint32_t hi = ls->t_key < UINT32_MAX - ls->delta ? ls->t_key + ls->delta : UINT32_MAX;
    a->width = hi - a->lo;
    a->cap = ls->band_cap;
    a->band = ls->band;
    a->below = 0;
    a->bn = 0;
}

static inline void band_end(const band_acc *a, layer_state *ls)
{
    ls->below_lo = a->below;
    ls->band_n = a->bn > a->cap ? a->cap : a->bn;
    ls->band_overflow = a->bn > a->cap;
}

static inline __attribute__((always_inline)) void band_range(band_acc *a, const float *restrict s, uint32_t n, const int abs_rule)
{
    const uint32_t lo = a->lo, width = a->width, cap = a->cap;
    uint32_t below = a->below, bn = a->bn;
    for (uint32_t base = 0; base < n; base += 64) {
        const uint32_t cnt = n - base < 64 ? n - base : 64;
        uint32_t in = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t u;
            memcpy(&u, &s[base + i], sizeof u);
            uint32_t k = key_bits(u, abs_rule);
            below += k < lo;
            in += k - lo <= width;
        }
        if (!in)
            continue;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t u;
            memcpy(&u, &s[base + i], sizeof u);
            uint32_t k = key_bits(u, abs_rule);
            if (k - lo <= width) {
                if (bn < cap)
                    a->band[bn] = k;
                bn++;
            }
        }
    }
    a->below = below;
    a->bn = bn;
}

static inline __attribute__((always_inline)) void sgd_loop(float *restrict s, float *restrict m, const float *restrict g,
                                                           const uint32_t *restrict bits, float c, uint32_t n, float lr,
                                                           float momentum, float wd, const int abs_rule)
{
    for (uint32_t base = 0; base < n; base += 32) {
        const uint32_t b = bits[base >> 5];
        const uint32_t cnt = n - base < 32 ? n - base : 32;
        float *restrict so = s + base, *restrict mo = m + base;
        const float *restrict go = g + base;
        for (uint32_t i = 0; i < cnt; i++) {
            float sv = so[i];
            float gs = (float)(int)(((b >> i) & 1u) * 2u - 1u) * c * go[i];
            /* d|s|/ds = sign(s), with sign(0) = 0 as torch */
            float sg = abs_rule ? (float)((sv > 0.0f) - (sv < 0.0f)) : 1.0f;
            gs = gs * sg + wd * sv;
            float mv = momentum * mo[i] + gs;
            mo[i] = mv;
            so[i] = sv - lr * mv;
        }
    }
}

/* The SGD step of a big dense layer with its weight gradient computed on
 * the fly: for output o and input i, g = sum_b dout[b][o] * inp[b][i]. */
static inline __attribute__((always_inline)) void sgd_fused_loop(float *restrict s, float *restrict m, const float *restrict dout,
                                                                 const float *restrict inp, int B, uint32_t n_out, uint32_t n_in,
                                                                 const uint32_t *restrict bits, float c, float lr, float momentum,
                                                                 float wd, const int abs_rule, band_acc *ba)
{
    /* Blocks of 32 edges of one output row: the gradient block is a sum of
     * B scaled input slices (vectorised over the 32 lanes), then the same
     * update as sgd_loop. A block never straddles two rows, so a row's edges
     * e = o * n_in + i keep their sign bits at e >> 5, bit e & 31. */
    float g[32];
    for (uint32_t o = 0; o < n_out; o++) {
        const size_t row = (size_t)o * n_in;
        for (uint32_t i0 = 0; i0 < n_in; i0 += 32) {
            const uint32_t cnt = n_in - i0 < 32 ? n_in - i0 : 32;
            for (uint32_t i = 0; i < 32; i++)
                g[i] = 0.0f;
            for (int b = 0; b < B; b++) {
                const float cb = dout[(size_t)b * n_out + o];
                const float *restrict x = inp + (size_t)b * n_in + i0;
                for (uint32_t i = 0; i < cnt; i++)
                    g[i] += cb * x[i];
            }
            float *restrict so = s + row + i0, *restrict mo = m + row + i0;
            /* n_in % 32 == 0 (checked by the caller): one sign word per block */
            const uint32_t word = bits[(row + i0) >> 5];
            for (uint32_t i = 0; i < cnt; i++) {
                float sv = so[i];
                float gs = (float)(int)(((word >> i) & 1u) * 2u - 1u) * c * g[i];
                float sg = abs_rule ? (float)((sv > 0.0f) - (sv < 0.0f)) : 1.0f;
                gs = gs * sg + wd * sv;
                float mv = momentum * mo[i] + gs;
                mo[i] = mv;
                so[i] = sv - lr * mv;
            }
        }
        /* The row's new scores are still in cache: gather its band now
         * rather than in a pass of its own over the whole layer. */
        if (ba)
            band_range(ba, s + row, n_in, abs_rule);
    }
}

FRL_CLONES
static void sgd_fused_pass(float *restrict s, float *restrict m, const float *restrict dout, const float *restrict inp, int B,
                           uint32_t n_out, uint32_t n_in, const uint32_t *restrict bits, float c, float lr, float momentum,
                           float wd, int abs_rule, band_acc *ba)
{
    if (abs_rule)
        sgd_fused_loop(s, m, dout, inp, B, n_out, n_in, bits, c, lr, momentum, wd, 1, ba);
    else
        sgd_fused_loop(s, m, dout, inp, B, n_out, n_in, bits, c, lr, momentum, wd, 0, ba);
}

FRL_CLONES
static void sgd_pass(float *restrict s, float *restrict m, const float *restrict g, const uint32_t *restrict bits, float c,
                     uint32_t n, float lr, float momentum, float wd, int abs_rule)
{
    if (abs_rule)
        sgd_loop(s, m, g, bits, c, n, lr, momentum, wd, 1);
    else
        sgd_loop(s, m, g, bits, c, n, lr, momentum, wd, 0);
}

/* Counts keys below the band and collects the band's keys.
 * Blocks of 64 edges are first counted with branch-free (vectorised) code;
 * only blocks that hold a band key (the band is ~0.1-1% of the edges) are
 * scanned one edge at a time. */
static inline __attribute__((always_inline)) void band_loop(layer_state *ls, const int abs_rule)
{
    band_acc a;
    band_begin(&a, ls);
    band_range(&a, ls->scores, ls->n, abs_rule);
    band_end(&a, ls);
}

FRL_CLONES
static void band_pass(layer_state *ls, frl_mask_rule rule)
{
    if (rule == FRL_MASK_ABS)
        band_loop(ls, 1);
    else
        band_loop(ls, 0);
}

/* One SGD step on layer l's scores with the straight-through gradient
 *   dL/ds = sign(s) * w * dL/dweff        (abs rule; w * dL/dweff for signed)
 * plus weight decay, momentum buf = m * buf + g, s -= lr * buf (PyTorch's
 * SGD without dampening or Nesterov), then the band of keys around the
 * previous threshold for the next mask. */
static void sgd_layer(frl_trainer_t *tr, int l, float lr, float momentum, float wd)
{
    layer_state *ls = &tr->L[l];
    const int want_band = ls->j && ls->have_t && ls->n >= FRL_BAND_MIN_EDGES;
    if (ls->fused && ls->fused_B > 0) {
        const frl_layer_info_t *li = &tr->spec->layers[l];
        band_acc ba;
        if (want_band)
            band_begin(&ba, ls);
        sgd_fused_pass(ls->scores, ls->mom, ls->dout, ls->inp, ls->fused_B, li->n_out, li->fan_in, tr->net->sign_bits[l],
                       tr->net->scale[l], lr, momentum, wd, tr->rule == FRL_MASK_ABS, want_band ? &ba : NULL);
        if (want_band)
            band_end(&ba, ls);
        return;
    }
    sgd_pass(ls->scores, ls->mom, ls->grad, tr->net->sign_bits[l], tr->net->scale[l], ls->n, lr, momentum, wd,
             tr->rule == FRL_MASK_ABS);
    if (want_band)
        band_pass(ls, tr->rule);
}

int frl_train_local(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *idx, uint32_t n, const frl_train_cfg_t *cfg,
                    frl_rng_t *rng, frl_train_stats_t *stats, frl_train_progress_fn progress, void *user)
{
    if (!tr || !data || !cfg || !rng || cfg->batch < 1 || cfg->batch > tr->max_batch || cfg->epochs < 0 || !(cfg->std > 0.0f))
        return FRL_EINVAL;
    if (cfg->keep != tr->keep || cfg->rule != tr->rule)
        return FRL_EMISMATCH;
    if ((int)(data->rows * data->cols) != tr->spec->in_c * tr->spec->in_h * tr->spec->in_w)
        return FRL_EMISMATCH;
    if (!idx && n > data->n)
        return FRL_ERANGE;
    for (uint32_t i = 0; idx && i < n; i++)
        if (idx[i] >= data->n)
            return FRL_ERANGE;
    frl_train_stats_t st;
    memset(&st, 0, sizeof st);
    double t0 = frl_now_s();
    uint64_t full0 = tr->full_selects;
    /* The epoch order is the only allocation of a round (n indices). */
    uint32_t *order = malloc(sizeof(uint32_t) * (n ? n : 1));
    if (!order)
        return FRL_ENOMEM;
    for (int l = 0; l < tr->spec->n_layers; l++)
        memset(tr->L[l].mom, 0, sizeof(float) * tr->L[l].n);
    const uint64_t steps_per_epoch = (n + (uint32_t)cfg->batch - 1) / (uint32_t)cfg->batch;
    const uint64_t steps_total = steps_per_epoch * (uint64_t)cfg->epochs;
    const uint64_t every = steps_total / 100 ? steps_total / 100 : 1;
    int rc = 0;
    for (int ep = 0; ep < cfg->epochs && !rc; ep++) {
        double lr = cfg->lr;
        if (cfg->cosine && cfg->epochs > 1)
            lr = cfg->lr * (1.0 + cos(M_PI * (double)ep / (double)cfg->epochs)) / 2.0;
        for (uint32_t i = 0; i < n; i++)
            order[i] = idx ? idx[i] : i;
        frl_rng_shuffle_u32(rng, order, n);
        double loss_sum = 0.0;
        uint64_t correct_sum = 0;
        for (uint32_t pos = 0; pos < n; pos += (uint32_t)cfg->batch) {
            int B = (int)(n - pos < (uint32_t)cfg->batch ? n - pos : (uint32_t)cfg->batch);
            load_batch(tr, data, order + pos, B, cfg);
            if ((rc = forward(tr, B)) != 0)
                break;
            const frl_op_t *last = &tr->spec->ops[tr->spec->n_ops - 1];
            float loss;
            int correct;
            rc = frl_xent_forward(&loss, &correct, tr->probs, tr->act[tr->spec->n_ops - 1], tr->labels, B, last->out_c);
            if (rc)
                break;
            frl_xent_backward(tr->dbuf[0], tr->probs, tr->labels, B, last->out_c);
            if ((rc = backward(tr, B)) != 0)
                break;
            for (int l = 0; l < tr->spec->n_layers; l++) {
                sgd_layer(tr, l, (float)lr, (float)cfg->momentum, (float)cfg->weight_decay);
                update_threshold(tr, &tr->L[l]);
                build_weff(tr, l);
            }
            loss_sum += (double)loss * B;
            correct_sum += (uint64_t)correct;
            st.images += (uint64_t)B;
            st.steps++;
            if (progress && st.steps % every == 0)
                progress(user, ep, st.steps, steps_total, loss_sum / (double)(pos + (uint32_t)B));
        }
        st.loss = n ? loss_sum / n : 0.0;
        st.accuracy = n ? (double)correct_sum / n : 0.0;
    }
    free(order);
    st.seconds = frl_now_s() - t0;
    st.full_selects = tr->full_selects - full0;
    if (stats)
        *stats = st;
    return rc;
}

int frl_trainer_logits(frl_trainer_t *tr, const uint8_t *images, int B, const frl_train_cfg_t *cfg, float *logits)
{
    if (!tr || !images || !cfg || !logits || B < 1 || B > tr->max_batch || !(cfg->std > 0.0f))
        return FRL_EINVAL;
    size_t px = (size_t)tr->spec->in_c * tr->spec->in_h * tr->spec->in_w;
    const float a = 1.0f / (255.0f * cfg->std), b = -cfg->mean / cfg->std;
    for (size_t k = 0; k < px * (size_t)B; k++)
        tr->input[k] = (float)images[k] * a + b;
    int rc = forward(tr, B);
    if (rc)
        return rc;
    memcpy(logits, tr->act[tr->spec->n_ops - 1], sizeof(float) * (size_t)B * (size_t)tr->spec->n_classes);
    return 0;
}

int frl_trainer_evaluate(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *idx, uint32_t n,
                         const frl_train_cfg_t *cfg, double *accuracy, double *loss)
{
    if (!tr || !data || !cfg || !(cfg->std > 0.0f))
        return FRL_EINVAL;
    if ((int)(data->rows * data->cols) != tr->spec->in_c * tr->spec->in_h * tr->spec->in_w)
        return FRL_EMISMATCH;
    if (!idx && n > data->n)
        return FRL_ERANGE;
    uint32_t ex[256];
    double loss_sum = 0.0;
    uint64_t correct_sum = 0;
    int maxb = tr->max_batch < 256 ? tr->max_batch : 256;
    for (uint32_t pos = 0; pos < n; pos += (uint32_t)maxb) {
        int B = (int)(n - pos < (uint32_t)maxb ? n - pos : (uint32_t)maxb);
        for (int i = 0; i < B; i++) {
            ex[i] = idx ? idx[pos + (uint32_t)i] : pos + (uint32_t)i;
            if (ex[i] >= data->n)
                return FRL_ERANGE;
        }
        load_batch(tr, data, ex, B, cfg);
        int rc = forward(tr, B);
        if (rc)
            return rc;
        float l;
        int correct;
        rc = frl_xent_forward(&l, &correct, tr->probs, tr->act[tr->spec->n_ops - 1], tr->labels, B, tr->spec->n_classes);
        if (rc)
            return rc;
        loss_sum += (double)l * B;
        correct_sum += (uint64_t)correct;
    }
    if (accuracy)
        *accuracy = n ? (double)correct_sum / n : 0.0;
    if (loss)
        *loss = n ? loss_sum / n : 0.0;
    return 0;
}

int frl_trainer_score_grads(frl_trainer_t *tr, const frl_dataset_t *data, const uint32_t *ex, int B, const frl_train_cfg_t *cfg,
                            float *loss, float *const *dscores)
{
    if (!tr || !data || !ex || !cfg || !loss || !dscores || B < 1 || B > tr->max_batch || !(cfg->std > 0.0f))
        return FRL_EINVAL;
    for (int i = 0; i < B; i++)
        if (ex[i] >= data->n)
            return FRL_ERANGE;
    load_batch(tr, data, ex, B, cfg);
    int rc = forward(tr, B);
    if (rc)
        return rc;
    int correct;
    rc = frl_xent_forward(loss, &correct, tr->probs, tr->act[tr->spec->n_ops - 1], tr->labels, B, tr->spec->n_classes);
    if (rc)
        return rc;
    frl_xent_backward(tr->dbuf[0], tr->probs, tr->labels, B, tr->spec->n_classes);
    if ((rc = backward(tr, B)) != 0)
        return rc;
    for (int l = 0; l < tr->spec->n_layers; l++) {
        const layer_state *ls = &tr->L[l];
        if (ls->fused && ls->fused_B > 0) { /* the training step never materialises it: do it here */
            const frl_layer_info_t *li = &tr->spec->layers[l];
            frl_sgemm(1, 0, (int)li->n_out, (int)li->fan_in, B, 1.0f, ls->dout, (int)li->n_out, ls->inp, (int)li->fan_in, 0.0f,
                      ls->grad, (int)li->fan_in);
        }
        for (uint32_t e = 0; e < ls->n; e++) {
            float sv = ls->scores[e];
            float g = weight_of(tr->net->sign_bits[l], e, tr->net->scale[l]) * ls->grad[e];
            if (tr->rule == FRL_MASK_ABS)
                g *= (float)((sv > 0.0f) - (sv < 0.0f));
            dscores[l][e] = g;
        }
    }
    return 0;
}
