/* The scalar reference kernels against golden vectors made independently by
 * tools/gen_quant_golden.py (PyTorch convolutions in float64, Python
 * integer requantisation). This test links kern_ref.c compiled with
 * -mgeneral-regs-only (see CMakeLists.txt): it builds only if the
 * reference has no floating point at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "quant/frl_qkernels.h"
#include "qtest_util.h"

static uint8_t *blob;
static size_t blob_len, pos;

static int setup(void **state)
{
    FILE *f = fopen(FRL_SOURCE_DIR "/tests/data/golden/quant_golden.bin", "rb");
    if (!f)
        return -1;
    blob = malloc(1 << 20);
    blob_len = fread(blob, 1, 1 << 20, f);
    fclose(f);
    return 0;
}
static int teardown(void **state)
{
    free(blob);
    return 0;
}

static const void *take(size_t n)
{
    assert_true(pos + n <= blob_len);
    const void *p = blob + pos;
    pos += n;
    return p;
}
/* an aligned copy of n int32 (the blob has no alignment); freed by the caller */
static int32_t *take_i32(size_t n)
{
    int32_t *v = malloc(n * sizeof(int32_t) + 1);
    memcpy(v, take(n * sizeof(int32_t)), n * sizeof(int32_t));
    return v;
}
static int32_t geti(void)
{
    int32_t v;
    memcpy(&v, take(4), 4);
    return v;
}

/* OIHW int8 ternary -> 2-bit codes with k = (ky * 3 + kx) * C + c */
static uint8_t *codes_from_oihw(const int8_t *w, int O, int C, int k)
{
    const int K = k * k * C;
    const size_t rb = frl_tern_row_bytes((uint32_t)K);
    uint8_t *codes = calloc((size_t)O * rb, 1);
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < k * k; t++) {
                int v = w[((size_t)o * C + c) * k * k + t];
                int kk = t * C + c;
                if (v)
                    codes[(size_t)o * rb + (kk >> 2)] |= (uint8_t)((v > 0 ? 1u : 3u) << (2 * (kk & 3)));
            }
    return codes;
}

static void test_golden_vectors(void **state)
{
    int counts[5] = {0};
    pos = 0;
    for (;;) {
        uint32_t kind = (uint32_t)geti();
        uint32_t np = (uint32_t)geti();
        int32_t p[16];
        assert_true(np <= 16);
        for (uint32_t i = 0; i < np; i++)
            p[i] = geti();
        if (kind == 0)
            break;
        assert_true(kind <= 4);
        counts[kind]++;
        if (kind == 1) { /* first conv: H W OC zin m0 s */
            int H = p[0], W = p[1], OC = p[2];
            frl_requant_t rq = {p[4], p[5]};
            const uint8_t *img = take((size_t)H * W);
            uint8_t *codes = codes_from_oihw(take((size_t)OC * 9), OC, 1, 3);
            int32_t *want_acc = take_i32((size_t)H * W * OC);
            const uint8_t *want = take((size_t)H * W * OC);
            frl_qconv_dims_t d = {H, W, 1, 1, 1, 3, H, W, OC};
            int32_t *acc = malloc(sizeof(int32_t) * H * W * OC);
            uint8_t *out = malloc((size_t)H * W * OC);
            frl_qref_conv_first(&d, img, p[3], codes, acc);
            frl_qref_requant(acc, H, W, OC, rq, out, 0, OC);
            assert_int_equal(qt_first_diff32(want_acc, acc, (size_t)H * W * OC, "golden first acc"), 0);
            assert_int_equal(qt_first_diff(want, out, (size_t)H * W * OC, "golden first out"), 0);
            free(codes);
            free(want_acc);
            free(acc);
            free(out);
        } else if (kind == 2) { /* conv: H W C OC pad pool m0 s */
            int H = p[0], W = p[1], C = p[2], OC = p[3], pad = p[4], pool = p[5];
            frl_requant_t rq = {p[6], p[7]};
            int CS = (C + 3) & ~3, ph = H + 2 * pad, pw = W + 2 * pad, oh = ph - 2, ow = pw - 2;
            const uint8_t *x = take((size_t)H * W * C);
            uint8_t *codes = codes_from_oihw(take((size_t)OC * C * 9), OC, C, 3);
            int poh = oh / pool, pow_ = ow / pool;
            int32_t *want_acc = take_i32((size_t)poh * pow_ * OC);
            const uint8_t *want = take((size_t)poh * pow_ * OC);
            uint8_t *in = calloc((size_t)ph * pw * CS, 1);
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++)
                    memcpy(in + ((size_t)(y + pad) * pw + xx + pad) * CS, x + ((size_t)y * W + xx) * C, (size_t)C);
            frl_qconv_dims_t d = {H, W, C, CS, pad, 3, oh, ow, OC};
            int32_t *acc = malloc(sizeof(int32_t) * oh * ow * OC), *pooled = malloc(sizeof(int32_t) * oh * ow * OC);
            uint8_t *out = malloc((size_t)poh * pow_ * OC);
            frl_qref_conv(&d, in, codes, acc);
            const int32_t *a = acc;
            if (pool > 1) {
                frl_qref_maxpool(acc, oh, ow, OC, pool, pooled);
                a = pooled;
            }
            frl_qref_requant(a, poh, pow_, OC, rq, out, 0, OC);
            assert_int_equal(qt_first_diff32(want_acc, a, (size_t)poh * pow_ * OC, "golden conv acc"), 0);
            assert_int_equal(qt_first_diff(want, out, (size_t)poh * pow_ * OC, "golden conv out"), 0);
            free(codes);
            free(want_acc);
            free(in);
            free(acc);
            free(pooled);
            free(out);
        } else if (kind == 3) { /* dense: B K O m0 s */
            int B = p[0], K = p[1], O = p[2];
            frl_requant_t rq = {p[3], p[4]};
            const uint8_t *x = take((size_t)B * K);
            uint8_t *codes = codes_from_oihw(take((size_t)O * K), O, K, 1);
            int32_t *want_acc = take_i32((size_t)B * O);
            const uint8_t *want = take((size_t)B * O);
            int32_t *acc = malloc(sizeof(int32_t) * B * O);
            uint8_t *out = malloc((size_t)B * O);
            frl_qref_dense(x, B, K, K, O, codes, acc);
            for (int b = 0; b < B; b++)
                frl_qref_requant(acc + (size_t)b * O, 1, 1, O, rq, out + (size_t)b * O, 0, O);
            assert_int_equal(qt_first_diff32(want_acc, acc, (size_t)B * O, "golden dense acc"), 0);
            assert_int_equal(qt_first_diff(want, out, (size_t)B * O, "golden dense out"), 0);
            free(codes);
            free(want_acc);
            free(acc);
            free(out);
        } else if (kind == 4) { /* requant table */
            for (int i = 0; i < p[0]; i++) {
                int32_t acc = geti(), m0 = geti(), s = geti(), y = geti();
                frl_requant_t rq = {m0, s};
                if (frl_requant_u8(acc, rq) != y)
                    printf("requant row %d: acc %d m0 %d s %d: want %d got %d\n", i, acc, m0, s, y, frl_requant_u8(acc, rq));
                assert_int_equal(frl_requant_u8(acc, rq), y);
            }
        }
    }
    printf("golden cases: first %d, conv %d, dense %d, requant tables %d\n", counts[1], counts[2], counts[3], counts[4]);
    assert_true(counts[1] >= 1 && counts[2] >= 1 && counts[3] >= 1 && counts[4] >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_vectors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
