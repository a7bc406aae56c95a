/* Write-combining output for scatter passes: a pass that writes many
 * streams collects each stream's items in a 64-byte buffer and leaves it as
 * one whole cache line, non-temporal where SSE2 is there (the store path
 * falls off a cliff with more than ~32 streams written item by item).
 * Used by the vote's partitioned add and radix sort (aggregation/) and the
 * ranking sort (supermask/). */
#ifndef FRL_WC_H
#define FRL_WC_H

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Copies one 64-byte line; dst and src 16-byte aligned (dst is a cache
 * line of the output). */
static inline void frl_wc_line_out(void *dst, const void *src)
{
#if defined(__SSE2__)
    const __m128i *in = (const __m128i *)src;
    __m128i *out = (__m128i *)dst;
    _mm_stream_si128(out, _mm_load_si128(in));
    _mm_stream_si128(out + 1, _mm_load_si128(in + 1));
    _mm_stream_si128(out + 2, _mm_load_si128(in + 2));
    _mm_stream_si128(out + 3, _mm_load_si128(in + 3));
#else
    memcpy(dst, src, 64);
#endif
}

/* After a pass: the streamed lines are visible to the loads that follow. */
static inline void frl_wc_fence(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

#endif
