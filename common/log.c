#include "common/frl_log.h"
#include "common/frl_error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* Process-wide settings, written by main() before threads start. */
static _Atomic int g_level = FRL_LOG_INFO;
static _Atomic int g_format = FRL_LOG_KV;
static FILE *_Atomic g_stream = NULL;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void frl_log_set_level(frl_log_level level)
{
    g_level = level;
}

void frl_log_set_format(frl_log_format format)
{
    g_format = format;
}

void frl_log_set_stream(FILE *f)
{
    g_stream = f;
}

frl_log_level frl_log_get_level(void)
{
    return (frl_log_level)g_level;
}

int frl_log_parse_level(const char *s, frl_log_level *out)
{
    for (int i = 0; i <= FRL_LOG_OFF; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (frl_log_level)i;
            return 0;
        }
    }
    return FRL_EINVAL;
}

void frl_json_append(char *dst, size_t cap, size_t *n, const char *src, size_t len)
{
    for (size_t i = 0; i < len && *n + 7 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '"' || c == '\\') {
            dst[(*n)++] = '\\';
            dst[(*n)++] = (char)c;
        } else if (c < 0x20) {
            *n += (size_t)snprintf(dst + *n, cap - *n, "\\u%04x", c);
        } else {
            dst[(*n)++] = (char)c;
        }
    }
}

/* Converts "k=v k2=\"v 2\"" into ,"k":"v","k2":"v 2". Pairs without '=' are
 * logged under the key "msg". */
static void kv_to_json(const char *kv, char *dst, size_t cap, size_t *n)
{
    const char *p = kv;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        const char *kend = p;
        const char *val = "";
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                val = ++p;
                while (*p && *p != '"')
                    p++;
                vlen = (size_t)(p - val);
                if (*p)
                    p++;
            } else {
                val = p;
                while (*p && *p != ' ')
                    p++;
                vlen = (size_t)(p - val);
            }
        } else {
            val = key;
            vlen = (size_t)(kend - key);
            key = "msg";
            kend = key + 3;
        }
        if (*n + 8 >= cap)
            return;
        dst[(*n)++] = ',';
        dst[(*n)++] = '"';
        frl_json_append(dst, cap, n, key, (size_t)(kend - key));
        dst[(*n)++] = '"';
        dst[(*n)++] = ':';
        dst[(*n)++] = '"';
        frl_json_append(dst, cap, n, val, vlen);
        if (*n + 2 < cap)
            dst[(*n)++] = '"';
    }
}

void frl_log(frl_log_level level, const char *event, const char *fmt, ...)
{
    if ((int)level < g_level || level >= FRL_LOG_OFF)
        return;
    char fields[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof fields, fmt ? fmt : "", ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[64];
    snprintf(tbuf, sizeof tbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);

    char line[4608];
    size_t n = 0;
    if (g_format == FRL_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", tbuf, level_names[level]);
        frl_json_append(line, sizeof line, &n, event, strlen(event));
        line[n++] = '"';
        kv_to_json(fields, line, sizeof line - 3, &n);
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof line, "ts=%s level=%s event=%s%s%s", tbuf, level_names[level], event,
                             fields[0] ? " " : "", fields);
        if (n > sizeof line - 2)
            n = sizeof line - 2;
    }
    line[n++] = '\n';
    FILE *f = g_stream ? g_stream : stderr;
    fwrite(line, 1, n, f);
    fflush(f);
}
