/* The sans-I/O TLS engine (net/frl_tls.h): two engines wired through
 * memory, in the manner of OpenSSL's test/helpers/ssltestlib.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_log.h"
#include "net/frl_tls.h"
#include "net_test_certs.h"

typedef struct side_s {
    frl_tls_t *t;
    int hs_calls, hs_status;
    int close_calls, close_status;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    int write_from_cb; /* echo "pong" from on_plaintext */
} side_t;

static void on_hs(frl_tls_t *t, int status, void *ud)
{
    side_t *s = ud;
    s->hs_calls++;
    s->hs_status = status;
}

static void on_pt(frl_tls_t *t, const uint8_t *d, size_t n, void *ud)
{
    side_t *s = ud;
    if (s->rx_len + n > s->rx_cap) {
        s->rx_cap = (s->rx_len + n) * 2;
        s->rx = realloc(s->rx, s->rx_cap);
        assert_non_null(s->rx);
    }
    memcpy(s->rx + s->rx_len, d, n);
    s->rx_len += n;
    if (s->write_from_cb)
        assert_int_equal(frl_tls_write(t, (const uint8_t *)"pong", 4), 0);
}

static void on_cl(frl_tls_t *t, int status, void *ud)
{
    side_t *s = ud;
    s->close_calls++;
    s->close_status = status;
}

static const frl_tls_callbacks cbs = {.on_handshake = on_hs, .on_plaintext = on_pt, .on_close = on_cl};

static frl_tls_config_t *server_cfg(int mtls)
{
    frl_tls_config_opts o = {.role = FRL_TLS_SERVER,
                             .ca_file = test_cert_file("ca.crt"),
                             .cert_file = test_cert_file("server.crt"),
                             .key_file = test_cert_file("server.key"),
                             .require_client_cert = mtls};
    frl_tls_config_t *c = NULL;
    assert_int_equal(frl_tls_config_new(&o, &c), 0);
    return c;
}

static frl_tls_config_t *client_cfg(const char *ca, const char *cert, const char *key)
{
    frl_tls_config_opts o = {.role = FRL_TLS_CLIENT, .ca_file = ca, .cert_file = cert, .key_file = key};
    frl_tls_config_t *c = NULL;
    assert_int_equal(frl_tls_config_new(&o, &c), 0);
    return c;
}

/* Moves each side's output into the other, `step` bytes per feed, until
 * nothing moves (bounded like ssltestlib's MAXLOOPS). Returns the bytes
 * moved from a to b in the last round's first output (for alert checks). */
static size_t move(side_t *from, side_t *to, size_t step, uint8_t *first_byte)
{
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(frl_tls_take_output(from->t, &out, &len), 0);
    if (len && first_byte)
        *first_byte = out[0];
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        if (frl_tls_feed(to->t, out + off, n) != 0)
            break;
    }
    frl_tls_output_done(from->t, len);
    free(out);
    return len;
}

static void pump(side_t *c, side_t *s, size_t step)
{
    for (int i = 0; i < 1000; i++) {
        size_t a = move(c, s, step, NULL);
        size_t b = move(s, c, step, NULL);
        if (a == 0 && b == 0)
            return;
    }
    fail_msg("pump did not settle");
}

typedef struct pair_s {
    frl_tls_config_t *scfg, *ccfg;
    side_t s, c;
} pair_t;

static void pair_open(pair_t *p, int mtls, const char *client_cert, const char *client_key, const char *ca, const char *name)
{
    memset(p, 0, sizeof *p);
    p->scfg = server_cfg(mtls);
    p->ccfg = client_cfg(ca ? ca : test_cert_file("ca.crt"), client_cert, client_key);
    assert_int_equal(frl_tls_new(p->scfg, NULL, &cbs, &p->s, &p->s.t), 0);
    assert_int_equal(frl_tls_new(p->ccfg, name ? name : "localhost", &cbs, &p->c, &p->c.t), 0);
    assert_int_equal(frl_tls_start(p->c.t), 0);
}

static void pair_close(pair_t *p)
{
    frl_tls_free(p->s.t);
    frl_tls_free(p->c.t);
    frl_tls_config_free(p->scfg);
    frl_tls_config_free(p->ccfg);
    free(p->s.rx);
    free(p->c.rx);
}

static void test_handshake_completes_and_data_flows(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 1, test_cert_file("client-alice.crt"), test_cert_file("client-alice.key"), NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.c.hs_calls, 1);
    assert_int_equal(p.c.hs_status, 0);
    assert_int_equal(p.s.hs_calls, 1);
    assert_int_equal(p.s.hs_status, 0);
    assert_string_equal(frl_tls_peer_cn(p.s.t), "alice");
    assert_string_equal(frl_tls_peer_cn(p.c.t), "frl-server");
    assert_string_equal(frl_tls_version(p.c.t), "TLSv1.3");
    assert_int_equal(frl_tls_write(p.c.t, (const uint8_t *)"hello", 5), 0);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.s.rx_len, 5);
    assert_memory_equal(p.s.rx, "hello", 5);
    pair_close(&p);
}

static void test_handshake_one_byte_at_a_time(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 1, test_cert_file("client-alice.crt"), test_cert_file("client-alice.key"), NULL, NULL);
    pump(&p.c, &p.s, 1);
    assert_int_equal(p.c.hs_status, 0);
    assert_int_equal(p.s.hs_status, 0);
    assert_int_equal(p.s.hs_calls, 1);
    assert_int_equal(frl_tls_write(p.s.t, (const uint8_t *)"welcome", 7), 0);
    pump(&p.c, &p.s, 1);
    assert_int_equal(p.c.rx_len, 7);
    pair_close(&p);
}

static void test_many_records_in_one_feed_are_all_delivered(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    for (int i = 0; i < 50; i++)
        assert_int_equal(frl_tls_write(p.c.t, (const uint8_t *)"0123456789", 10), 0);
    move(&p.c, &p.s, 1 << 20, NULL); /* one feed holding 50 records */
    assert_int_equal(p.s.rx_len, 500);
    pair_close(&p);
}

static void test_write_from_plaintext_callback_is_allowed(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    p.s.write_from_cb = 1;
    assert_int_equal(frl_tls_write(p.c.t, (const uint8_t *)"ping", 4), 0);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.c.rx_len, 4);
    assert_memory_equal(p.c.rx, "pong", 4);
    pair_close(&p);
}

static void test_wrong_ca_sends_alert_and_fails_both_sides(void **state)
{
    (void)state;
    pair_t p;
    /* The client trusts an unrelated CA. */
    char ca[600];
    snprintf(ca, sizeof ca, "%s", test_cert_file("other/ca.crt"));
    pair_open(&p, 0, NULL, NULL, ca, NULL);
    move(&p.c, &p.s, 1 << 20, NULL); /* ClientHello */
    move(&p.s, &p.c, 1 << 20, NULL); /* ServerHello .. Finished: client rejects */
    assert_int_equal(p.c.hs_calls, 1);
    assert_int_equal(p.c.hs_status, FRL_EAUTH);
    assert_true(frl_tls_has_failed(p.c.t));
    assert_non_null(strstr(frl_tls_error(p.c.t), "verify"));
    uint8_t first = 0;
    size_t n = move(&p.c, &p.s, 1 << 20, &first); /* the alert */
    assert_true(n > 0);
    assert_int_equal(first, 0x15); /* TLS record type: alert */
    assert_int_equal(p.s.hs_calls, 1);
    assert_true(p.s.hs_status < 0);
    assert_int_equal(p.c.close_calls, 0);
    pair_close(&p);
}

static void test_wrong_server_name_is_refused(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, "not-the-server.example");
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.c.hs_status, FRL_EAUTH);
    assert_true(p.s.hs_status < 0);
    pair_close(&p);
}

static void test_ip_literal_server_name_matches_ip_san(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, "127.0.0.1");
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.c.hs_status, 0);
    pair_close(&p);
    pair_open(&p, 0, NULL, NULL, NULL, "10.1.2.3");
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.c.hs_status, FRL_EAUTH);
    pair_close(&p);
}

static void test_mtls_without_client_cert_is_refused(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 1, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.s.hs_calls, 1);
    assert_true(p.s.hs_status < 0);
    /* TLS 1.3: the client finished its side first, then got the alert. */
    assert_true((p.c.hs_status < 0) || (p.c.close_calls == 1 && p.c.close_status == FRL_ETLS));
    pair_close(&p);
}

static void test_client_cert_from_other_ca_is_refused(void **state)
{
    (void)state;
    pair_t p;
    char cert[600], key[600];
    snprintf(cert, sizeof cert, "%s", test_cert_file("other/client-alice.crt"));
    snprintf(key, sizeof key, "%s", test_cert_file("other/client-alice.key"));
    pair_open(&p, 1, cert, key, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.s.hs_status, FRL_EAUTH);
    pair_close(&p);
}

static void test_close_notify_round_trip(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(frl_tls_write(p.c.t, (const uint8_t *)"bye", 3), 0);
    assert_int_equal(frl_tls_shutdown(p.c.t), 0);
    assert_int_equal(frl_tls_write(p.c.t, (const uint8_t *)"x", 1), FRL_ESTATE);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.s.rx_len, 3);
    assert_int_equal(p.s.close_calls, 1);
    assert_int_equal(p.s.close_status, 0);
    /* The server answers with its own close_notify; the client, which
     * already shut down, reports it as an orderly close too. */
    assert_int_equal(frl_tls_shutdown(p.s.t), 0);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(p.c.close_calls, 1);
    assert_int_equal(p.c.close_status, 0);
    /* EOF after close_notify is not a truncation. */
    assert_int_equal(frl_tls_feed_eof(p.s.t), 0);
    assert_int_equal(p.s.close_calls, 1);
    pair_close(&p);
}

static void test_eof_without_close_notify_is_truncation(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(frl_tls_feed_eof(p.s.t), 0);
    assert_int_equal(p.s.close_calls, 1);
    assert_int_equal(p.s.close_status, FRL_ETRUNC);
    assert_true(frl_tls_has_failed(p.s.t));
    pair_close(&p);
}

static void test_eof_during_handshake_fails_the_handshake(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    move(&p.c, &p.s, 1 << 20, NULL);
    assert_int_equal(frl_tls_feed_eof(p.c.t), 0);
    assert_int_equal(p.c.hs_calls, 1);
    assert_int_equal(p.c.hs_status, FRL_ECLOSED);
    pair_close(&p);
}

static void test_high_water_returns_eagain_until_low_water(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    frl_tls_set_water_marks(p.c.t, 64 * 1024, 16 * 1024);
    static uint8_t chunk[8192];
    int accepted = 0;
    while (frl_tls_write(p.c.t, chunk, sizeof chunk) == 0)
        accepted++;
    assert_in_range(accepted, 7, 9);
    assert_true(frl_tls_pending_output(p.c.t) >= 64 * 1024);
    assert_int_equal(frl_tls_write(p.c.t, chunk, 1), FRL_EAGAIN);
    /* Taking the output does not help until it is acknowledged... */
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(frl_tls_take_output(p.c.t, &out, &len), 0);
    assert_int_equal(frl_tls_write(p.c.t, chunk, 1), FRL_EAGAIN);
    /* ... and acknowledging down to just above the low mark still waits. */
    frl_tls_output_done(p.c.t, len - 20 * 1024);
    assert_int_equal(frl_tls_write(p.c.t, chunk, 1), FRL_EAGAIN);
    frl_tls_output_done(p.c.t, 20 * 1024);
    assert_int_equal(frl_tls_write(p.c.t, chunk, 1), 0);
    /* The bytes that were accepted are intact on the other side. */
    assert_int_equal(frl_tls_feed(p.s.t, out, len), 0);
    assert_int_equal(p.s.rx_len, (size_t)accepted * sizeof chunk);
    free(out);
    pair_close(&p);
}

static void test_feed_after_fatal_error_is_refused(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    pump(&p.c, &p.s, 1 << 20);
    assert_int_equal(frl_tls_write(p.c.t, (const uint8_t *)"data", 4), 0);
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(frl_tls_take_output(p.c.t, &out, &len), 0);
    out[len - 1] ^= 0x01; /* break the AEAD tag */
    assert_int_equal(frl_tls_feed(p.s.t, out, len), 0);
    assert_int_equal(p.s.close_calls, 1);
    assert_int_equal(p.s.close_status, FRL_ETLS);
    assert_int_equal(p.s.rx_len, 0);
    assert_int_equal(frl_tls_feed(p.s.t, out, len), FRL_ESTATE);
    assert_int_equal(frl_tls_write(p.s.t, (const uint8_t *)"x", 1), FRL_ESTATE);
    assert_int_equal(p.s.close_calls, 1);
    /* No close_notify after a fatal error: shutdown adds nothing but the
     * alert that was already queued. */
    uint8_t *alert = NULL;
    size_t alen = 0;
    assert_int_equal(frl_tls_take_output(p.s.t, &alert, &alen), 0);
    assert_int_equal(frl_tls_shutdown(p.s.t), 0);
    uint8_t *more = NULL;
    size_t mlen = 0;
    assert_int_equal(frl_tls_take_output(p.s.t, &more, &mlen), 0);
    assert_int_equal(mlen, 0);
    free(alert);
    free(out);
    pair_close(&p);
}

static void test_plaintext_garbage_fails_server_handshake(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 0, NULL, NULL, NULL, NULL);
    const char *req = "\x00\x00\x00\x05hello";
    assert_int_equal(frl_tls_feed(p.s.t, (const uint8_t *)req, 9), 0);
    assert_int_equal(p.s.hs_calls, 1);
    assert_int_equal(p.s.hs_status, FRL_ETLS);
    pair_close(&p);
}

static void test_config_rejects_missing_files(void **state)
{
    (void)state;
    frl_tls_config_opts o = {.role = FRL_TLS_SERVER, .cert_file = "/nonexistent.crt", .key_file = "/nonexistent.key"};
    frl_tls_config_t *c = NULL;
    assert_int_equal(frl_tls_config_new(&o, &c), FRL_ENOENT);
    assert_null(c);
    frl_tls_config_opts o2 = {.role = FRL_TLS_CLIENT};
    assert_int_equal(frl_tls_config_new(&o2, &c), FRL_EINVAL);
}

int main(void)
{
    frl_log_set_level(FRL_LOG_OFF);
    test_certs_make("tls");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_completes_and_data_flows),
        cmocka_unit_test(test_handshake_one_byte_at_a_time),
        cmocka_unit_test(test_many_records_in_one_feed_are_all_delivered),
        cmocka_unit_test(test_write_from_plaintext_callback_is_allowed),
        cmocka_unit_test(test_wrong_ca_sends_alert_and_fails_both_sides),
        cmocka_unit_test(test_wrong_server_name_is_refused),
        cmocka_unit_test(test_ip_literal_server_name_matches_ip_san),
        cmocka_unit_test(test_mtls_without_client_cert_is_refused),
        cmocka_unit_test(test_client_cert_from_other_ca_is_refused),
        cmocka_unit_test(test_close_notify_round_trip),
        cmocka_unit_test(test_eof_without_close_notify_is_truncation),
        cmocka_unit_test(test_eof_during_handshake_fails_the_handshake),
        cmocka_unit_test(test_high_water_returns_eagain_until_low_water),
        cmocka_unit_test(test_feed_after_fatal_error_is_refused),
        cmocka_unit_test(test_plaintext_garbage_fails_server_handshake),
        cmocka_unit_test(test_config_rejects_missing_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
