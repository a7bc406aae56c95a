/* Wire messages of frl (proto/frl.proto, package frl.v1) and their
 * semantic validation.
 *
 * protobuf-c only checks the wire format. Every message that comes off the
 * network goes through frl_msg_unpack() (unpack + frl_msg_validate_envelope)
 * before anyone reads a field; after that, readers may rely on the bounds
 * written next to each validator below (lengths, presence of required
 * sub-messages, finite doubles, ranking sizes). What validation does NOT do
 * is look inside packed rankings: the values are range-checked when
 * frl_rank_unpack() expands them, and permutations are checked by the
 * aggregation library.
 *
 * Building a message to send (stack structs, nothing allocated):
 *
 *     Frl__V1__Heartbeat hb = FRL__V1__HEARTBEAT__INIT;
 *     Frl__V1__Envelope env = FRL__V1__ENVELOPE__INIT;
 *     env.version = FRL_PROTO_VERSION;
 *     env.body_case = FRL__V1__ENVELOPE__BODY_HEARTBEAT;
 *     env.heartbeat = &hb;
 *
 * Every validator returns 0, FRL_EPROTO (malformed) or FRL_EUNSUPPORTED
 * (unknown protocol version or ranking encoding), and, when `why` is not
 * NULL, points *why at a static string naming the problem (for logs). */
#ifndef FRL_MSG_H
#define FRL_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "frl.pb-c.h"

#define FRL_PROTO_VERSION 1u

/* Bounds enforced by the validators. */
#define FRL_MSG_MAX_ID 128       /* client_id, federation_id */
#define FRL_MSG_MAX_TOKEN 256    /* Hello.token bytes */
#define FRL_MSG_MAX_NAME 64      /* software_version, model_name */
#define FRL_MSG_MAX_TEXT 1024    /* Error.text */
#define FRL_MSG_MAX_REASON 256   /* Bye.reason */
#define FRL_MSG_MAX_ENCODINGS 16 /* Hello.supported_encodings */
#define FRL_MSG_MAX_LAYERS 64    /* layers in a RankingBlob / PartialTally */
#define FRL_MSG_HASH_BYTES 32    /* model_spec_hash, seed */

int frl_msg_validate_envelope(const Frl__V1__Envelope *m, const char **why); /* version, oneof set, then the body */
int frl_msg_validate_hello(const Frl__V1__Hello *m, const char **why);
int frl_msg_validate_welcome(const Frl__V1__Welcome *m, const char **why);
int frl_msg_validate_round_task(const Frl__V1__RoundTask *m, const char **why);
int frl_msg_validate_rank_submission(const Frl__V1__RankSubmission *m, const char **why);
int frl_msg_validate_ranking(const Frl__V1__RankingBlob *m, const char **why);
int frl_msg_validate_ack(const Frl__V1__Ack *m, const char **why);
int frl_msg_validate_error(const Frl__V1__Error *m, const char **why);
int frl_msg_validate_heartbeat(const Frl__V1__Heartbeat *m, const char **why);
int frl_msg_validate_bye(const Frl__V1__Bye *m, const char **why);
int frl_msg_validate_partial_tally(const Frl__V1__PartialTally *m, const char **why);

/* Unpacks one Envelope from payload[0..len) and validates it. On success
 * *out is a new message the caller frees with frl_msg_free(). On failure
 * nothing stays allocated, *out is NULL, and the result is FRL_EPROTO (not
 * a valid protobuf message, out of memory -- protobuf-c reports both as
 * NULL -- or invalid content) or FRL_EUNSUPPORTED. */
int frl_msg_unpack(const uint8_t *payload, size_t len, Frl__V1__Envelope **out, const char **why);
void frl_msg_free(Frl__V1__Envelope *env);

/* "hello", "welcome", ... for a body case; "none" / "unknown" otherwise. */
const char *frl_msg_body_name(int body_case);

/* Builds a RankingBlob (encoding 0) from n_layers permutations:
 * idx[l][0..n_edges[l]). Everything (blob, layers, packed bytes) lives in
 * one malloc block: free it with frl_msg_ranking_free(). Returns 0,
 * FRL_EINVAL, FRL_ENOMEM or FRL_EVOTE_RANGE (an index >= n_edges[l]). */
int frl_msg_ranking_new(const uint32_t *const *idx, const uint32_t *n_edges, size_t n_layers, Frl__V1__RankingBlob **out);
void frl_msg_ranking_free(Frl__V1__RankingBlob *blob);

/* Expands layer `layer` of a validated blob into out[0..n_edges). Returns 0,
 * FRL_ERANGE (no such layer) or an frl_rank_unpack() error. */
int frl_msg_ranking_layer(const Frl__V1__RankingBlob *blob, size_t layer, uint32_t *out);

#endif
