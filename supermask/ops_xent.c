/* Softmax cross-entropy over class logits, mean over the batch. */
#include "supermask/frl_ops.h"

#include <math.h>

#include "common/frl_error.h"

/* logits (B, NC), labels (B) -> probs (B, NC) = softmax per row,
 * *loss = mean_b -log probs[b, labels[b]], *correct = #{b : argmax_c
 * logits[b, c] == labels[b]} with the lowest index winning ties.
 * Subtracting the row maximum keeps expf() in (0, 1]; the log-sum-exp is
 * taken in double so the loss of a confident, correct row does not round
 * to a large relative error. Labels are checked before anything is
 * written. */
int frl_xent_forward(float *loss, int *correct, float *probs, const float *logits, const uint8_t *labels, int B, int NC)
{
    if (B < 1 || NC < 1 || !loss || !correct || !probs || !logits || !labels)
        return FRL_EINVAL;
    for (int b = 0; b < B; b++)
        if (labels[b] >= NC)
            return FRL_EINVAL;
    double total = 0.0;
    int hits = 0;
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * NC;
        float *p = probs + (size_t)b * NC;
        int arg = 0;
        for (int c = 1; c < NC; c++)
            if (x[c] > x[arg])
                arg = c;
        float mx = x[arg];
        double sum = 0.0;
        for (int c = 0; c < NC; c++) {
            p[c] = expf(x[c] - mx);
            sum += p[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < NC; c++)
            p[c] *= inv;
        total += log(sum) - ((double)x[labels[b]] - (double)mx);
        hits += arg == labels[b];
    }
    *loss = (float)(total / B);
    *correct = hits;
    return 0;
}

/* probs (B, NC) from forward, labels (B) -> dlogits (B, NC) =
 * (probs - onehot(labels)) / B; dlogits == probs is allowed. This function
 * cannot fail by signature: a label >= NC (which forward rejects) gets no
 * one-hot term rather than an out-of-bounds write. */
void frl_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int B, int NC)
{
    if (B < 1 || NC < 1)
        return;
    float inv_b = 1.0f / (float)B;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * NC;
        float *d = dlogits + (size_t)b * NC;
        for (int c = 0; c < NC; c++)
            d[c] = (p[c] - (c == labels[b] ? 1.0f : 0.0f)) * inv_b;
    }
}
