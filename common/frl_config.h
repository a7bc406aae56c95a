/* Config files with the same keys as the command-line flags:
 *
 *   # comment
 *   listen = 127.0.0.1:7700
 *   rounds = 20          # trailing comments too
 *   token-file = "/etc/frl/tokens"
 *
 * One "key = value" per line; keys are the long option names without "--";
 * values may be double-quoted (then '#' is literal). A daemon loads the file
 * first and lets flags override it, so both share one option table. */
#ifndef FRL_CONFIG_H
#define FRL_CONFIG_H

#include <stddef.h>

/* Called once per setting; return 0 to go on, or an FRL_E* code to stop
 * (the loader then reports the line). */
typedef int (*frl_config_cb)(void *user, const char *key, const char *value);

/* Parses `path`. On error returns FRL_ENOENT / FRL_EIO / FRL_EFORMAT or the
 * callback's code, and writes "path:line: reason" into err (if non-NULL). */
int frl_config_load(const char *path, frl_config_cb cb, void *user, char *err, size_t err_cap);

/* Parses `text` (NUL-terminated) the same way; `name` labels errors. */
int frl_config_parse(const char *name, const char *text, frl_config_cb cb, void *user, char *err, size_t err_cap);

#endif
