/* Structured logging: one line per event on stderr (or a chosen FILE),
 * "ts=... level=info event=round_done round=3 acc=0.81", or the same as a
 * JSON object when the format is FRL_LOG_JSON. The fields are given as a
 * printf format of space-separated key=value pairs; values that may hold
 * spaces must be double-quoted in the format ("name=\"%s\"").
 *
 * The level and format are process-wide settings chosen once by main();
 * library code only calls frl_log(). Thread-safe: each line is written with
 * a single fwrite. */
#ifndef FRL_LOG_H
#define FRL_LOG_H

#include <stdio.h>

typedef enum { FRL_LOG_DEBUG = 0, FRL_LOG_INFO = 1, FRL_LOG_WARN = 2, FRL_LOG_ERROR = 3, FRL_LOG_OFF = 4 } frl_log_level;
typedef enum { FRL_LOG_KV = 0, FRL_LOG_JSON = 1 } frl_log_format;

void frl_log_set_level(frl_log_level level);
void frl_log_set_format(frl_log_format format);
void frl_log_set_stream(FILE *f); /* NULL = stderr */
frl_log_level frl_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns 0 or FRL_EINVAL. */
int frl_log_parse_level(const char *s, frl_log_level *out);

/* Logs `event` with the key=value pairs of `fmt`. */
void frl_log(frl_log_level level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends src[0..len) to dst (capacity cap, *n bytes used), escaped for the
 * inside of a JSON string ('"', '\\' and control characters); stops short
 * rather than overflow (6 * len + 8 bytes of capacity always suffice). */
void frl_json_append(char *dst, size_t cap, size_t *n, const char *src, size_t len);

#define FRL_LOG_D(ev, ...) frl_log(FRL_LOG_DEBUG, ev, __VA_ARGS__)
#define FRL_LOG_I(ev, ...) frl_log(FRL_LOG_INFO, ev, __VA_ARGS__)
#define FRL_LOG_W(ev, ...) frl_log(FRL_LOG_WARN, ev, __VA_ARGS__)
#define FRL_LOG_E(ev, ...) frl_log(FRL_LOG_ERROR, ev, __VA_ARGS__)

#endif
