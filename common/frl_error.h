/* One error list for all of frl: 0 is success, failures are negative FRL_E*.
 * The X-macro keeps the enum, the names and the messages in one place. */
#ifndef FRL_ERROR_H
#define FRL_ERROR_H

#include <stddef.h>

#define FRL_ERRNO_MAP(XX)                                                                                          \
    XX(EINVAL, -1, "invalid argument")                                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                                \
    XX(EIO, -3, "input/output error")                                                                              \
    XX(ENOENT, -4, "no such file or directory")                                                                    \
    XX(EFORMAT, -5, "malformed data")                                                                              \
    XX(ETRUNC, -6, "truncated data")                                                                               \
    XX(ECHECKSUM, -7, "checksum mismatch")                                                                         \
    XX(ERANGE, -8, "value out of range")                                                                           \
    XX(EAGAIN, -9, "resource temporarily unavailable")                                                             \
    XX(EPROTO, -10, "protocol error")                                                                              \
    XX(ETLS, -11, "TLS error")                                                                                     \
    XX(EAUTH, -12, "authentication failed")                                                                        \
    XX(ETOOBIG, -13, "message or buffer too large")                                                                \
    XX(ECLOSED, -14, "connection closed")                                                                          \
    XX(ETIMEDOUT, -15, "timed out")                                                                                \
    XX(EMISMATCH, -16, "model or configuration mismatch")                                                          \
    XX(EUNSUPPORTED, -17, "not supported")                                                                         \
    XX(ESTATE, -18, "operation not valid in the current state")                                                    \
    XX(EVOTE_LAYERS, -30, "ranking has the wrong number of layers")                                                \
    XX(EVOTE_LENGTH, -31, "ranking layer has the wrong number of edges")                                           \
    XX(EVOTE_RANGE, -32, "ranking holds an edge index out of range")                                               \
    XX(EVOTE_DUPLICATE, -33, "ranking holds an edge index twice")                                                  \
    XX(EVOTE_ROUND, -34, "ranking is for another round")                                                           \
    XX(EVOTE_REPEAT, -35, "client already voted this round")                                                       \
    XX(EVOTE_UNKNOWN_CLIENT, -36, "client is not part of this round")                                              \
    XX(EVOTE_DROPPED, -37, "client dropped by the robustness policy")                                              \
    XX(EQUORUM, -40, "quorum not reached")

enum {
    FRL_OK = 0,
#define FRL__XX(name, value, msg) FRL_##name = value,
    FRL_ERRNO_MAP(FRL__XX)
#undef FRL__XX
};

/* Human-readable message for an FRL_E* code ("success" for 0). Never NULL. */
const char *frl_strerror(int err);
/* Symbolic name ("FRL_EINVAL"); "FRL_OK" for 0, "FRL_EUNKNOWN" otherwise. Never NULL. */
const char *frl_err_name(int err);

/* Writes the printf-style message into err[cap] (nothing when err is NULL or
 * cap is 0; truncated to fit) and returns rc, so that parsers can say
 * `return frl_errorf(FRL_EINVAL, err, cap, "--%s: ...", key);`. */
int frl_errorf(int rc, char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
