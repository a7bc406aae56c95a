/* Scalar reference kernels: the golden model of integer inference.
 *
 * Integers only: this file is compiled a second time with
 * -mgeneral-regs-only by tests/quant (any float or double here is then a
 * compile error), and it must never divide. It favours clarity over speed:
 * ternary weights are read from the 2-bit codes one by one and applied as
 * add / subtract. */
#include "quant/frl_qkernels.h"

#include "common/frl_error.h"

int frl_requant_check(frl_requant_t rq)
{
    if (rq.m0 < 0 || rq.shift < 0 || rq.shift > FRL_RQ_MAX_SHIFT)
        return FRL_ERANGE;
    return 0;
}

uint8_t frl_requant_u8(int32_t acc, frl_requant_t rq)
{
    int64_t p = (int64_t)acc * (int64_t)rq.m0; /* |p| < 2^62 */
    int64_t y;
    if (rq.shift == 0) {
        y = p;
    } else {
        /* floor((p + 2^(s-1)) / 2^s) as an arithmetic shift; p + 2^(s-1)
         * cannot overflow since |p| < 2^62 and s <= 62. Shifting a negative
         * int64 right is arithmetic with gcc/clang (implementation-defined
         * in C11; a static check below pins it). */
        y = (p + ((int64_t)1 << (rq.shift - 1))) >> rq.shift;
    }
    if (y < 0)
        return 0;
    if (y > 255)
        return 255;
    return (uint8_t)y;
}
int32_t frl_requant_sat_acc(frl_requant_t rq)
{
    if (frl_requant_u8(INT32_MAX, rq) < 255)
        return INT32_MAX;
    int32_t lo = 0, hi = INT32_MAX; /* requant(hi) == 255; find the smallest such */
    while (lo < hi) {
        int32_t mid = lo + ((hi - lo) >> 1);
        if (frl_requant_u8(mid, rq) == 255)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

_Static_assert((-3 >> 1) == -2, "frl needs an arithmetic right shift of negative integers");

int frl_qargmax(const int32_t *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

void frl_qref_conv_first(const frl_qconv_dims_t *d, const uint8_t *img, int32_t zin, const uint8_t *codes, int32_t *acc)
{
    const uint32_t K = (uint32_t)(d->k * d->k * d->in_c);
    const size_t rb = frl_tern_row_bytes(K);
    for (int y = 0; y < d->out_h; y++)
        for (int x = 0; x < d->out_w; x++)
            for (int o = 0; o < d->out_c; o++) {
                int32_t a = 0;
                for (int ky = 0; ky < d->k; ky++) {
                    int iy = y + ky - d->pad;
                    if (iy < 0 || iy >= d->in_h)
                        continue; /* padding is 0 in the centred domain */
                    for (int kx = 0; kx < d->k; kx++) {
                        int ix = x + kx - d->pad;
                        if (ix < 0 || ix >= d->in_w)
                            continue;
                        for (int c = 0; c < d->in_c; c++) {
                            int t = frl_tern_get(codes, rb, (uint32_t)o, (uint32_t)((ky * d->k + kx) * d->in_c + c));
                            int32_t q = (int32_t)img[((size_t)iy * d->in_w + ix) * d->in_c + c] - zin;
                            if (t > 0)
                                a += q;
                            else if (t < 0)
                                a -= q;
                        }
                    }
                }
                acc[((size_t)y * d->out_w + x) * d->out_c + o] = a;
            }
}

void frl_qref_conv(const frl_qconv_dims_t *d, const uint8_t *in, const uint8_t *codes, int32_t *acc)
{
    const uint32_t K = (uint32_t)(d->k * d->k * d->in_c);
    const size_t rb = frl_tern_row_bytes(K);
    const int pw = d->in_w + 2 * d->pad;
    for (int y = 0; y < d->out_h; y++)
        for (int x = 0; x < d->out_w; x++)
            for (int o = 0; o < d->out_c; o++) {
                int32_t a = 0;
                for (int ky = 0; ky < d->k; ky++)
                    for (int kx = 0; kx < d->k; kx++) {
                        const uint8_t *px = in + ((size_t)(y + ky) * pw + (x + kx)) * d->in_cs;
                        for (int c = 0; c < d->in_c; c++) {
                            int t = frl_tern_get(codes, rb, (uint32_t)o, (uint32_t)((ky * d->k + kx) * d->in_c + c));
                            if (t > 0)
                                a += px[c];
                            else if (t < 0)
                                a -= px[c];
                        }
                    }
                acc[((size_t)y * d->out_w + x) * d->out_c + o] = a;
            }
}

void frl_qref_maxpool(const int32_t *acc, int h, int w, int c, int p, int32_t *out)
{
    /* output (h / p, w / p, c), computed without a division: windows are
     * visited while they fit (the spec guarantees p divides h and w) */
    int ow = 0;
    for (int x = 0; x + p <= w; x += p)
        ow++;
    for (int y = 0, oy = 0; y + p <= h; y += p, oy++)
        for (int x = 0, ox = 0; x + p <= w; x += p, ox++)
            for (int ch = 0; ch < c; ch++) {
                int32_t m = acc[((size_t)y * w + x) * c + ch];
                for (int dy = 0; dy < p; dy++)
                    for (int dx = 0; dx < p; dx++) {
                        int32_t v = acc[((size_t)(y + dy) * w + x + dx) * c + ch];
                        if (v > m)
                            m = v;
                    }
                out[((size_t)oy * ow + ox) * c + ch] = m;
            }
}

void frl_qref_requant(const int32_t *acc, int h, int w, int c, frl_requant_t rq, uint8_t *out, int pad, int cs)
{
    const int pw = w + 2 * pad;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *o = out + ((size_t)(y + pad) * pw + (x + pad)) * cs;
            for (int ch = 0; ch < c; ch++)
                o[ch] = frl_requant_u8(acc[((size_t)y * w + x) * c + ch], rq);
        }
}

void frl_qref_dense(const uint8_t *x, int B, int xs, int K, int O, const uint8_t *codes, int32_t *acc)
{
    const size_t rb = frl_tern_row_bytes((uint32_t)K);
    for (int b = 0; b < B; b++) {
        const uint8_t *xb = x + (size_t)b * xs;
        for (int o = 0; o < O; o++) {
            const uint8_t *row = codes + (size_t)o * rb;
            int32_t a = 0;
            for (int k = 0; k < K; k++) {
                unsigned v = (row[k >> 2] >> (2 * (k & 3))) & 3u;
                if (v == 1u)
                    a += xb[k];
                else if (v == 3u)
                    a -= xb[k];
            }
            acc[(size_t)b * O + o] = a;
        }
    }
}
