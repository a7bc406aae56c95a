/* Dyadic multipliers and the requantisation rounding rule. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/frl_error.h"
#include "quant/frl_quant.h"
#include "qtest_util.h"

static void test_dyadic_one_and_near_one(void **state)
{
    frl_requant_t rq;
    assert_int_equal(frl_requant_from_double(1.0, &rq), 0);
    assert_int_equal(rq.m0, 1 << 30);
    assert_int_equal(rq.shift, 30);
    /* 1 - 2^-40 rounds up to 2^31 and is renormalised */
    assert_int_equal(frl_requant_from_double(1.0 - ldexp(1.0, -40), &rq), 0);
    assert_int_equal(rq.m0, 1 << 30);
    assert_int_equal(rq.shift, 30);
    assert_int_equal(frl_requant_from_double(0.75, &rq), 0);
    assert_int_equal(rq.m0, 1610612736);
    assert_int_equal(rq.shift, 31);
    /* just below 1 but representable */
    assert_int_equal(frl_requant_from_double(1.0 - ldexp(1.0, -30), &rq), 0);
    assert_int_equal(rq.m0, (int32_t)((1u << 31) - 2u));
    assert_int_equal(rq.shift, 31);
}

static void test_dyadic_tiny_and_huge(void **state)
{
    frl_requant_t rq;
    assert_int_equal(frl_requant_from_double(ldexp(1.0, -40), &rq), 0);
    assert_int_equal(rq.shift, FRL_RQ_MAX_SHIFT);
    assert_int_equal(rq.m0, 1 << 22);
    assert_true(frl_requant_to_double(rq) == ldexp(1.0, -40));
    assert_int_equal(frl_requant_from_double(ldexp(1.0, -100), &rq), 0);
    assert_int_equal(rq.m0, 0);
    assert_int_equal(rq.shift, FRL_RQ_MAX_SHIFT);
    /* 1.5 * 2^-62: s = 63 -> one bit dropped with rounding */
    assert_int_equal(frl_requant_from_double(1.5 * ldexp(1.0, -62), &rq), 0);
    assert_int_equal(rq.shift, 62);
    assert_int_equal(rq.m0, 2);
    assert_int_equal(frl_requant_from_double(ldexp(1.0, 30), &rq), 0);
    assert_int_equal(rq.shift, 0);
    assert_int_equal(rq.m0, 1 << 30);
    assert_int_equal(frl_requant_from_double(ldexp(1.0, 31), &rq), FRL_ERANGE);
    assert_int_equal(frl_requant_from_double(0.0, &rq), FRL_EINVAL);
    assert_int_equal(frl_requant_from_double(-1.0, &rq), FRL_EINVAL);
    assert_int_equal(frl_requant_from_double(NAN, &rq), FRL_EINVAL);
    assert_int_equal(frl_requant_from_double(INFINITY, &rq), FRL_EINVAL);
}

static void test_dyadic_relative_error(void **state)
{
    uint64_t s = 1;
    for (int i = 0; i < 10000; i++) {
        double M = ldexp(1.0 + (double)(qt_next(&s) >> 11) * 0x1p-53, (int)qt_below(&s, 40) - 25);
        frl_requant_t rq;
        assert_int_equal(frl_requant_from_double(M, &rq), 0);
        assert_true(rq.m0 >= (1 << 30));
        assert_int_equal(frl_requant_check(rq), 0);
        assert_true(fabs(frl_requant_to_double(rq) / M - 1.0) <= ldexp(1.0, -31));
    }
}

/* floor(acc * m0 / 2^s + 1/2) clamped, computed with 128-bit integers */
static int exact_rq(int32_t acc, frl_requant_t rq)
{
    __int128 p = (__int128)acc * rq.m0;
    __int128 y;
    if (rq.shift == 0)
        y = p;
    else {
        __int128 num = 2 * p + ((__int128)1 << rq.shift), den = (__int128)1 << (rq.shift + 1);
        y = num / den;
        if (num % den != 0 && num < 0)
            y -= 1; /* floor */
    }
    return y < 0 ? 0 : y > 255 ? 255 : (int)y;
}

static void test_requant_ties_round_up(void **state)
{
    frl_requant_t h = {1, 1};                  /* x / 2 */
    assert_int_equal(frl_requant_u8(1, h), 1); /* 0.5 -> 1 */
    assert_int_equal(frl_requant_u8(3, h), 2); /* 1.5 -> 2 */
    assert_int_equal(frl_requant_u8(5, h), 3); /* 2.5 -> 3 (not to even) */
    assert_int_equal(frl_requant_u8(2, h), 1);
    assert_int_equal(frl_requant_u8(-1, h), 0); /* -0.5 -> 0 */
    assert_int_equal(frl_requant_u8(-3, h), 0);
    frl_requant_t q = {3, 2};                  /* 3x / 4 */
    assert_int_equal(frl_requant_u8(2, q), 2); /* 1.5 -> 2 */
    assert_int_equal(frl_requant_u8(1, q), 1); /* 0.75 -> 1 */
    assert_int_equal(frl_requant_u8(340, q), 255);
    assert_int_equal(frl_requant_u8(339, q), 254); /* 254.25 */
    frl_requant_t big = {INT32_MAX, 62};
    assert_int_equal(frl_requant_u8(INT32_MAX, big), 1);
    assert_int_equal(frl_requant_u8(INT32_MIN, big), 0);
    frl_requant_t id = {1, 0};
    assert_int_equal(frl_requant_u8(200, id), 200);
    assert_int_equal(frl_requant_u8(256, id), 255);
    assert_int_equal(frl_requant_u8(INT32_MIN, (frl_requant_t){INT32_MAX, 0}), 0);
    assert_int_equal(frl_requant_u8(INT32_MAX, (frl_requant_t){INT32_MAX, 0}), 255);
    frl_requant_t z = {0, 5};
    assert_int_equal(frl_requant_u8(INT32_MAX, z), 0);
    assert_int_equal(frl_requant_check((frl_requant_t){-1, 3}), FRL_ERANGE);
    assert_int_equal(frl_requant_check((frl_requant_t){1, 63}), FRL_ERANGE);
    assert_int_equal(frl_requant_check((frl_requant_t){1, -1}), FRL_ERANGE);
}

static void test_requant_matches_exact_rational(void **state)
{
    uint64_t s = 7;
    for (int i = 0; i < 200000; i++) {
        frl_requant_t rq = {(int32_t)(qt_next(&s) & 0x7fffffff), (int32_t)qt_below(&s, 63)};
        if (i % 3 == 0)
            rq.m0 >>= qt_below(&s, 31);
        int32_t acc = (int32_t)qt_next(&s);
        if (i % 2)
            acc >>= qt_below(&s, 31);
        assert_int_equal(frl_requant_u8(acc, rq), exact_rq(acc, rq));
    }
    /* exact ties: acc * m0 = (2j + 1) * 2^(s-1) */
    for (int sh = 1; sh < 20; sh++)
        for (int j = 0; j < 300; j++) {
            frl_requant_t rq = {1, sh};
            int32_t acc = (int32_t)((2 * j + 1) << (sh - 1));
            int want = j + 1 > 255 ? 255 : j + 1;
            assert_int_equal(frl_requant_u8(acc, rq), want);
        }
}

static void test_maxpool_before_requant_is_exact(void **state)
{
    uint64_t s = 11;
    enum { H = 28, W = 28, C = 8 };
    static int32_t acc[H * W * C], pooled[H * W * C / 4];
    static uint8_t q[H * W * C], a[H * W * C / 4], b[H * W * C / 4];
    for (int it = 0; it < 50; it++) {
        for (int i = 0; i < H * W * C; i++)
            acc[i] = (int32_t)(qt_next(&s) % 200001) - 100000;
        frl_requant_t rq = {(int32_t)(qt_next(&s) & 0x7fffffff), 20 + (int32_t)qt_below(&s, 20)};
        /* requantise then pool the codes */
        frl_qref_requant(acc, H, W, C, rq, q, 0, C);
        for (int y = 0; y < H / 2; y++)
            for (int x = 0; x < W / 2; x++)
                for (int c = 0; c < C; c++) {
                    uint8_t m = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            uint8_t v = q[((2 * y + dy) * W + 2 * x + dx) * C + c];
                            m = v > m ? v : m;
                        }
                    a[(y * (W / 2) + x) * C + c] = m;
                }
        /* pool the accumulators then requantise */
        frl_qref_maxpool(acc, H, W, C, 2, pooled);
        frl_qref_requant(pooled, H / 2, W / 2, C, rq, b, 0, C);
        assert_int_equal(qt_first_diff(a, b, sizeof a, "pool/requant"), 0);
    }
}

static void test_argmax_lowest_index_wins(void **state)
{
    int32_t v[5] = {3, 7, 7, -1, 7};
    assert_int_equal(frl_qargmax(v, 5), 1);
    int32_t w[3] = {INT32_MIN, INT32_MIN, INT32_MIN};
    assert_int_equal(frl_qargmax(w, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dyadic_one_and_near_one),        cmocka_unit_test(test_dyadic_tiny_and_huge),
        cmocka_unit_test(test_dyadic_relative_error),          cmocka_unit_test(test_requant_ties_round_up),
        cmocka_unit_test(test_requant_matches_exact_rational), cmocka_unit_test(test_maxpool_before_requant_is_exact),
        cmocka_unit_test(test_argmax_lowest_index_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
