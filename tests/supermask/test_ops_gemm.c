/* frl_sgemm: the OpenBLAS path agrees with the portable reference loop for
 * every transpose combination, odd sizes and padded leading dimensions.
 *
 * Tolerance: |blas - ref| <= (K + 2) * FLT_EPSILON * (|alpha| sum_p |a_ip b_pj|
 * + |beta c_ij|) + 1e-30, i.e. twice the textbook worst-case rounding bound
 * of a length-K float dot product (the reference accumulates in double, so
 * it is the more accurate side). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/frl_rng.h"
#include "supermask/frl_ops.h"

static void fill_uniform(float *v, size_t n, uint64_t seed)
{
    uint8_t key[FRL_SEED_BYTES];
    frl_rng_t rng;
    frl_seed_from_u64(seed, key);
    frl_rng_init(&rng, key, FRL_STREAM_TEST, 0, 0);
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0f * frl_rng_unit_f32(&rng) - 1.0f;
}

static float *xalloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

/* Runs one (ta, tb, M, N, K) case on both paths and compares. Leading
 * dimensions are the stored width plus `pad`, to catch code that assumes
 * packed rows. Returns the number of mismatches (first few printed). */
static int compare_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad, uint64_t seed)
{
    int a_rows = ta ? K : M, a_cols = ta ? M : K;
    int b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    float *A = xalloc((size_t)a_rows * lda), *Bm = xalloc((size_t)b_rows * ldb);
    float *C0 = xalloc((size_t)M * ldc), *C_ref = xalloc((size_t)M * ldc), *C_blas = xalloc((size_t)M * ldc);
    fill_uniform(A, (size_t)a_rows * lda, seed);
    fill_uniform(Bm, (size_t)b_rows * ldb, seed + 1);
    fill_uniform(C0, (size_t)M * ldc, seed + 2);
    for (size_t i = 0; i < (size_t)M * ldc; i++)
        C_ref[i] = C_blas[i] = C0[i];

    frl_sgemm_set_reference(1);
    frl_sgemm(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C_ref, ldc);
    frl_sgemm_set_reference(0);
    frl_sgemm(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C_blas, ldc);

    int bad = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            size_t at = (size_t)i * ldc + j;
            if (j >= N) { /* padding columns must be left alone */
                if (C_blas[at] != C0[at] || C_ref[at] != C0[at]) {
                    if (bad++ < 5)
                        printf("  ta=%d tb=%d M=%d N=%d K=%d: padding C[%d][%d] written\n", ta, tb, M, N, K, i, j);
                }
                continue;
            }
            double mag = fabs((double)beta * C0[at]);
            for (int p = 0; p < K; p++) {
                float a = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                float b = tb ? Bm[(size_t)j * ldb + p] : Bm[(size_t)p * ldb + j];
                mag += fabs((double)alpha * a * b);
            }
            double tol = (K + 2) * (double)FLT_EPSILON * mag + 1e-30;
            double err = fabs((double)C_blas[at] - (double)C_ref[at]);
            if (!(err <= tol)) {
                if (bad++ < 5)
                    printf("  ta=%d tb=%d M=%d N=%d K=%d: C[%d][%d] blas %.9g ref %.9g err %.3g tol %.3g\n", ta, tb, M, N, K, i, j,
                           C_blas[at], C_ref[at], err, tol);
            }
        }
    }
    free(A);
    free(Bm);
    free(C0);
    free(C_ref);
    free(C_blas);
    return bad;
}

/* Odd and awkward sizes: 1s, primes, one past a power of two, K much larger
 * than M and N and the reverse, and the LeNet conv2 shapes. */
static const int k_sizes[][3] = {{1, 1, 1},     {1, 7, 3},   {7, 1, 5},    {7, 13, 5},     {33, 17, 65},
                                 {17, 129, 31}, {5, 3, 300}, {100, 90, 1}, {64, 784, 288}, {288, 784, 64}};

static void check_combo(int ta, int tb)
{
    int bad = 0;
    uint64_t seed = 100;
    for (size_t s = 0; s < sizeof k_sizes / sizeof k_sizes[0]; s++) {
        const int *sz = k_sizes[s];
        /* The two LeNet-sized cases run once (with alpha, beta and padded
         * leading dimensions) to keep the sanitizer build fast. */
        if ((long)sz[0] * sz[1] * sz[2] < 1000000)
            bad += compare_case(ta, tb, sz[0], sz[1], sz[2], 1.0f, 0.0f, 0, seed += 3);
        bad += compare_case(ta, tb, sz[0], sz[1], sz[2], 1.5f, -0.5f, 3, seed += 3);
    }
    assert_int_equal(bad, 0);
}

static void test_sgemm_blas_matches_reference_no_transpose(void **state)
{
    check_combo(0, 0);
}

static void test_sgemm_blas_matches_reference_transpose_a(void **state)
{
    check_combo(1, 0);
}

static void test_sgemm_blas_matches_reference_transpose_b(void **state)
{
    check_combo(0, 1);
}

static void test_sgemm_blas_matches_reference_transpose_both(void **state)
{
    check_combo(1, 1);
}

/* [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50], exact in float, on both paths. */
static void test_sgemm_small_product_is_exact(void **state)
{
    const float A[4] = {1, 2, 3, 4}, Bm[4] = {5, 6, 7, 8};
    for (int ref = 0; ref <= 1; ref++) {
        float C[4] = {0};
        frl_sgemm_set_reference(ref);
        frl_sgemm(0, 0, 2, 2, 2, 1.0f, A, 2, Bm, 2, 0.0f, C, 2);
        assert_true(C[0] == 19.0f && C[1] == 22.0f && C[2] == 43.0f && C[3] == 50.0f);
    }
    frl_sgemm_set_reference(0);
}

/* beta == 0 means C is output only: NaN already in C must not leak in. */
static void test_sgemm_beta_zero_overwrites_nan(void **state)
{
    float A[6], Bm[6];
    fill_uniform(A, 6, 1);
    fill_uniform(Bm, 6, 2);
    for (int ref = 0; ref <= 1; ref++) {
        float C[4] = {NAN, NAN, NAN, NAN};
        frl_sgemm_set_reference(ref);
        frl_sgemm(0, 0, 2, 2, 3, 1.0f, A, 3, Bm, 2, 0.0f, C, 2);
        for (int i = 0; i < 4; i++)
            assert_false(isnan(C[i]));
    }
    frl_sgemm_set_reference(0);
}

/* K == 0: the product is empty, so C = beta * C. */
static void test_sgemm_zero_k_scales_c(void **state)
{
    const float dummy = 1.0f;
    for (int ref = 0; ref <= 1; ref++) {
        float C[4] = {1, 2, 3, 4};
        frl_sgemm_set_reference(ref);
        frl_sgemm(0, 0, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 0.5f, C, 2);
        assert_true(C[0] == 0.5f && C[1] == 1.0f && C[2] == 1.5f && C[3] == 2.0f);
    }
    frl_sgemm_set_reference(0);
}

/* A leading dimension smaller than the row makes the call a no-op rather
 * than reading out of bounds. */
static void test_sgemm_rejects_short_leading_dimension(void **state)
{
    const float A[4] = {1, 2, 3, 4}, Bm[4] = {5, 6, 7, 8};
    float C[4] = {9, 9, 9, 9};
    frl_sgemm(0, 0, 2, 2, 2, 1.0f, A, 1, Bm, 2, 0.0f, C, 2);
    assert_true(C[0] == 9.0f && C[1] == 9.0f && C[2] == 9.0f && C[3] == 9.0f);
}

/* The portable dense path (frl_sgemm on OpenBLAS; main() sets FRL_NO_SIMD
 * so the AVX-512 kernels step aside) against the reference loops, with the
 * same (terms + 2) * FLT_EPSILON bound, here relative to the output's
 * largest magnitude sum (inputs are in [-1, 1], so that is <= terms). */
static void test_dense_portable_path_matches_reference(void **state)
{
    enum { B = 5, I = 301, O = 9 };
    static float inp[B * I], w[O * I], dout[B * O];
    static float out[2][B * O], dinp[2][B * I], dw[2][O * I];
    fill_uniform(inp, B * I, 51);
    fill_uniform(w, O * I, 52);
    fill_uniform(dout, B * O, 53);
    for (int ref = 0; ref <= 1; ref++) {
        frl_sgemm_set_reference(ref);
        assert_int_equal(frl_dense_forward(out[ref], inp, w, B, I, O), 0);
        assert_int_equal(frl_dense_backward(dinp[ref], dw[ref], dout, inp, w, B, I, O), 0);
    }
    frl_sgemm_set_reference(0);
    for (int i = 0; i < B * O; i++)
        assert_true(fabsf(out[0][i] - out[1][i]) <= (I + 2) * FLT_EPSILON * I);
    for (int i = 0; i < B * I; i++)
        assert_true(fabsf(dinp[0][i] - dinp[1][i]) <= (O + 2) * FLT_EPSILON * O);
    for (int i = 0; i < O * I; i++)
        assert_true(fabsf(dw[0][i] - dw[1][i]) <= (B + 2) * FLT_EPSILON * B);
}

/* frl_blas_fix_core must never exec when the user chose a core, when it is
 * turned off, or without an argv: if it did, this test binary would restart
 * (and loop while the variable stays unset). */
static void test_blas_fix_core_leaves_a_chosen_core_alone(void **state)
{
    (void)state;
    char *argv[] = {"test_ops_gemm", NULL};
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    assert_int_equal(frl_blas_fix_core(argv), 0);
    assert_string_equal(getenv("OPENBLAS_CORETYPE"), "Haswell");
    unsetenv("OPENBLAS_CORETYPE");
}

static void test_blas_fix_core_is_off_with_keep_blas_core(void **state)
{
    (void)state;
    char *argv[] = {"test_ops_gemm", NULL};
    unsetenv("OPENBLAS_CORETYPE");
    setenv("FRL_KEEP_BLAS_CORE", "1", 1);
    assert_int_equal(frl_blas_fix_core(argv), 0);
    assert_null(getenv("OPENBLAS_CORETYPE"));
    unsetenv("FRL_KEEP_BLAS_CORE");
}

static void test_blas_fix_core_without_argv_does_nothing(void **state)
{
    (void)state;
    unsetenv("OPENBLAS_CORETYPE");
    assert_int_equal(frl_blas_fix_core(NULL), 0);
    assert_null(getenv("OPENBLAS_CORETYPE"));
}

int main(void)
{
    /* An exec by frl_blas_fix_core would restart this binary from here. */
    if (getenv("FRL_TEST_OPS_GEMM_STARTED")) {
        fprintf(stderr, "test_ops_gemm: restarted by an exec in frl_blas_fix_core\n");
        return 1;
    }
    setenv("FRL_TEST_OPS_GEMM_STARTED", "1", 1);
    /* This file tests the BLAS path; keep the ops' own SIMD kernels out. */
    setenv("FRL_NO_SIMD", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_blas_matches_reference_no_transpose),
        cmocka_unit_test(test_sgemm_blas_matches_reference_transpose_a),
        cmocka_unit_test(test_sgemm_blas_matches_reference_transpose_b),
        cmocka_unit_test(test_sgemm_blas_matches_reference_transpose_both),
        cmocka_unit_test(test_sgemm_small_product_is_exact),
        cmocka_unit_test(test_sgemm_beta_zero_overwrites_nan),
        cmocka_unit_test(test_sgemm_zero_k_scales_c),
        cmocka_unit_test(test_sgemm_rejects_short_leading_dimension),
        cmocka_unit_test(test_dense_portable_path_matches_reference),
        cmocka_unit_test(test_blas_fix_core_leaves_a_chosen_core_alone),
        cmocka_unit_test(test_blas_fix_core_is_off_with_keep_blas_core),
        cmocka_unit_test(test_blas_fix_core_without_argv_does_nothing),
    };
    return cmocka_run_group_tests_name("supermask_ops_gemm", tests, NULL, NULL);
}
