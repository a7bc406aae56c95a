/* libFuzzer target: a byte stream as it would arrive from a peer, through
 * the frame decoder (pre-auth limit, then the post-auth one after the
 * first frame, as the connection layer does), protobuf unpack and
 * validation, and the ranking unpacker for any ranking that validates.
 *
 *   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DFRL_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_frame
 *   build-fuzz/bin/fuzz_frame -max_total_time=60 -max_len=70000
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "net/frl_frame.h"
#include "proto/frl_msg.h"
#include "proto/frl_rankpack.h"

static void check_ranking(const Frl__V1__RankingBlob *blob)
{
    for (size_t l = 0; l < blob->n_layers; l++) {
        uint32_t n = blob->layers[l]->n_edges;
        if (n > (1u << 20))
            continue; /* keep the fuzzer fast */
        uint32_t *out = malloc((size_t)n * sizeof *out);
        if (!out)
            return;
        (void)frl_msg_ranking_layer(blob, l, out);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    int authed = 0;
    while (pos < size) {
        const uint8_t *payload = NULL;
        size_t plen = 0;
        ssize_t n =
            frl_frame_decode(data + pos, size - pos, authed ? FRL_FRAME_MAX_DEFAULT : FRL_FRAME_MAX_PREAUTH, &payload, &plen);
        if (n <= 0)
            break; /* incomplete or too large: the connection would wait or close */
        pos += (size_t)n;
        Frl__V1__Envelope *env = NULL;
        if (frl_msg_unpack(payload, plen, &env, NULL) != 0)
            break; /* protocol error: the connection would close */
        authed = 1;
        if (env->body_case == FRL__V1__ENVELOPE__BODY_RANK_SUBMISSION)
            check_ranking(env->rank_submission->ranking);
        else if (env->body_case == FRL__V1__ENVELOPE__BODY_ROUND_TASK)
            check_ranking(env->round_task->global_ranking);
        frl_msg_free(env);
    }
    return 0;
}
