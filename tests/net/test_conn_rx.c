/* The connection layer's frame reassembly (conn_rx in net/conn.c), fed
 * through every split point. conn.c is #included (h2o t/00unit style) to
 * reach the static function; no socket or loop is involved. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/conn.c"

typedef struct rec_s {
    int n;
    int body[16];
    size_t size[16];
} rec_t;

static void rec_on_message(frl_conn_t *c, const Frl__V1__Envelope *m, void *ud)
{
    rec_t *r = ud;
    assert_true(r->n < 16);
    r->body[r->n] = m->body_case;
    r->size[r->n] = frl__v1__envelope__get_packed_size(m);
    r->n++;
}

static void rec_on_close(frl_conn_t *c, int status, const char *reason, void *ud)
{
}

static uint8_t *stream;
static size_t stream_len;

/* Three frames: an Ack, a RankSubmission of 5000 edges (bigger than one TLS
 * record), a Bye. */
static int make_stream(void **state)
{
    Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
    env.version = FRL_PROTO_VERSION;
    Frl__V1__Ack ack = FRL__V1__ACK__INIT;
    ack.round = 4;
    Frl__V1__Bye bye = FRL__V1__BYE__INIT;
    bye.reason = "done";
    uint32_t n = 5000;
    uint32_t *idx = malloc(n * sizeof *idx);
    for (uint32_t i = 0; i < n; i++)
        idx[i] = n - 1 - i;
    const uint32_t *layers[1] = {idx};
    Frl__V1__RankingBlob *blob = NULL;
    assert_int_equal(frl_msg_ranking_new(layers, &n, 1, &blob), 0);
    Frl__V1__RankSubmission sub = FRL__V1__RANK_SUBMISSION__INIT;
    sub.round = 4;
    sub.ranking = blob;
    frl_msgbuf_t *b[3];
    env.body_case = FRL__V1__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    assert_int_equal(frl_frame_encode(&env.base, 1 << 20, &b[0]), 0);
    env.body_case = FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION;
    env.rank_submission = &sub;
    assert_int_equal(frl_frame_encode(&env.base, 1 << 20, &b[1]), 0);
    env.body_case = FRL__V1__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    assert_int_equal(frl_frame_encode(&env.base, 1 << 20, &b[2]), 0);
    stream_len = b[0]->len + b[1]->len + b[2]->len;
    stream = malloc(stream_len);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(stream + off, b[i]->data, b[i]->len);
        off += b[i]->len;
        frl_msgbuf_unref(b[i]);
    }
    frl_msg_ranking_free(blob);
    free(idx);
    return 0;
}

static int free_stream(void **state)
{
    free(stream);
    return 0;
}

/* A bare authenticated server-side conn: enough state for conn_rx. */
static void fake_conn(frl_net_t *net, frl_conn_t *c, rec_t *r)
{
    memset(net, 0, sizeof *net);
    memset(c, 0, sizeof *c);
    memset(r, 0, sizeof *r);
    frl_net_config_defaults(&net->cfg, FRL_NET_SERVER);
    net->cb.on_message = rec_on_message;
    net->cb.on_close = rec_on_close;
    net->ud = r;
    c->net = net;
    c->authed = 1;
    c->state = CS_OPEN;
}

static void check(const rec_t *r, const frl_conn_t *c)
{
    assert_int_equal(r->n, 3);
    assert_int_equal(r->body[0], FRL__V1__ENVELOPE__BODY_ACK);
    assert_int_equal(r->body[1], FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION);
    assert_int_equal(r->body[2], FRL__V1__ENVELOPE__BODY_BYE);
    assert_false(c->closing);
    assert_null(c->rx); /* nothing buffered once the stream is complete */
    assert_int_equal(c->rx_len, 0);
}

static void test_whole_stream_in_one_read(void **state)
{
    frl_net_t net;
    frl_conn_t c;
    rec_t r;
    fake_conn(&net, &c, &r);
    conn_rx(&c, stream, stream_len);
    check(&r, &c);
}

static void test_stream_one_byte_at_a_time(void **state)
{
    frl_net_t net;
    frl_conn_t c;
    rec_t r;
    fake_conn(&net, &c, &r);
    for (size_t i = 0; i < stream_len; i++)
        conn_rx(&c, stream + i, 1);
    check(&r, &c);
}

static void test_stream_split_at_every_point(void **state)
{
    for (size_t cut = 1; cut < stream_len; cut++) {
        frl_net_t net;
        frl_conn_t c;
        rec_t r;
        fake_conn(&net, &c, &r);
        conn_rx(&c, stream, cut);
        conn_rx(&c, stream + cut, stream_len - cut);
        check(&r, &c);
    }
}

static void test_stream_in_uneven_chunks(void **state)
{
    const size_t chunks[] = {3, 5, 7, 16384, 2, 1, 4096, 9};
    frl_net_t net;
    frl_conn_t c;
    rec_t r;
    fake_conn(&net, &c, &r);
    size_t off = 0;
    for (int i = 0; off < stream_len; i = (i + 1) % 8) {
        size_t n = chunks[i] < stream_len - off ? chunks[i] : stream_len - off;
        conn_rx(&c, stream + off, n);
        off += n;
    }
    check(&r, &c);
}

int main(void)
{
    frl_log_set_level(FRL_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_stream_in_one_read),
        cmocka_unit_test(test_stream_one_byte_at_a_time),
        cmocka_unit_test(test_stream_split_at_every_point),
        cmocka_unit_test(test_stream_in_uneven_chunks),
    };
    return cmocka_run_group_tests(tests, make_stream, free_stream);
}
