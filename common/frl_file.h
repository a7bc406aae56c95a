/* File helpers: bounded whole-file reads, crash-safe atomic writes, and the
 * process's peak memory (edge devices and benchmarks report it). */
#ifndef FRL_FILE_H
#define FRL_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads all of `path` into a new malloc'd buffer (caller frees). Refuses
 * files larger than `max_len` with FRL_ETOOBIG. Returns 0, FRL_ENOENT,
 * FRL_EIO, FRL_ENOMEM or FRL_ETOOBIG. */
int frl_file_read_all(const char *path, size_t max_len, uint8_t **out, size_t *out_len);

/* Replaces `path` with `data` atomically: writes "<path>.tmp.<pid>", fsyncs
 * it, renames it over `path`, then fsyncs the directory. After a crash at any
 * point, `path` holds either the old or the new content in full. */
int frl_file_write_atomic(const char *path, const void *data, size_t len);

/* mkdir -p with mode 0700 for the last component; 0 or FRL_EIO. */
int frl_file_mkdirs(const char *path);

/* Peak resident set size of this process in KiB (VmHWM), or 0 if unknown. */
long frl_peak_rss_kb(void);
/* Current resident set size in KiB (VmRSS), or 0 if unknown. */
long frl_rss_kb(void);

/* Monotonic clock in seconds. */
double frl_now_s(void);

#endif
