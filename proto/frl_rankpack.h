/* Bit-packing of rankings (one layer: a permutation of [0, n) edge
 * indices) for the wire and for files. Pure C, no protobuf types: core
 * libraries may use it (library `frl_rankpack`, no dependency but libc).
 *
 * Format (encoding 0, "packed"):
 *
 *   bits(n) = max(1, ceil(log2 n))      n = 1 -> 1, 2 -> 1, 3 -> 2, 288 -> 9,
 *                                       18432 -> 15, 1605632 -> 21, 1280 -> 11
 *   size(n) = ceil(n * bits(n) / 8) bytes
 *
 *   Index i occupies bits [i*b, (i+1)*b) of a little-endian bit stream: bit k
 *   of the stream is bit (k % 8) of byte k / 8, and the low bit of each
 *   index comes first. The padding bits of the last byte are zero (the
 *   unpacker rejects anything else, so every ranking has exactly one
 *   encoding).
 *
 * n = 1 still takes 1 bit (one byte holding 0) rather than 0 bits, so that
 * every layer has a non-empty payload and an empty `bytes` field always
 * means "missing". n = 0 is invalid.
 *
 * Speed: both directions move 32-bit words through a 64-bit accumulator,
 * several GB/s on one core. */
#ifndef FRL_RANKPACK_H
#define FRL_RANKPACK_H

#include <stddef.h>
#include <stdint.h>

/* Ranking encodings (RankingBlob.encoding). */
#define FRL_RANK_ENC_PACKED 0u

/* Largest layer accepted anywhere (2^31 edges). */
#define FRL_RANK_MAX_EDGES 0x80000000u

/* Bits per index for a layer of n edges: max(1, ceil(log2 n)); 0 if n = 0. */
unsigned frl_rank_bits(uint32_t n);

/* Exact packed size in bytes of a layer of n edges; 0 if n = 0. */
size_t frl_rank_packed_size(uint32_t n);

/* Packs idx[0..n) into out[0..cap). Each idx[i] must be < n (checked:
 * FRL_EVOTE_RANGE, nothing useful written). Duplicates are NOT checked:
 * that is the aggregation library's job. On success *len =
 * frl_rank_packed_size(n). Returns 0, FRL_EINVAL (n = 0, NULL pointers) or
 * FRL_ETOOBIG (cap too small). */
int frl_rank_pack(const uint32_t *idx, uint32_t n, uint8_t *out, size_t cap, size_t *len);

/* Unpacks a layer of n edges from in[0..len) into out[0..n). Rejects a
 * length other than frl_rank_packed_size(n) (FRL_EVOTE_LENGTH), any value
 * >= n (FRL_EVOTE_RANGE) and non-zero padding bits (FRL_EFORMAT). Does not
 * check for duplicates. `out` may hold garbage after a failure. Returns 0,
 * FRL_EINVAL (n = 0, NULL pointers) or one of the codes above. */
int frl_rank_unpack(const uint8_t *in, size_t len, uint32_t n, uint32_t *out);

#endif
