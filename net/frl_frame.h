/* Length-prefixed frames: the byte layout of the frl stream.
 *
 *     +----------------------+---------------------------------+
 *     | length: uint32, BE   | payload: `length` bytes         |
 *     +----------------------+---------------------------------+
 *
 * The payload is one serialized frl.v1.Envelope (proto/frl.proto). Limits:
 * FRL_FRAME_MAX_PREAUTH (64 KiB) until the peer is authenticated, then a
 * configured maximum (FRL_FRAME_MAX_DEFAULT = 32 MiB, sized for conv8
 * rankings). The decoder checks the limit as soon as the 4 header bytes are
 * in, before the body is buffered. A zero-length payload is a valid frame
 * (it then fails Envelope validation: protocol error).
 *
 * The decoder is pure: no I/O, no allocation, the payload points into the
 * caller's buffer. */
#ifndef FRL_FRAME_H
#define FRL_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/frl_error.h"

#define FRL_FRAME_HEADER 4u
#define FRL_FRAME_MAX_PREAUTH (64u * 1024u)
#define FRL_FRAME_MAX_DEFAULT (32u * 1024u * 1024u)

/* Results of frl_frame_decode besides "bytes consumed". */
#define FRL_FRAME_INCOMPLETE ((ssize_t)FRL_EAGAIN)
#define FRL_FRAME_TOO_LARGE ((ssize_t)FRL_ETOOBIG)

/* Decodes the frame at the start of src[0..len).
 *
 * Returns the bytes consumed (4 + payload length, > 0) and sets *payload /
 * *payload_len (a view into src); FRL_FRAME_INCOMPLETE if more bytes are
 * needed (fewer than 4, or header present and body short); or
 * FRL_FRAME_TOO_LARGE as soon as the header announces more than
 * max_payload bytes, whatever follows. Never reads past src + len. The
 * arithmetic is done without `4 + length` so a length of 0xFFFFFFFF cannot
 * overflow a 32-bit size_t. If the header is complete but the body is not,
 * *payload_len is still set to the announced length (callers use it to
 * reserve buffer space). */
ssize_t frl_frame_decode(const uint8_t *src, size_t len, size_t max_payload, const uint8_t **payload, size_t *payload_len);

/* Writes the 4-byte big-endian header for a payload of `len` bytes. */
void frl_frame_put_header(uint8_t out[FRL_FRAME_HEADER], uint32_t len);

/* A reference-counted, immutable encoded frame ([header | payload]). One
 * buffer can be queued on many connections at once (a RoundTask broadcast
 * to every client is encoded once). Single-threaded: refs are taken and
 * dropped on one loop thread. */
typedef struct frl_msgbuf_s {
    uint32_t refs;
    size_t len;    /* header + payload */
    uint8_t *data; /* points just after the struct */
} frl_msgbuf_t;

/* Encodes `env` (any struct compatible with protobuf-c packing: an
 * Frl__V1__Envelope, passed as a ProtobufCMessage*) into a new msgbuf with
 * one reference, owned by the caller. Returns 0, FRL_ETOOBIG if the packed
 * size exceeds max_payload (nothing allocated) or FRL_ENOMEM. The envelope
 * is not validated here; frl_conn_send() does that. */
struct ProtobufCMessage;
int frl_frame_encode(const struct ProtobufCMessage *env, size_t max_payload, frl_msgbuf_t **out);

/* Takes / drops a reference. The last unref frees the buffer. */
frl_msgbuf_t *frl_msgbuf_ref(frl_msgbuf_t *b);
void frl_msgbuf_unref(frl_msgbuf_t *b);

#endif
