/* Semantic validation of frl.v1 messages; see frl_msg.h. */
#include "proto/frl_msg.h"
#include "common/frl_error.h"
#include "proto/frl_rankpack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(code, text)                                                                                                           \
    do {                                                                                                                           \
        if (why)                                                                                                                   \
            *why = (text);                                                                                                         \
        return (code);                                                                                                             \
    } while (0)

/* Identifiers end up in logs and file names: a conservative alphabet. */
static int valid_id(const char *s, size_t max)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                 c == '@' || c == '-';
        if (!ok || n >= max)
            return 0;
    }
    return n > 0;
}

/* Printable ASCII (space allowed), at most `max` bytes; NULL counts as "". */
static int valid_text(const char *s, size_t max)
{
    if (!s)
        return 1;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c > 0x7e || n >= max)
            return 0;
    }
    return 1;
}

/* At most `max` bytes, no control characters other than tab (UTF-8 ok). */
static int valid_utf8ish(const char *s, size_t max)
{
    if (!s)
        return 1;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if ((c < 0x20 && c != '\t') || c == 0x7f || n >= max)
            return 0;
    }
    return 1;
}

int frl_msg_validate_hello(const Frl__V1__Hello *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "hello: missing");
    if (!valid_id(m->client_id, FRL_MSG_MAX_ID))
        FAIL(FRL_EPROTO, "hello: bad client_id");
    if (m->token.len > FRL_MSG_MAX_TOKEN)
        FAIL(FRL_EPROTO, "hello: token too long");
    if (!valid_text(m->software_version, FRL_MSG_MAX_NAME))
        FAIL(FRL_EPROTO, "hello: bad software_version");
    if (!valid_text(m->model_name, FRL_MSG_MAX_NAME))
        FAIL(FRL_EPROTO, "hello: bad model_name");
    if (m->model_spec_hash.len != FRL_MSG_HASH_BYTES)
        FAIL(FRL_EPROTO, "hello: model_spec_hash must be 32 bytes");
    if (m->n_supported_encodings > FRL_MSG_MAX_ENCODINGS)
        FAIL(FRL_EPROTO, "hello: too many supported_encodings");
    if (m->role > 1)
        FAIL(FRL_EPROTO, "hello: unknown role");
    return 0;
}

int frl_msg_validate_welcome(const Frl__V1__Welcome *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "welcome: missing");
    if (!valid_text(m->federation_id, FRL_MSG_MAX_ID))
        FAIL(FRL_EPROTO, "welcome: bad federation_id");
    if (!valid_text(m->model_name, FRL_MSG_MAX_NAME))
        FAIL(FRL_EPROTO, "welcome: bad model_name");
    if (m->model_spec_hash.len != FRL_MSG_HASH_BYTES)
        FAIL(FRL_EPROTO, "welcome: model_spec_hash must be 32 bytes");
    if (m->seed.len != FRL_MSG_HASH_BYTES)
        FAIL(FRL_EPROTO, "welcome: seed must be 32 bytes");
    if (!isfinite(m->keep_fraction) || !(m->keep_fraction > 0.0) || m->keep_fraction > 1.0)
        FAIL(FRL_EPROTO, "welcome: keep_fraction must be in (0, 1]");
    if (m->mask_rule > 255)
        FAIL(FRL_EPROTO, "welcome: bad mask_rule");
    const Frl__V1__HyperParams *h = m->hyper;
    if (!h)
        FAIL(FRL_EPROTO, "welcome: missing hyper");
    if (h->local_epochs < 1 || h->local_epochs > 10000)
        FAIL(FRL_EPROTO, "welcome: local_epochs out of range");
    if (h->batch_size < 1 || h->batch_size > 65536)
        FAIL(FRL_EPROTO, "welcome: batch_size out of range");
    if (!isfinite(h->lr) || h->lr < 0 || !isfinite(h->lr_decay) || !isfinite(h->momentum) || h->momentum < 0 || h->momentum >= 1 ||
        !isfinite(h->weight_decay) || h->weight_decay < 0)
        FAIL(FRL_EPROTO, "welcome: bad hyper-parameter");
    if (m->total_rounds > 0 && m->current_round > m->total_rounds)
        FAIL(FRL_EPROTO, "welcome: current_round > total_rounds");
    if (m->ranking_encoding != FRL_RANK_ENC_PACKED)
        FAIL(FRL_EUNSUPPORTED, "welcome: unknown ranking_encoding");
    return 0;
}

/* Structure only: encoding known, 1..64 layers, each with 1..2^31 edges and
 * exactly frl_rank_packed_size(n_edges) bytes. Values are checked when
 * unpacked. */
int frl_msg_validate_ranking(const Frl__V1__RankingBlob *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "ranking: missing");
    if (m->encoding != FRL_RANK_ENC_PACKED)
        FAIL(FRL_EUNSUPPORTED, "ranking: unknown encoding");
    if (m->n_layers < 1 || m->n_layers > FRL_MSG_MAX_LAYERS)
        FAIL(FRL_EPROTO, "ranking: bad layer count");
    for (size_t l = 0; l < m->n_layers; l++) {
        const Frl__V1__LayerRanking *lr = m->layers[l];
        if (!lr || lr->n_edges < 1 || lr->n_edges > FRL_RANK_MAX_EDGES)
            FAIL(FRL_EPROTO, "ranking: bad n_edges");
        if (lr->packed.len != frl_rank_packed_size(lr->n_edges))
            FAIL(FRL_EPROTO, "ranking: packed length does not match n_edges");
    }
    return 0;
}

int frl_msg_validate_round_task(const Frl__V1__RoundTask *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "round_task: missing");
    if (!isfinite(m->lr) || m->lr < 0)
        FAIL(FRL_EPROTO, "round_task: bad lr");
    return frl_msg_validate_ranking(m->global_ranking, why);
}

int frl_msg_validate_rank_submission(const Frl__V1__RankSubmission *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "rank_submission: missing");
    if (!isfinite(m->train_loss))
        FAIL(FRL_EPROTO, "rank_submission: train_loss not finite");
    if (!isfinite(m->train_seconds) || m->train_seconds < 0)
        FAIL(FRL_EPROTO, "rank_submission: bad train_seconds");
    return frl_msg_validate_ranking(m->ranking, why);
}

int frl_msg_validate_ack(const Frl__V1__Ack *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "ack: missing");
    if (m->code > 0)
        FAIL(FRL_EPROTO, "ack: positive code");
    return 0;
}

int frl_msg_validate_error(const Frl__V1__Error *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "error: missing");
    if (m->code > 0)
        FAIL(FRL_EPROTO, "error: positive code");
    if (!valid_utf8ish(m->text, FRL_MSG_MAX_TEXT))
        FAIL(FRL_EPROTO, "error: bad text");
    return 0;
}

int frl_msg_validate_heartbeat(const Frl__V1__Heartbeat *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "heartbeat: missing");
    return 0;
}

int frl_msg_validate_bye(const Frl__V1__Bye *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "bye: missing");
    if (!valid_utf8ish(m->reason, FRL_MSG_MAX_REASON))
        FAIL(FRL_EPROTO, "bye: bad reason");
    return 0;
}

int frl_msg_validate_partial_tally(const Frl__V1__PartialTally *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "partial_tally: missing");
    if (m->n_votes < 1)
        FAIL(FRL_EPROTO, "partial_tally: no votes");
    if (m->n_layers < 1 || m->n_layers > FRL_MSG_MAX_LAYERS)
        FAIL(FRL_EPROTO, "partial_tally: bad layer count");
    for (size_t l = 0; l < m->n_layers; l++) {
        const Frl__V1__LayerTally *t = m->layers[l];
        if (!t || t->n_edges < 1 || t->n_edges > FRL_RANK_MAX_EDGES)
            FAIL(FRL_EPROTO, "partial_tally: bad n_edges");
        if (t->sums.len != (size_t)t->n_edges * 8u)
            FAIL(FRL_EPROTO, "partial_tally: sums length must be 8 * n_edges");
    }
    return 0;
}

int frl_msg_validate_envelope(const Frl__V1__Envelope *m, const char **why)
{
    if (!m)
        FAIL(FRL_EPROTO, "envelope: missing");
    if (m->version != FRL_PROTO_VERSION)
        FAIL(m->version == 0 ? FRL_EPROTO : FRL_EUNSUPPORTED, "envelope: unsupported version");
    switch (m->body_case) {
    case FRL__V1__ENVELOPE__BODY_HELLO:
        return frl_msg_validate_hello(m->hello, why);
    case FRL__V1__ENVELOPE__BODY_WELCOME:
        return frl_msg_validate_welcome(m->welcome, why);
    case FRL__V1__ENVELOPE__BODY_ROUND_TASK:
        return frl_msg_validate_round_task(m->round_task, why);
    case FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION:
        return frl_msg_validate_rank_submission(m->rank_submission, why);
    case FRL__V1__ENVELOPE__BODY_ACK:
        return frl_msg_validate_ack(m->ack, why);
    case FRL__V1__ENVELOPE__BODY_ERROR:
        return frl_msg_validate_error(m->error, why);
    case FRL__V1__ENVELOPE__BODY_HEARTBEAT:
        return frl_msg_validate_heartbeat(m->heartbeat, why);
    case FRL__V1__ENVELOPE__BODY_BYE:
        return frl_msg_validate_bye(m->bye, why);
    case FRL__V1__ENVELOPE__BODY_PARTIAL_TALLY:
        return frl_msg_validate_partial_tally(m->partial_tally, why);
    default:
        FAIL(FRL_EPROTO, "envelope: no body");
    }
}

int frl_msg_unpack(const uint8_t *payload, size_t len, Frl__V1__Envelope **out, const char **why)
{
    *out = NULL;
    Frl__V1__Envelope *env = frl__v1__envelope__unpack(NULL, len, payload);
    if (!env)
        FAIL(FRL_EPROTO, "envelope: not a valid protobuf message");
    int r = frl_msg_validate_envelope(env, why);
    if (r < 0) {
        frl__v1__envelope__free_unpacked(env, NULL);
        return r;
    }
    *out = env;
    return 0;
}

void frl_msg_free(Frl__V1__Envelope *env)
{
    if (env)
        frl__v1__envelope__free_unpacked(env, NULL);
}

const char *frl_msg_body_name(int body_case)
{
    switch (body_case) {
    case FRL__V1__ENVELOPE__BODY__NOT_SET:
        return "none";
    case FRL__V1__ENVELOPE__BODY_HELLO:
        return "hello";
    case FRL__V1__ENVELOPE__BODY_WELCOME:
        return "welcome";
    case FRL__V1__ENVELOPE__BODY_ROUND_TASK:
        return "round_task";
    case FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION:
        return "rank_submission";
    case FRL__V1__ENVELOPE__BODY_ACK:
        return "ack";
    case FRL__V1__ENVELOPE__BODY_ERROR:
        return "error";
    case FRL__V1__ENVELOPE__BODY_HEARTBEAT:
        return "heartbeat";
    case FRL__V1__ENVELOPE__BODY_BYE:
        return "bye";
    case FRL__V1__ENVELOPE__BODY_PARTIAL_TALLY:
        return "partial_tally";
    default:
        return "unknown";
    }
}

/* One block: [blob][layer structs][layer pointers][packed bytes...]. */
int frl_msg_ranking_new(const uint32_t *const *idx, const uint32_t *n_edges, size_t n_layers, Frl__V1__RankingBlob **out)
{
    if (!idx || !n_edges || !out || n_layers < 1 || n_layers > FRL_MSG_MAX_LAYERS)
        return FRL_EINVAL;
    *out = NULL;
    size_t head = sizeof(Frl__V1__RankingBlob) + n_layers * (sizeof(Frl__V1__LayerRanking) + sizeof(void *));
    head = (head + 15) & ~(size_t)15;
    size_t total = head;
    for (size_t l = 0; l < n_layers; l++) {
        if (!idx[l] || n_edges[l] < 1 || n_edges[l] > FRL_RANK_MAX_EDGES)
            return FRL_EINVAL;
        total += frl_rank_packed_size(n_edges[l]);
    }
    uint8_t *mem = malloc(total);
    if (!mem)
        return FRL_ENOMEM;
    Frl__V1__RankingBlob *blob = (Frl__V1__RankingBlob *)mem;
    Frl__V1__LayerRanking *layers = (Frl__V1__LayerRanking *)(blob + 1);
    Frl__V1__LayerRanking **ptrs = (Frl__V1__LayerRanking **)(layers + n_layers);
    frl__v1__ranking_blob__init(blob);
    blob->encoding = FRL_RANK_ENC_PACKED;
    blob->n_layers = n_layers;
    blob->layers = ptrs;
    uint8_t *p = mem + head;
    for (size_t l = 0; l < n_layers; l++) {
        frl__v1__layer_ranking__init(&layers[l]);
        size_t len = 0;
        int r = frl_rank_pack(idx[l], n_edges[l], p, (size_t)(mem + total - p), &len);
        if (r < 0) {
            free(mem);
            return r;
        }
        layers[l].n_edges = n_edges[l];
        layers[l].packed.data = p;
        layers[l].packed.len = len;
        ptrs[l] = &layers[l];
        p += len;
    }
    *out = blob;
    return 0;
}

void frl_msg_ranking_free(Frl__V1__RankingBlob *blob)
{
    free(blob);
}

int frl_msg_ranking_layer(const Frl__V1__RankingBlob *blob, size_t layer, uint32_t *out)
{
    if (!blob || layer >= blob->n_layers || !blob->layers[layer])
        return FRL_ERANGE;
    const Frl__V1__LayerRanking *l = blob->layers[layer];
    return frl_rank_unpack(l->packed.data, l->packed.len, l->n_edges, out);
}
