#include "common/frl_config.h"
#include "common/frl_error.h"
#include "common/frl_file.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRL_CONFIG_MAX_BYTES (1u << 20)
#define FRL_CONFIG_MAX_LINE 4096

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Every parse error names its place: "FILE:LINE: why". */
static int fail(char *err, size_t cap, const char *name, int line, const char *why, int rc)
{
    return frl_errorf(rc, err, cap, "%s:%d: %s", name, line, why);
}

int frl_config_parse(const char *name, const char *text, frl_config_cb cb, void *user, char *err, size_t err_cap)
{
    char line[FRL_CONFIG_MAX_LINE + 1];
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > FRL_CONFIG_MAX_LINE)
            return fail(err, err_cap, name, lineno, "line too long", FRL_EFORMAT);
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        if (memchr(line, '\0', len))
            return fail(err, err_cap, name, lineno, "NUL byte in line", FRL_EFORMAT);
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return fail(err, err_cap, name, lineno, "expected 'key = value'", FRL_EFORMAT);
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        if (!*key)
            return fail(err, err_cap, name, lineno, "empty key", FRL_EFORMAT);
        for (char *k = key; *k; k++)
            if (!(isalnum((unsigned char)*k) || *k == '-' || *k == '_'))
                return fail(err, err_cap, name, lineno, "bad character in key", FRL_EFORMAT);
        if (*val == '"') {
            char *end = strchr(val + 1, '"');
            if (!end)
                return fail(err, err_cap, name, lineno, "unterminated quote", FRL_EFORMAT);
            char *rest = trim(end + 1);
            if (*rest && *rest != '#')
                return fail(err, err_cap, name, lineno, "text after closing quote", FRL_EFORMAT);
            *end = '\0';
            val++;
        } else {
            char *hash = strchr(val, '#');
            if (hash) {
                *hash = '\0';
                val = trim(val);
            }
        }
        int rc = cb(user, key, val);
        if (rc) {
            char why[256];
            snprintf(why, sizeof why, "%s '%s': %s", "bad setting", key, frl_strerror(rc));
            return fail(err, err_cap, name, lineno, why, rc);
        }
    }
    return 0;
}

int frl_config_load(const char *path, frl_config_cb cb, void *user, char *err, size_t err_cap)
{
    uint8_t *buf;
    size_t len;
    int rc = frl_file_read_all(path, FRL_CONFIG_MAX_BYTES, &buf, &len);
    if (rc)
        return frl_errorf(rc, err, err_cap, "%s: %s", path, frl_strerror(rc));
    char *text = realloc(buf, len + 1);
    if (!text) {
        free(buf);
        return FRL_ENOMEM;
    }
    text[len] = '\0';
    rc = frl_config_parse(path, text, cb, user, err, err_cap);
    free(text);
    return rc;
}
