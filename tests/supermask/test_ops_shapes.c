/* Contracts of the layer ops other than their gradients: argument checks
 * (FRL_EINVAL), maxpool's tie rule and floor mode, relu's edge cases,
 * softmax cross-entropy values and tie rule, and dense against a naive
 * loop. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "supermask/frl_ops.h"

static void fill_uniform(float *v, size_t n, uint64_t seed)
{
    uint8_t key[FRL_SEED_BYTES];
    frl_rng_t rng;
    frl_seed_from_u64(seed, key);
    frl_rng_init(&rng, key, FRL_STREAM_TEST, 4, 0);
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0f * frl_rng_unit_f32(&rng) - 1.0f;
}

/* ---- argument checks -------------------------------------------------- */

static void test_conv2d_rejects_bad_dims(void **state)
{
    float in[64] = {0}, w[64] = {0}, out[64] = {0}, scratch[256] = {0};
    /* Non-positive sizes, negative padding, kernel larger than the padded input. */
    assert_int_equal(frl_conv2d_forward(out, in, w, 0, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 0, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 0, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 4, -4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 4, 4, 0, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 4, 4, 1, 0, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 4, 4, 1, 3, -1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 2, 2, 1, 5, 0, scratch), FRL_EINVAL);
    /* Padding so large that the padded size overflows an int. */
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 4, 4, 1, 3, 0x40000000, scratch), FRL_EINVAL);
    /* C*K*K would overflow the int GEMM dimension. */
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1 << 20, 4, 4, 1, 64, 32, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_backward(in, w, out, in, w, 1, 1, 2, 2, 1, 5, 0, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_backward(in, w, out, in, w, -1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
}

static void test_conv2d_rejects_null_pointers(void **state)
{
    float in[16] = {0}, w[9] = {0}, out[16] = {0}, scratch[144] = {0};
    assert_int_equal(frl_conv2d_forward(NULL, in, w, 1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, NULL, w, 1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, NULL, 1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_forward(out, in, w, 1, 1, 4, 4, 1, 3, 1, NULL), FRL_EINVAL);
    /* dweight needs inp, dinp needs weight, everything needs dout and scratch. */
    assert_int_equal(frl_conv2d_backward(NULL, w, out, NULL, w, 1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_backward(in, NULL, out, in, NULL, 1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_backward(in, w, NULL, in, w, 1, 1, 4, 4, 1, 3, 1, scratch), FRL_EINVAL);
    assert_int_equal(frl_conv2d_backward(in, w, out, in, w, 1, 1, 4, 4, 1, 3, 1, NULL), FRL_EINVAL);
}

static void test_dense_rejects_bad_dims_and_null_pointers(void **state)
{
    float a[16] = {0}, b[16] = {0}, c[16] = {0};
    assert_int_equal(frl_dense_forward(c, a, b, 0, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_forward(c, a, b, 2, 0, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_forward(c, a, b, 2, 2, -1), FRL_EINVAL);
    assert_int_equal(frl_dense_forward(NULL, a, b, 2, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_forward(c, NULL, b, 2, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_forward(c, a, NULL, 2, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_backward(a, b, c, a, b, 2, 0, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_backward(a, b, NULL, a, b, 2, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_backward(NULL, b, c, NULL, b, 2, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_dense_backward(a, NULL, c, a, NULL, 2, 2, 2), FRL_EINVAL);
    /* Neither gradient wanted: nothing to do, not an error. */
    assert_int_equal(frl_dense_backward(NULL, NULL, c, NULL, NULL, 2, 2, 2), 0);
}

static void test_maxpool_rejects_bad_dims(void **state)
{
    float in[16] = {0}, out[16] = {0};
    int32_t am[16] = {0};
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, 1, 4, 4, 0), FRL_EINVAL);
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, 1, 1, 4, 2), FRL_EINVAL); /* H < K */
    assert_int_equal(frl_maxpool_forward(out, am, in, 0, 1, 4, 4, 2), FRL_EINVAL);
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, -1, 4, 4, 2), FRL_EINVAL);
    assert_int_equal(frl_maxpool_forward(out, NULL, in, 1, 1, 4, 4, 2), FRL_EINVAL);
    assert_int_equal(frl_maxpool_backward(in, out, am, 1, 1, 4, 1, 2), FRL_EINVAL); /* W < K */
    assert_int_equal(frl_maxpool_backward(in, out, NULL, 1, 1, 4, 4, 2), FRL_EINVAL);
}

static void test_xent_rejects_bad_dims(void **state)
{
    float logits[4] = {0}, probs[4];
    uint8_t labels[2] = {0, 1};
    float loss;
    int correct;
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, labels, 0, 2), FRL_EINVAL);
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, labels, 2, 0), FRL_EINVAL);
    assert_int_equal(frl_xent_forward(NULL, &correct, probs, logits, labels, 2, 2), FRL_EINVAL);
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, NULL, 2, 2), FRL_EINVAL);
}

/* A label >= NC is rejected before any output is written. */
static void test_xent_rejects_label_out_of_range(void **state)
{
    float logits[6] = {1, 2, 3, 4, 5, 6}, probs[6] = {-1, -1, -1, -1, -1, -1};
    uint8_t labels[2] = {0, 3}; /* NC = 3: label 3 is out of range */
    float loss = -1.0f;
    int correct = -1;
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, labels, 2, 3), FRL_EINVAL);
    assert_true(loss == -1.0f);
    assert_int_equal(correct, -1);
    for (int i = 0; i < 6; i++)
        assert_true(probs[i] == -1.0f);
}

/* ---- maxpool ---------------------------------------------------------- */

/* All-equal window: the first (top-left) element wins. */
static void test_maxpool_tie_picks_first_index(void **state)
{
    /* 1 plane 2x4: window 0 = {5,5,5,5}, window 1 = {1,7,2,7} (tie between
     * offsets 3 and 7; offset 3 comes first in row-major order). */
    const float in[8] = {5, 5, 1, 7, 5, 5, 2, 7};
    float out[2];
    int32_t am[2];
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, 1, 2, 4, 2), 0);
    assert_true(out[0] == 5.0f && out[1] == 7.0f);
    assert_int_equal(am[0], 0);
    assert_int_equal(am[1], 3);
}

/* Ties in the generic (K != 2) path follow the same rule. */
static void test_maxpool3_tie_picks_first_index(void **state)
{
    const float in[9] = {0, 1, 4, 4, 2, 4, 0, 4, 1};
    float out[1];
    int32_t am[1];
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, 1, 3, 3, 3), 0);
    assert_true(out[0] == 4.0f);
    assert_int_equal(am[0], 2);
}

/* argmax is the offset within the (b, c) plane, not within the batch. */
static void test_maxpool_argmax_is_plane_offset(void **state)
{
    float in[2 * 2 * 4 * 4];
    for (int i = 0; i < 64; i++)
        in[i] = (float)(i % 16 == 5 ? 100 : 0); /* offset 5 in every plane */
    float out[16];
    int32_t am[16];
    assert_int_equal(frl_maxpool_forward(out, am, in, 2, 2, 4, 4, 2), 0);
    for (int p = 0; p < 4; p++)
        assert_int_equal(am[p * 4], 5);
}

/* H = W = 5 with K = 2: 2x2 outputs, and backward leaves the uncovered
 * last row and column at zero (it zeroes dinp first). */
static void test_maxpool_floor_mode_ignores_remainder(void **state)
{
    float in[25], out[4], dout[4] = {1, 2, 3, 4}, dinp[25];
    int32_t am[4];
    for (int i = 0; i < 25; i++)
        in[i] = (float)i; /* the max of each window is its bottom-right */
    for (int i = 0; i < 25; i++)
        dinp[i] = NAN;
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, 1, 5, 5, 2), 0);
    assert_true(out[0] == 6.0f && out[1] == 8.0f && out[2] == 16.0f && out[3] == 18.0f);
    assert_int_equal(frl_maxpool_backward(dinp, dout, am, 1, 1, 5, 5, 2), 0);
    for (int i = 0; i < 25; i++) {
        float want = i == 6 ? 1.0f : i == 8 ? 2.0f : i == 16 ? 3.0f : i == 18 ? 4.0f : 0.0f;
        assert_true(dinp[i] == want);
    }
}

/* The definition, scalar: first maximum in row-major window order. */
static void naive_maxpool(float *out, int32_t *am, const float *in, int planes, int H, int W, int K)
{
    int OH = H / K, OW = W / K;
    for (int p = 0; p < planes; p++)
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++) {
                int32_t bi = y * K * W + x * K;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        int32_t i = (y * K + kh) * W + x * K + kw;
                        if (in[(size_t)p * H * W + i] > in[(size_t)p * H * W + bi])
                            bi = i;
                    }
                out[(size_t)p * OH * OW + y * OW + x] = in[(size_t)p * H * W + bi];
                am[(size_t)p * OH * OW + y * OW + x] = bi;
            }
}

/* Wide planes run the vectorised 2x2 path (4 windows per step) plus its
 * scalar tail (OW = 9); values drawn from 4 levels make ties common. */
static void test_maxpool2_matches_naive_with_many_ties(void **state)
{
    enum { B = 2, C = 3, H = 11, W = 19, OH = 5, OW = 9 };
    static float in[B * C * H * W], out[B * C * OH * OW], want[B * C * OH * OW];
    static int32_t am[B * C * OH * OW], want_am[B * C * OH * OW];
    fill_uniform(in, B * C * H * W, 7);
    for (int i = 0; i < B * C * H * W; i++)
        in[i] = floorf(in[i] * 2.0f); /* -2, -1, 0, 1 */
    naive_maxpool(want, want_am, in, B * C, H, W, 2);
    assert_int_equal(frl_maxpool_forward(out, am, in, B, C, H, W, 2), 0);
    assert_memory_equal(out, want, sizeof out);
    assert_memory_equal(am, want_am, sizeof am);
}

/* NaN never wins a comparison, so it is kept only when it comes first. */
static void test_maxpool2_nan_wins_only_in_first_position(void **state)
{
    const float in[16] = {NAN, 1, 2, NAN, 0, 0, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0};
    float out[4];
    int32_t am[4];
    assert_int_equal(frl_maxpool_forward(out, am, in, 1, 1, 2, 8, 2), 0);
    /* Windows (row 0 pair, row 1 pair): {NaN,1 | 1,0}, {2,NaN | 0,0},
     * {0,0 | 0,0}, {3,4 | 0,0}. */
    assert_true(isnan(out[0]));
    assert_int_equal(am[0], 0);
    assert_true(out[1] == 2.0f);
    assert_int_equal(am[1], 2);
    assert_true(out[2] == 0.0f);
    assert_int_equal(am[2], 4);
    assert_true(out[3] == 4.0f);
    assert_int_equal(am[3], 7);
}

static void test_maxpool_backward_rejects_argmax_outside_plane(void **state)
{
    float dinp[16], dout[4] = {1, 1, 1, 1};
    int32_t am[4] = {0, 2, 8, 16}; /* 16 is past the 4x4 plane */
    assert_int_equal(frl_maxpool_backward(dinp, dout, am, 1, 1, 4, 4, 2), FRL_EINVAL);
    am[3] = -1;
    assert_int_equal(frl_maxpool_backward(dinp, dout, am, 1, 1, 4, 4, 2), FRL_EINVAL);
}

/* ---- relu ------------------------------------------------------------- */

static void test_relu_forward_in_place(void **state)
{
    float v[5] = {-2.0f, -0.0f, 0.0f, 0.5f, 3.0f};
    frl_relu_forward(v, v, 5);
    assert_true(v[0] == 0.0f && v[1] == 0.0f && v[2] == 0.0f && v[3] == 0.5f && v[4] == 3.0f);
}

/* Vector body and scalar tail agree with the definition x > 0 ? x : 0 on
 * special values: NaN -> 0, -0 -> +0, infinities, denormals. */
static void test_relu_forward_matches_definition_on_special_values(void **state)
{
    const float in[11] = {NAN, -0.0f, 0.0f, INFINITY, -INFINITY, 1e-40f, -1e-40f, 2.5f, -2.5f, NAN, -0.0f};
    float out[11];
    frl_relu_forward(out, in, 11);
    for (int i = 0; i < 11; i++) {
        float want = in[i] > 0.0f ? in[i] : 0.0f;
        assert_memory_equal(&out[i], &want, sizeof(float)); /* bitwise: +0, not -0 */
    }
}

/* The gradient passes where the output is > 0; at exactly 0 it does not
 * (PyTorch's convention for relu at the kink). */
static void test_relu_backward_passes_only_positive_outputs_in_place(void **state)
{
    const float out[7] = {0.0f, 1.0f, 0.0f, 2.0f, 3.0f, 0.0f, 1e-40f};
    float d[7] = {5.0f, 6.0f, 7.0f, 8.0f, 9.0f, 10.0f, 11.0f};
    frl_relu_backward(d, d, out, 7);
    assert_true(d[0] == 0.0f && d[1] == 6.0f && d[2] == 0.0f && d[3] == 8.0f);
    assert_true(d[4] == 9.0f && d[5] == 0.0f && d[6] == 11.0f); /* scalar tail */
}

/* ---- softmax cross-entropy ------------------------------------------- */

/* Equal logits: uniform probabilities, loss log(NC). */
static void test_xent_uniform_logits_give_log_nc(void **state)
{
    float logits[10] = {0}, probs[10];
    uint8_t label = 4;
    float loss;
    int correct;
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, &label, 1, 10), 0);
    assert_true(fabsf(loss - logf(10.0f)) < 1e-6f);
    for (int i = 0; i < 10; i++)
        assert_true(fabsf(probs[i] - 0.1f) < 1e-7f);
}

/* Ties in the argmax go to the lowest index: with logits (1, 1, 0) only
 * label 0 counts as correct. */
static void test_xent_correct_count_tie_goes_to_lowest_index(void **state)
{
    const float logits[9] = {1, 1, 0, 1, 1, 0, 3, 2, 3};
    const uint8_t labels[3] = {0, 1, 0};
    float probs[9], loss;
    int correct;
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, labels, 3, 3), 0);
    assert_int_equal(correct, 2); /* rows 0 and 2 */
}

/* Huge logits do not overflow expf: the max is subtracted first. */
static void test_xent_is_stable_for_large_logits(void **state)
{
    const float logits[4] = {1000.0f, 0.0f, -1000.0f, 1000.0f};
    const uint8_t labels[2] = {1, 0}; /* both wrong, by 1000 and 2000 */
    float probs[4], loss;
    int correct;
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, labels, 2, 2), 0);
    /* -log softmax: row 0 gives 1000, row 1 gives 2000 (exp(-1000) is 0
     * next to 1), mean 1500. */
    assert_true(isfinite(loss));
    assert_true(fabsf(loss - 1500.0f) < 1e-3f);
    assert_true(probs[0] == 1.0f && probs[1] == 0.0f && probs[2] == 0.0f && probs[3] == 1.0f);
    assert_int_equal(correct, 0);
}

/* Mean over the batch: two rows with known losses. */
static void test_xent_loss_is_batch_mean(void **state)
{
    const float logits[4] = {0.0f, 0.0f, 2.0f, 0.0f};
    const uint8_t labels[2] = {1, 0};
    float probs[4], loss;
    int correct;
    assert_int_equal(frl_xent_forward(&loss, &correct, probs, logits, labels, 2, 2), 0);
    double want = 0.5 * (log(2.0) + log(1.0 + exp(-2.0)));
    assert_true(fabs(loss - want) < 1e-6);
}

/* dlogits = (probs - onehot) / B; each row sums to zero. */
static void test_xent_backward_is_probs_minus_onehot_over_b(void **state)
{
    const float probs[6] = {0.2f, 0.3f, 0.5f, 0.6f, 0.3f, 0.1f};
    const uint8_t labels[2] = {2, 0};
    float d[6];
    frl_xent_backward(d, probs, labels, 2, 3);
    const float want[6] = {0.1f, 0.15f, -0.25f, -0.2f, 0.15f, 0.05f};
    for (int i = 0; i < 6; i++)
        assert_true(fabsf(d[i] - want[i]) < 1e-7f);
}

/* ---- dense ------------------------------------------------------------ */

/* out[b][o] = sum_i inp[b][i] w[o][i]; dweight = dout^T inp; dinp = dout w,
 * against double loops with a (terms + 2) * FLT_EPSILON * sum|terms|
 * tolerance. Returns the mismatch count (first few printed). */
static int check_dense(int B, int I, int O, uint64_t seed)
{
    float *inp = malloc(sizeof(float) * B * I), *w = malloc(sizeof(float) * O * I), *out = malloc(sizeof(float) * B * O);
    float *dout = malloc(sizeof(float) * B * O), *dinp = malloc(sizeof(float) * B * I), *dw = malloc(sizeof(float) * O * I);
    float *dinp1 = malloc(sizeof(float) * B * I), *dw1 = malloc(sizeof(float) * O * I);
    assert_true(inp && w && out && dout && dinp && dw && dinp1 && dw1);
    fill_uniform(inp, (size_t)B * I, seed);
    fill_uniform(w, (size_t)O * I, seed + 1);
    fill_uniform(dout, (size_t)B * O, seed + 2);
    assert_int_equal(frl_dense_forward(out, inp, w, B, I, O), 0);
    assert_int_equal(frl_dense_backward(dinp, dw, dout, inp, w, B, I, O), 0);
    int bad = 0;
#define DENSE_CHECK(name, got, terms, expr_a, expr_b)                                                                              \
    do {                                                                                                                           \
        double s_ = 0, m_ = 0;                                                                                                     \
        for (int t_ = 0; t_ < (terms); t_++) {                                                                                     \
            double p_ = (double)(expr_a) * (double)(expr_b);                                                                       \
            s_ += p_;                                                                                                              \
            m_ += fabs(p_);                                                                                                        \
        }                                                                                                                          \
        if (!(fabs((double)(got)-s_) <= ((terms) + 2) * (double)FLT_EPSILON * m_) && bad++ < 5)                                    \
            printf("  B=%d I=%d O=%d %s: got %.9g want %.9g\n", B, I, O, name, (double)(got), s_);                                 \
    } while (0)
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++)
            DENSE_CHECK("out", out[b * O + o], I, inp[b * I + t_], w[o * I + t_]);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++)
            DENSE_CHECK("dweight", dw[o * I + i], B, dout[t_ * O + o], inp[t_ * I + i]);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < I; i++)
            DENSE_CHECK("dinp", dinp[b * I + i], O, dout[b * O + t_], w[t_ * I + i]);
#undef DENSE_CHECK
    /* Asking for one gradient gives the same bits as asking for both. */
    assert_int_equal(frl_dense_backward(dinp1, NULL, dout, inp, w, B, I, O), 0);
    assert_int_equal(frl_dense_backward(NULL, dw1, dout, inp, NULL, B, I, O), 0);
    if (memcmp(dinp, dinp1, sizeof(float) * B * I) != 0 || memcmp(dw, dw1, sizeof(float) * O * I) != 0) {
        printf("  B=%d I=%d O=%d: single-gradient call differs\n", B, I, O);
        bad++;
    }
    free(inp);
    free(w);
    free(out);
    free(dout);
    free(dinp);
    free(dw);
    free(dinp1);
    free(dw1);
    return bad;
}

static void test_dense_matches_naive_loops(void **state)
{
    assert_int_equal(check_dense(3, 37, 5, 1), 0);
}

/* Every batch size the SIMD kernels specialise (1..8), batches above 8
 * (row groups plus a remainder), an odd O, and I = 1100: two full 512
 * chunks and a partial one ending in a partial 16-lane vector. */
static void test_dense_matches_naive_for_every_batch_size(void **state)
{
    static const int batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
    int bad = 0;
    for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++)
        bad += check_dense(batches[k], 1100, 7, 10 + k);
    assert_int_equal(bad, 0);
}

/* Tiny I (one partial vector) and O = 1. */
static void test_dense_matches_naive_for_tiny_layers(void **state)
{
    assert_int_equal(check_dense(8, 3, 1, 40) + check_dense(2, 16, 2, 41) + check_dense(1, 1, 1, 42), 0);
}

/* Backward overwrites its outputs (no accumulation into old values). */
static void test_dense_backward_overwrites_gradients(void **state)
{
    enum { B = 2, I = 6, O = 3 };
    float inp[B * I], w[O * I], dout[B * O], dinp0[B * I], dw0[O * I], dinp1[B * I], dw1[O * I];
    fill_uniform(inp, B * I, 4);
    fill_uniform(w, O * I, 5);
    fill_uniform(dout, B * O, 6);
    for (int i = 0; i < B * I; i++)
        dinp1[i] = NAN;
    for (int i = 0; i < O * I; i++)
        dw1[i] = NAN;
    assert_int_equal(frl_dense_backward(dinp0, dw0, dout, inp, w, B, I, O), 0);
    assert_int_equal(frl_dense_backward(dinp1, dw1, dout, inp, w, B, I, O), 0);
    assert_memory_equal(dinp0, dinp1, sizeof dinp0);
    assert_memory_equal(dw0, dw1, sizeof dw0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_rejects_bad_dims),
        cmocka_unit_test(test_conv2d_rejects_null_pointers),
        cmocka_unit_test(test_dense_rejects_bad_dims_and_null_pointers),
        cmocka_unit_test(test_maxpool_rejects_bad_dims),
        cmocka_unit_test(test_xent_rejects_bad_dims),
        cmocka_unit_test(test_xent_rejects_label_out_of_range),
        cmocka_unit_test(test_maxpool_tie_picks_first_index),
        cmocka_unit_test(test_maxpool3_tie_picks_first_index),
        cmocka_unit_test(test_maxpool_argmax_is_plane_offset),
        cmocka_unit_test(test_maxpool_floor_mode_ignores_remainder),
        cmocka_unit_test(test_maxpool2_matches_naive_with_many_ties),
        cmocka_unit_test(test_maxpool2_nan_wins_only_in_first_position),
        cmocka_unit_test(test_maxpool_backward_rejects_argmax_outside_plane),
        cmocka_unit_test(test_relu_forward_in_place),
        cmocka_unit_test(test_relu_forward_matches_definition_on_special_values),
        cmocka_unit_test(test_relu_backward_passes_only_positive_outputs_in_place),
        cmocka_unit_test(test_xent_uniform_logits_give_log_nc),
        cmocka_unit_test(test_xent_correct_count_tie_goes_to_lowest_index),
        cmocka_unit_test(test_xent_is_stable_for_large_logits),
        cmocka_unit_test(test_xent_loss_is_batch_mean),
        cmocka_unit_test(test_xent_backward_is_probs_minus_onehot_over_b),
        cmocka_unit_test(test_dense_matches_naive_loops),
        cmocka_unit_test(test_dense_matches_naive_for_every_batch_size),
        cmocka_unit_test(test_dense_matches_naive_for_tiny_layers),
        cmocka_unit_test(test_dense_backward_overwrites_gradients),
    };
    return cmocka_run_group_tests_name("supermask_ops_shapes", tests, NULL, NULL);
}
