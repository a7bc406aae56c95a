/* Integer-only inference of a final FRL model (the random network masked by
 * the global ranking), its calibration and its model file.
 *
 * Pipeline (integers only; see frl_qkernels.h for the arithmetic):
 *
 *   input      q = p - zin for raw pixels p (zin = FRL_QZIN_FMNIST = 73 for
 *              the Fashion-MNIST normalisation x = (p/255 - 0.2860)/0.3530,
 *              whose real zero point 255 * 0.2860 = 72.93 is rounded to 73);
 *              the first layer's zero padding is 0 in that centred domain,
 *              i.e. the float model's zero padding of x, up to the 0.07 / 255
 *              rounding of the zero point.
 *   layer l    acc = sum T * q (T in {-1, 0, +1}: the constant c_l is folded
 *              into the requantisation multiplier); max-pool on acc when the
 *              layer is followed by a max-pool; then
 *              q' = clamp((acc * M0 + 2^(s-1)) >> s, 0, 255) (ReLU fused)
 *   last layer the int32 accumulators are the logits; prediction = argmax
 *              with the lowest index winning ties.
 *
 * Calibration (offline, floats allowed; calib.c): for each layer in order,
 * with the earlier layers already quantised, the `pct` percentile (default
 * 0.9999) of the positive (pooled) int32 accumulators over the calibration
 * images is mapped to 255: real multiplier M = 255 / amax, which equals
 * S_in * c_l / S_out with S_out the activation scale this choice implies.
 * M becomes a dyadic (M0, s) by frl_requant_from_double.
 *
 * A qmodel is immutable after creation and safe to use from several
 * threads at once (each with its own scratch). */
#ifndef FRL_QUANT_H
#define FRL_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "data/frl_idx.h"
#include "quant/frl_qkernels.h"
#include "supermask/frl_model.h"
#include "supermask/frl_ranking.h"

#define FRL_QZIN_FMNIST 73
#define FRL_QMODEL_MAGIC "FRLQMDL\0"
#define FRL_QMODEL_VERSION 1u
/* Rounding rule id stored in the file: 1 = single rounding, ties toward +inf. */
#define FRL_QROUND_SINGLE_UP 1u

/* ---- dyadic multipliers (calibration side; uses floating point) ---- */

/* Real multiplier M > 0 -> (M0, s) with M ~= M0 / 2^s:
 *   (m, e) = frexp(M), m in [0.5, 1);  M0 = round_half_away(m * 2^31);
 *   s = 31 - e;  if M0 == 2^31 then M0 = 2^30, s -= 1.
 *   s > FRL_RQ_MAX_SHIFT (tiny M): M0 = round_half_away(M0 / 2^(s - 62)),
 *   s = 62 (M0 may become 0: every output is then 0).
 *   s < 0 (M >= 2^31): FRL_ERANGE.
 * M <= 0, NaN or inf: FRL_EINVAL. The relative error of M0 / 2^s is below
 * 2^-31 while M0 >= 2^30. */
int frl_requant_from_double(double M, frl_requant_t *out);
/* M0 / 2^s as a double (reports, tests). */
double frl_requant_to_double(frl_requant_t rq);

/* ---- the quantised model ---- */

typedef struct frl_qmodel_s frl_qmodel_t;

/* Creates a model from per-layer 0/1 masks (masks[l] holds
 * spec->layers[l].n_edges bytes, edge order of frl_model.h). The weight
 * signs are regenerated from `seed`. Requantisation parameters start as
 * (M0 = 1, s = 0) until frl_qmodel_calibrate or frl_qmodel_set_requant.
 * `zin` is the input zero point (FRL_QZIN_FMNIST). Returns 0, FRL_EINVAL,
 * FRL_EUNSUPPORTED (an op sequence the integer pipeline cannot run: a
 * masked layer not followed by ReLU that is not the last one) or
 * FRL_ENOMEM. */
int frl_qmodel_create(const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES], double keep, frl_mask_rule rule,
                      int32_t zin, const uint8_t *const *masks, frl_qmodel_t **out);
void frl_qmodel_free(frl_qmodel_t *m);

typedef struct frl_qcalib_opts_s {
    uint32_t max_images; /* calibration images used (first ones given; 0 = 512) */
    double pct;          /* percentile of positive accumulators mapped to 255 (0 = 0.9999) */
} frl_qcalib_opts_t;

/* Calibrates every non-final layer on images (n, in_h, in_w) uint8 (in_c
 * = 1) or (n, in_h, in_w, in_c). opts may be NULL. */
int frl_qmodel_calibrate(frl_qmodel_t *m, const uint8_t *images, uint32_t n, const frl_qcalib_opts_t *opts);

/* The server's path: mask from the global ranking (frl_mask_from_ranking
 * per layer; `ranking` is the concatenation of the layers' rankings), then
 * calibration on `calib` (its first opts->max_images images). */
int frl_qmodel_from_ranking(const frl_model_spec_t *spec, const uint8_t seed[FRL_SEED_BYTES], double keep, frl_mask_rule rule,
                            const uint32_t *ranking, const frl_dataset_t *calib, const frl_qcalib_opts_t *opts, frl_qmodel_t **out);

/* Accessors. */
const frl_model_spec_t *frl_qmodel_spec(const frl_qmodel_t *m);
int frl_qmodel_n_layers(const frl_qmodel_t *m);
frl_requant_t frl_qmodel_requant(const frl_qmodel_t *m, int layer);
int frl_qmodel_set_requant(frl_qmodel_t *m, int layer, frl_requant_t rq);
int32_t frl_qmodel_zin(const frl_qmodel_t *m);
double frl_qmodel_keep(const frl_qmodel_t *m);
frl_mask_rule frl_qmodel_rule(const frl_qmodel_t *m);
const uint8_t *frl_qmodel_seed(const frl_qmodel_t *m);
/* 1 bit per edge of layer l (bit e & 7 of byte e >> 3). */
const uint8_t *frl_qmodel_mask_bits(const frl_qmodel_t *m, int layer);
/* Multiply-accumulates of one image (for GOP/s). */
uint64_t frl_qmodel_macs(const frl_qmodel_t *m);

/* ---- inference ---- */

/* Chooses the kernel path (AUTO = best this CPU has). FRL_EUNSUPPORTED if
 * the CPU lacks it. The choice is stored in the model: set it before
 * sharing the model between threads. */
int frl_qmodel_set_path(frl_qmodel_t *m, frl_qpath path);
frl_qpath frl_qmodel_path(const frl_qmodel_t *m);

/* Scratch bytes frl_qmodel_infer needs for batches of up to max_batch. */
size_t frl_qmodel_scratch_size(const frl_qmodel_t *m, int max_batch);
/* Logits (B, n_classes) int32 and/or predictions (B) of B images (B x
 * in_c*in_h*in_w bytes, HWC pixel order for in_c > 1, which for in_c = 1 is
 * the IDX layout). logits or pred may be NULL. scratch: 64-byte aligned
 * buffer of frl_qmodel_scratch_size(m, B') bytes with B' >= B. Integers only;
 * never allocates. */
int frl_qmodel_infer(const frl_qmodel_t *m, const uint8_t *images, int B, int32_t *logits, uint8_t *pred, void *scratch,
                     size_t scratch_size);

typedef struct frl_qeval_s {
    uint32_t n;       /* images evaluated */
    uint32_t correct; /* integer model argmax == label */
    double accuracy;  /* correct / n */
    double seconds;   /* wall time of the inference calls */
} frl_qeval_t;

/* Accuracy on a data set (all of it), batches of `batch` (0 = 64) on
 * `threads` threads (0 or 1 = the caller's). pred (ds->n) may be NULL. */
int frl_qmodel_evaluate(const frl_qmodel_t *m, const frl_dataset_t *ds, int batch, int threads, frl_qeval_t *res, uint8_t *pred);

/* ---- float masked model (the reference the integer model is compared to) ---- */

/* Float logits (n, n_classes) of the masked model w = sign * c_l * mask
 * with normalisation x = (p/255 - mean)/std, via supermask/frl_ops. */
int frl_qmodel_float_logits(const frl_qmodel_t *m, const uint8_t *images, uint32_t n, float mean, float std, float *logits);
/* Float predictions (argmax, lowest index on ties) of all of ds. */
int frl_qmodel_float_predict(const frl_qmodel_t *m, const frl_dataset_t *ds, float mean, float std, uint8_t *pred);

/* ---- model file ----
 *
 * Little-endian, version 1:
 *   0   magic "FRLQMDL\0"          8 bytes
 *   8   version                    u32 (1)
 *   12  file length                u32 (whole file, checksum included)
 *   16  model name                 16 bytes, NUL-padded
 *   32  model spec hash            32 bytes (frl_model_spec_t.hash)
 *   64  seed                       32 bytes
 *   96  keep fraction              f64 bits, u64
 *   104 mask rule                  u32 (0 abs, 1 signed)
 *   108 rounding rule              u32 (1: single rounding, ties up)
 *   112 input zero point zin       i32 (q = p - zin)
 *   116 input c, h, w              3 x u32
 *   128 n_layers                   u32
 *   132 per layer: n_edges u32, kept u32, M0 i32, shift i32   (16 bytes each)
 *   ..  per layer: mask, 1 bit per edge, ceil(n_edges / 8) bytes
 *   end BLAKE2b-256 (libsodium crypto_generichash, no key) of all bytes before it
 * Errors on load: FRL_ETRUNC (shorter than its header or stated length),
 * FRL_EFORMAT (bad magic, trailing bytes, bad field, mask bit count !=
 * kept), FRL_EUNSUPPORTED (other version or rounding rule), FRL_ECHECKSUM,
 * FRL_EMISMATCH (unknown model name, spec hash differs from this build's
 * spec of that name, or differs from `expect`). */
int frl_qmodel_to_bytes(const frl_qmodel_t *m, uint8_t **buf, size_t *len);
int frl_qmodel_from_bytes(const uint8_t *buf, size_t len, const frl_model_spec_t *expect, frl_qmodel_t **out);
int frl_qmodel_save(const frl_qmodel_t *m, const char *path);
int frl_qmodel_load(const char *path, const frl_model_spec_t *expect, frl_qmodel_t **out);

#endif
