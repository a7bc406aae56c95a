/* Element-wise ReLU and non-overlapping max-pooling. */
#include "supermask/frl_ops.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/frl_error.h"

/* The element-wise loops below use SSE2 (part of the x86-64 baseline, so no
 * run-time dispatch) rather than trusting the auto-vectoriser: at -O2, the
 * project's default RelWithDebInfo build, GCC 12 compiles the scalar
 * selects to branches, which mispredict on half of the random activations
 * and cost ~10x (measured 1.2-1.9 ms instead of 0.05-0.15 ms per LeNet
 * batch). maxps(x, 0) is exactly x > 0 ? x : 0, NaN and -0 included, so
 * both paths give identical results. */

/* inp (n) -> out (n) = max(inp, 0); out == inp is allowed. A NaN input gives
 * 0 (the comparison is false), so a NaN does not travel further forward. */
void frl_relu_forward(float *out, const float *inp, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(out + i, _mm_max_ps(_mm_loadu_ps(inp + i), zero));
#endif
    for (; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* dout (n), out (n) = the forward output -> dinp (n) = dout where out > 0,
 * else 0; dinp == dout is allowed. Uses the output, not the input, so the
 * caller can run relu in place and keep one buffer. */
void frl_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 pass = _mm_cmpgt_ps(_mm_loadu_ps(out + i), zero);
        _mm_storeu_ps(dinp + i, _mm_and_ps(pass, _mm_loadu_ps(dout + i)));
    }
#endif
    for (; i < n; i++) {
        float g = dout[i];
        dinp[i] = out[i] > 0.0f ? g : 0.0f;
    }
}

/* Checks a pooling geometry: K x K windows with stride K, floor mode (rows
 * and columns past the last full window are ignored, as in PyTorch). */
static int pool_dims(int B, int C, int H, int W, int K)
{
    if (B < 1 || C < 1 || K < 1 || H < K || W < K)
        return FRL_EINVAL;
    return 0;
}

/* inp (B, C, H, W) -> out (B, C, H/K, W/K), argmax (B, C, H/K, W/K) holding
 * the winner's offset ih * W + iw within its (b, c) input plane. Scanning
 * the window row-major with a strict > keeps the first maximum. */
int frl_maxpool_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H, int W, int K)
{
    if (pool_dims(B, C, H, W, K) != 0 || !out || !argmax || !inp)
        return FRL_EINVAL;
    if ((long long)H * W > INT32_MAX)
        return FRL_EINVAL;
    int OH = H / K, OW = W / K;
    size_t planes = (size_t)B * C;
    for (size_t p = 0; p < planes; p++) {
        const float *in = inp + p * H * W;
        float *o = out + p * OH * OW;
        int32_t *am = argmax + p * OH * OW;
        if (K == 2) {
            /* The common 2x2 case as straight-line selects, which compile to
             * conditional moves: the generic loop's data-dependent branch
             * mispredicts on random activations. Same order, same strict >,
             * so the same winner. */
            for (int oh = 0; oh < OH; oh++) {
                const float *r0 = in + (size_t)(2 * oh) * W, *r1 = r0 + W;
                int ow = 0;
#if defined(__SSE2__)
                /* Four windows at a time: split each row pair into even and
                 * odd columns, then the same compare chain as below with
                 * and/andnot selects. */
                for (; ow + 4 <= OW; ow += 4) {
                    __m128 a = _mm_loadu_ps(r0 + 2 * ow), b = _mm_loadu_ps(r0 + 2 * ow + 4);
                    __m128 c = _mm_loadu_ps(r1 + 2 * ow), d = _mm_loadu_ps(r1 + 2 * ow + 4);
                    __m128 v0 = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
                    __m128 v1 = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
                    __m128 v2 = _mm_shuffle_ps(c, d, _MM_SHUFFLE(2, 0, 2, 0));
                    __m128 v3 = _mm_shuffle_ps(c, d, _MM_SHUFFLE(3, 1, 3, 1));
                    int32_t base = (int32_t)(2 * oh * W + 2 * ow);
                    __m128i i0 = _mm_setr_epi32(base, base + 2, base + 4, base + 6);
                    __m128 best = v0;
                    __m128i bi = i0;
                    __m128 m = _mm_cmpgt_ps(v1, best);
                    best = _mm_or_ps(_mm_and_ps(m, v1), _mm_andnot_ps(m, best));
                    bi = _mm_or_si128(_mm_and_si128(_mm_castps_si128(m), _mm_add_epi32(i0, _mm_set1_epi32(1))),
                                      _mm_andnot_si128(_mm_castps_si128(m), bi));
                    m = _mm_cmpgt_ps(v2, best);
                    best = _mm_or_ps(_mm_and_ps(m, v2), _mm_andnot_ps(m, best));
                    bi = _mm_or_si128(_mm_and_si128(_mm_castps_si128(m), _mm_add_epi32(i0, _mm_set1_epi32(W))),
                                      _mm_andnot_si128(_mm_castps_si128(m), bi));
                    m = _mm_cmpgt_ps(v3, best);
                    best = _mm_or_ps(_mm_and_ps(m, v3), _mm_andnot_ps(m, best));
                    bi = _mm_or_si128(_mm_and_si128(_mm_castps_si128(m), _mm_add_epi32(i0, _mm_set1_epi32(W + 1))),
                                      _mm_andnot_si128(_mm_castps_si128(m), bi));
                    _mm_storeu_ps(o + oh * OW + ow, best);
                    _mm_storeu_si128((__m128i *)(void *)(am + oh * OW + ow), bi);
                }
#endif
                for (; ow < OW; ow++) {
                    int32_t base = (int32_t)(2 * oh * W + 2 * ow);
                    float v0 = r0[2 * ow], v1 = r0[2 * ow + 1], v2 = r1[2 * ow], v3 = r1[2 * ow + 1];
                    float best = v0;
                    int32_t bi = base;
                    bi = v1 > best ? base + 1 : bi;
                    best = v1 > best ? v1 : best;
                    bi = v2 > best ? base + W : bi;
                    best = v2 > best ? v2 : best;
                    bi = v3 > best ? base + W + 1 : bi;
                    best = v3 > best ? v3 : best;
                    o[oh * OW + ow] = best;
                    am[oh * OW + ow] = bi;
                }
            }
            continue;
        }
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int32_t best_i = (int32_t)(oh * K * W + ow * K);
                float best = in[best_i];
                for (int kh = 0; kh < K; kh++) {
                    for (int kw = 0; kw < K; kw++) {
                        int32_t i = (int32_t)((oh * K + kh) * W + ow * K + kw);
                        if (in[i] > best) {
                            best = in[i];
                            best_i = i;
                        }
                    }
                }
                o[oh * OW + ow] = best;
                am[oh * OW + ow] = best_i;
            }
        }
    }
    return 0;
}

/* dout (B, C, H/K, W/K), argmax from forward -> dinp (B, C, H, W): zero
 * except dout at each window's winner. An argmax outside its plane (it did
 * not come from forward with the same dims) is FRL_EINVAL; dinp is then
 * partially written. */
int frl_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C, int H, int W, int K)
{
    if (pool_dims(B, C, H, W, K) != 0 || !dinp || !dout || !argmax)
        return FRL_EINVAL;
    if ((long long)H * W > INT32_MAX)
        return FRL_EINVAL;
    int OH = H / K, OW = W / K;
    int32_t plane = (int32_t)(H * W);
    size_t planes = (size_t)B * C;
    memset(dinp, 0, planes * plane * sizeof(float));
    for (size_t p = 0; p < planes; p++) {
        float *d = dinp + p * plane;
        const float *g = dout + p * OH * OW;
        const int32_t *am = argmax + p * OH * OW;
        for (int i = 0; i < OH * OW; i++) {
            if (am[i] < 0 || am[i] >= plane)
                return FRL_EINVAL;
            /* += rather than =: windows do not overlap, so each input wins
             * at most once, but a hand-made argmax may repeat offsets. */
            d[am[i]] += g[i];
        }
    }
    return 0;
}
