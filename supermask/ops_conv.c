/* conv2d (stride 1, zero padding, square kernel, no bias) as im2col + GEMM.
 *
 * One image at a time: its im2col matrix col (C*K*K, OH*OW) lives in the
 * caller's scratch, so scratch does not grow with the batch, and
 *   forward   out_b (OC, OH*OW)    = weight (OC, C*K*K) * col
 *   dweight   (OC, C*K*K)         += dout_b (OC, OH*OW) * col^T   (b = 0 overwrites;
 *                                     computed transposed, see backward)
 *   dinp      dcol (C*K*K, OH*OW) = weight^T * dout_b, then col2im -> dinp_b
 * Row (c, kh, kw) of col is the input plane c shifted by (kh - pad, kw - pad)
 * with zeros outside, so im2col and col2im work on whole rows: a memcpy or
 * a vector add per output row, plus zero fill at the borders. */
#include "supermask/frl_ops.h"

#include <limits.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/frl_error.h"

/* Checks a conv geometry and derives the output size. The GEMMs take int
 * dimensions, so C*K*K and OH*OW must fit in an int, and the padded input
 * size must too, so that the row arithmetic (oh + kh - pad, ...) in int
 * cannot overflow. */
static int conv_dims(int B, int C, int H, int W, int OC, int K, int pad, int *OH, int *OW)
{
    if (B < 1 || C < 1 || H < 1 || W < 1 || OC < 1 || K < 1 || pad < 0)
        return FRL_EINVAL;
    long long oh = (long long)H + 2LL * pad - K + 1;
    long long ow = (long long)W + 2LL * pad - K + 1;
    if (oh < 1 || ow < 1 || (long long)H + 2LL * pad > INT_MAX || (long long)W + 2LL * pad > INT_MAX)
        return FRL_EINVAL;
    if ((long long)C * K * K > INT_MAX || oh * ow > INT_MAX)
        return FRL_EINVAL;
    *OH = (int)oh;
    *OW = (int)ow;
    return 0;
}

size_t frl_conv2d_scratch_floats(int C, int H, int W, int K, int pad)
{
    int OH, OW;
    if (conv_dims(1, C, H, W, 1, K, pad, &OH, &OW) != 0)
        return 0;
    return (size_t)C * K * K * (size_t)OH * OW;
}

/* For kernel column kw, the output columns ow whose input column
 * iw = ow + kw - pad lies inside [0, W) are [*lo, *hi); the rest read zero
 * padding. *hi <= *lo means the whole row is padding. */
static void valid_cols(int W, int OW, int kw, int pad, int *lo, int *hi)
{
    int l = pad - kw;
    int h = W + pad - kw;
    *lo = l < 0 ? 0 : (l > OW ? OW : l);
    *hi = h > OW ? OW : (h < *lo ? *lo : h);
}

/* img (C, H, W) -> col (C*K*K, OH*OW). */
static void im2col(float *col, const float *img, int C, int H, int W, int K, int pad, int OH, int OW)
{
    for (int c = 0; c < C; c++) {
        const float *plane = img + (size_t)c * H * W;
        for (int kh = 0; kh < K; kh++) {
            /* Output rows whose input row ih = oh + kh - pad exists. */
            int oh_lo = pad - kh > 0 ? pad - kh : 0;
            int oh_hi = H + pad - kh < OH ? H + pad - kh : OH;
            for (int kw = 0; kw < K; kw++) {
                int lo, hi;
                valid_cols(W, OW, kw, pad, &lo, &hi);
                float *block = col + ((size_t)(c * K + kh) * K + kw) * OH * OW;
                if (oh_hi <= oh_lo || hi <= lo) {
                    memset(block, 0, (size_t)OH * OW * sizeof(float));
                    continue;
                }
                memset(block, 0, (size_t)oh_lo * OW * sizeof(float));
                memset(block + (size_t)oh_hi * OW, 0, (size_t)(OH - oh_hi) * OW * sizeof(float));
                if (OW == W) {
                    /* "Same" geometry (LeNet's 3x3 pad 1): the valid rows
                     * are the input rows shifted by a constant flat offset,
                     * so one memcpy from the first to the last valid element
                     * covers them; it also drags in the neighbouring row's
                     * pixel at each border column, which is then zeroed.
                     * Three libc calls per 28-float row cost more than the
                     * copy itself. */
                    size_t first = (size_t)oh_lo * OW + lo, last = (size_t)(oh_hi - 1) * OW + hi; /* [first, last) */
                    const float *src = plane + (size_t)(oh_lo + kh - pad) * W + (lo + kw - pad);
                    memcpy(block + first, src, (last - first) * sizeof(float));
                    for (int oh = oh_lo; oh < oh_hi; oh++) {
                        float *row = block + (size_t)oh * OW;
                        for (int ow = 0; ow < lo; ow++)
                            row[ow] = 0.0f;
                        for (int ow = hi; ow < OW; ow++)
                            row[ow] = 0.0f;
                    }
                    continue;
                }
                for (int oh = oh_lo; oh < oh_hi; oh++) {
                    float *dst = block + (size_t)oh * OW;
                    /* iw = ow + kw - pad >= 0 for ow >= lo. */
                    const float *src = plane + (size_t)(oh + kh - pad) * W + (lo + kw - pad);
                    if (lo > 0)
                        memset(dst, 0, (size_t)lo * sizeof(float));
                    memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
                    if (hi < OW)
                        memset(dst + hi, 0, (size_t)(OW - hi) * sizeof(float));
                }
            }
        }
    }
}

/* dst[0..n) += src[0..n). SSE2 by hand because GCC at -O2 (the default
 * RelWithDebInfo build) does not vectorise a loop of unknown length. */
static void add_row(float *dst, const float *src, int n)
{
    int i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(dst + i), _mm_loadu_ps(src + i)));
#endif
    for (; i < n; i++)
        dst[i] += src[i];
}

/* col2im for the "same" geometry (OH == H, OW == W, odd K, pad = K / 2),
 * LeNet's case. The centre tap covers every pixel, so it is copied instead
 * of zeroing img and adding it; every other tap's valid rows are one flat
 * add at a constant offset, after zeroing the padding columns of col (they
 * would otherwise land on the neighbouring row's border pixel). That is one
 * long vector add per tap instead of one short one per output row. Adding
 * the zeroed entries adds +0.0, which changes nothing but the sign of a
 * -0.0 sum. col is scratch, so clobbering its padding entries is fine. */
static void col2im_same(float *img, float *col, int C, int H, int W, int K, int pad)
{
    size_t P = (size_t)H * W;
    for (int c = 0; c < C; c++) {
        float *plane = img + (size_t)c * P;
        float *base = col + (size_t)c * K * K * P;
        memcpy(plane, base + (size_t)(pad * K + pad) * P, P * sizeof(float));
        for (int kh = 0; kh < K; kh++) {
            int oh_lo = pad - kh > 0 ? pad - kh : 0;
            int oh_hi = H + pad - kh < H ? H + pad - kh : H;
            for (int kw = 0; kw < K; kw++) {
                if (kh == pad && kw == pad)
                    continue;
                int lo, hi;
                valid_cols(W, W, kw, pad, &lo, &hi);
                if (oh_hi <= oh_lo || hi <= lo)
                    continue;
                float *src = base + (size_t)(kh * K + kw) * P;
                for (int oh = oh_lo; oh < oh_hi; oh++) {
                    float *row = src + (size_t)oh * W;
                    for (int ow = 0; ow < lo; ow++)
                        row[ow] = 0.0f;
                    for (int ow = hi; ow < W; ow++)
                        row[ow] = 0.0f;
                }
                size_t first = (size_t)oh_lo * W + lo, last = (size_t)(oh_hi - 1) * W + hi; /* [first, last) */
                /* Pixel (oh + kh - pad, ow + kw - pad) of output (oh, ow). */
                float *dst = plane + (size_t)(oh_lo + kh - pad) * W + (lo + kw - pad);
                add_row(dst, src + first, (int)(last - first));
            }
        }
    }
}

/* col (C*K*K, OH*OW) -> img (C, H, W): the adjoint of im2col, so every input
 * pixel receives the sum of the col entries that copied it. img is
 * overwritten; col may be clobbered. */
static void col2im(float *img, float *col, int C, int H, int W, int K, int pad, int OH, int OW)
{
    if (OH == H && OW == W && 2 * pad == K - 1) {
        col2im_same(img, col, C, H, W, K, pad);
        return;
    }
    memset(img, 0, (size_t)C * H * W * sizeof(float));
    for (int c = 0; c < C; c++) {
        float *plane = img + (size_t)c * H * W;
        for (int kh = 0; kh < K; kh++) {
            for (int kw = 0; kw < K; kw++) {
                int lo, hi;
                valid_cols(W, OW, kw, pad, &lo, &hi);
                if (hi <= lo)
                    continue;
                const float *src = col + ((size_t)(c * K + kh) * K + kw) * OH * OW;
                for (int oh = 0; oh < OH; oh++, src += OW) {
                    int ih = oh + kh - pad;
                    if (ih < 0 || ih >= H)
                        continue;
                    add_row(plane + (size_t)ih * W + (lo + kw - pad), src + lo, hi - lo);
                }
            }
        }
    }
}

/* inp (B, C, H, W), weight (OC, C, K, K) -> out (B, OC, OH, OW).
 * scratch holds frl_conv2d_scratch_floats(C, H, W, K, pad) floats. */
int frl_conv2d_forward(float *out, const float *inp, const float *weight, int B, int C, int H, int W, int OC, int K, int pad,
                       float *scratch)
{
    int OH, OW;
    if (conv_dims(B, C, H, W, OC, K, pad, &OH, &OW) != 0)
        return FRL_EINVAL;
    if (!out || !inp || !weight || !scratch)
        return FRL_EINVAL;
    int ckk = C * K * K, P = OH * OW;
    for (int b = 0; b < B; b++) {
        const float *img = inp + (size_t)b * C * H * W;
        /* A 1x1 unpadded kernel's col matrix is the image itself. */
        const float *col = img;
        if (K != 1 || pad != 0) {
            im2col(scratch, img, C, H, W, K, pad, OH, OW);
            col = scratch;
        }
        frl_sgemm(0, 0, OC, P, ckk, 1.0f, weight, ckk, col, P, 0.0f, out + (size_t)b * OC * P, P);
    }
    return 0;
}

/* dout (B, OC, OH, OW), inp (B, C, H, W), weight (OC, C, K, K) ->
 * dinp (B, C, H, W) or NULL, dweight (OC, C, K, K) or NULL; both are
 * overwritten. inp may be NULL when dweight is, weight when dinp is.
 * scratch as for forward. */
int frl_conv2d_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int B, int C, int H,
                        int W, int OC, int K, int pad, float *scratch)
{
    int OH, OW;
    if (conv_dims(B, C, H, W, OC, K, pad, &OH, &OW) != 0)
        return FRL_EINVAL;
    if (!dout || !scratch || (dweight && !inp) || (dinp && !weight))
        return FRL_EINVAL;
    int ckk = C * K * K, P = OH * OW;
    /* dweight is accumulated transposed, as (C*K*K, OC) = col * dout_b^T:
     * OpenBLAS runs that shape ~13% faster than dout_b * col^T for LeNet's
     * conv2 (288 x 64 x 784 against 64 x 288 x 784). The transpose back at
     * the end needs OC*C*K*K floats of scratch, i.e. OC <= OH*OW. */
    int transposed = OC <= P;
    for (int b = 0; b < B; b++) {
        const float *dout_b = dout + (size_t)b * OC * P;
        if (dweight) {
            const float *img = inp + (size_t)b * C * H * W;
            const float *col = img;
            if (K != 1 || pad != 0) {
                im2col(scratch, img, C, H, W, K, pad, OH, OW);
                col = scratch;
            }
            /* beta 0 on the first image gives overwrite semantics without
             * a separate zeroing pass. */
            float beta = b == 0 ? 0.0f : 1.0f;
            if (transposed)
                frl_sgemm(0, 1, ckk, OC, P, 1.0f, col, P, dout_b, P, beta, dweight, OC);
            else
                frl_sgemm(0, 1, OC, ckk, P, 1.0f, dout_b, P, col, P, beta, dweight, ckk);
        }
        if (dinp) {
            /* The col matrix of this image is no longer needed, so dcol
             * reuses the same scratch. */
            frl_sgemm(1, 0, ckk, P, OC, 1.0f, weight, ckk, dout_b, P, 0.0f, scratch, P);
            col2im(dinp + (size_t)b * C * H * W, scratch, C, H, W, K, pad, OH, OW);
        }
    }
    if (dweight && transposed) {
        /* scratch is free again: (C*K*K, OC) -> (OC, C*K*K). */
        memcpy(scratch, dweight, (size_t)ckk * OC * sizeof(float));
        for (int o = 0; o < OC; o++)
            for (int k = 0; k < ckk; k++)
                dweight[(size_t)o * ckk + k] = scratch[(size_t)k * OC + o];
    }
    return 0;
}
