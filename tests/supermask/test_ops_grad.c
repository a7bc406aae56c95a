/* Finite-difference gradient checks for every backward op that is a true
 * gradient, and for a tiny composed network (conv -> relu -> maxpool ->
 * dense -> xent), on the default (OpenBLAS) path.
 *
 * Method: a scalar loss is evaluated in double from the float forward
 * outputs (for a single op, L = sum(out * G) with a fixed random G, so
 * dL/dout = G is what backward receives). Each parameter x is moved to the
 * floats nearest x + eps and x - eps, and the numerical derivative is
 * (L+ - L-) / (actual float step), a double-precision central difference.
 * With eps = 1e-3 the check is
 *     |num - ana| / max(|num|, |ana|, FLOOR) < 1e-2,   FLOOR = 0.1,
 * FLOOR turning the test into an absolute one (1e-3) for gradients much
 * smaller than the typical O(1) entry, where float rounding of the forward
 * pass (~1e-7 relative per output, divided by 2 eps) dominates. Inputs of
 * relu and maxpool are kept at least 1e-2 away from their kinks and ties,
 * so no +-eps step crosses one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "supermask/frl_ops.h"

#define FD_EPS 1e-3
#define FD_TOL 1e-2
#define FD_FLOOR 0.1

/* ---- helpers ---------------------------------------------------------- */

static void fill_uniform(float *v, size_t n, float lo, float hi, uint64_t seed)
{
    uint8_t key[FRL_SEED_BYTES];
    frl_rng_t rng;
    frl_seed_from_u64(seed, key);
    frl_rng_init(&rng, key, FRL_STREAM_TEST, 1, 0);
    for (size_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * frl_rng_unit_f32(&rng);
}

static float *xalloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Compares grad[0..n) with central differences of f over param[0..n).
 * Prints the first mismatches and the worst error; returns the mismatch
 * count. */
static int check_grad(const char *what, float *param, const float *grad, size_t n, loss_fn f, void *ctx, double eps)
{
    int bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        float x = param[i];
        float xp = (float)(x + eps), xm = (float)(x - eps);
        param[i] = xp;
        double lp = f(ctx);
        param[i] = xm;
        double lm = f(ctx);
        param[i] = x;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double ana = grad[i];
        double den = fmax(FD_FLOOR, fmax(fabs(num), fabs(ana)));
        double err = fabs(num - ana) / den;
        if (err > worst)
            worst = err;
        if (!(err < FD_TOL) && bad++ < 5)
            printf("  %s[%zu]: analytic %.6g numeric %.6g rel err %.3g\n", what, i, ana, num, err);
    }
    printf("  %s: %zu entries, worst rel err %.3g (tol %.0e)\n", what, n, worst, FD_TOL);
    return bad;
}

/* ---- conv2d ----------------------------------------------------------- */

struct conv_case {
    int B, C, H, W, OC, K, pad, OH, OW;
    float *inp, *weight, *out, *G, *scratch;
};

static double conv_loss(void *p)
{
    struct conv_case *c = p;
    int rc = frl_conv2d_forward(c->out, c->inp, c->weight, c->B, c->C, c->H, c->W, c->OC, c->K, c->pad, c->scratch);
    assert_int_equal(rc, 0);
    return dot_d(c->out, c->G, (size_t)c->B * c->OC * c->OH * c->OW);
}

static void conv_grad_check(int C, int K, int pad, uint64_t seed)
{
    struct conv_case c = {.B = 2, .C = C, .H = 5, .W = 6, .OC = 4, .K = K, .pad = pad};
    c.OH = c.H + 2 * pad - K + 1;
    c.OW = c.W + 2 * pad - K + 1;
    size_t n_in = (size_t)c.B * C * c.H * c.W, n_w = (size_t)c.OC * C * K * K;
    size_t n_out = (size_t)c.B * c.OC * c.OH * c.OW;
    c.inp = xalloc(n_in);
    c.weight = xalloc(n_w);
    c.out = xalloc(n_out);
    c.G = xalloc(n_out);
    c.scratch = xalloc(frl_conv2d_scratch_floats(C, c.H, c.W, K, pad));
    fill_uniform(c.inp, n_in, -1, 1, seed);
    fill_uniform(c.weight, n_w, -1, 1, seed + 1);
    fill_uniform(c.G, n_out, -1, 1, seed + 2);
    float *dinp = xalloc(n_in), *dw = xalloc(n_w);
    assert_int_equal(frl_conv2d_backward(dinp, dw, c.G, c.inp, c.weight, c.B, C, c.H, c.W, c.OC, K, pad, c.scratch), 0);
    printf(" conv2d B=%d C=%d H=%d W=%d OC=%d K=%d pad=%d\n", c.B, C, c.H, c.W, c.OC, K, pad);
    int bad = check_grad("dinp", c.inp, dinp, n_in, conv_loss, &c, FD_EPS);
    bad += check_grad("dweight", c.weight, dw, n_w, conv_loss, &c, FD_EPS);
    free(c.inp);
    free(c.weight);
    free(c.out);
    free(c.G);
    free(c.scratch);
    free(dinp);
    free(dw);
    assert_int_equal(bad, 0);
}

static void test_conv2d_grad_single_channel_pad0(void **state)
{
    conv_grad_check(1, 3, 0, 10);
}

static void test_conv2d_grad_single_channel_pad1(void **state)
{
    conv_grad_check(1, 3, 1, 20);
}

static void test_conv2d_grad_multichannel_pad0(void **state)
{
    conv_grad_check(3, 3, 0, 30);
}

static void test_conv2d_grad_multichannel_pad1(void **state)
{
    conv_grad_check(3, 3, 1, 40);
}

/* Even kernel with padding: the output is larger than the input. */
static void test_conv2d_grad_even_kernel_pad1(void **state)
{
    conv_grad_check(2, 2, 1, 50);
}

/* 1x1 kernel: the path that skips im2col. */
static void test_conv2d_grad_pointwise_kernel(void **state)
{
    conv_grad_check(3, 1, 0, 60);
}

/* ---- dense ------------------------------------------------------------ */

struct dense_case {
    int B, I, O;
    float *inp, *weight, *out, *G;
};

static double dense_loss(void *p)
{
    struct dense_case *d = p;
    assert_int_equal(frl_dense_forward(d->out, d->inp, d->weight, d->B, d->I, d->O), 0);
    return dot_d(d->out, d->G, (size_t)d->B * d->O);
}

static void test_dense_grad(void **state)
{
    struct dense_case d = {.B = 3, .I = 11, .O = 5};
    size_t n_in = (size_t)d.B * d.I, n_w = (size_t)d.O * d.I, n_out = (size_t)d.B * d.O;
    d.inp = xalloc(n_in);
    d.weight = xalloc(n_w);
    d.out = xalloc(n_out);
    d.G = xalloc(n_out);
    fill_uniform(d.inp, n_in, -1, 1, 70);
    fill_uniform(d.weight, n_w, -1, 1, 71);
    fill_uniform(d.G, n_out, -1, 1, 72);
    float *dinp = xalloc(n_in), *dw = xalloc(n_w);
    assert_int_equal(frl_dense_backward(dinp, dw, d.G, d.inp, d.weight, d.B, d.I, d.O), 0);
    int bad = check_grad("dinp", d.inp, dinp, n_in, dense_loss, &d, FD_EPS);
    bad += check_grad("dweight", d.weight, dw, n_w, dense_loss, &d, FD_EPS);
    free(d.inp);
    free(d.weight);
    free(d.out);
    free(d.G);
    free(dinp);
    free(dw);
    assert_int_equal(bad, 0);
}

/* ---- relu ------------------------------------------------------------- */

struct relu_case {
    size_t n;
    float *inp, *out, *G;
};

static double relu_loss(void *p)
{
    struct relu_case *r = p;
    frl_relu_forward(r->out, r->inp, r->n);
    return dot_d(r->out, r->G, r->n);
}

static void test_relu_grad(void **state)
{
    struct relu_case r = {.n = 64};
    r.inp = xalloc(r.n);
    r.out = xalloc(r.n);
    r.G = xalloc(r.n);
    /* Magnitudes in [0.05, 1], random signs: no +-eps step crosses 0. */
    fill_uniform(r.inp, r.n, -1, 1, 80);
    for (size_t i = 0; i < r.n; i++)
        r.inp[i] = r.inp[i] < 0 ? r.inp[i] - 0.05f : r.inp[i] + 0.05f;
    fill_uniform(r.G, r.n, -1, 1, 81);
    float *dinp = xalloc(r.n);
    frl_relu_forward(r.out, r.inp, r.n);
    frl_relu_backward(dinp, r.G, r.out, r.n);
    int bad = check_grad("dinp", r.inp, dinp, r.n, relu_loss, &r, FD_EPS);
    free(r.inp);
    free(r.out);
    free(r.G);
    free(dinp);
    assert_int_equal(bad, 0);
}

/* ---- maxpool ---------------------------------------------------------- */

struct pool_case {
    int B, C, H, W, K;
    float *inp, *out, *G;
    int32_t *argmax;
};

static double pool_loss(void *p)
{
    struct pool_case *q = p;
    assert_int_equal(frl_maxpool_forward(q->out, q->argmax, q->inp, q->B, q->C, q->H, q->W, q->K), 0);
    return dot_d(q->out, q->G, (size_t)q->B * q->C * (q->H / q->K) * (q->W / q->K));
}

/* Input values are a shuffled ladder 0.01 apart, so no window has a tie
 * within +-eps; H = 7 leaves a row that no window covers (gradient 0). */
static void pool_grad_check(int K, uint64_t seed)
{
    struct pool_case q = {.B = 2, .C = 3, .H = 7, .W = 6, .K = K};
    size_t n_in = (size_t)q.B * q.C * q.H * q.W, n_out = (size_t)q.B * q.C * (q.H / K) * (q.W / K);
    q.inp = xalloc(n_in);
    q.out = xalloc(n_out);
    q.G = xalloc(n_out);
    q.argmax = calloc(n_out, sizeof(int32_t));
    assert_non_null(q.argmax);
    uint32_t *perm = malloc(n_in * sizeof(uint32_t));
    assert_non_null(perm);
    uint8_t key[FRL_SEED_BYTES];
    frl_rng_t rng;
    frl_seed_from_u64(seed, key);
    frl_rng_init(&rng, key, FRL_STREAM_TEST, 2, 0);
    for (size_t i = 0; i < n_in; i++)
        perm[i] = (uint32_t)i;
    frl_rng_shuffle_u32(&rng, perm, n_in);
    for (size_t i = 0; i < n_in; i++)
        q.inp[i] = 0.01f * (float)perm[i] - 1.0f;
    fill_uniform(q.G, n_out, -1, 1, seed + 1);
    float *dinp = xalloc(n_in);
    pool_loss(&q); /* fills argmax */
    assert_int_equal(frl_maxpool_backward(dinp, q.G, q.argmax, q.B, q.C, q.H, q.W, K), 0);
    int bad = check_grad("dinp", q.inp, dinp, n_in, pool_loss, &q, FD_EPS);
    free(perm);
    free(q.inp);
    free(q.out);
    free(q.G);
    free(q.argmax);
    free(dinp);
    assert_int_equal(bad, 0);
}

static void test_maxpool2_grad(void **state)
{
    pool_grad_check(2, 90);
}

static void test_maxpool3_grad(void **state)
{
    pool_grad_check(3, 95);
}

/* ---- softmax cross-entropy ------------------------------------------- */

struct xent_case {
    int B, NC;
    float *logits, *probs;
    const uint8_t *labels;
};

static double xent_loss(void *p)
{
    struct xent_case *x = p;
    float loss;
    int correct;
    assert_int_equal(frl_xent_forward(&loss, &correct, x->probs, x->logits, x->labels, x->B, x->NC), 0);
    return loss;
}

/* The loss is returned as a float (~2e-7 relative), so this check uses
 * eps = 1e-2; the loss is smooth, and the O(eps^2) truncation error is far
 * below the tolerance. */
static void test_xent_grad(void **state)
{
    static const uint8_t labels[4] = {0, 3, 6, 6};
    struct xent_case x = {.B = 4, .NC = 7, .labels = labels};
    size_t n = (size_t)x.B * x.NC;
    x.logits = xalloc(n);
    x.probs = xalloc(n);
    fill_uniform(x.logits, n, -3, 3, 100);
    float *dl = xalloc(n);
    xent_loss(&x);
    frl_xent_backward(dl, x.probs, labels, x.B, x.NC);
    int bad = check_grad("dlogits", x.logits, dl, n, xent_loss, &x, 1e-2);
    free(x.logits);
    free(x.probs);
    free(dl);
    assert_int_equal(bad, 0);
}

/* ---- tiny composed network ------------------------------------------- */

/* x (2,1,6,6) -> conv 1->3 k3 pad1 -> relu -> maxpool2 -> (2,27) ->
 * dense 27->4 -> xent. Checks the backward chain and that the ops agree on
 * layouts (flatten is channel-major, argmax offsets are per plane). */
struct net {
    float *x, *w1, *a1, *p, *w2, *logits, *probs, *scratch;
    int32_t *am;
    const uint8_t *labels;
};

enum { NB = 2, NC0 = 1, NH = 6, NW = 6, NC1 = 3, NP = NC1 * 3 * 3, NO = 4 };

static double net_loss(void *ctx)
{
    struct net *n = ctx;
    float loss;
    int correct;
    assert_int_equal(frl_conv2d_forward(n->a1, n->x, n->w1, NB, NC0, NH, NW, NC1, 3, 1, n->scratch), 0);
    frl_relu_forward(n->a1, n->a1, (size_t)NB * NC1 * NH * NW);
    assert_int_equal(frl_maxpool_forward(n->p, n->am, n->a1, NB, NC1, NH, NW, 2), 0);
    assert_int_equal(frl_dense_forward(n->logits, n->p, n->w2, NB, NP, NO), 0);
    assert_int_equal(frl_xent_forward(&loss, &correct, n->probs, n->logits, n->labels, NB, NO), 0);
    return loss;
}

static void test_tiny_net_grad(void **state)
{
    static const uint8_t labels[NB] = {1, 3};
    struct net n = {.labels = labels};
    n.x = xalloc(NB * NC0 * NH * NW);
    n.w1 = xalloc(NC1 * NC0 * 9);
    n.a1 = xalloc(NB * NC1 * NH * NW);
    n.p = xalloc(NB * NP);
    n.w2 = xalloc(NO * NP);
    n.logits = xalloc(NB * NO);
    n.probs = xalloc(NB * NO);
    n.scratch = xalloc(frl_conv2d_scratch_floats(NC0, NH, NW, 3, 1));
    n.am = calloc(NB * NP, sizeof(int32_t));
    assert_non_null(n.am);
    fill_uniform(n.x, NB * NC0 * NH * NW, -1, 1, 110);
    fill_uniform(n.w1, NC1 * NC0 * 9, -1, 1, 111);
    fill_uniform(n.w2, NO * NP, -1, 1, 112);

    float *dlogits = xalloc(NB * NO), *dp = xalloc(NB * NP), *dw2 = xalloc(NO * NP);
    float *da1 = xalloc(NB * NC1 * NH * NW), *dw1 = xalloc(NC1 * NC0 * 9), *dx = xalloc(NB * NC0 * NH * NW);
    net_loss(&n);
    frl_xent_backward(dlogits, n.probs, labels, NB, NO);
    assert_int_equal(frl_dense_backward(dp, dw2, dlogits, n.p, n.w2, NB, NP, NO), 0);
    assert_int_equal(frl_maxpool_backward(da1, dp, n.am, NB, NC1, NH, NW, 2), 0);
    frl_relu_backward(da1, da1, n.a1, (size_t)NB * NC1 * NH * NW);
    assert_int_equal(frl_conv2d_backward(dx, dw1, da1, n.x, n.w1, NB, NC0, NH, NW, NC1, 3, 1, n.scratch), 0);

    int bad = check_grad("dx", n.x, dx, NB * NC0 * NH * NW, net_loss, &n, FD_EPS);
    bad += check_grad("dw1", n.w1, dw1, NC1 * NC0 * 9, net_loss, &n, FD_EPS);
    bad += check_grad("dw2", n.w2, dw2, NO * NP, net_loss, &n, FD_EPS);
    free(n.x);
    free(n.w1);
    free(n.a1);
    free(n.p);
    free(n.w2);
    free(n.logits);
    free(n.probs);
    free(n.scratch);
    free(n.am);
    free(dlogits);
    free(dp);
    free(dw2);
    free(da1);
    free(dw1);
    free(dx);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_grad_single_channel_pad0),
        cmocka_unit_test(test_conv2d_grad_single_channel_pad1),
        cmocka_unit_test(test_conv2d_grad_multichannel_pad0),
        cmocka_unit_test(test_conv2d_grad_multichannel_pad1),
        cmocka_unit_test(test_conv2d_grad_even_kernel_pad1),
        cmocka_unit_test(test_conv2d_grad_pointwise_kernel),
        cmocka_unit_test(test_dense_grad),
        cmocka_unit_test(test_relu_grad),
        cmocka_unit_test(test_maxpool2_grad),
        cmocka_unit_test(test_maxpool3_grad),
        cmocka_unit_test(test_xent_grad),
        cmocka_unit_test(test_tiny_net_grad),
    };
    return cmocka_run_group_tests_name("supermask_ops_grad", tests, NULL, NULL);
}
