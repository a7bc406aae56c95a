/* frl-server options: one table drives the flags, the config file keys,
 * --help and --print-config, so the three can never disagree. */
#include "server/frl_server.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frl_config.h"
#include "common/frl_error.h"
#include "data/frl_idx.h"

typedef enum { T_STR, T_INT, T_DBL, T_BOOL } opt_type;

typedef struct {
    const char *name;
    opt_type type;
    size_t off;
    size_t cap; /* T_STR: buffer size */
    double lo, hi; /* numeric bounds */
    const char *help;
} opt_def;

#define S(field, help) {#field, T_STR, offsetof(frl_server_opts, field), sizeof(((frl_server_opts *)0)->field), 0, 0, help}
#define I(field, lo, hi, help) {#field, T_INT, offsetof(frl_server_opts, field), 0, lo, hi, help}
#define D(field, lo, hi, help) {#field, T_DBL, offsetof(frl_server_opts, field), 0, lo, hi, help}
#define B(field, help) {#field, T_BOOL, offsetof(frl_server_opts, field), 0, 0, 1, help}

/* Names use '_' here and are shown and matched with '-' (insecure_plaintext
 * <-> --insecure-plaintext); both spellings are accepted. */
static const opt_def opts_table[] = {
    S(listen, "address to listen on, HOST:PORT (use 0.0.0.0:7700 or [::]:7700 for every interface)"),
    S(cert, "server certificate (PEM)"),
    S(key, "server private key (PEM)"),
    S(ca, "federation CA certificate (PEM); client certificates must chain to it (auth = mtls)"),
    S(auth, "client authentication: mtls (client certificate, CN = client id) or token"),
    S(token_file, "token mode: file of lines 'client_id token_hex' ('#' comments)"),
    B(insecure_plaintext, "no TLS at all: FOR TESTS ONLY (logs a warning)"),
    S(federation_id, "name of this federation, sent in Welcome"),
    S(model, "model of the zoo: lenet, conv2, conv4, conv6, conv8, mlp"),
    D(keep, 1e-6, 1.0, "fraction of edges kept per layer, in (0, 1]"),
    S(rule, "mask rule: abs (the reference's) or signed"),
    S(seed, "federation seed: 64 hex digits or an integer; empty = random (libsodium), recorded in the state dir"),
    I(rounds, 1, 1000000, "number of rounds"),
    I(per_round, 1, 1000000, "clients selected per round"),
    I(min_clients, 0, 1000000, "connected clients needed before a round opens (0 = per-round)"),
    D(quorum, 0, 1000000, "accepted votes needed to close a round: < 1 a fraction of the selected clients, >= 1 a count"),
    D(round_deadline, 0.01, 1e7, "seconds a round collects submissions"),
    D(retry_wait, 0, 1e7, "seconds to wait before retrying a round that stayed below quorum"),
    I(max_retries, 0, 1000000, "retries of a round below quorum before the server gives up (exit status 3)"),
    D(wait_timeout, 0, 1e9, "seconds to wait for min-clients before a try counts as failed (0 = wait for ever)"),
    I(local_epochs, 1, 10000, "local epochs per round (clients)"),
    D(lr, 0, 1e6, "learning rate of round 1 (clients)"),
    D(lr_decay, 0, 1e6, "per-round learning-rate decay: lr * lr-decay^(round - 1)"),
    D(momentum, 0, 0.999999, "SGD momentum (clients)"),
    D(weight_decay, 0, 1e6, "weight decay on the scores (clients)"),
    I(batch, 1, 65536, "mini-batch size (clients)"),
    S(state_dir, "state directory (global ranking, round, seed, config hash, client registry)"),
    S(metrics_file, "JSON-lines metrics file, one line per round (empty = off)"),
    S(metrics_listen, "Prometheus text endpoint HOST:PORT over plain HTTP (empty or off = off)"),
    I(eval_every, 0, 1000000, "evaluate the global model every N rounds (0 = only the final model)"),
    S(eval_data, "test data: an MNIST-layout directory (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"),
    I(eval_n, 0, 100000000, "test images used by the per-round evaluation (0 = all); the final model uses all"),
    S(model_out, "final model file (empty = STATE_DIR/model.frlq)"),
    I(final_eval_n, 0, 100000000, "test images used for the final model's accuracy (0 = all)"),
    S(log_level, "debug, info, warn, error"),
    S(log_format, "kv (key=value) or json"),
    S(policy, "robustness policy on anti-correlated voters: off, flag, drop, downweight"),
    D(policy_threshold, -1, 1, "policy: agreement below this is low"),
    I(policy_rounds, 1, 1000000, "policy: consecutive low observations before acting"),
    I(max_clients, 1, 10000000, "client registry capacity (distinct client ids ever seen)"),
    I(max_conns, 1, 1000000, "live connections (more are refused)"),
    I(heartbeat_ms, 0, 3600000, "heartbeat interval when idle, ms (0 = off)"),
    I(idle_timeout_ms, 0, 86400000, "close a connection silent this long, ms (0 = off)"),
};
#define N_OPTS (sizeof opts_table / sizeof opts_table[0])

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

void frl_server_opts_defaults(frl_server_opts *o)
{
    memset(o, 0, sizeof *o);
    copy_str(o->listen, sizeof o->listen, "127.0.0.1:7700");
    copy_str(o->auth, sizeof o->auth, "mtls");
    copy_str(o->federation_id, sizeof o->federation_id, "frl");
    copy_str(o->model, sizeof o->model, "lenet");
    o->keep = 0.5;
    copy_str(o->rule, sizeof o->rule, "abs");
    o->rounds = 20;
    o->per_round = 10;
    o->min_clients = 0;
    o->quorum = 0.5;
    o->round_deadline = 300;
    o->retry_wait = 10;
    o->max_retries = 3;
    o->wait_timeout = 0;
    o->local_epochs = 1;
    o->lr = 0.4;
    o->lr_decay = 0.999;
    o->momentum = 0.9;
    o->weight_decay = 1e-4;
    o->batch = 8;
    copy_str(o->state_dir, sizeof o->state_dir, "frl-state");
    o->eval_every = 1;
    copy_str(o->eval_data, sizeof o->eval_data, FRL_FMNIST_DIR);
    o->eval_n = 2000;
    copy_str(o->log_level, sizeof o->log_level, "info");
    copy_str(o->log_format, sizeof o->log_format, "kv");
    copy_str(o->policy, sizeof o->policy, "off");
    o->policy_threshold = -0.1;
    o->policy_rounds = 2;
    o->max_clients = 100000;
    o->max_conns = 4096;
    o->heartbeat_ms = 15000;
    o->idle_timeout_ms = 60000;
}

/* Key match with '-' and '_' equivalent. */
static int key_eq(const char *table_name, const char *key)
{
    for (; *table_name && *key; table_name++, key++) {
        char a = *table_name == '_' ? '-' : *table_name;
        char b = *key == '_' ? '-' : *key;
        if (a != b)
            return 0;
    }
    return *table_name == *key;
}

static const opt_def *find_opt(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (key_eq(opts_table[i].name, key))
            return &opts_table[i];
    return NULL;
}

static void dash_name(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

int frl_server_opts_set(frl_server_opts *o, const char *key, const char *value, char *err, size_t err_cap)
{
    const opt_def *d = find_opt(key);
    if (!d) {
        frl_errorf(FRL_EINVAL, err, err_cap, "unknown option '%s'", key);
        return FRL_ENOENT;
    }
    char *base = (char *)o + d->off;
    char *end = NULL;
    switch (d->type) {
    case T_STR:
        if (strlen(value) >= d->cap) {
            frl_errorf(FRL_EINVAL, err, err_cap, "%s: value too long", key);
            return FRL_EINVAL;
        }
        copy_str(base, d->cap, value);
        return 0;
    case T_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < (long)d->lo || v > (long)d->hi) {
            frl_errorf(FRL_EINVAL, err, err_cap, "%s: expected an integer in [%.0f, %.0f], got '%s'", key, d->lo, d->hi, value);
            return FRL_EINVAL;
        }
        *(int *)base = (int)v;
        return 0;
    }
    case T_DBL: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || v < d->lo || v > d->hi) {
            frl_errorf(FRL_EINVAL, err, err_cap, "%s: expected a number in [%g, %g], got '%s'", key, d->lo, d->hi, value);
            return FRL_EINVAL;
        }
        *(double *)base = v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on")) {
            *(int *)base = 1;
        } else if (!strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off")) {
            *(int *)base = 0;
        } else {
            frl_errorf(FRL_EINVAL, err, err_cap, "%s: expected yes or no, got '%s'", key, value);
            return FRL_EINVAL;
        }
        return 0;
    }
    return FRL_EINVAL;
}

static void format_value(const frl_server_opts *o, const opt_def *d, char *buf, size_t cap)
{
    const char *base = (const char *)o + d->off;
    switch (d->type) {
    case T_STR: {
        const char *s = base;
        /* Quote values the config reader would otherwise cut ('#') or trim. */
        if (!*s || strchr(s, '#') || isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
            snprintf(buf, cap, "\"%s\"", s);
        else
            snprintf(buf, cap, "%s", s);
        break;
    }
    case T_INT:
    case T_BOOL:
        snprintf(buf, cap, "%d", *(const int *)base);
        if (d->type == T_BOOL)
            snprintf(buf, cap, "%s", *(const int *)base ? "yes" : "no");
        break;
    case T_DBL: {
        double v = *(const double *)base;
        if (v == floor(v) && fabs(v) < 1e15) {
            snprintf(buf, cap, "%.0f", v);
            break;
        }
        /* Shortest form that reads back the same. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        break;
    }
    }
}

void frl_server_opts_print(const frl_server_opts *o, FILE *f, int commented_help)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        char name[64], val[FRL_SERVER_STR + 8];
        dash_name(opts_table[i].name, name, sizeof name);
        format_value(o, &opts_table[i], val, sizeof val);
        if (commented_help)
            fprintf(f, "\n# %s\n# %s = %s\n", opts_table[i].help, name, val);
        else
            fprintf(f, "%s = %s\n", name, val);
    }
}

static int config_cb(void *user, const char *key, const char *value)
{
    char err[256];
    int r = frl_server_opts_set(user, key, value, err, sizeof err);
    return r == FRL_ENOENT ? FRL_EFORMAT : r;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: frl-server [--config FILE] [--OPTION VALUE ...] [--print-config] [--print-example-config] [--help] [--version]\n\n"
               "Every option is also a config-file key (same name, without '--'); flags override the file.\n\n");
    frl_server_opts defaults;
    frl_server_opts_defaults(&defaults);
    for (size_t i = 0; i < N_OPTS; i++) {
        char name[64], val[FRL_SERVER_STR + 8];
        dash_name(opts_table[i].name, name, sizeof name);
        format_value(&defaults, &opts_table[i], val, sizeof val);
        fprintf(f, "  --%-20s %s\n  %-22s (default: %s)\n", name, opts_table[i].help, "", val);
    }
}

int frl_server_opts_parse(frl_server_opts *o, int argc, char **argv, char *err, size_t err_cap)
{
    int print_config = 0; /* 1: effective config, 2: commented example with the defaults */
    /* Pass 1: --config, --help, --version. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("%s\n", FRL_SERVER_VERSION);
            return 1;
        }
        if (!strcmp(a, "--print-config"))
            print_config = 1;
        if (!strcmp(a, "--print-example-config"))
            print_config = 2;
        const char *path = NULL;
        if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                frl_errorf(FRL_EINVAL, err, err_cap, "--config needs a file");
                return FRL_EINVAL;
            }
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        }
        if (path) {
            char cerr[512];
            int r = frl_config_load(path, config_cb, o, cerr, sizeof cerr);
            if (r) {
                frl_errorf(FRL_EINVAL, err, err_cap, "config %s", cerr);
                return r;
            }
            copy_str(o->config_file, sizeof o->config_file, path);
        }
    }
    /* Pass 2: flags override the file. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--print-config") || !strcmp(a, "--print-example-config"))
            continue;
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            frl_errorf(FRL_EINVAL, err, err_cap, "unexpected argument '%s' (try --help)", a);
            return FRL_EINVAL;
        }
        char key[64];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (klen >= sizeof key) {
            frl_errorf(FRL_EINVAL, err, err_cap, "unknown option '%s'", a);
            return FRL_EINVAL;
        }
        memcpy(key, a + 2, klen);
        key[klen] = '\0';
        const opt_def *d = find_opt(key);
        if (!d) {
            frl_errorf(FRL_EINVAL, err, err_cap, "unknown option '--%s' (try --help)", key);
            return FRL_EINVAL;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (d->type == T_BOOL) {
            val = "yes";
        } else {
            if (i + 1 >= argc) {
                frl_errorf(FRL_EINVAL, err, err_cap, "--%s needs a value", key);
                return FRL_EINVAL;
            }
            val = argv[++i];
        }
        int r = frl_server_opts_set(o, key, val, err, err_cap);
        if (r)
            return r == FRL_ENOENT ? FRL_EINVAL : r;
    }
    if (print_config) {
        frl_server_opts_print(o, stdout, print_config == 2);
        return 1;
    }
    return 0;
}

int frl_server_split_hostport(const char *s, char *host, size_t host_cap, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return FRL_EINVAL;
        h = s + 1;
        hlen = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return FRL_EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= host_cap)
        return FRL_EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
        return FRL_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

int frl_server_opts_check(const frl_server_opts *o, char *err, size_t err_cap)
{
    char host[256];
    int port;
    if (frl_server_split_hostport(o->listen, host, sizeof host, &port)) {
        frl_errorf(FRL_EINVAL, err, err_cap, "listen: expected HOST:PORT, got '%s'", o->listen);
        return FRL_EINVAL;
    }
    if (o->metrics_listen[0] && strcmp(o->metrics_listen, "off") != 0 &&
        frl_server_split_hostport(o->metrics_listen, host, sizeof host, &port)) {
        frl_errorf(FRL_EINVAL, err, err_cap, "metrics-listen: expected HOST:PORT or off, got '%s'", o->metrics_listen);
        return FRL_EINVAL;
    }
    if (strcmp(o->auth, "mtls") && strcmp(o->auth, "token")) {
        frl_errorf(FRL_EINVAL, err, err_cap, "auth: expected mtls or token, got '%s'", o->auth);
        return FRL_EINVAL;
    }
    if (!o->insecure_plaintext) {
        if (!o->cert[0] || !o->key[0]) {
            frl_errorf(FRL_EINVAL, err, err_cap, "cert and key are required (or insecure-plaintext for tests)");
            return FRL_EINVAL;
        }
        if (!strcmp(o->auth, "mtls") && !o->ca[0]) {
            frl_errorf(FRL_EINVAL, err, err_cap, "auth = mtls needs ca (the federation CA that signs client certificates)");
            return FRL_EINVAL;
        }
    }
    if (!strcmp(o->auth, "token") && !o->token_file[0]) {
        frl_errorf(FRL_EINVAL, err, err_cap, "auth = token needs token-file");
        return FRL_EINVAL;
    }
    if (strcmp(o->rule, "abs") && strcmp(o->rule, "signed")) {
        frl_errorf(FRL_EINVAL, err, err_cap, "rule: expected abs or signed, got '%s'", o->rule);
        return FRL_EINVAL;
    }
    if (strcmp(o->log_format, "kv") && strcmp(o->log_format, "json")) {
        frl_errorf(FRL_EINVAL, err, err_cap, "log-format: expected kv or json, got '%s'", o->log_format);
        return FRL_EINVAL;
    }
    if (strcmp(o->policy, "off") && strcmp(o->policy, "flag") && strcmp(o->policy, "drop") && strcmp(o->policy, "downweight")) {
        frl_errorf(FRL_EINVAL, err, err_cap, "policy: expected off, flag, drop or downweight, got '%s'", o->policy);
        return FRL_EINVAL;
    }
    if (!(o->keep > 0.0 && o->keep <= 1.0)) {
        frl_errorf(FRL_EINVAL, err, err_cap, "keep must be in (0, 1]");
        return FRL_EINVAL;
    }
    if (!o->state_dir[0]) {
        frl_errorf(FRL_EINVAL, err, err_cap, "state-dir is required");
        return FRL_EINVAL;
    }
    if (o->quorum <= 0) {
        frl_errorf(FRL_EINVAL, err, err_cap, "quorum must be > 0 (a fraction < 1 or a count >= 1)");
        return FRL_EINVAL;
    }
    if (o->quorum >= 1 && o->quorum > o->per_round) {
        frl_errorf(FRL_EINVAL, err, err_cap, "quorum (%g) exceeds per-round (%d): no round could ever close", o->quorum,
                   o->per_round);
        return FRL_EINVAL;
    }
    if (o->max_clients < o->per_round) {
        frl_errorf(FRL_EINVAL, err, err_cap, "max-clients must be >= per-round");
        return FRL_EINVAL;
    }
    return 0;
}
