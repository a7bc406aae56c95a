/* Weight packing: 2-bit reference codes -> int8 vnni layouts (model load
 * time; integers only). */
#include "quant/frl_qkernels.h"

#include <string.h>

static int o16_of(int O)
{
    return (O + 15) & ~15;
}

int frl_qpack_vnni_k4(int k, int in_cs)
{
    return (k * k * in_cs + 3) >> 2;
}

size_t frl_qpack_vnni_size(int O, int k, int in_cs)
{
    return (size_t)frl_qpack_vnni_k4(k, in_cs) * (size_t)o16_of(O) * 4;
}

int frl_qpack_vnni(const uint8_t *codes, int O, int k, int in_c, int in_cs, int8_t *w8)
{
    const int K4 = frl_qpack_vnni_k4(k, in_cs), O16 = o16_of(O);
    const uint32_t K = (uint32_t)(k * k * in_c);
    const size_t rb = frl_tern_row_bytes(K);
    memset(w8, 0, frl_qpack_vnni_size(O, k, in_cs));
    for (int o = 0; o < O; o++)
        for (int t = 0; t < k * k; t++)
            for (int c = 0; c < in_c; c++) {
                int kk = t * in_cs + c;
                w8[((size_t)(kk >> 2) * O16 + o) * 4 + (kk & 3)] =
                    (int8_t)frl_tern_get(codes, rb, (uint32_t)o, (uint32_t)(t * in_c + c));
            }
    return K4;
}

void frl_qpack_first(const uint8_t *codes, int O, int k, int8_t *w8)
{
    const int O16 = o16_of(O);
    const size_t rb = frl_tern_row_bytes((uint32_t)(k * k));
    memset(w8, 0, (size_t)k * O16 * 4);
    for (int o = 0; o < O; o++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                w8[((size_t)ky * O16 + o) * 4 + kx] = (int8_t)frl_tern_get(codes, rb, (uint32_t)o, (uint32_t)(ky * k + kx));
}

size_t frl_qconv_first_scratch_size(const frl_qconv_dims_t *d)
{
    /* the padded image plus slack: a 4-byte lane may start at the last column */
    return (size_t)(d->in_h + 2 * d->pad) * (size_t)(d->in_w + 2 * d->pad) + 64;
}

size_t frl_qpack_q2_size(int K4, int O)
{
    return (size_t)K4 * (size_t)(o16_of(O) >> 4) * 16;
}

void frl_qpack_q2(const int8_t *w8, int K4, int O, uint8_t *q2)
{
    const int O16 = o16_of(O), G = O16 >> 4;
    for (int k4 = 0; k4 < K4; k4++)
        for (int g = 0; g < G; g++) {
            uint64_t half[2] = {0, 0};
            const int8_t *v = w8 + ((size_t)k4 * O16 + 16 * g) * 4;
            for (int b = 0; b < 64; b++) {
                uint64_t code = v[b] > 0 ? 1u : v[b] < 0 ? 3u : 0u;
                int q = b >> 3, i = b & 7;
                half[q & 1] |= code << ((q >> 1) * 16 + 2 * i);
            }
            uint8_t *d = q2 + ((size_t)k4 * G + g) * 16;
            for (int j = 0; j < 8; j++) {
                d[j] = (uint8_t)(half[0] >> (8 * j));
                d[8 + j] = (uint8_t)(half[1] >> (8 * j));
            }
        }
}
