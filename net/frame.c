/* Frame decoder and encoder; see frl_frame.h. */
#include "net/frl_frame.h"

#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>

/* Modelled on h2o's HTTP/2 frame decoder: the size check comes before the
 * completeness check, so an oversized frame is refused on its 4th byte. The
 * body check compares `len - 4 < length` (len >= 4 here) instead of
 * `len < 4 + length`, which could wrap. */
ssize_t frl_frame_decode(const uint8_t *src, size_t len, size_t max_payload, const uint8_t **payload, size_t *payload_len)
{
    if (len < FRL_FRAME_HEADER)
        return FRL_FRAME_INCOMPLETE;
    uint32_t n = (uint32_t)src[0] << 24 | (uint32_t)src[1] << 16 | (uint32_t)src[2] << 8 | (uint32_t)src[3];
    if ((uint64_t)n > (uint64_t)max_payload)
        return FRL_FRAME_TOO_LARGE;
    if (payload_len)
        *payload_len = n;
    if (len - FRL_FRAME_HEADER < (size_t)n)
        return FRL_FRAME_INCOMPLETE;
    if (payload)
        *payload = src + FRL_FRAME_HEADER;
    return (ssize_t)(FRL_FRAME_HEADER + (size_t)n);
}

void frl_frame_put_header(uint8_t out[FRL_FRAME_HEADER], uint32_t len)
{
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
}

int frl_frame_encode(const struct ProtobufCMessage *env, size_t max_payload, frl_msgbuf_t **out)
{
    *out = NULL;
    size_t size = protobuf_c_message_get_packed_size(env);
    if (size > max_payload || size > UINT32_MAX)
        return FRL_ETOOBIG;
    frl_msgbuf_t *b = malloc(sizeof *b + FRL_FRAME_HEADER + size);
    if (!b)
        return FRL_ENOMEM;
    b->refs = 1;
    b->len = FRL_FRAME_HEADER + size;
    b->data = (uint8_t *)(b + 1);
    frl_frame_put_header(b->data, (uint32_t)size);
    if (protobuf_c_message_pack(env, b->data + FRL_FRAME_HEADER) != size) {
        free(b);
        return FRL_EPROTO;
    }
    *out = b;
    return 0;
}

frl_msgbuf_t *frl_msgbuf_ref(frl_msgbuf_t *b)
{
    b->refs++;
    return b;
}

void frl_msgbuf_unref(frl_msgbuf_t *b)
{
    if (b && --b->refs == 0)
        free(b);
}
