/* Float layer ops for supermask training: forward/backward pairs of free
 * functions on explicit pointers and dimensions (llm.c style). All tensors
 * are contiguous row-major float32; activations are NCHW. Weights passed in
 * are the *effective* weights (w * mask). Backward functions OVERWRITE their
 * gradient outputs (no accumulation) and accept NULL for a gradient that is
 * not needed (e.g. dinp of the first layer). Scratch memory is passed in;
 * nothing allocates. Every function returns 0 or FRL_EINVAL (bad dims). */
#ifndef FRL_OPS_H
#define FRL_OPS_H

#include <stddef.h>
#include <stdint.h>

/* C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when
 * the flag is set. Uses OpenBLAS (single-threaded per call) unless the
 * portable reference is forced with frl_sgemm_set_reference(1) (tests). */
void frl_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);
void frl_sgemm_set_reference(int on);

/* Debian 12's OpenBLAS (0.3.21) does not know CPUs newer than it (seen:
 * Intel family 6 model 207) and falls back to its Prescott (SSE3) kernels,
 * which make training 2.3x slower. OpenBLAS reads OPENBLAS_CORETYPE only
 * when it is loaded, before main, so a program can only fix this by setting
 * it and executing itself again. Call first thing in main: when OpenBLAS
 * says "Prescott", the variable is unset and the CPU has AVX-512 (SkylakeX
 * kernels) or AVX2+FMA (Haswell kernels), it sets the variable and execs
 * /proc/self/exe with argv (same pid, nothing opened yet), so it does not
 * return. Otherwise, or if exec fails, it returns 0 and nothing changed.
 * FRL_KEEP_BLAS_CORE=1 turns it off. */
int frl_blas_fix_core(char *const argv[]);

/* conv2d, stride 1, zero padding `pad`, square kernel K:
 *   inp (B, C, H, W), weight (OC, C, K, K), out (B, OC, OH, OW),
 *   OH = H + 2 pad - K + 1, OW likewise. */
size_t frl_conv2d_scratch_floats(int C, int H, int W, int K, int pad);
int frl_conv2d_forward(float *out, const float *inp, const float *weight, int B, int C, int H, int W, int OC, int K, int pad,
                       float *scratch);
/* dinp (B, C, H, W) or NULL; dweight (OC, C, K, K); dout (B, OC, OH, OW). */
int frl_conv2d_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int B, int C,
                        int H, int W, int OC, int K, int pad, float *scratch);

/* dense: out (B, O) = inp (B, I) * weight^T, weight (O, I). */
int frl_dense_forward(float *out, const float *inp, const float *weight, int B, int I, int O);
/* dinp (B, I) or NULL; dweight (O, I) or NULL; dout (B, O). inp may be
 * NULL when dweight is, weight may be NULL when dinp is (the trainer's big
 * dense layer asks for dinp only and fuses its weight gradient into SGD). */
int frl_dense_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int B, int I,
                       int O);

/* ReLU, in place allowed (out == inp). backward: dinp = dout * (out > 0);
 * dinp == dout allowed. */
void frl_relu_forward(float *out, const float *inp, size_t n);
void frl_relu_backward(float *dinp, const float *dout, const float *out, size_t n);

/* max-pool K x K, stride K: inp (B, C, H, W) -> out (B, C, H/K, W/K);
 * argmax (same shape as out) records the flat input offset of the winner
 * within its (b, c) plane (first maximum wins). backward scatters dout into
 * dinp (which it zeroes first). */
int frl_maxpool_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H, int W, int K);
int frl_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C, int H, int W, int K);

/* Softmax cross-entropy, mean over the batch: logits (B, NC), labels (B).
 * Returns the mean loss in *loss; probs (B, NC) may alias nothing.
 * backward: dlogits = (probs - onehot(labels)) / B. Labels >= NC are
 * FRL_EINVAL. *correct counts argmax == label (lowest index wins ties). */
int frl_xent_forward(float *loss, int *correct, float *probs, const float *logits, const uint8_t *labels, int B, int NC);
void frl_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int B, int NC);

#endif
