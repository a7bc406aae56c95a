/* AVX-512 VNNI kernels (vpdpbusd: uint8 activations x int8 ternary weights
 * -> int32, 64 MAC per instruction). Integers only; bit-exact with
 * kern_ref.c (tests/quant/test_qkernels.c checks every path).
 *
 * Register blocking:
 *   conv (pooled 2x2): a 2 x 4 block of output pixels (two pool windows) x
 *     32 output channels = 16 zmm accumulators; per 4 input channels: 2
 *     weight loads, 8 broadcasts, 16 vpdpbusd. The pool runs on the int32
 *     accumulators in registers, then one requantisation per pooled value.
 *   first conv (1 input channel, 3x3): the image is padded with the input
 *     zero point so q = p - zin is 0 there, and each kernel row's 3 taps (+1
 *     zero weight) are one 32-bit lane: 3 vpdpbusd per 16 channels, minus
 *     zin * sum(T) per channel.
 *   dense: batch 1 streams all weights once with 8 accumulator chains; larger
 *     batches tile K so a 64-output x 128-step weight tile (32 KB) stays in
 *     L1 while 4 images at a time run through it.
 * Requantisation: max(acc, 0) (exact: non-positive accumulators give 0),
 * 32x32->64 multiplies on even/odd lanes, + 2^(s-1), logical shift, min 255. */
#include "quant/qkern_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#include "common/frl_error.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define INL static inline __attribute__((always_inline))

typedef struct {
    __m512i m0, rnd, amax;
    __m128i sh;
} rq512_t;

T512 INL rq512_t rq512_init(frl_requant_t rq)
{
    rq512_t r;
    r.m0 = _mm512_set1_epi64((long long)rq.m0);
    r.rnd = _mm512_set1_epi64(rq.shift ? (long long)1 << (rq.shift - 1) : 0);
    r.amax = _mm512_set1_epi32(frl_requant_sat_acc(rq));
    r.sh = _mm_cvtsi32_si128(rq.shift);
    return r;
}

/* 16 int32 accumulators -> 16 uint8 codes. acc is clamped to [0, amax]
 * first (exact: requantisation is monotone, non-positive accumulators give
 * 0 and amax gives 255), so every 64-bit result is already in [0, 255]. */
T512 INL __m128i rq512(__m512i acc, const rq512_t *r)
{
    acc = _mm512_min_epi32(_mm512_max_epi32(acc, _mm512_setzero_si512()), r->amax);
    __m512i lo = _mm512_mul_epu32(acc, r->m0);
    __m512i hi = _mm512_mul_epu32(_mm512_shuffle_epi32(acc, _MM_PERM_DDBB), r->m0); /* odd lanes to even */
    lo = _mm512_srl_epi64(_mm512_add_epi64(lo, r->rnd), r->sh);
    hi = _mm512_srl_epi64(_mm512_add_epi64(hi, r->rnd), r->sh);
    __m512i v = _mm512_mask_shuffle_epi32(lo, (__mmask16)0xAAAA, hi, _MM_PERM_CCAA); /* hi's even dwords to odd lanes */
    return _mm512_cvtepi32_epi8(v);
}

/* acc += dot4(u8 x, s8 w) per 32-bit lane. Inline asm with a tied "+v"
 * accumulator: gcc 12's intrinsic makes it copy every accumulator through
 * a spare register on each step (measured 4x slower on the conv block). */
#define DPBUSD(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))

T512 INL __m512i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* ------------------------------------------------------------ conv ---- */

T512 static int conv_rq(const frl_qconv_dims_t *d, const uint8_t *in, const int8_t *w8, int pool, frl_requant_t rq, uint8_t *out,
                        int out_pad, int out_cs)
{
    if (pool != 2 || (d->out_h & 1) || (d->out_w & 3) || (d->out_c & 31) || (d->in_cs & 3) || d->k * d->k * d->in_cs > 65536)
        return FRL_EUNSUPPORTED;
    const int cs = d->in_cs, c4n = cs >> 2, k = d->k;
    const size_t pw = (size_t)(d->in_w + 2 * d->pad);
    const size_t rowb = pw * (size_t)cs;
    const int O16 = d->out_c; /* multiple of 32 */
    const size_t w_step = (size_t)O16 * 4;
    const size_t opw = (size_t)((d->out_w >> 1) + 2 * out_pad);
    const rq512_t r = rq512_init(rq);

    for (int y = 0; y < d->out_h; y += 2)
        for (int x = 0; x < d->out_w; x += 4)
            for (int og = 0; og < d->out_c; og += 32) {
                __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00; /* row 0, cols 0..3, ch og..+15 */
                __m512i a10 = a00, a11 = a00, a12 = a00, a13 = a00;                    /* row 1 */
                __m512i b00 = a00, b01 = a00, b02 = a00, b03 = a00;                    /* row 0, ch og+16..+31 */
                __m512i b10 = a00, b11 = a00, b12 = a00, b13 = a00;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const uint8_t *p0 = in + (size_t)(y + ky) * rowb + (size_t)(x + kx) * cs;
                        const uint8_t *p1 = p0 + rowb;
                        const int8_t *wt = w8 + ((size_t)(ky * k + kx) * c4n * O16 + og) * 4;
                        for (int c4 = 0; c4 < c4n; c4++, p0 += 4, p1 += 4, wt += w_step) {
                            const __m512i w0 = _mm512_loadu_si512((const void *)wt);
                            const __m512i w1 = _mm512_loadu_si512((const void *)(wt + 64));
                            __m512i v;
                            v = bcast32(p0);
                            DPBUSD(a00, v, w0);
                            DPBUSD(b00, v, w1);
                            v = bcast32(p0 + cs);
                            DPBUSD(a01, v, w0);
                            DPBUSD(b01, v, w1);
                            v = bcast32(p0 + 2 * cs);
                            DPBUSD(a02, v, w0);
                            DPBUSD(b02, v, w1);
                            v = bcast32(p0 + 3 * cs);
                            DPBUSD(a03, v, w0);
                            DPBUSD(b03, v, w1);
                            v = bcast32(p1);
                            DPBUSD(a10, v, w0);
                            DPBUSD(b10, v, w1);
                            v = bcast32(p1 + cs);
                            DPBUSD(a11, v, w0);
                            DPBUSD(b11, v, w1);
                            v = bcast32(p1 + 2 * cs);
                            DPBUSD(a12, v, w0);
                            DPBUSD(b12, v, w1);
                            v = bcast32(p1 + 3 * cs);
                            DPBUSD(a13, v, w0);
                            DPBUSD(b13, v, w1);
                        }
                    }
                /* 2x2 max-pool on the accumulators, then requantise. */
                uint8_t *o0 = out + (((size_t)(y >> 1) + out_pad) * opw + (size_t)(x >> 1) + out_pad) * out_cs + og;
                uint8_t *o1 = o0 + out_cs;
                __m512i m;
                m = _mm512_max_epi32(_mm512_max_epi32(a00, a01), _mm512_max_epi32(a10, a11));
                _mm_storeu_si128((__m128i *)o0, rq512(m, &r));
                m = _mm512_max_epi32(_mm512_max_epi32(b00, b01), _mm512_max_epi32(b10, b11));
                _mm_storeu_si128((__m128i *)(o0 + 16), rq512(m, &r));
                m = _mm512_max_epi32(_mm512_max_epi32(a02, a03), _mm512_max_epi32(a12, a13));
                _mm_storeu_si128((__m128i *)o1, rq512(m, &r));
                m = _mm512_max_epi32(_mm512_max_epi32(b02, b03), _mm512_max_epi32(b12, b13));
                _mm_storeu_si128((__m128i *)(o1 + 16), rq512(m, &r));
            }
    return 0;
}

/* ------------------------------------------------------ first conv ---- */

/* One output row of the first conv for NV vectors of 16 channels (NV is a
 * constant after inlining, so weights and corrections stay in registers). */
T512 INL void first_row(const uint8_t *row, size_t pw, int out_w, const int8_t *w8, int O16, __m512i z, const rq512_t *r,
                        uint8_t *orow, size_t out_cs, const int NV)
{
    __m512i w0[4], w1[4], w2[4], c[4];
    const __m512i ones = _mm512_set1_epi8(1);
    for (int v = 0; v < NV; v++) {
        w0[v] = _mm512_loadu_si512((const void *)(w8 + (size_t)(16 * v) * 4));
        w1[v] = _mm512_loadu_si512((const void *)(w8 + ((size_t)O16 + 16 * v) * 4));
        w2[v] = _mm512_loadu_si512((const void *)(w8 + ((size_t)2 * O16 + 16 * v) * 4));
        __m512i s = _mm512_setzero_si512();
        DPBUSD(s, ones, w0[v]);
        DPBUSD(s, ones, w1[v]);
        DPBUSD(s, ones, w2[v]);
        c[v] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_mullo_epi32(s, z)); /* -zin * sum(T) */
    }
    for (int x = 0; x < out_w; x++) {
        const __m512i p0 = bcast32(row + x), p1 = bcast32(row + pw + x), p2 = bcast32(row + 2 * pw + x);
        for (int v = 0; v < NV; v++) {
            __m512i a = c[v];
            DPBUSD(a, p0, w0[v]);
            DPBUSD(a, p1, w1[v]);
            DPBUSD(a, p2, w2[v]);
            _mm_storeu_si128((__m128i *)(orow + (size_t)x * out_cs + 16 * v), rq512(a, r));
        }
    }
}

T512 static int conv_first_rq(const frl_qconv_dims_t *d, const uint8_t *img, int32_t zin, const int8_t *w8, int pool,
                              frl_requant_t rq, uint8_t *out, int out_pad, int out_cs, uint8_t *scratch)
{
    if (pool != 1 || d->in_c != 1 || d->k != 3 || (d->out_c & 15) || d->out_c > 64 || zin < 0 || zin > 255)
        return FRL_EUNSUPPORTED;
    const int pw = d->in_w + 2 * d->pad, ph = d->in_h + 2 * d->pad;
    /* padded image, border = zin (so that q = p - zin = 0 there) */
    memset(scratch, zin, (size_t)ph * pw + 64);
    for (int y = 0; y < d->in_h; y++)
        memcpy(scratch + (size_t)(y + d->pad) * pw + d->pad, img + (size_t)y * d->in_w, (size_t)d->in_w);
    const int nv = d->out_c >> 4, O16 = d->out_c;
    const rq512_t r = rq512_init(rq);
    const __m512i z = _mm512_set1_epi32(zin);
    const size_t opw = (size_t)(d->out_w + 2 * out_pad);
    for (int y = 0; y < d->out_h; y++) {
        const uint8_t *row = scratch + (size_t)y * pw;
        uint8_t *orow = out + ((size_t)(y + out_pad) * opw + out_pad) * out_cs;
        switch (nv) {
        case 1:
            first_row(row, (size_t)pw, d->out_w, w8, O16, z, &r, orow, (size_t)out_cs, 1);
            break;
        case 2:
            first_row(row, (size_t)pw, d->out_w, w8, O16, z, &r, orow, (size_t)out_cs, 2);
            break;
        case 3:
            first_row(row, (size_t)pw, d->out_w, w8, O16, z, &r, orow, (size_t)out_cs, 3);
            break;
        default:
            first_row(row, (size_t)pw, d->out_w, w8, O16, z, &r, orow, (size_t)out_cs, 4);
            break;
        }
    }
    return 0;
}

/* ----------------------------------------------------------- dense ---- */

/* acc[b][v] += x_b . W over k4 in [k0, k1) for NB images and NV vectors of
 * 16 outputs starting at `w` (already offset to the first output). */
#define DENSE_MK(NB, NV)                                                                                                           \
    T512 static void mk_##NB##_##NV(const uint8_t *x, size_t xs, int k0, int k1, const int8_t *w, size_t w_step, int32_t *acc,     \
                                    size_t acc_s, int load)                                                                        \
    {                                                                                                                              \
        __m512i a[NB][NV];                                                                                                         \
        _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) a[b][v] =        \
            load ? _mm512_loadu_si512((const void *)(acc + b * acc_s + 16 * v)) : _mm512_setzero_si512();                          \
        const int8_t *wk = w + (size_t)k0 * w_step;                                                                                \
        for (int k4 = k0; k4 < k1; k4++, wk += w_step) {                                                                           \
            __m512i wv[NV];                                                                                                        \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_si512((const void *)(wk + 64 * v));          \
            _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++)                                                                   \
            {                                                                                                                      \
                const __m512i xb = bcast32(x + b * xs + 4 * (size_t)k4);                                                           \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) DPBUSD(a[b][v], xb, wv[v]);                                   \
            }                                                                                                                      \
        }                                                                                                                          \
        _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                  \
            _mm512_storeu_si512((void *)(acc + b * acc_s + 16 * v), a[b][v]);                                                      \
    }
DENSE_MK(1, 1)
DENSE_MK(1, 2)
DENSE_MK(1, 3)
DENSE_MK(1, 4)
DENSE_MK(1, 8)
DENSE_MK(2, 1)
DENSE_MK(2, 2)
DENSE_MK(2, 3)
DENSE_MK(2, 4)
DENSE_MK(3, 1)
DENSE_MK(3, 2)
DENSE_MK(3, 3)
DENSE_MK(3, 4)
DENSE_MK(4, 1)
DENSE_MK(4, 2)
DENSE_MK(4, 3)
DENSE_MK(4, 4)

typedef void (*mk_fn)(const uint8_t *, size_t, int, int, const int8_t *, size_t, int32_t *, size_t, int);
static const mk_fn mk_tab[4][4] = {
    {mk_1_1, mk_1_2, mk_1_3, mk_1_4},
    {mk_2_1, mk_2_2, mk_2_3, mk_2_4},
    {mk_3_1, mk_3_2, mk_3_3, mk_3_4},
    {mk_4_1, mk_4_2, mk_4_3, mk_4_4},
};

#define DENSE_KTILE 128

/* acc (B, O16) = x (B, K4*4) . W */
T512 static void dense_core(const uint8_t *x, int B, int xs, int K4, int O16, const int8_t *w8, int32_t *acc)
{
    const size_t w_step = (size_t)O16 * 4;
    const int nvt = O16 >> 4;
    if (B == 1) {
        int v0 = 0;
        for (; v0 + 8 <= nvt; v0 += 8)
            mk_1_8(x, (size_t)xs, 0, K4, w8 + 64 * v0, w_step, acc + 16 * v0, (size_t)O16, 0);
        for (; v0 < nvt; v0 += 4) {
            int nv = nvt - v0 < 4 ? nvt - v0 : 4;
            mk_tab[0][nv - 1](x, (size_t)xs, 0, K4, w8 + 64 * v0, w_step, acc + 16 * v0, (size_t)O16, 0);
        }
        return;
    }
    for (int v0 = 0; v0 < nvt; v0 += 4) {
        const int nv = nvt - v0 < 4 ? nvt - v0 : 4;
        for (int k0 = 0; k0 < K4; k0 += DENSE_KTILE) {
            const int k1 = K4 - k0 < DENSE_KTILE ? K4 : k0 + DENSE_KTILE;
            for (int b = 0; b < B; b += 4) {
                const int nb = B - b < 4 ? B - b : 4;
                mk_tab[nb - 1][nv - 1](x + (size_t)b * xs, (size_t)xs, k0, k1, w8 + 64 * v0, w_step,
                                       acc + (size_t)b * O16 + 16 * v0, (size_t)O16, k0 > 0);
            }
        }
    }
}

T512 static int dense_rq(const uint8_t *x, int B, int xs, int K4, int O, const int8_t *w8, frl_requant_t rq, uint8_t *y, int ys,
                         int32_t *scratch)
{
    const int O16 = (O + 15) & ~15;
    if (ys < O16)
        return FRL_EUNSUPPORTED;
    dense_core(x, B, xs, K4, O16, w8, scratch);
    const rq512_t r = rq512_init(rq);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O16; o += 16)
            _mm_storeu_si128((__m128i *)(y + (size_t)b * ys + o),
                             rq512(_mm512_loadu_si512((const void *)(scratch + (size_t)b * O16 + o)), &r));
    return 0;
}

T512 static int dense_acc(const uint8_t *x, int B, int xs, int K4, int O, const int8_t *w8, int32_t *acc, int32_t *scratch)
{
    const int O16 = (O + 15) & ~15;
    dense_core(x, B, xs, K4, O16, w8, scratch);
    for (int b = 0; b < B; b++)
        memcpy(acc + (size_t)b * O, scratch + (size_t)b * O16, (size_t)O * sizeof(int32_t));
    return 0;
}

/* Batch 1 on 2-bit weights: one broadcast load of 16 code bytes, one
 * vpmultishiftqb that moves each code to the top 2 bits of its byte, one
 * AND with 0xC0: the byte is then 64 * T (0x40 = +64, 0xC0 = -64), so the
 * accumulators hold exactly 64 * acc (|64 acc| <= 64 * K * 255 < 2^31 for
 * K < 131,000) and an arithmetic shift by 6 recovers acc. 8 output vectors
 * (128 outputs) per pass; all-zero input quads are skipped. */
#define T512V __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

T512V static void dense1_pass(const uint8_t *x, int K4, int G, int g0, int nv, const uint8_t *q2, int32_t *acc)
{
    /* ctrl byte b: bit offset (q >> 1) * 16 + 2 i - 6 (mod 64) */
    uint8_t cb[64];
    for (int b = 0; b < 64; b++)
        cb[b] = (uint8_t)((((b >> 3) >> 1) * 16 + 2 * (b & 7) - 6) & 63);
    const __m512i ctrl = _mm512_loadu_si512((const void *)cb), top2 = _mm512_set1_epi8((char)0xC0);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const uint8_t *p = q2 + (size_t)g0 * 16;
    const size_t step = (size_t)G * 16;
#define Q2_W(v)                                                                                                                    \
    _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + 16 * (v))))), \
                     top2)
    if (nv == 8) {
        for (int k4 = 0; k4 < K4; k4++, p += step) {
            int32_t q;
            memcpy(&q, x + 4 * (size_t)k4, 4);
            if (q == 0)
                continue; /* post-ReLU inputs: often all four are zero */
            const __m512i xb = _mm512_set1_epi32(q);
            __m512i w;
            w = Q2_W(0);
            DPBUSD(a0, xb, w);
            w = Q2_W(1);
            DPBUSD(a1, xb, w);
            w = Q2_W(2);
            DPBUSD(a2, xb, w);
            w = Q2_W(3);
            DPBUSD(a3, xb, w);
            w = Q2_W(4);
            DPBUSD(a4, xb, w);
            w = Q2_W(5);
            DPBUSD(a5, xb, w);
            w = Q2_W(6);
            DPBUSD(a6, xb, w);
            w = Q2_W(7);
            DPBUSD(a7, xb, w);
        }
        __m512i *o = (__m512i *)(void *)acc;
        _mm512_storeu_si512(o, _mm512_srai_epi32(a0, 6));
        _mm512_storeu_si512(o + 1, _mm512_srai_epi32(a1, 6));
        _mm512_storeu_si512(o + 2, _mm512_srai_epi32(a2, 6));
        _mm512_storeu_si512(o + 3, _mm512_srai_epi32(a3, 6));
        _mm512_storeu_si512(o + 4, _mm512_srai_epi32(a4, 6));
        _mm512_storeu_si512(o + 5, _mm512_srai_epi32(a5, 6));
        _mm512_storeu_si512(o + 6, _mm512_srai_epi32(a6, 6));
        _mm512_storeu_si512(o + 7, _mm512_srai_epi32(a7, 6));
        return;
    }
    for (int v = 0; v < nv; v++) { /* tail groups: one vector at a time */
        __m512i a = _mm512_setzero_si512();
        p = q2 + (size_t)(g0 + v) * 16;
        for (int k4 = 0; k4 < K4; k4++, p += step) {
            int32_t q;
            memcpy(&q, x + 4 * (size_t)k4, 4);
            __m512i w = Q2_W(0);
            DPBUSD(a, _mm512_set1_epi32(q), w);
        }
        _mm512_storeu_si512((void *)(acc + 16 * v), _mm512_srai_epi32(a, 6));
    }
#undef Q2_W
}

T512V static int dense1_rq(const uint8_t *x, int K4, int O, const uint8_t *q2, frl_requant_t rq, uint8_t *y, int32_t *scratch)
{
    const int O16 = (O + 15) & ~15, G = O16 >> 4;
    if (K4 > 32000)
        return FRL_EUNSUPPORTED; /* 64 * K * 255 must stay below 2^31 */
    for (int g = 0; g < G; g += 8)
        dense1_pass(x, K4, G, g, G - g < 8 ? G - g : 8, q2, scratch + 16 * g);
    const rq512_t r = rq512_init(rq);
    for (int o = 0; o < O16; o += 16)
        _mm_storeu_si128((__m128i *)(y + o), rq512(_mm512_loadu_si512((const void *)(scratch + o)), &r));
    return 0;
}

const frl_qkern_t frl__qkern_avx512 = {
    .path = FRL_QPATH_AVX512,
    .conv_first_rq = conv_first_rq,
    .conv_rq = conv_rq,
    .dense_rq = dense_rq,
    .dense_acc = dense_acc,
};

const frl_qkern_t frl__qkern_avx512_vbmi = {
    .path = FRL_QPATH_AVX512,
    .conv_first_rq = conv_first_rq,
    .conv_rq = conv_rq,
    .dense_rq = dense_rq,
    .dense_acc = dense_acc,
    .dense1_rq = dense1_rq,
};

#endif
