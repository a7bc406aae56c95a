/* Integer-only kernels of the ternary masked model (CMSIS-NN style).
 *
 * Everything here is integers only: uint8 activations (zero point 0, i.e.
 * post-ReLU codes), ternary weights T in {-1, 0, +1}, int32 accumulators and
 * dyadic requantisation. No floating point and no division is executed by
 * these kernels (kern_ref.c is compiled with -mgeneral-regs-only in a test
 * to prove it; tests/quant also scans the kernel objects for FP and div
 * instructions). Kernels never allocate: the caller passes every buffer.
 *
 * Requantisation (the one rounding rule of frl, "single rounding, ties up"):
 *
 *     y = clamp((acc * M0 + 2^(s-1)) >> s, 0, 255)       (s = 0: y = clamp(acc * M0))
 *
 * evaluated in int64 with an arithmetic shift (floor), M0 in [0, 2^31 - 1],
 * s in [0, FRL_RQ_MAX_SHIFT]. The ReLU is fused into the clamp. Because
 * M0 >= 0 the map is monotone non-decreasing in acc, so max-pooling the int32
 * accumulators before requantising gives exactly the same codes as pooling
 * after (and is 4x cheaper for a 2x2 pool).
 *
 * Layouts (all row-major, channel innermost = NHWC):
 *   activation tensor of one image: (h + 2 pad, w + 2 pad, cs) uint8, where
 *     cs >= c is the channel stride (a multiple of 4 for the SIMD paths) and
 *     the border of width `pad` and the channels c..cs-1 are zero.
 *   ternary weights, reference form: 2-bit codes, 4 per byte, code of weight
 *     (o, k) at bit 2*(k & 3) of byte o * ((K + 3) / 4) + k / 4, with
 *     00 = 0, 01 = +1, 11 = -1 (10 never occurs). For a conv the reduction
 *     index is k = (ky * kw + kx) * c_in + ci (NHWC im2col order).
 *   ternary weights, SIMD form ("vnni layout"): int8 w8[K4][O16][4] with
 *     K4 = K padded / 4 and O16 = O rounded up to 16; entry (k, o) at
 *     ((k / 4) * O16 + o) * 4 + k % 4; padding entries are 0.
 */
#ifndef FRL_QKERNELS_H
#define FRL_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#define FRL_RQ_MAX_SHIFT 62

/* A per-layer dyadic multiplier: M = m0 / 2^shift. */
typedef struct frl_requant_s {
    int32_t m0;    /* [0, 2^31 - 1] */
    int32_t shift; /* [0, FRL_RQ_MAX_SHIFT] */
} frl_requant_t;

/* 0 when m0 and shift are in range, FRL_ERANGE otherwise. */
int frl_requant_check(frl_requant_t rq);
/* The requantisation above for one accumulator (the golden definition). */
uint8_t frl_requant_u8(int32_t acc, frl_requant_t rq);
/* The smallest acc >= 0 that requantises to 255 (INT32_MAX if none):
 * SIMD kernels clamp acc to [0, this] first, which makes the 64-bit clamp
 * at 255 unnecessary (requantisation is monotone). */
int32_t frl_requant_sat_acc(frl_requant_t rq);

/* 2-bit code helpers (reference layout). */
static inline int frl_tern_get(const uint8_t *codes, size_t row_bytes, uint32_t o, uint32_t k)
{
    unsigned v = (codes[(size_t)o * row_bytes + (k >> 2)] >> (2 * (k & 3))) & 3u;
    return (int)(v & 1u) - (int)(v & 2u); /* 00 -> 0, 01 -> +1, 11 -> -1 */
}
static inline size_t frl_tern_row_bytes(uint32_t K)
{
    return ((size_t)K + 3) / 4;
}

/* Geometry of one conv step: stride 1, square kernel k, zero padding pad;
 * input (in_h + 2 pad, in_w + 2 pad, in_cs) uint8, output accumulators
 * (out_h, out_w, out_c) int32 with out_h = in_h + 2 pad - k + 1. */
typedef struct frl_qconv_dims_s {
    int in_h, in_w, in_c, in_cs, pad, k;
    int out_h, out_w, out_c;
} frl_qconv_dims_t;

/* Which kernel implementation runs. */
typedef enum { FRL_QPATH_AUTO = 0, FRL_QPATH_SCALAR = 1, FRL_QPATH_AVX2 = 2, FRL_QPATH_AVX512 = 3 } frl_qpath;
/* Name of a path ("scalar", "avx2", "avx512vnni"; "auto"). */
const char *frl_qpath_name(frl_qpath p);
/* Whether this CPU (and build) can run path p. SCALAR and AUTO always can. */
int frl_qpath_available(frl_qpath p);
/* The best available path. */
frl_qpath frl_qpath_best(void);

/* ---- scalar reference kernels (kern_ref.c): the golden model ---- */

/* First conv on raw pixels: q = p - zin (zin in [0, 255]); taps outside the
 * image contribute 0 (zero padding in the centred domain). Input: the
 * unpadded image (in_h, in_w, in_c) uint8 (dims.in_cs and dims.pad are the
 * image's channel count and the conv's padding). acc (out_h, out_w, out_c). */
void frl_qref_conv_first(const frl_qconv_dims_t *d, const uint8_t *img, int32_t zin, const uint8_t *codes, int32_t *acc);
/* conv on a padded uint8 tensor; acc (out_h, out_w, out_c). */
void frl_qref_conv(const frl_qconv_dims_t *d, const uint8_t *in, const uint8_t *codes, int32_t *acc);
/* max-pool p x p, stride p, on accumulators (h, w, c) -> (h/p, w/p, c). */
void frl_qref_maxpool(const int32_t *acc, int h, int w, int c, int p, int32_t *out);
/* Requantise accumulators (h, w, c) into a padded uint8 tensor
 * (h + 2 pad, w + 2 pad, cs); writes the interior channels 0..c-1 only (the
 * caller zeroes the border and padding channels once). */
void frl_qref_requant(const int32_t *acc, int h, int w, int c, frl_requant_t rq, uint8_t *out, int pad, int cs);
/* Dense: acc[b, o] = sum_k T[o, k] x[b, k] for b < B; x has row stride xs
 * (>= K), acc has row stride O. */
void frl_qref_dense(const uint8_t *x, int B, int xs, int K, int O, const uint8_t *codes, int32_t *acc);
/* Argmax with the lowest index winning ties. */
int frl_qargmax(const int32_t *v, int n);

/* ---- fast kernels (one entry per path; tables in kern_dispatch.c) ----
 *
 * Fused steps, bit-exact with the reference composition:
 *   conv_first_rq : frl_qref_conv_first + [maxpool p] + frl_qref_requant
 *   conv_rq       : frl_qref_conv + [maxpool p] + frl_qref_requant
 *   dense_rq      : frl_qref_dense + requant into u8 rows of stride ys
 *   dense_acc     : frl_qref_dense (int32 logits), acc row stride O
 * Support conditions are checked by frl_qkern_*_supported; the pipeline
 * falls back to the reference otherwise. */
typedef struct frl_qkern_s {
    frl_qpath path;
    /* in_c = 1 only; w8: first-conv layout (frl_qpack_first); scratch holds
     * frl_qconv_first_scratch_size(d) bytes */
    int (*conv_first_rq)(const frl_qconv_dims_t *d, const uint8_t *img, int32_t zin, const int8_t *w8, int pool, frl_requant_t rq,
                         uint8_t *out, int out_pad, int out_cs, uint8_t *scratch);
    /* w8: vnni layout with K = k*k*in_cs */
    int (*conv_rq)(const frl_qconv_dims_t *d, const uint8_t *in, const int8_t *w8, int pool, frl_requant_t rq, uint8_t *out,
                   int out_pad, int out_cs);
    /* x: B rows of stride xs (K padded to K4*4 with zeros, xs >= K4*4);
     * y: B rows of stride ys >= O16 (lanes O..O16-1 get code 0);
     * scratch: B * O16 int32 (O16 = O rounded up to 16) */
    int (*dense_rq)(const uint8_t *x, int B, int xs, int K4, int O, const int8_t *w8, frl_requant_t rq, uint8_t *y, int ys,
                    int32_t *scratch);
    int (*dense_acc)(const uint8_t *x, int B, int xs, int K4, int O, const int8_t *w8, int32_t *acc, int32_t *scratch);
    /* Batch 1 dense_rq on 2-bit weights (frl_qpack_q2): 4x fewer weight
     * bytes than w8 (at batch 1 a dense layer is bound by the bandwidth of
     * its weights), expanded in the kernel; input quads of 4 zero
     * activations are skipped. NULL when the path has none. y: ys >= O16. */
    int (*dense1_rq)(const uint8_t *x, int K4, int O, const uint8_t *q2, frl_requant_t rq, uint8_t *y, int32_t *scratch);
} frl_qkern_t;

/* Kernel table of SIMD path p (AUTO = best SIMD path), or NULL when the
 * path is unavailable or is SCALAR (the scalar path is the reference
 * kernels above, on the 2-bit codes). */
const frl_qkern_t *frl_qkern_get(frl_qpath p);

/* Packs reference codes of a conv (O, k*k*in_c) into the vnni layout with
 * K = k*k*in_cs rounded up to a multiple of 4 (padding channels get 0).
 * A dense layer is the case k = 1, in_c = in_cs = K. Returns K4. */
int frl_qpack_vnni(const uint8_t *codes, int O, int k, int in_c, int in_cs, int8_t *w8);
/* First conv with in_c = 1 and k <= 4: K4 = k, reduction index ky * 4 + kx
 * (kx = k..3 get 0), so that 4 consecutive pixels of a padded image row are
 * one 32-bit lane. w8 holds k * O16 * 4 bytes. */
void frl_qpack_first(const uint8_t *codes, int O, int k, int8_t *w8);
size_t frl_qconv_first_scratch_size(const frl_qconv_dims_t *d);
/* 2-bit form of a vnni layout, for dense1_rq: 16 bytes per 64-byte vnni
 * vector (k4 step, group g of 16 outputs), at q2 + (k4 * G + g) * 16,
 * G = O16 / 16. The code (00 = 0, 01 = +1, 11 = -1) of vector byte b
 * (q = b / 8, i = b % 8) sits in little-endian u64 number (q & 1) of
 * the 16 bytes, at bits (q >> 1) * 16 + 2 i: the order in which one
 * vpmultishiftqb moves every code to the top 2 bits of its own byte. */
void frl_qpack_q2(const int8_t *w8, int K4, int O, uint8_t *q2);
size_t frl_qpack_q2_size(int K4, int O);
/* K4 and bytes of that layout. */
int frl_qpack_vnni_k4(int k, int in_cs);
size_t frl_qpack_vnni_size(int O, int k, int in_cs);

#endif
