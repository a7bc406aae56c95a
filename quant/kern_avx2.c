/* AVX2 kernels (no VNNI): vpmaddubsw (uint8 x int8 -> pairwise int16) then
 * vpmaddwd with ones (-> int32 sums of 4 products) then vpaddd. Exact for
 * ternary weights: a pair sum is at most 2 * 255 = 510, far from the int16
 * saturation that forces 7-bit activations for general int8 weights.
 * Same layouts and blocking ideas as kern_avx512.c with 8-lane vectors;
 * bit-exact with kern_ref.c. Integers only. */
#include "quant/qkern_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#include "common/frl_error.h"

#define T256 __attribute__((target("avx2")))
#define INL static inline __attribute__((always_inline))

typedef struct {
    __m256i m0, rnd, amax;
    __m128i sh;
} rq256_t;

T256 INL rq256_t rq256_init(frl_requant_t rq)
{
    rq256_t r;
    r.m0 = _mm256_set1_epi64x((long long)rq.m0);
    r.rnd = _mm256_set1_epi64x(rq.shift ? (long long)1 << (rq.shift - 1) : 0);
    r.amax = _mm256_set1_epi32(frl_requant_sat_acc(rq));
    r.sh = _mm_cvtsi32_si128(rq.shift);
    return r;
}

/* 8 int32 accumulators -> 8 uint8 codes in the low 64 bits; acc clamped to
 * [0, amax] first as in kern_avx512.c, so no 64-bit clamp is needed. */
T256 INL __m128i rq256(__m256i acc, const rq256_t *r)
{
    acc = _mm256_min_epi32(_mm256_max_epi32(acc, _mm256_setzero_si256()), r->amax);
    __m256i lo = _mm256_mul_epu32(acc, r->m0);
    __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(acc, 32), r->m0);
    lo = _mm256_srl_epi64(_mm256_add_epi64(lo, r->rnd), r->sh);
    hi = _mm256_srl_epi64(_mm256_add_epi64(hi, r->rnd), r->sh);
    __m256i v = _mm256_or_si256(lo, _mm256_slli_epi64(hi, 32));
    const __m256i sel = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
                                         -1, -1, -1, -1, -1, -1, -1, -1);
    v = _mm256_shuffle_epi8(v, sel);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return _mm256_castsi256_si128(v);
}

T256 INL __m256i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* acc += 4-way dot products of u8 x (broadcast) and s8 w */
T256 INL __m256i dp(__m256i acc, __m256i x, __m256i w)
{
    const __m256i ones = _mm256_set1_epi16(1);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
}

T256 INL void store8(uint8_t *p, __m128i v)
{
    _mm_storel_epi64((__m128i *)p, v);
}

/* ------------------------------------------------------------ conv ---- */

T256 static int conv_rq(const frl_qconv_dims_t *d, const uint8_t *in, const int8_t *w8, int pool, frl_requant_t rq, uint8_t *out,
                        int out_pad, int out_cs)
{
    if (pool != 2 || (d->out_h & 1) || (d->out_w & 1) || (d->out_c & 15) || (d->in_cs & 3))
        return FRL_EUNSUPPORTED;
    const int cs = d->in_cs, c4n = cs >> 2, k = d->k;
    const size_t rowb = (size_t)(d->in_w + 2 * d->pad) * (size_t)cs;
    const int O16 = d->out_c;
    const size_t w_step = (size_t)O16 * 4;
    const size_t opw = (size_t)((d->out_w >> 1) + 2 * out_pad);
    const rq256_t r = rq256_init(rq);

    for (int y = 0; y < d->out_h; y += 2)
        for (int x = 0; x < d->out_w; x += 2)
            for (int og = 0; og < d->out_c; og += 16) {
                __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00; /* ch og..+7 */
                __m256i b00 = a00, b01 = a00, b10 = a00, b11 = a00;                    /* ch og+8..+15 */
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const uint8_t *p0 = in + (size_t)(y + ky) * rowb + (size_t)(x + kx) * cs;
                        const uint8_t *p1 = p0 + rowb;
                        const int8_t *wt = w8 + ((size_t)(ky * k + kx) * c4n * O16 + og) * 4;
                        for (int c4 = 0; c4 < c4n; c4++, p0 += 4, p1 += 4, wt += w_step) {
                            const __m256i w0 = _mm256_loadu_si256((const __m256i *)wt);
                            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wt + 32));
                            __m256i v;
                            v = bcast32(p0);
                            a00 = dp(a00, v, w0);
                            b00 = dp(b00, v, w1);
                            v = bcast32(p0 + cs);
                            a01 = dp(a01, v, w0);
                            b01 = dp(b01, v, w1);
                            v = bcast32(p1);
                            a10 = dp(a10, v, w0);
                            b10 = dp(b10, v, w1);
                            v = bcast32(p1 + cs);
                            a11 = dp(a11, v, w0);
                            b11 = dp(b11, v, w1);
                        }
                    }
                uint8_t *o = out + (((size_t)(y >> 1) + out_pad) * opw + (size_t)(x >> 1) + out_pad) * out_cs + og;
                store8(o, rq256(_mm256_max_epi32(_mm256_max_epi32(a00, a01), _mm256_max_epi32(a10, a11)), &r));
                store8(o + 8, rq256(_mm256_max_epi32(_mm256_max_epi32(b00, b01), _mm256_max_epi32(b10, b11)), &r));
            }
    return 0;
}

/* ------------------------------------------------------ first conv ---- */

T256 static int conv_first_rq(const frl_qconv_dims_t *d, const uint8_t *img, int32_t zin, const int8_t *w8, int pool,
                              frl_requant_t rq, uint8_t *out, int out_pad, int out_cs, uint8_t *scratch)
{
    if (pool != 1 || d->in_c != 1 || d->k != 3 || (d->out_c & 15) || d->out_c > 64 || zin < 0 || zin > 255)
        return FRL_EUNSUPPORTED;
    const int pw = d->in_w + 2 * d->pad, ph = d->in_h + 2 * d->pad;
    memset(scratch, zin, (size_t)ph * pw + 64);
    for (int y = 0; y < d->in_h; y++)
        memcpy(scratch + (size_t)(y + d->pad) * pw + d->pad, img + (size_t)y * d->in_w, (size_t)d->in_w);
    const int nv = d->out_c >> 3, O16 = d->out_c;
    const rq256_t r = rq256_init(rq);
    __m256i w[3][8], corr[8];
    const __m256i ones = _mm256_set1_epi8(1), z = _mm256_set1_epi32(zin);
    for (int v = 0; v < nv; v++) {
        __m256i s = _mm256_setzero_si256();
        for (int ky = 0; ky < 3; ky++) {
            w[ky][v] = _mm256_loadu_si256((const __m256i *)(w8 + ((size_t)ky * O16 + 8 * v) * 4));
            s = dp(s, ones, w[ky][v]);
        }
        corr[v] = _mm256_mullo_epi32(s, z);
    }
    const size_t opw = (size_t)(d->out_w + 2 * out_pad);
    for (int y = 0; y < d->out_h; y++) {
        const uint8_t *row = scratch + (size_t)y * pw;
        uint8_t *orow = out + ((size_t)(y + out_pad) * opw + out_pad) * out_cs;
        for (int x = 0; x < d->out_w; x++) {
            const __m256i p0 = bcast32(row + x), p1 = bcast32(row + pw + x), p2 = bcast32(row + 2 * pw + x);
            for (int v = 0; v < nv; v++) {
                __m256i a = _mm256_sub_epi32(_mm256_setzero_si256(), corr[v]);
                a = dp(a, p0, w[0][v]);
                a = dp(a, p1, w[1][v]);
                a = dp(a, p2, w[2][v]);
                store8(orow + (size_t)x * out_cs + 8 * v, rq256(a, &r));
            }
        }
    }
    return 0;
}

/* ----------------------------------------------------------- dense ---- */

#define DENSE_MK(NB, NV)                                                                                                           \
    T256 static void mk_##NB##_##NV(const uint8_t *x, size_t xs, int k0, int k1, const int8_t *w, size_t w_step, int32_t *acc,     \
                                    size_t acc_s, int load)                                                                        \
    {                                                                                                                              \
        __m256i a[NB][NV];                                                                                                         \
        _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) a[b][v] =        \
            load ? _mm256_loadu_si256((const __m256i *)(acc + b * acc_s + 8 * v)) : _mm256_setzero_si256();                        \
        const int8_t *wk = w + (size_t)k0 * w_step;                                                                                \
        for (int k4 = k0; k4 < k1; k4++, wk += w_step) {                                                                           \
            __m256i wv[NV];                                                                                                        \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) wv[v] = _mm256_loadu_si256((const __m256i *)(wk + 32 * v));       \
            _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++)                                                                   \
            {                                                                                                                      \
                const __m256i xb = bcast32(x + b * xs + 4 * (size_t)k4);                                                           \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) a[b][v] = dp(a[b][v], xb, wv[v]);                             \
            }                                                                                                                      \
        }                                                                                                                          \
        _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                  \
            _mm256_storeu_si256((__m256i *)(acc + b * acc_s + 8 * v), a[b][v]);                                                    \
    }
DENSE_MK(1, 2)
DENSE_MK(1, 4)
DENSE_MK(2, 2)
DENSE_MK(3, 2)
DENSE_MK(4, 2)

typedef void (*mk_fn)(const uint8_t *, size_t, int, int, const int8_t *, size_t, int32_t *, size_t, int);
static const mk_fn mk_tab[4] = {mk_1_2, mk_2_2, mk_3_2, mk_4_2};

#define DENSE_KTILE 256

T256 static void dense_core(const uint8_t *x, int B, int xs, int K4, int O16, const int8_t *w8, int32_t *acc)
{
    const size_t w_step = (size_t)O16 * 4;
    const int nvt = O16 >> 3; /* 8-lane vectors; even */
    if (B == 1) {
        int v0 = 0;
        for (; v0 + 4 <= nvt; v0 += 4)
            mk_1_4(x, (size_t)xs, 0, K4, w8 + 32 * v0, w_step, acc + 8 * v0, (size_t)O16, 0);
        for (; v0 < nvt; v0 += 2)
            mk_1_2(x, (size_t)xs, 0, K4, w8 + 32 * v0, w_step, acc + 8 * v0, (size_t)O16, 0);
        return;
    }
    for (int v0 = 0; v0 < nvt; v0 += 2)
        for (int k0 = 0; k0 < K4; k0 += DENSE_KTILE) {
            const int k1 = K4 - k0 < DENSE_KTILE ? K4 : k0 + DENSE_KTILE;
            for (int b = 0; b < B; b += 4) {
                const int nb = B - b < 4 ? B - b : 4;
                mk_tab[nb - 1](x + (size_t)b * xs, (size_t)xs, k0, k1, w8 + 32 * v0, w_step, acc + (size_t)b * O16 + 8 * v0,
                               (size_t)O16, k0 > 0);
            }
        }
}

T256 static int dense_rq(const uint8_t *x, int B, int xs, int K4, int O, const int8_t *w8, frl_requant_t rq, uint8_t *y, int ys,
                         int32_t *scratch)
{
    const int O16 = (O + 15) & ~15;
    if (ys < O16)
        return FRL_EUNSUPPORTED;
    dense_core(x, B, xs, K4, O16, w8, scratch);
    const rq256_t r = rq256_init(rq);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O16; o += 8)
            store8(y + (size_t)b * ys + o, rq256(_mm256_loadu_si256((const __m256i *)(scratch + (size_t)b * O16 + o)), &r));
    return 0;
}

T256 static int dense_acc(const uint8_t *x, int B, int xs, int K4, int O, const int8_t *w8, int32_t *acc, int32_t *scratch)
{
    const int O16 = (O + 15) & ~15;
    dense_core(x, B, xs, K4, O16, w8, scratch);
    for (int b = 0; b < B; b++)
        memcpy(acc + (size_t)b * O, scratch + (size_t)b * O16, (size_t)O * sizeof(int32_t));
    return 0;
}

const frl_qkern_t frl__qkern_avx2 = {
    .path = FRL_QPATH_AVX2,
    .conv_first_rq = conv_first_rq,
    .conv_rq = conv_rq,
    .dense_rq = dense_rq,
    .dense_acc = dense_acc,
};

#endif
