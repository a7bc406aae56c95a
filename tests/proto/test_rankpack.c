/* Ranking bit-packing (proto/frl_rankpack.h): sizes, round trips at the
 * layer sizes that matter, and rejection of malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "proto/frl_rankpack.h"

/* A seeded random permutation of [0, n). */
static uint32_t *random_perm(uint32_t n, uint32_t tag)
{
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(42, seed);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_TEST, tag, n);
    uint32_t *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    for (uint32_t i = 0; i < n; i++)
        p[i] = i;
    frl_rng_shuffle_u32(&rng, p, n);
    return p;
}

static void round_trip(uint32_t n)
{
    uint32_t *idx = random_perm(n, 1);
    size_t size = frl_rank_packed_size(n);
    uint8_t *buf = malloc(size);
    uint32_t *back = malloc((size_t)n * sizeof *back);
    assert_non_null(buf);
    assert_non_null(back);
    size_t len = 0;
    assert_int_equal(frl_rank_pack(idx, n, buf, size, &len), 0);
    assert_int_equal(len, size);
    assert_int_equal(frl_rank_unpack(buf, len, n, back), 0);
    assert_memory_equal(idx, back, (size_t)n * sizeof *idx);
    free(idx);
    free(buf);
    free(back);
}

static void test_bits_follow_ceil_log2_with_minimum_one(void **state)
{
    (void)state;
    assert_int_equal(frl_rank_bits(0), 0);
    assert_int_equal(frl_rank_bits(1), 1);
    assert_int_equal(frl_rank_bits(2), 1);
    assert_int_equal(frl_rank_bits(3), 2);
    assert_int_equal(frl_rank_bits(4), 2);
    assert_int_equal(frl_rank_bits(5), 3);
    assert_int_equal(frl_rank_bits(288), 9);
    assert_int_equal(frl_rank_bits(1280), 11);
    assert_int_equal(frl_rank_bits(18432), 15);
    assert_int_equal(frl_rank_bits(1605632), 21);
    assert_int_equal(frl_rank_bits(0x80000000u), 31);
    assert_int_equal(frl_rank_bits(0xFFFFFFFFu), 32);
}

static void test_packed_size_is_exact_byte_count(void **state)
{
    (void)state;
    assert_int_equal(frl_rank_packed_size(0), 0);
    assert_int_equal(frl_rank_packed_size(1), 1);
    assert_int_equal(frl_rank_packed_size(3), 1);
    assert_int_equal(frl_rank_packed_size(288), 324);
    assert_int_equal(frl_rank_packed_size(18432), 34560);
    assert_int_equal(frl_rank_packed_size(1605632), 4214784);
    assert_int_equal(frl_rank_packed_size(1280), 1760);
    assert_int_equal(frl_rank_packed_size(0xFFFFFFFFu), (size_t)0xFFFFFFFFu * 4);
}

static void test_round_trip_small_sizes(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 300; n++)
        round_trip(n);
}

static void test_round_trip_lenet_layer_sizes(void **state)
{
    (void)state;
    const uint32_t sizes[] = {288, 18432, 1605632, 1280};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(sizes[i]);
}

static void test_round_trip_power_of_two_boundaries(void **state)
{
    (void)state;
    const uint32_t sizes[] = {255, 256, 257, 65535, 65536, 65537, (1u << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(sizes[i]);
}

static void test_layout_is_little_endian_low_bits_first(void **state)
{
    (void)state;
    /* n = 4 -> 2 bits: [3, 0, 2, 1] = 11 00 10 01 from bit 0 -> 0b01100011 */
    const uint32_t idx[4] = {3, 0, 2, 1};
    uint8_t out[1];
    size_t len = 0;
    assert_int_equal(frl_rank_pack(idx, 4, out, sizeof out, &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(out[0], 0x63);
    /* n = 3 -> 2 bits, 6 bits used, top 2 bits are zero padding. */
    const uint32_t idx3[3] = {2, 1, 0};
    assert_int_equal(frl_rank_pack(idx3, 3, out, sizeof out, &len), 0);
    assert_int_equal(out[0], 0x06);
}

static void test_unpack_rejects_short_and_long_buffers(void **state)
{
    (void)state;
    const uint32_t n = 18432;
    uint32_t *idx = random_perm(n, 2);
    size_t size = frl_rank_packed_size(n);
    uint8_t *buf = calloc(1, size + 1);
    uint32_t *back = malloc(n * sizeof *back);
    size_t len = 0;
    assert_int_equal(frl_rank_pack(idx, n, buf, size + 1, &len), 0);
    assert_int_equal(frl_rank_unpack(buf, size - 1, n, back), FRL_EVOTE_LENGTH);
    assert_int_equal(frl_rank_unpack(buf, size + 1, n, back), FRL_EVOTE_LENGTH);
    assert_int_equal(frl_rank_unpack(buf, 0, n, back), FRL_EVOTE_LENGTH);
    free(idx);
    free(buf);
    free(back);
}

static void test_unpack_rejects_out_of_range_values(void **state)
{
    (void)state;
    /* n = 5 -> 3 bits: a 7 fits in the field but is not an edge. */
    uint8_t buf[2] = {0x07, 0x00}; /* 15 bits: [7, 0, 0, 0, 0] */
    uint32_t out[5];
    assert_int_equal(frl_rank_unpack(buf, sizeof buf, 5, out), FRL_EVOTE_RANGE);
    /* At a lenet size, one bad value at the very end. */
    const uint32_t n = 1280; /* 11 bits, 2048 > 1280 */
    uint32_t *idx = random_perm(n, 3);
    size_t size = frl_rank_packed_size(n);
    uint8_t *p = malloc(size);
    uint32_t *back = malloc(n * sizeof *back);
    size_t len = 0;
    assert_int_equal(frl_rank_pack(idx, n, p, size, &len), 0);
    /* Last index occupies bits [1279*11, 1280*11) = the last 11 bits. */
    p[size - 1] |= 0x80; /* top bit of the last index: value >= 1024 ... */
    p[size - 2] |= 0xff; /* ... and more: >= 1280 */
    assert_int_equal(frl_rank_unpack(p, size, n, back), FRL_EVOTE_RANGE);
    free(idx);
    free(p);
    free(back);
}

static void test_unpack_rejects_nonzero_padding(void **state)
{
    (void)state;
    uint8_t buf[1] = {0x06 | 0x40}; /* n = 3, [2, 1, 0], padding bit set */
    uint32_t out[3];
    assert_int_equal(frl_rank_unpack(buf, 1, 3, out), FRL_EFORMAT);
}

static void test_unpack_does_not_check_duplicates(void **state)
{
    (void)state;
    const uint32_t idx[4] = {1, 1, 1, 1};
    uint8_t buf[1];
    size_t len = 0;
    uint32_t out[4];
    assert_int_equal(frl_rank_pack(idx, 4, buf, 1, &len), 0);
    assert_int_equal(frl_rank_unpack(buf, 1, 4, out), 0);
    assert_memory_equal(idx, out, sizeof idx);
}

static void test_pack_rejects_bad_arguments(void **state)
{
    (void)state;
    const uint32_t idx[4] = {0, 1, 2, 4};
    uint8_t buf[8];
    size_t len = 0;
    assert_int_equal(frl_rank_pack(idx, 4, buf, sizeof buf, &len), FRL_EVOTE_RANGE);
    assert_int_equal(frl_rank_pack(idx, 0, buf, sizeof buf, &len), FRL_EINVAL);
    assert_int_equal(frl_rank_pack(idx, 3, buf, 0, &len), FRL_ETOOBIG);
    assert_int_equal(frl_rank_unpack(buf, 1, 0, NULL), FRL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bits_follow_ceil_log2_with_minimum_one),
        cmocka_unit_test(test_packed_size_is_exact_byte_count),
        cmocka_unit_test(test_round_trip_small_sizes),
        cmocka_unit_test(test_round_trip_lenet_layer_sizes),
        cmocka_unit_test(test_round_trip_power_of_two_boundaries),
        cmocka_unit_test(test_layout_is_little_endian_low_bits_first),
        cmocka_unit_test(test_unpack_rejects_short_and_long_buffers),
        cmocka_unit_test(test_unpack_rejects_out_of_range_values),
        cmocka_unit_test(test_unpack_rejects_nonzero_padding),
        cmocka_unit_test(test_unpack_does_not_check_duplicates),
        cmocka_unit_test(test_pack_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
