/* Run-time choice of the kernel path (cpuid via __builtin_cpu_supports). */
#include "quant/frl_qkernels.h"
#include "quant/qkern_internal.h"

#include <stddef.h>

const char *frl_qpath_name(frl_qpath p)
{
    switch (p) {
    case FRL_QPATH_AUTO:
        return "auto";
    case FRL_QPATH_SCALAR:
        return "scalar";
    case FRL_QPATH_AVX2:
        return "avx2";
    case FRL_QPATH_AVX512:
        return "avx512vnni";
    }
    return "unknown";
}

int frl_qpath_available(frl_qpath p)
{
    switch (p) {
    case FRL_QPATH_AUTO:
    case FRL_QPATH_SCALAR:
        return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case FRL_QPATH_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") ? 1 : 0;
    case FRL_QPATH_AVX512:
        __builtin_cpu_init();
        return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512vnni"))
                   ? 1
                   : 0;
#else
    default:
        return 0;
#endif
    }
    return 0;
}

frl_qpath frl_qpath_best(void)
{
    if (frl_qpath_available(FRL_QPATH_AVX512))
        return FRL_QPATH_AVX512;
    if (frl_qpath_available(FRL_QPATH_AVX2))
        return FRL_QPATH_AVX2;
    return FRL_QPATH_SCALAR;
}

const frl_qkern_t *frl_qkern_get(frl_qpath p)
{
    if (p == FRL_QPATH_AUTO)
        p = frl_qpath_best();
    if (!frl_qpath_available(p))
        return NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    if (p == FRL_QPATH_AVX512)
        return __builtin_cpu_supports("avx512vbmi") ? &frl__qkern_avx512_vbmi : &frl__qkern_avx512;
    if (p == FRL_QPATH_AVX2)
        return &frl__qkern_avx2;
#endif
    return NULL;
}
