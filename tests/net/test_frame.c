/* Frame decoder and encoder (net/frl_frame.h), table-driven, no sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_rng.h"
#include "net/frl_frame.h"
#include "proto/frl_msg.h"

static ssize_t decode(const uint8_t *b, size_t len, size_t max, size_t *plen)
{
    const uint8_t *payload = NULL;
    size_t pl = 0;
    ssize_t r = frl_frame_decode(b, len, max, &payload, &pl);
    if (r > 0) {
        assert_ptr_equal(payload, b + 4);
        assert_int_equal((size_t)r, 4 + pl);
    }
    if (plen)
        *plen = pl;
    return r;
}

static void test_fewer_than_four_bytes_is_incomplete(void **state)
{
    (void)state;
    const uint8_t hdr[4] = {0, 0, 0, 1};
    for (size_t n = 0; n < 4; n++)
        assert_int_equal(decode(hdr, n, 100, NULL), FRL_FRAME_INCOMPLETE);
}

static void test_body_short_by_one_is_incomplete(void **state)
{
    (void)state;
    uint8_t b[4 + 10] = {0, 0, 0, 10};
    assert_int_equal(decode(b, sizeof b - 1, 100, NULL), FRL_FRAME_INCOMPLETE);
}

static void test_exact_fit_consumes_header_plus_body(void **state)
{
    (void)state;
    uint8_t b[4 + 10] = {0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    size_t pl = 0;
    assert_int_equal(decode(b, sizeof b, 100, &pl), 14);
    assert_int_equal(pl, 10);
}

static void test_zero_length_frame_is_a_valid_frame(void **state)
{
    (void)state;
    uint8_t b[4] = {0, 0, 0, 0};
    size_t pl = 99;
    assert_int_equal(decode(b, 4, 100, &pl), 4);
    assert_int_equal(pl, 0);
}

static void test_length_equal_to_limit_is_accepted(void **state)
{
    (void)state;
    const size_t max = 1000;
    uint8_t *b = calloc(1, 4 + max);
    frl_frame_put_header(b, (uint32_t)max);
    assert_int_equal(decode(b, 4 + max, max, NULL), (ssize_t)(4 + max));
    assert_int_equal(decode(b, 4, max, NULL), FRL_FRAME_INCOMPLETE);
    free(b);
}

static void test_limit_plus_one_is_rejected_with_header_only(void **state)
{
    (void)state;
    uint8_t b[4];
    frl_frame_put_header(b, 1001);
    assert_int_equal(decode(b, 4, 1000, NULL), FRL_FRAME_TOO_LARGE);
}

static void test_max_uint32_length_is_rejected_without_overflow(void **state)
{
    (void)state;
    uint8_t b[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    assert_int_equal(decode(b, 4, FRL_FRAME_MAX_DEFAULT, NULL), FRL_FRAME_TOO_LARGE);
    assert_int_equal(decode(b, 8, FRL_FRAME_MAX_DEFAULT, NULL), FRL_FRAME_TOO_LARGE);
    /* Even with an "unlimited" limit the arithmetic must not wrap. */
    assert_int_equal(decode(b, 8, SIZE_MAX, NULL), FRL_FRAME_INCOMPLETE);
}

static void test_preauth_limit_is_lower_than_postauth(void **state)
{
    (void)state;
    assert_true(FRL_FRAME_MAX_PREAUTH < FRL_FRAME_MAX_DEFAULT);
    uint8_t b[4];
    frl_frame_put_header(b, 100 * 1024);
    assert_int_equal(decode(b, 4, FRL_FRAME_MAX_PREAUTH, NULL), FRL_FRAME_TOO_LARGE);
    assert_int_equal(decode(b, 4, FRL_FRAME_MAX_DEFAULT, NULL), FRL_FRAME_INCOMPLETE);
    frl_frame_put_header(b, FRL_FRAME_MAX_PREAUTH);
    assert_int_equal(decode(b, 4, FRL_FRAME_MAX_PREAUTH, NULL), FRL_FRAME_INCOMPLETE);
}

/* A stream of three frames with payloads of 0, 5 and 300 bytes. */
static size_t make_stream(uint8_t *out)
{
    const size_t lens[3] = {0, 5, 300};
    size_t n = 0;
    for (int f = 0; f < 3; f++) {
        frl_frame_put_header(out + n, (uint32_t)lens[f]);
        n += 4;
        for (size_t i = 0; i < lens[f]; i++)
            out[n++] = (uint8_t)(f * 31 + i);
    }
    return n;
}

/* A minimal reassembler, the loop of NET.md §3.3: append, decode as many
 * frames as possible, keep the tail. Records the payload lengths and a
 * checksum of each payload. */
typedef struct {
    uint8_t buf[1024];
    size_t len;
    size_t got[8];
    uint32_t sum[8];
    int n;
} reasm_t;

static void reasm_feed(reasm_t *r, const uint8_t *p, size_t n)
{
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    size_t pos = 0;
    for (;;) {
        const uint8_t *payload = NULL;
        size_t pl = 0;
        ssize_t d = frl_frame_decode(r->buf + pos, r->len - pos, 1000, &payload, &pl);
        if (d == FRL_FRAME_INCOMPLETE)
            break;
        assert_true(d > 0);
        uint32_t s = 0;
        for (size_t i = 0; i < pl; i++)
            s = s * 131 + payload[i];
        r->got[r->n] = pl;
        r->sum[r->n] = s;
        r->n++;
        pos += (size_t)d;
    }
    memmove(r->buf, r->buf + pos, r->len - pos);
    r->len -= pos;
}

static void test_stream_fed_one_byte_at_a_time(void **state)
{
    (void)state;
    uint8_t s[512];
    size_t n = make_stream(s);
    reasm_t whole = {0}, bytes = {0};
    reasm_feed(&whole, s, n);
    assert_int_equal(whole.n, 3);
    for (size_t i = 0; i < n; i++)
        reasm_feed(&bytes, s + i, 1);
    assert_int_equal(bytes.n, 3);
    assert_memory_equal(whole.got, bytes.got, sizeof whole.got);
    assert_memory_equal(whole.sum, bytes.sum, sizeof whole.sum);
    assert_int_equal(bytes.len, 0);
}

static void test_stream_split_at_every_point(void **state)
{
    (void)state;
    uint8_t s[512];
    size_t n = make_stream(s);
    reasm_t whole = {0};
    reasm_feed(&whole, s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        reasm_t r = {0};
        reasm_feed(&r, s, cut);
        reasm_feed(&r, s + cut, n - cut);
        assert_int_equal(r.n, 3);
        assert_memory_equal(whole.got, r.got, sizeof r.got);
        assert_memory_equal(whole.sum, r.sum, sizeof r.sum);
        assert_int_equal(r.len, 0);
    }
}

static void test_two_frames_and_a_half_delivers_two_keeps_rest(void **state)
{
    (void)state;
    uint8_t s[512];
    size_t n = make_stream(s);
    size_t cut = n - 150; /* in the middle of the third frame */
    reasm_t r = {0};
    reasm_feed(&r, s, cut);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.len, 4 + 300 - 150);
    reasm_feed(&r, s + cut, n - cut);
    assert_int_equal(r.n, 3);
}

static void test_encode_then_decode_round_trips(void **state)
{
    (void)state;
    Frl__V1__Bye bye = FRL__V1__BYE__INIT;
    bye.reason = "round trip";
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    frl_msgbuf_t *b = NULL;
    assert_int_equal(frl_frame_encode(&env.base, FRL_FRAME_MAX_PREAUTH, &b), 0);
    const uint8_t *payload = NULL;
    size_t pl = 0;
    assert_int_equal(frl_frame_decode(b->data, b->len, FRL_FRAME_MAX_PREAUTH, &payload, &pl), (ssize_t)b->len);
    Frl__V1__Envelope *back = NULL;
    assert_int_equal(frl_msg_unpack(payload, pl, &back, NULL), 0);
    assert_string_equal(back->bye->reason, "round trip");
    uint8_t *again = malloc(pl);
    assert_int_equal(frl__v1__envelope__pack(back, again), pl);
    assert_memory_equal(again, payload, pl);
    free(again);
    frl_msg_free(back);
    assert_ptr_equal(frl_msgbuf_ref(b), b);
    frl_msgbuf_unref(b);
    frl_msgbuf_unref(b);
}

static void test_encode_refuses_payload_over_limit(void **state)
{
    (void)state;
    char text[600];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    Frl__V1__Error e = FRL__V1__ERROR__INIT;
    e.text = text;
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    env.body_case = FRL__V1__ENVELOPE__BODY_ERROR;
    env.error = &e;
    frl_msgbuf_t *b = (frl_msgbuf_t *)1;
    assert_int_equal(frl_frame_encode(&env.base, 100, &b), FRL_ETOOBIG);
    assert_null(b);
}

static void test_random_bytes_are_a_protocol_error_without_leak(void **state)
{
    (void)state;
    uint8_t seed[FRL_SEED_BYTES];
    frl_seed_from_u64(11, seed);
    frl_rng_t rng;
    frl_rng_init(&rng, seed, FRL_STREAM_TEST, 200, 0);
    uint8_t buf[4 + 256];
    for (int i = 0; i < 3000; i++) {
        uint32_t n = frl_rng_below(&rng, 256);
        frl_frame_put_header(buf, n);
        frl_rng_fill(&rng, buf + 4, n);
        const uint8_t *payload = NULL;
        size_t pl = 0;
        ssize_t d = frl_frame_decode(buf, 4 + n, FRL_FRAME_MAX_PREAUTH, &payload, &pl);
        assert_int_equal(d, (ssize_t)(4 + n));
        Frl__V1__Envelope *env = NULL;
        int r = frl_msg_unpack(payload, pl, &env, NULL);
        assert_true(r == FRL_EPROTO || r == FRL_EUNSUPPORTED);
        assert_null(env);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fewer_than_four_bytes_is_incomplete),
        cmocka_unit_test(test_body_short_by_one_is_incomplete),
        cmocka_unit_test(test_exact_fit_consumes_header_plus_body),
        cmocka_unit_test(test_zero_length_frame_is_a_valid_frame),
        cmocka_unit_test(test_length_equal_to_limit_is_accepted),
        cmocka_unit_test(test_limit_plus_one_is_rejected_with_header_only),
        cmocka_unit_test(test_max_uint32_length_is_rejected_without_overflow),
        cmocka_unit_test(test_preauth_limit_is_lower_than_postauth),
        cmocka_unit_test(test_stream_fed_one_byte_at_a_time),
        cmocka_unit_test(test_stream_split_at_every_point),
        cmocka_unit_test(test_two_frames_and_a_half_delivers_two_keeps_rest),
        cmocka_unit_test(test_encode_then_decode_round_trips),
        cmocka_unit_test(test_encode_refuses_payload_over_limit),
        cmocka_unit_test(test_random_bytes_are_a_protocol_error_without_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
