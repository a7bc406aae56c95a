/* Kernel tables of the SIMD paths (kern_avx2.c, kern_avx512.c). */
#ifndef FRL_QKERN_INTERNAL_H
#define FRL_QKERN_INTERNAL_H

#include "quant/frl_qkernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
extern const frl_qkern_t frl__qkern_avx2;
extern const frl_qkern_t frl__qkern_avx512;
/* the same plus the batch-1 2-bit dense kernel (needs AVX512_VBMI) */
extern const frl_qkern_t frl__qkern_avx512_vbmi;
#endif

#endif
