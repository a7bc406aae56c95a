#include "common/frl_error.h"

#include <stdarg.h>
#include <stdio.h>

const char *frl_strerror(int err)
{
    switch (err) {
    case FRL_OK:
        return "success";
#define FRL__XX(name, value, msg)                                                                                      \
    case FRL_##name:                                                                                                   \
        return msg;
        FRL_ERRNO_MAP(FRL__XX)
#undef FRL__XX
    default:
        return "unknown error";
    }
}

const char *frl_err_name(int err)
{
    switch (err) {
    case FRL_OK:
        return "FRL_OK";
#define FRL__XX(name, value, msg)                                                                                      \
    case FRL_##name:                                                                                                   \
        return "FRL_" #name;
        FRL_ERRNO_MAP(FRL__XX)
#undef FRL__XX
    default:
        return "FRL_EUNKNOWN";
    }
}

int frl_errorf(int rc, char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}
