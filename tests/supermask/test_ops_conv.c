/* conv2d (im2col + GEMM) against a naive direct convolution written from
 * the definition, on both the OpenBLAS and the reference GEMM paths, plus
 * the backward contract (overwrite, NULL gradients, scratch size).
 *
 * Tolerance: |got - want| <= (C*K*K + 2) * FLT_EPSILON * sum |terms| + 1e-30,
 * the worst-case float dot-product bound (times 2), with `want` and the
 * magnitude sum computed in double. */
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
    frl_rng_init(&rng, key, FRL_STREAM_TEST, 3, 0);
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0f * frl_rng_unit_f32(&rng) - 1.0f;
}

static void *xalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

struct geom {
    int B, C, H, W, OC, K, pad, OH, OW;
};

static struct geom make_geom(int B, int C, int H, int W, int OC, int K, int pad)
{
    struct geom g = {B, C, H, W, OC, K, pad, H + 2 * pad - K + 1, W + 2 * pad - K + 1};
    return g;
}

static size_t n_inp(const struct geom *g)
{
    return (size_t)g->B * g->C * g->H * g->W;
}
static size_t n_w(const struct geom *g)
{
    return (size_t)g->OC * g->C * g->K * g->K;
}
static size_t n_out(const struct geom *g)
{
    return (size_t)g->B * g->OC * g->OH * g->OW;
}

/* Input pixel (b, c, ih, iw) with zero padding outside the image. */
static float at(const struct geom *g, const float *inp, int b, int c, int ih, int iw)
{
    if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W)
        return 0.0f;
    return inp[(((size_t)b * g->C + c) * g->H + ih) * g->W + iw];
}

/* out[b][o][y][x] = sum_{c,kh,kw} w[o][c][kh][kw] * in[b][c][y+kh-pad][x+kw-pad],
 * in double; mag gets the sum of |terms| for the tolerance. */
static void direct_conv(const struct geom *g, const float *inp, const float *w, double *want, double *mag)
{
    for (int b = 0; b < g->B; b++)
        for (int o = 0; o < g->OC; o++)
            for (int y = 0; y < g->OH; y++)
                for (int x = 0; x < g->OW; x++) {
                    double s = 0.0, m = 0.0;
                    for (int c = 0; c < g->C; c++)
                        for (int kh = 0; kh < g->K; kh++)
                            for (int kw = 0; kw < g->K; kw++) {
                                double t = (double)w[((o * g->C + c) * g->K + kh) * g->K + kw] *
                                           at(g, inp, b, c, y + kh - g->pad, x + kw - g->pad);
                                s += t;
                                m += fabs(t);
                            }
                    size_t i = (((size_t)b * g->OC + o) * g->OH + y) * g->OW + x;
                    want[i] = s;
                    mag[i] = m;
                }
}

/* Scratch is working memory only: fill it with NaN before each call so a
 * kernel that forgets to write part of it (padding zeros) shows up. */
static void poison_scratch(float *scratch, const struct geom *g)
{
    size_t n = frl_conv2d_scratch_floats(g->C, g->H, g->W, g->K, g->pad);
    for (size_t i = 0; i < n; i++)
        scratch[i] = NAN;
}

static int compare(const char *what, const float *got, const double *want, const double *mag, size_t n, int terms)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = (terms + 2) * (double)FLT_EPSILON * mag[i] + 1e-30;
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= tol) && bad++ < 5)
            printf("  %s[%zu]: got %.9g want %.9g err %.3g tol %.3g\n", what, i, got[i], want[i], err, tol);
    }
    return bad;
}

/* Runs forward on both GEMM paths and compares with direct_conv. */
static void check_forward(struct geom g, uint64_t seed)
{
    float *inp = xalloc(n_inp(&g) * sizeof(float)), *w = xalloc(n_w(&g) * sizeof(float));
    float *out = xalloc(n_out(&g) * sizeof(float));
    float *scratch = xalloc(frl_conv2d_scratch_floats(g.C, g.H, g.W, g.K, g.pad) * sizeof(float));
    double *want = xalloc(n_out(&g) * sizeof(double)), *mag = xalloc(n_out(&g) * sizeof(double));
    fill_uniform(inp, n_inp(&g), seed);
    fill_uniform(w, n_w(&g), seed + 1);
    direct_conv(&g, inp, w, want, mag);
    int bad = 0;
    for (int ref = 0; ref <= 1; ref++) {
        frl_sgemm_set_reference(ref);
        for (size_t i = 0; i < n_out(&g); i++)
            out[i] = NAN;
        poison_scratch(scratch, &g);
        assert_int_equal(frl_conv2d_forward(out, inp, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
        bad += compare(ref ? "out(ref)" : "out(blas)", out, want, mag, n_out(&g), g.C * g.K * g.K);
    }
    frl_sgemm_set_reference(0);
    free(inp);
    free(w);
    free(out);
    free(scratch);
    free(want);
    free(mag);
    assert_int_equal(bad, 0);
}

static void test_conv2d_forward_matches_direct_single_channel_pad1(void **state)
{
    check_forward(make_geom(2, 1, 7, 9, 4, 3, 1), 1);
}

static void test_conv2d_forward_matches_direct_multichannel_pad0(void **state)
{
    check_forward(make_geom(2, 3, 8, 5, 5, 3, 0), 2);
}

static void test_conv2d_forward_matches_direct_multichannel_pad1(void **state)
{
    check_forward(make_geom(3, 4, 6, 6, 2, 3, 1), 3);
}

/* pad >= K: whole col rows are padding. */
static void test_conv2d_forward_matches_direct_wide_padding(void **state)
{
    check_forward(make_geom(1, 2, 4, 3, 3, 2, 3), 4);
}

static void test_conv2d_forward_matches_direct_5x5_kernel(void **state)
{
    check_forward(make_geom(2, 2, 9, 7, 3, 5, 2), 5);
}

static void test_conv2d_forward_matches_direct_pointwise_kernel(void **state)
{
    check_forward(make_geom(2, 3, 4, 5, 4, 1, 0), 6);
}

/* LeNet's second conv, one image: the shape that dominates training. */
static void test_conv2d_forward_matches_direct_lenet_conv2(void **state)
{
    check_forward(make_geom(1, 32, 28, 28, 64, 3, 1), 7);
}

/* Backward against the definitions, in double:
 *   dweight[o][c][kh][kw] = sum_{b,y,x} dout[b][o][y][x] in[b][c][y+kh-pad][x+kw-pad]
 *   dinp[b][c][ih][iw]    = sum_{o,kh,kw} w[o][c][kh][kw] dout[b][o][ih-kh+pad][iw-kw+pad] */
static void check_backward(struct geom g)
{
    float *inp = xalloc(n_inp(&g) * sizeof(float)), *w = xalloc(n_w(&g) * sizeof(float));
    float *dout = xalloc(n_out(&g) * sizeof(float)), *dinp = xalloc(n_inp(&g) * sizeof(float));
    float *dw = xalloc(n_w(&g) * sizeof(float));
    float *scratch = xalloc(frl_conv2d_scratch_floats(g.C, g.H, g.W, g.K, g.pad) * sizeof(float));
    double *want_dw = xalloc(n_w(&g) * sizeof(double)), *mag_dw = xalloc(n_w(&g) * sizeof(double));
    double *want_di = xalloc(n_inp(&g) * sizeof(double)), *mag_di = xalloc(n_inp(&g) * sizeof(double));
    fill_uniform(inp, n_inp(&g), 11);
    fill_uniform(w, n_w(&g), 12);
    fill_uniform(dout, n_out(&g), 13);
    for (int o = 0; o < g.OC; o++)
        for (int b = 0; b < g.B; b++)
            for (int y = 0; y < g.OH; y++)
                for (int x = 0; x < g.OW; x++) {
                    double d = dout[(((size_t)b * g.OC + o) * g.OH + y) * g.OW + x];
                    for (int c = 0; c < g.C; c++)
                        for (int kh = 0; kh < g.K; kh++)
                            for (int kw = 0; kw < g.K; kw++) {
                                int ih = y + kh - g.pad, iw = x + kw - g.pad;
                                size_t wi = ((size_t)(o * g.C + c) * g.K + kh) * g.K + kw;
                                double t = d * at(&g, inp, b, c, ih, iw);
                                want_dw[wi] += t;
                                mag_dw[wi] += fabs(t);
                                if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) {
                                    size_t ii = (((size_t)b * g.C + c) * g.H + ih) * g.W + iw;
                                    double u = d * w[wi];
                                    want_di[ii] += u;
                                    mag_di[ii] += fabs(u);
                                }
                            }
                }
    int bad = 0;
    for (int ref = 0; ref <= 1; ref++) {
        frl_sgemm_set_reference(ref);
        poison_scratch(scratch, &g);
        assert_int_equal(frl_conv2d_backward(dinp, dw, dout, inp, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
        bad += compare("dweight", dw, want_dw, mag_dw, n_w(&g), g.B * g.OH * g.OW);
        bad += compare("dinp", dinp, want_di, mag_di, n_inp(&g), g.OC * g.K * g.K);
    }
    frl_sgemm_set_reference(0);
    free(inp);
    free(w);
    free(dout);
    free(dinp);
    free(dw);
    free(scratch);
    free(want_dw);
    free(mag_dw);
    free(want_di);
    free(mag_di);
    assert_int_equal(bad, 0);
}

/* OC <= OH*OW: dweight is accumulated transposed and turned at the end. */
static void test_conv2d_backward_matches_direct(void **state)
{
    check_backward(make_geom(2, 3, 6, 5, 4, 3, 1));
}

/* OC > OH*OW (a 1x2 output with 5 channels): the scratch cannot hold the
 * transpose, so dweight is accumulated in its own layout. */
static void test_conv2d_backward_matches_direct_when_output_is_smaller_than_channels(void **state)
{
    check_backward(make_geom(2, 2, 3, 4, 5, 3, 0));
}

/* Backward overwrites: NaN left in dinp/dweight by the caller must vanish,
 * and the result must not depend on what was there. */
static void test_conv2d_backward_overwrites_gradients(void **state)
{
    struct geom g = make_geom(2, 2, 5, 5, 3, 3, 1);
    float *inp = xalloc(n_inp(&g) * sizeof(float)), *w = xalloc(n_w(&g) * sizeof(float));
    float *dout = xalloc(n_out(&g) * sizeof(float));
    float *dinp0 = xalloc(n_inp(&g) * sizeof(float)), *dw0 = xalloc(n_w(&g) * sizeof(float));
    float *dinp1 = xalloc(n_inp(&g) * sizeof(float)), *dw1 = xalloc(n_w(&g) * sizeof(float));
    float *scratch = xalloc(frl_conv2d_scratch_floats(g.C, g.H, g.W, g.K, g.pad) * sizeof(float));
    fill_uniform(inp, n_inp(&g), 21);
    fill_uniform(w, n_w(&g), 22);
    fill_uniform(dout, n_out(&g), 23);
    for (size_t i = 0; i < n_inp(&g); i++)
        dinp1[i] = NAN;
    for (size_t i = 0; i < n_w(&g); i++)
        dw1[i] = NAN;
    assert_int_equal(frl_conv2d_backward(dinp0, dw0, dout, inp, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
    assert_int_equal(frl_conv2d_backward(dinp1, dw1, dout, inp, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
    assert_memory_equal(dinp0, dinp1, n_inp(&g) * sizeof(float));
    assert_memory_equal(dw0, dw1, n_w(&g) * sizeof(float));
    free(inp);
    free(w);
    free(dout);
    free(dinp0);
    free(dw0);
    free(dinp1);
    free(dw1);
    free(scratch);
}

/* dinp == NULL (first layer): dweight is the same as with dinp requested,
 * and weight may be NULL since nothing reads it. */
static void test_conv2d_backward_without_dinp_gives_same_dweight(void **state)
{
    struct geom g = make_geom(2, 1, 6, 6, 4, 3, 1);
    float *inp = xalloc(n_inp(&g) * sizeof(float)), *w = xalloc(n_w(&g) * sizeof(float));
    float *dout = xalloc(n_out(&g) * sizeof(float)), *dinp = xalloc(n_inp(&g) * sizeof(float));
    float *dw_both = xalloc(n_w(&g) * sizeof(float)), *dw_only = xalloc(n_w(&g) * sizeof(float));
    float *scratch = xalloc(frl_conv2d_scratch_floats(g.C, g.H, g.W, g.K, g.pad) * sizeof(float));
    fill_uniform(inp, n_inp(&g), 31);
    fill_uniform(w, n_w(&g), 32);
    fill_uniform(dout, n_out(&g), 33);
    assert_int_equal(frl_conv2d_backward(dinp, dw_both, dout, inp, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
    assert_int_equal(frl_conv2d_backward(NULL, dw_only, dout, inp, NULL, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
    assert_memory_equal(dw_both, dw_only, n_w(&g) * sizeof(float));
    free(inp);
    free(w);
    free(dout);
    free(dinp);
    free(dw_both);
    free(dw_only);
    free(scratch);
}

/* dweight == NULL: dinp alone, and inp may be NULL. */
static void test_conv2d_backward_without_dweight_gives_same_dinp(void **state)
{
    struct geom g = make_geom(2, 3, 5, 4, 2, 3, 0);
    float *inp = xalloc(n_inp(&g) * sizeof(float)), *w = xalloc(n_w(&g) * sizeof(float));
    float *dout = xalloc(n_out(&g) * sizeof(float)), *dw = xalloc(n_w(&g) * sizeof(float));
    float *di_both = xalloc(n_inp(&g) * sizeof(float)), *di_only = xalloc(n_inp(&g) * sizeof(float));
    float *scratch = xalloc(frl_conv2d_scratch_floats(g.C, g.H, g.W, g.K, g.pad) * sizeof(float));
    fill_uniform(inp, n_inp(&g), 41);
    fill_uniform(w, n_w(&g), 42);
    fill_uniform(dout, n_out(&g), 43);
    assert_int_equal(frl_conv2d_backward(di_both, dw, dout, inp, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
    assert_int_equal(frl_conv2d_backward(di_only, NULL, dout, NULL, w, g.B, g.C, g.H, g.W, g.OC, g.K, g.pad, scratch), 0);
    assert_memory_equal(di_both, di_only, n_inp(&g) * sizeof(float));
    free(inp);
    free(w);
    free(dout);
    free(dw);
    free(di_both);
    free(di_only);
    free(scratch);
}

/* Scratch is one image's im2col matrix, independent of the batch. */
static void test_conv2d_scratch_is_one_image_im2col(void **state)
{
    assert_int_equal(frl_conv2d_scratch_floats(32, 28, 28, 3, 1), (size_t)288 * 784);
    assert_int_equal(frl_conv2d_scratch_floats(1, 28, 28, 3, 1), (size_t)9 * 784);
    assert_int_equal(frl_conv2d_scratch_floats(3, 8, 5, 3, 0), (size_t)27 * 6 * 3);
}

static void test_conv2d_scratch_of_bad_geometry_is_zero(void **state)
{
    assert_int_equal(frl_conv2d_scratch_floats(0, 28, 28, 3, 1), 0);
    assert_int_equal(frl_conv2d_scratch_floats(1, 2, 2, 5, 0), 0);
    assert_int_equal(frl_conv2d_scratch_floats(1, 28, 28, 3, -1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_forward_matches_direct_single_channel_pad1),
        cmocka_unit_test(test_conv2d_forward_matches_direct_multichannel_pad0),
        cmocka_unit_test(test_conv2d_forward_matches_direct_multichannel_pad1),
        cmocka_unit_test(test_conv2d_forward_matches_direct_wide_padding),
        cmocka_unit_test(test_conv2d_forward_matches_direct_5x5_kernel),
        cmocka_unit_test(test_conv2d_forward_matches_direct_pointwise_kernel),
        cmocka_unit_test(test_conv2d_forward_matches_direct_lenet_conv2),
        cmocka_unit_test(test_conv2d_backward_matches_direct),
        cmocka_unit_test(test_conv2d_backward_matches_direct_when_output_is_smaller_than_channels),
        cmocka_unit_test(test_conv2d_backward_overwrites_gradients),
        cmocka_unit_test(test_conv2d_backward_without_dinp_gives_same_dweight),
        cmocka_unit_test(test_conv2d_backward_without_dweight_gives_same_dinp),
        cmocka_unit_test(test_conv2d_scratch_is_one_image_im2col),
        cmocka_unit_test(test_conv2d_scratch_of_bad_geometry_is_zero),
    };
    return cmocka_run_group_tests_name("supermask_ops_conv", tests, NULL, NULL);
}
