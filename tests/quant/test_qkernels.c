/* Every SIMD path this CPU has against the scalar reference, bit for bit:
 * random and extreme inputs (all-255 activations, all +1 / all -1 rows),
 * odd sizes, extreme multipliers. Paths the CPU lacks are reported and
 * skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/frl_error.h"
#include "quant/frl_qkernels.h"
#include "qtest_util.h"

static const frl_qpath simd_paths[] = {FRL_QPATH_AVX2, FRL_QPATH_AVX512};

static frl_requant_t rand_rq(uint64_t *s, int32_t amax, int mode)
{
    /* mode 0: a realistic multiplier ~255/amax; 1: maximal m0/shift; 2: identity; 3: m0 = 0 */
    if (mode == 1)
        return (frl_requant_t){INT32_MAX, FRL_RQ_MAX_SHIFT};
    if (mode == 2)
        return (frl_requant_t){1, 0};
    if (mode == 3)
        return (frl_requant_t){0, 7};
    int sh = 31;
    while (amax > 255 && sh < 62) {
        amax >>= 1;
        sh++;
    }
    return (frl_requant_t){(int32_t)((1u << 30) + (qt_next(s) & 0x3fffffff)), sh};
}

/* ---- conv (pooled) ---- */
static int check_conv(uint64_t *s, int H, int W, int C, int CS, int OC, int pad, int in_mode, int w_mode, int rq_mode)
{
    int compared = 0;
    frl_qconv_dims_t d = {H, W, C, CS, pad, 3, H + 2 * pad - 2, W + 2 * pad - 2, OC};
    const int K = 9 * C, ph = H + 2 * pad, pw = W + 2 * pad;
    const int oh = d.out_h / 2, ow = d.out_w / 2, opad = 1, ocs = OC;
    const size_t out_bytes = (size_t)(oh + 2 * opad) * (ow + 2 * opad) * ocs;
    uint8_t *in = calloc((size_t)ph * pw * CS, 1);
    uint8_t *codes = malloc((size_t)OC * frl_tern_row_bytes((uint32_t)K));
    int8_t *w8 = malloc(frl_qpack_vnni_size(OC, 3, CS));
    int32_t *acc = malloc(sizeof(int32_t) * d.out_h * d.out_w * OC), *pooled = malloc(sizeof(int32_t) * oh * ow * OC);
    uint8_t *ref = calloc(out_bytes, 1), *got = calloc(out_bytes, 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            qt_bytes(s, in + ((size_t)(y + pad) * pw + x + pad) * CS, (size_t)C, in_mode);
    qt_codes(s, codes, OC, K, w_mode);
    frl_qpack_vnni(codes, OC, 3, C, CS, w8);
    frl_qref_conv(&d, in, codes, acc);
    frl_qref_maxpool(acc, d.out_h, d.out_w, OC, 2, pooled);
    int32_t amax = 1;
    for (int i = 0; i < oh * ow * OC; i++)
        amax = pooled[i] > amax ? pooled[i] : amax;
    frl_requant_t rq = rand_rq(s, amax, rq_mode);
    frl_qref_requant(pooled, oh, ow, OC, rq, ref, opad, ocs);
    for (size_t p = 0; p < sizeof simd_paths / sizeof simd_paths[0]; p++) {
        const frl_qkern_t *kt = frl_qkern_get(simd_paths[p]);
        if (!kt)
            continue;
        memset(got, 0, out_bytes);
        int rc = kt->conv_rq(&d, in, w8, 2, rq, got, opad, ocs);
        if (rc == FRL_EUNSUPPORTED)
            continue;
        assert_int_equal(rc, 0);
        char what[96];
        snprintf(what, sizeof what, "conv %s H%d C%d OC%d in%d w%d rq%d", frl_qpath_name(simd_paths[p]), H, C, OC, in_mode, w_mode,
                 rq_mode);
        assert_int_equal(qt_first_diff(ref, got, out_bytes, what), 0);
        compared++;
    }
    free(in);
    free(codes);
    free(w8);
    free(acc);
    free(pooled);
    free(ref);
    free(got);
    return compared;
}

static void test_conv_pooled_matches_reference(void **state)
{
    uint64_t s = 42;
    int n_simd = frl_qpath_available(FRL_QPATH_AVX2) + frl_qpath_available(FRL_QPATH_AVX512);
    assert_int_equal(check_conv(&s, 28, 28, 32, 32, 64, 1, 2, 0, 0), n_simd); /* lenet conv2: every path runs it */
    check_conv(&s, 28, 28, 32, 32, 64, 1, 0, 0, 0);
    check_conv(&s, 8, 8, 64, 64, 64, 1, 2, 0, 0);   /* conv2's second conv, small */
    check_conv(&s, 6, 10, 4, 4, 32, 1, 0, 0, 0);    /* odd: 4 channels */
    check_conv(&s, 6, 6, 6, 8, 32, 1, 0, 0, 0);     /* padded channels */
    check_conv(&s, 4, 6, 8, 8, 16, 1, 0, 0, 0);     /* 16 outputs: AVX-512 falls back */
    check_conv(&s, 10, 10, 12, 12, 32, 0, 0, 0, 0); /* no padding */
    for (int rqm = 0; rqm < 4; rqm++) {
        check_conv(&s, 8, 8, 32, 32, 32, 1, 1, 1, rqm); /* all 255, all +1 */
        check_conv(&s, 8, 8, 32, 32, 32, 1, 1, 2, rqm); /* all 255, all -1 */
        check_conv(&s, 8, 8, 32, 32, 32, 1, 0, 0, rqm);
    }
}

/* ---- first conv ---- */
static void check_first(uint64_t *s, int H, int W, int OC, int zin, int in_mode, int w_mode, int rq_mode)
{
    frl_qconv_dims_t d = {H, W, 1, 1, 1, 3, H, W, OC};
    const int opad = 1, ocs = OC;
    const size_t out_bytes = (size_t)(H + 2) * (W + 2) * ocs;
    uint8_t *img = malloc((size_t)H * W), *codes = malloc((size_t)OC * 3);
    int8_t *w8 = malloc((size_t)3 * ((OC + 15) & ~15) * 4);
    int32_t *acc = malloc(sizeof(int32_t) * H * W * OC);
    uint8_t *ref = calloc(out_bytes, 1), *got = calloc(out_bytes, 1);
    uint8_t *scr = malloc(frl_qconv_first_scratch_size(&d));
    qt_bytes(s, img, (size_t)H * W, in_mode);
    qt_codes(s, codes, OC, 9, w_mode);
    frl_qpack_first(codes, OC, 3, w8);
    frl_qref_conv_first(&d, img, zin, codes, acc);
    int32_t amax = 1;
    for (int i = 0; i < H * W * OC; i++)
        amax = acc[i] > amax ? acc[i] : amax;
    frl_requant_t rq = rand_rq(s, amax, rq_mode);
    frl_qref_requant(acc, H, W, OC, rq, ref, opad, ocs);
    for (size_t p = 0; p < sizeof simd_paths / sizeof simd_paths[0]; p++) {
        const frl_qkern_t *kt = frl_qkern_get(simd_paths[p]);
        if (!kt)
            continue;
        memset(got, 0, out_bytes);
        int rc = kt->conv_first_rq(&d, img, zin, w8, 1, rq, got, opad, ocs, scr);
        assert_int_equal(rc, 0);
        char what[96];
        snprintf(what, sizeof what, "first %s OC%d zin%d in%d w%d rq%d", frl_qpath_name(simd_paths[p]), OC, zin, in_mode, w_mode,
                 rq_mode);
        assert_int_equal(qt_first_diff(ref, got, out_bytes, what), 0);
    }
    free(img);
    free(codes);
    free(w8);
    free(acc);
    free(ref);
    free(got);
    free(scr);
}

static void test_first_conv_matches_reference(void **state)
{
    uint64_t s = 5;
    check_first(&s, 28, 28, 32, 73, 0, 0, 0); /* lenet conv1 */
    check_first(&s, 28, 28, 64, 73, 0, 0, 0); /* conv2 conv1 */
    check_first(&s, 5, 7, 16, 0, 0, 0, 0);
    check_first(&s, 5, 7, 16, 255, 0, 0, 0);
    for (int rqm = 0; rqm < 4; rqm++) {
        check_first(&s, 9, 9, 32, 73, 1, 1, rqm);
        check_first(&s, 9, 9, 32, 73, 1, 2, rqm);
        check_first(&s, 9, 9, 32, 0, 1, 2, rqm);
    }
}

/* ---- dense ---- */
static void check_dense(uint64_t *s, int B, int K, int O, int in_mode, int w_mode, int rq_mode)
{
    const int K4 = (K + 3) / 4, xs = K4 * 4 + 12, O16 = (O + 15) & ~15, ys = O16 + 16;
    uint8_t *x = calloc((size_t)B * xs, 1), *codes = malloc((size_t)O * frl_tern_row_bytes((uint32_t)K));
    int8_t *w8 = malloc(frl_qpack_vnni_size(O, 1, K));
    int32_t *acc = malloc(sizeof(int32_t) * B * O), *got32 = malloc(sizeof(int32_t) * B * O);
    int32_t *scr = malloc(sizeof(int32_t) * B * O16);
    uint8_t *ref = calloc((size_t)B * ys, 1), *got = calloc((size_t)B * ys, 1);
    for (int b = 0; b < B; b++)
        qt_bytes(s, x + (size_t)b * xs, (size_t)K, in_mode);
    qt_codes(s, codes, O, K, w_mode);
    assert_int_equal(frl_qpack_vnni(codes, O, 1, K, K, w8), K4);
    frl_qref_dense(x, B, xs, K, O, codes, acc);
    int32_t amax = 1;
    for (int i = 0; i < B * O; i++)
        amax = acc[i] > amax ? acc[i] : amax;
    frl_requant_t rq = rand_rq(s, amax, rq_mode);
    for (int b = 0; b < B; b++)
        frl_qref_requant(acc + (size_t)b * O, 1, 1, O, rq, ref + (size_t)b * ys, 0, O);
    for (size_t p = 0; p < sizeof simd_paths / sizeof simd_paths[0]; p++) {
        const frl_qkern_t *kt = frl_qkern_get(simd_paths[p]);
        if (!kt)
            continue;
        char what[96];
        snprintf(what, sizeof what, "dense %s B%d K%d O%d in%d w%d rq%d", frl_qpath_name(simd_paths[p]), B, K, O, in_mode, w_mode,
                 rq_mode);
        memset(got, 0, (size_t)B * ys);
        assert_int_equal(kt->dense_rq(x, B, xs, K4, O, w8, rq, got, ys, scr), 0);
        assert_int_equal(qt_first_diff(ref, got, (size_t)B * ys, what), 0);
        assert_int_equal(kt->dense_acc(x, B, xs, K4, O, w8, got32, scr), 0);
        assert_int_equal(qt_first_diff32(acc, got32, (size_t)B * O, what), 0);
        if (kt->dense1_rq) {
            uint8_t *q2 = malloc(frl_qpack_q2_size(K4, O));
            frl_qpack_q2(w8, K4, O, q2);
            for (int b = 0; b < B; b++) {
                memset(got, 0, (size_t)ys);
                assert_int_equal(kt->dense1_rq(x + (size_t)b * xs, K4, O, q2, rq, got, scr), 0);
                assert_int_equal(qt_first_diff(ref + (size_t)b * ys, got, (size_t)ys, what), 0);
            }
            free(q2);
        }
    }
    free(x);
    free(codes);
    free(w8);
    free(acc);
    free(got32);
    free(scr);
    free(ref);
    free(got);
}

static void test_dense_matches_reference(void **state)
{
    uint64_t s = 9;
    static const int Bs[] = {1, 2, 3, 4, 5, 7, 64};
    for (size_t i = 0; i < sizeof Bs / sizeof Bs[0]; i++) {
        check_dense(&s, Bs[i], 12544, 128, 2, 0, 0); /* lenet fc1 */
        check_dense(&s, Bs[i], 128, 10, 0, 0, 0);    /* lenet fc2 */
        check_dense(&s, Bs[i], 5, 3, 0, 0, 0);       /* odd sizes */
        check_dense(&s, Bs[i], 1030, 130, 0, 0, 0);  /* K across a tile edge, O not a multiple of 16 */
    }
    for (int rqm = 0; rqm < 4; rqm++) {
        check_dense(&s, 3, 12544, 32, 1, 1, rqm); /* all 255 x all +1: acc = 3,198,720 */
        check_dense(&s, 3, 12544, 32, 1, 2, rqm);
        check_dense(&s, 9, 300, 48, 0, 0, rqm);
        check_dense(&s, 2, 12544, 128, 2, 0, rqm); /* sparse: many all-zero quads */
    }
    check_dense(&s, 1, 12544, 256, 2, 0, 0); /* two passes of 8 vectors */
    check_dense(&s, 1, 400, 208, 2, 0, 0);   /* 13 vectors: one full pass + tail */
}

static void test_paths_report(void **state)
{
    for (int p = FRL_QPATH_SCALAR; p <= FRL_QPATH_AVX512; p++)
        printf("path %-10s available=%d\n", frl_qpath_name((frl_qpath)p), frl_qpath_available((frl_qpath)p));
    assert_true(frl_qpath_available(FRL_QPATH_SCALAR));
    assert_null(frl_qkern_get(FRL_QPATH_SCALAR));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_report),
        cmocka_unit_test(test_conv_pooled_matches_reference),
        cmocka_unit_test(test_first_conv_matches_reference),
        cmocka_unit_test(test_dense_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
