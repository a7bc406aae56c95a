/* frl_sgemm: the one matrix-multiply every layer op goes through.
 *
 * The fast path is OpenBLAS's cblas_sgemm, forced to ONE thread: frl runs
 * one client per core, so threads inside a GEMM would only fight the
 * client threads for the same cores. openblas_set_num_threads() is
 * process-wide; it is called once (pthread_once) before the first GEMM.
 *
 * The reference path is a plain triple loop with double accumulation. It
 * exists so that tests can check the BLAS path (and every op built on it)
 * against code that has no blocking, packing or vector tricks. */
#include "supermask/frl_ops.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <stdatomic.h>

/* Declared here as well as in OpenBLAS's cblas.h: other cblas.h flavours
 * (netlib, ATLAS) do not declare it, and we only link OpenBLAS. */
void openblas_set_num_threads(int);

/* Test-only switch, process-wide: set it before starting threads and leave it
 * alone afterwards. Atomic only so that a racy flip is not undefined
 * behaviour; training code never sets it. */
static atomic_int g_use_reference;
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;

/* The core OpenBLAS would use instead of its Prescott fallback, or NULL. */
static const char *better_core(void)
{
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

int frl_blas_fix_core(char *const argv[])
{
    const char *keep = getenv("FRL_KEEP_BLAS_CORE");
    if (!argv || !argv[0] || getenv("OPENBLAS_CORETYPE") || (keep && keep[0] && keep[0] != '0'))
        return 0;
    const char *name = openblas_get_corename();
    if (!name || strcasecmp(name, "Prescott") != 0)
        return 0;
    const char *core = better_core();
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return 0;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the kernels we have */
    return 0;
}

static void blas_init_once(void)
{
    openblas_set_num_threads(1);
}

void frl_sgemm_set_reference(int on)
{
    atomic_store_explicit(&g_use_reference, on ? 1 : 0, memory_order_relaxed);
}

/* Internal (declared again in ops_dense.c): ops with their own SIMD kernels
 * fall back to frl_sgemm while the reference is forced, so that tests can
 * compare every op against plain loops. */
int frl__sgemm_reference_on(void);
int frl__sgemm_reference_on(void)
{
    return atomic_load_explicit(&g_use_reference, memory_order_relaxed);
}

/* A is (M, K) or, transposed, stored as (K, M); B is (K, N) or stored as
 * (N, K); C is (M, N). All row-major with leading dimensions lda/ldb/ldc.
 * beta == 0 never reads C, so C may hold garbage (BLAS semantics). */
static void sgemm_reference(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                            int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int p = 0; p < K; p++) {
                float a = trans_a ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                float b = trans_b ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(size_t)i * ldc + j];
            double prev = beta == 0.0f ? 0.0 : (double)beta * (double)*c;
            *c = (float)((double)alpha * acc + prev);
        }
    }
}

/* Row-major C[M,N] = alpha op(A) op(B) + beta C. Arguments a BLAS would reject
 * (negative sizes, leading dimensions too small) make the call a no-op
 * instead of reaching OpenBLAS's xerbla, which prints to stderr. The layer
 * ops check their dimensions before they get here. */
void frl_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc)
{
    if (M < 0 || N < 0 || K < 0)
        return;
    int a_cols = trans_a ? M : K; /* columns of A as stored */
    int b_cols = trans_b ? K : N;
    if (lda < (a_cols > 1 ? a_cols : 1) || ldb < (b_cols > 1 ? b_cols : 1) || ldc < (N > 1 ? N : 1))
        return;
    if (M == 0 || N == 0)
        return;
    /* K == 0 is C = beta C; the loop does exactly that, while BLAS
     * implementations have disagreed on it over the years. */
    if (K == 0 || atomic_load_explicit(&g_use_reference, memory_order_relaxed)) {
        sgemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    pthread_once(&g_blas_once, blas_init_once);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
                ldb, beta, C, ldc);
}
