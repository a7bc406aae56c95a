#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"

/* RFC 8439 §2.3.2: key 00..1f, nonce 00000009 0000004a 00000000, block 1.
 * Our nonce is le32(purpose) || le32(a) || le32(b), so purpose 0x09000000,
 * a = 0x4a000000, b = 0; block 1 starts at byte 64 of the stream. */
static void test_stream_matches_rfc8439_block_vector(void **state)
{
    (void)state;
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    frl_rng_t rng;
    frl_rng_init(&rng, key, 0x09000000u, 0x4a000000u, 0);
    uint8_t skip[64], got[16];
    frl_rng_fill(&rng, skip, sizeof skip);
    frl_rng_fill(&rng, got, sizeof got);
    static const uint8_t want[16] = {0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15,
                                     0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4};
    assert_memory_equal(got, want, sizeof want);
}

static void test_same_stream_same_values_across_buffer_refills(void **state)
{
    (void)state;
    uint8_t seed[32];
    frl_seed_from_u64(7, seed);
    frl_rng_t a, b;
    frl_rng_init(&a, seed, FRL_STREAM_TEST, 1, 2);
    frl_rng_init(&b, seed, FRL_STREAM_TEST, 1, 2);
    uint8_t bytes[4 * 3000];
    frl_rng_fill(&b, bytes, sizeof bytes);
    for (int i = 0; i < 3000; i++) {
        uint32_t want = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 | (uint32_t)bytes[4 * i + 2] << 16 |
                        (uint32_t)bytes[4 * i + 3] << 24;
        assert_int_equal(frl_rng_u32(&a), want);
    }
}

static void test_streams_with_different_purpose_or_index_differ(void **state)
{
    (void)state;
    uint8_t seed[32];
    frl_seed_from_u64(0, seed);
    frl_rng_t r[4];
    frl_rng_init(&r[0], seed, FRL_STREAM_WEIGHTS, 0, 0);
    frl_rng_init(&r[1], seed, FRL_STREAM_SCORES, 0, 0);
    frl_rng_init(&r[2], seed, FRL_STREAM_WEIGHTS, 1, 0);
    frl_rng_init(&r[3], seed, FRL_STREAM_WEIGHTS, 0, 1);
    uint64_t v[4];
    for (int i = 0; i < 4; i++)
        v[i] = frl_rng_u64(&r[i]);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_true(v[i] != v[j]);
}

/* Pinned values: if these change, every federation's weights change. */
static void test_seed_zero_pinned_vector(void **state)
{
    (void)state;
    uint8_t seed[32];
    frl_seed_from_u64(0, seed);
    char hex[65];
    frl_seed_to_hex(seed, hex);
    frl_rng_t r;
    frl_rng_init(&r, seed, FRL_STREAM_WEIGHTS, 0, 0);
    uint32_t first = frl_rng_u32(&r);
    print_message("seed0=%s first=0x%08x\n", hex, first);
    /* independently: hashlib.blake2b(b"frl seed v1" + struct.pack("<Q", 0), digest_size=32) */
    assert_string_equal(hex, "51b66f254ba7203ca3d5e66fb30dc4f20f68f46a798697296981964f709c999e");
    assert_int_equal(first, 0xce52d9a9u);
}

static void test_unit_floats_are_in_range_and_exact(void **state)
{
    (void)state;
    uint8_t seed[32];
    frl_seed_from_u64(1, seed);
    frl_rng_t r;
    frl_rng_init(&r, seed, FRL_STREAM_TEST, 0, 0);
    for (int i = 0; i < 100000; i++) {
        float f = frl_rng_unit_f32(&r);
        assert_true(f >= 0.0f && f < 1.0f);
        float scaled = f * 16777216.0f;
        assert_true(scaled == (float)(uint32_t)scaled);
        double d = frl_rng_unit_f64(&r);
        assert_true(d >= 0.0 && d < 1.0);
    }
}

static void test_below_is_in_range_and_roughly_uniform(void **state)
{
    (void)state;
    uint8_t seed[32];
    frl_seed_from_u64(2, seed);
    frl_rng_t r;
    frl_rng_init(&r, seed, FRL_STREAM_TEST, 0, 0);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t v = frl_rng_below(&r, 7);
        assert_true(v < 7);
        counts[v]++;
    }
    for (int i = 0; i < 7; i++)
        assert_in_range(counts[i], 9400, 10600); /* 10000 +- 6%: > 15 sigma */
    assert_int_equal(frl_rng_below(&r, 1), 0);
}

static void test_shuffle_is_a_permutation(void **state)
{
    (void)state;
    uint8_t seed[32];
    frl_seed_from_u64(3, seed);
    frl_rng_t r;
    frl_rng_init(&r, seed, FRL_STREAM_TEST, 0, 0);
    uint32_t v[1000];
    int seen[1000] = {0};
    for (uint32_t i = 0; i < 1000; i++)
        v[i] = i;
    frl_rng_shuffle_u32(&r, v, 1000);
    int moved = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        assert_true(v[i] < 1000);
        seen[v[i]]++;
        moved += v[i] != i;
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 900);
}

static void test_seed_parse_accepts_hex_and_decimal_and_rejects_junk(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(frl_seed_parse("0", a), 0);
    frl_seed_from_u64(0, b);
    assert_memory_equal(a, b, 32);
    char hex[65];
    frl_seed_to_hex(b, hex);
    memset(a, 0, 32);
    assert_int_equal(frl_seed_parse(hex, a), 0);
    assert_memory_equal(a, b, 32);
    assert_int_equal(frl_seed_parse("", a), FRL_EINVAL);
    assert_int_equal(frl_seed_parse("12x", a), FRL_EINVAL);
    assert_int_equal(frl_seed_parse("99999999999999999999", a), FRL_EINVAL); /* > UINT64_MAX */
    hex[10] = 'g';
    assert_int_equal(frl_seed_parse(hex, a), FRL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_matches_rfc8439_block_vector),
        cmocka_unit_test(test_same_stream_same_values_across_buffer_refills),
        cmocka_unit_test(test_streams_with_different_purpose_or_index_differ),
        cmocka_unit_test(test_seed_zero_pinned_vector),
        cmocka_unit_test(test_unit_floats_are_in_range_and_exact),
        cmocka_unit_test(test_below_is_in_range_and_roughly_uniform),
        cmocka_unit_test(test_shuffle_is_a_permutation),
        cmocka_unit_test(test_seed_parse_accepts_hex_and_decimal_and_rejects_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
