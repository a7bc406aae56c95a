/* frl-client options: one table for the flags and the config file (same
 * keys), values checked when they are set, cross-checks at the end. Every
 * error is a full sentence naming the option, for "frl-client: ..." + exit 2. */
#include "client/frl_client.h"

#include "common/frl_config.h"
#include "common/frl_error.h"
#include "common/frl_file.h"
#include "data/frl_idx.h"
#include "supermask/frl_model.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void frl_client_opts_defaults(frl_client_opts_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->server_name, sizeof o->server_name, "localhost");
    o->partition.kind = FRL_PART_IID;
    o->shard = 0;
    o->shards = 1;
    o->threads = 1;
    o->attack = FRL_ATTACK_NONE;
    o->reconnect_base_ms = 500;
    o->reconnect_max_ms = 30000;
    o->max_retries = 0;
    o->log_level = FRL_LOG_INFO;
    o->log_format = FRL_LOG_KV;
}

void frl_client_opts_wipe(frl_client_opts_t *o)
{
    sodium_memzero(o->token, sizeof o->token);
    o->token_len = 0;
}

static int copy_str(char *dst, size_t cap, const char *key, const char *v, char *err, size_t err_cap)
{
    if (!v || !*v)
        return frl_errorf(FRL_EINVAL, err, err_cap, "--%s needs a value", key);
    if (strlen(v) >= cap)
        return frl_errorf(FRL_EINVAL, err, err_cap, "--%s: value too long (at most %zu characters)", key, cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* Decimal unsigned in [lo, hi]. */
static int parse_uint(const char *key, const char *v, unsigned long lo, unsigned long hi, unsigned long *out, char *err, size_t cap)
{
    if (!v || !*v)
        return frl_errorf(FRL_EINVAL, err, cap, "--%s needs a value", key);
    if (*v < '0' || *v > '9')
        return frl_errorf(FRL_EINVAL, err, cap, "--%s: '%s' is not a non-negative integer", key, v);
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (*end || errno)
        return frl_errorf(FRL_EINVAL, err, cap, "--%s: '%s' is not a non-negative integer", key, v);
    if (x < lo || x > hi)
        return frl_errorf(FRL_EINVAL, err, cap, "--%s: %s is out of range [%lu, %lu]", key, v, lo, hi);
    *out = x;
    return 0;
}

/* Booleans: flags take no value ("" or NULL = on); config files say
 * yes/no/true/false/on/off/1/0. */
static int parse_bool(const char *key, const char *v, int *out, char *err, size_t cap)
{
    if (!v || !*v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off")) {
        *out = 0;
        return 0;
    }
    return frl_errorf(FRL_EINVAL, err, cap, "--%s: '%s' is not a boolean (yes/no, true/false, on/off, 1/0)", key, v);
}

/* HOST:PORT, [IPv6]:PORT. */
static int parse_server(frl_client_opts_t *o, const char *v, char *err, size_t cap)
{
    if (!v || !*v)
        return frl_errorf(FRL_EINVAL, err, cap, "--server needs a value HOST:PORT");
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return frl_errorf(FRL_EINVAL, err, cap, "--server: '%s' is not HOST:PORT", v);
    const char *h = v;
    size_t hlen = (size_t)(colon - v);
    if (*v == '[') {
        if (colon[-1] != ']' || hlen < 3)
            return frl_errorf(FRL_EINVAL, err, cap, "--server: '%s' is not [IPv6]:PORT", v);
        h = v + 1;
        hlen -= 2;
    } else if (memchr(v, ':', hlen)) {
        return frl_errorf(FRL_EINVAL, err, cap, "--server: '%s': write IPv6 addresses as [ADDR]:PORT", v);
    }
    if (hlen >= sizeof o->server_host)
        return frl_errorf(FRL_EINVAL, err, cap, "--server: host name too long");
    unsigned long port;
    if (parse_uint("server", colon + 1, 1, 65535, &port, NULL, 0))
        return frl_errorf(FRL_EINVAL, err, cap, "--server: '%s' has no valid port (1-65535)", v);
    memcpy(o->server_host, h, hlen);
    o->server_host[hlen] = '\0';
    o->server_port = (int)port;
    return 0;
}

static int parse_token_hex(frl_client_opts_t *o, const char *hex, char *err, size_t cap, const char *src)
{
    size_t n = 0;
    size_t hl = strlen(hex);
    if (hl == 0 || hl % 2 || hl > 2 * FRL_CLIENT_TOKEN_MAX ||
        sodium_hex2bin(o->token, sizeof o->token, hex, hl, NULL, &n, NULL) != 0 || n * 2 != hl) {
        sodium_memzero(o->token, sizeof o->token);
        return frl_errorf(FRL_EINVAL, err, cap, "%s: the token must be 2 to %d hex digits", src, 2 * FRL_CLIENT_TOKEN_MAX);
    }
    o->token_len = n;
    return 0;
}

/* The option table: name, takes a value, setter. Booleans take no value on
 * the command line. */
typedef struct {
    const char *name;
    int is_bool;
} opt_t;

static const opt_t opt_table[] = {
    {"server", 0},
    {"server-name", 0},
    {"ca", 0},
    {"cert", 0},
    {"key", 0},
    {"client-id", 0},
    {"token", 0},
    {"token-file", 0},
    {"data", 0},
    {"partition", 0},
    {"shard", 0},
    {"shards", 0},
    {"model", 0},
    {"threads", 0},
    {"attack", 0},
    {"load-test", 1},
    {"reconnect-base-ms", 0},
    {"reconnect-max-ms", 0},
    {"max-retries", 0},
    {"log-level", 0},
    {"log-format", 0},
    {"quiet", 1},
    {"insecure-plaintext", 1},
    {"config", 0},
};

static const opt_t *find_opt(const char *name)
{
    for (size_t i = 0; i < sizeof opt_table / sizeof opt_table[0]; i++)
        if (strcmp(opt_table[i].name, name) == 0)
            return &opt_table[i];
    return NULL;
}

static int valid_client_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > FRL_CLIENT_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._:@-", c)))
            return 0;
    }
    return 1;
}

int frl_client_opts_set(frl_client_opts_t *o, const char *key, const char *v, char *err, size_t cap)
{
    unsigned long x;
    int r;
    if (!find_opt(key))
        return frl_errorf(FRL_EINVAL, err, cap, "unknown option '%s' (see frl-client --help)", key);
    if (!strcmp(key, "server"))
        return parse_server(o, v, err, cap);
    if (!strcmp(key, "server-name"))
        return copy_str(o->server_name, sizeof o->server_name, key, v, err, cap);
    if (!strcmp(key, "ca"))
        return copy_str(o->ca, sizeof o->ca, key, v, err, cap);
    if (!strcmp(key, "cert"))
        return copy_str(o->cert, sizeof o->cert, key, v, err, cap);
    if (!strcmp(key, "key"))
        return copy_str(o->key, sizeof o->key, key, v, err, cap);
    if (!strcmp(key, "client-id")) {
        if (!v || !valid_client_id(v))
            return frl_errorf(FRL_EINVAL, err, cap, "--client-id: '%s' is not a valid id ([A-Za-z0-9._:@-], 1-%d characters)",
                              v ? v : "", FRL_CLIENT_ID_MAX);
        return copy_str(o->client_id, sizeof o->client_id, key, v, err, cap);
    }
    if (!strcmp(key, "token")) {
        if (!v || !*v)
            return frl_errorf(FRL_EINVAL, err, cap, "--token needs a value (hex)");
        if ((r = parse_token_hex(o, v, err, cap, "--token")))
            return r;
        o->token_given = 1;
        return 0;
    }
    if (!strcmp(key, "token-file"))
        return copy_str(o->token_file, sizeof o->token_file, key, v, err, cap);
    if (!strcmp(key, "data"))
        return copy_str(o->data_dir, sizeof o->data_dir, key, v, err, cap);
    if (!strcmp(key, "partition")) {
        if (!v || frl_part_spec_parse(v, &o->partition))
            return frl_errorf(FRL_EINVAL, err, cap, "--partition: '%s' is not iid, dirichlet:ALPHA or shards:K", v ? v : "");
        return 0;
    }
    if (!strcmp(key, "shard")) {
        if ((r = parse_uint(key, v, 0, UINT32_MAX - 1, &x, err, cap)))
            return r;
        o->shard = (uint32_t)x;
        return 0;
    }
    if (!strcmp(key, "shards")) {
        if ((r = parse_uint(key, v, 1, 1000000, &x, err, cap)))
            return r;
        o->shards = (uint32_t)x;
        return 0;
    }
    if (!strcmp(key, "model")) {
        if ((r = copy_str(o->model, sizeof o->model, key, v, err, cap)))
            return r;
        return 0; /* checked against the zoo in frl_client_opts_check */
    }
    if (!strcmp(key, "threads")) {
        if ((r = parse_uint(key, v, 1, 64, &x, err, cap)))
            return r;
        o->threads = (int)x;
        return 0;
    }
    if (!strcmp(key, "attack")) {
        if (!v || frl_attack_parse(v, &o->attack))
            return frl_errorf(FRL_EINVAL, err, cap, "--attack: '%s' is not none, reverse, random, boundary or labelflip",
                              v ? v : "");
        return 0;
    }
    if (!strcmp(key, "load-test"))
        return parse_bool(key, v, &o->load_test, err, cap);
    if (!strcmp(key, "reconnect-base-ms")) {
        if ((r = parse_uint(key, v, 1, 3600000, &x, err, cap)))
            return r;
        o->reconnect_base_ms = (unsigned)x;
        return 0;
    }
    if (!strcmp(key, "reconnect-max-ms")) {
        if ((r = parse_uint(key, v, 1, 86400000, &x, err, cap)))
            return r;
        o->reconnect_max_ms = (unsigned)x;
        return 0;
    }
    if (!strcmp(key, "max-retries")) {
        if ((r = parse_uint(key, v, 0, 1000000000, &x, err, cap)))
            return r;
        o->max_retries = (unsigned)x;
        return 0;
    }
    if (!strcmp(key, "log-level")) {
        if (!v || frl_log_parse_level(v, &o->log_level))
            return frl_errorf(FRL_EINVAL, err, cap, "--log-level: '%s' is not debug, info, warn, error or off", v ? v : "");
        return 0;
    }
    if (!strcmp(key, "log-format")) {
        if (v && !strcmp(v, "kv"))
            o->log_format = FRL_LOG_KV;
        else if (v && !strcmp(v, "json"))
            o->log_format = FRL_LOG_JSON;
        else
            return frl_errorf(FRL_EINVAL, err, cap, "--log-format: '%s' is not kv or json", v ? v : "");
        return 0;
    }
    if (!strcmp(key, "quiet"))
        return parse_bool(key, v, &o->quiet, err, cap);
    if (!strcmp(key, "insecure-plaintext"))
        return parse_bool(key, v, &o->insecure_plaintext, err, cap);
    /* "config" */
    return copy_str(o->config, sizeof o->config, key, v, err, cap);
}

/* Reads the token file: the first line that is not blank or a '#' comment
 * holds either "HEX" or "CLIENT_ID HEX" (a line of the server's token
 * file; the id must then be ours). */
static int read_token_file(frl_client_opts_t *o, char *err, size_t cap)
{
    struct stat st;
    if (stat(o->token_file, &st) == 0 && (st.st_mode & 077))
        frl_log(FRL_LOG_WARN, "token_file_mode", "file=\"%s\" mode=%03o msg=\"readable by others; chmod 600\"", o->token_file,
                (unsigned)(st.st_mode & 0777));
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = frl_file_read_all(o->token_file, 64 * 1024, &buf, &len);
    if (r)
        return frl_errorf(FRL_EINVAL, err, cap, "--token-file: cannot read '%s': %s", o->token_file, frl_strerror(r));
    char *text = malloc(len + 1);
    if (!text) {
        sodium_memzero(buf, len);
        free(buf);
        return frl_errorf(FRL_EINVAL, err, cap, "--token-file: out of memory");
    }
    memcpy(text, buf, len);
    text[len] = '\0';
    sodium_memzero(buf, len);
    free(buf);
    r = frl_errorf(FRL_EINVAL, err, cap, "--token-file: '%s' holds no token", o->token_file);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[3] = {0};
        int nf = 0;
        char *s2 = NULL;
        for (char *t = strtok_r(line, " \t\r", &s2); t && nf < 3; t = strtok_r(NULL, " \t\r", &s2))
            f[nf++] = t;
        if (nf == 0 || f[0][0] == '#')
            continue;
        if (nf == 1) {
            r = parse_token_hex(o, f[0], err, cap, "--token-file");
        } else if (nf == 2) {
            if (o->client_id[0] && strcmp(f[0], o->client_id) != 0)
                r = frl_errorf(FRL_EINVAL, err, cap, "--token-file: the token in '%s' is for client '%s', not '%s'", o->token_file,
                               f[0], o->client_id);
            else
                r = parse_token_hex(o, f[1], err, cap, "--token-file");
        } else {
            r = frl_errorf(FRL_EINVAL, err, cap, "--token-file: expected 'HEX' or 'CLIENT_ID HEX' in '%s'", o->token_file);
        }
        break;
    }
    sodium_memzero(text, len);
    free(text);
    return r;
}

int frl_client_opts_check(frl_client_opts_t *o, char *err, size_t cap)
{
    if (!o->server_host[0])
        return frl_errorf(FRL_EINVAL, err, cap, "--server HOST:PORT is required");
    if (!o->client_id[0])
        return frl_errorf(FRL_EINVAL, err, cap, "--client-id is required");
    if (o->shard >= o->shards)
        return frl_errorf(FRL_EINVAL, err, cap, "--shard %u must be smaller than --shards %u", o->shard, o->shards);
    if (o->reconnect_base_ms > o->reconnect_max_ms)
        return frl_errorf(FRL_EINVAL, err, cap, "--reconnect-base-ms (%u) is larger than --reconnect-max-ms (%u)",
                          o->reconnect_base_ms, o->reconnect_max_ms);
    if (o->model[0]) {
        int known = 0;
        for (const char *const *n = frl_model_names; *n; n++)
            known |= strcmp(*n, o->model) == 0;
        if (!known)
            return frl_errorf(FRL_EINVAL, err, cap, "--model: unknown model '%s' (lenet, conv2, conv4, conv6, conv8, mlp)",
                              o->model);
    }
    if (o->token_given && o->token_file[0])
        return frl_errorf(FRL_EINVAL, err, cap, "--token and --token-file are mutually exclusive");
    if (o->token_file[0]) {
        int r = read_token_file(o, err, cap);
        if (r)
            return r;
    }
    const int token_mode = o->token_len > 0;
    if ((o->cert[0] != 0) != (o->key[0] != 0))
        return frl_errorf(FRL_EINVAL, err, cap, "--cert and --key go together");
    if (token_mode && o->cert[0])
        return frl_errorf(FRL_EINVAL, err, cap,
                          "give either a token (--token/--token-file) or a client certificate (--cert/--key), not both");
    if (!o->insecure_plaintext) {
        if (!o->ca[0])
            return frl_errorf(FRL_EINVAL, err, cap,
                              "--ca is required: the server certificate is always verified (or --insecure-plaintext for tests)");
        if (!token_mode && !o->cert[0])
            return frl_errorf(FRL_EINVAL, err, cap,
                              "no client credentials: give --cert and --key (mutual TLS) or --token/--token-file");
    }
    if (o->load_test && o->attack != FRL_ATTACK_NONE)
        return frl_errorf(FRL_EINVAL, err, cap, "--load-test submits random rankings; it does not combine with --attack %s",
                          frl_attack_name(o->attack));
    return 0;
}

void frl_client_usage(FILE *f)
{
    fprintf(f,
            "usage: frl-client --server HOST:PORT --client-id ID [options]\n"
            "\n"
            "Connects to an frl-server, trains its shard of the data each round it is\n"
            "asked to, and submits its ranking. Every option can also be given in a\n"
            "config file (--config FILE) with the same key: 'shard = 3'. Flags override\n"
            "the file. See deploy/frl-client.conf.\n"
            "\n"
            "connection\n"
            "  --server HOST:PORT       server address (required); IPv6 as [ADDR]:PORT\n"
            "  --server-name NAME       name the server certificate must carry (default localhost)\n"
            "  --ca FILE                federation CA certificate (required unless --insecure-plaintext)\n"
            "  --cert FILE --key FILE   client certificate and key (mutual TLS; CN = client id)\n"
            "  --client-id ID           this client's id (required; [A-Za-z0-9._:@-]{1,128})\n"
            "  --token HEX              enrolment token (token mode, instead of --cert/--key);\n"
            "                           visible in ps: prefer --token-file\n"
            "  --token-file FILE        file holding 'HEX' or 'CLIENT_ID HEX' (keep it mode 0600)\n"
            "  --reconnect-base-ms N    first reconnect delay (default 500), doubled per failure,\n"
            "  --reconnect-max-ms N     up to this (default 30000), each with random jitter\n"
            "  --max-retries N          consecutive failed tries before giving up (default 0 = forever)\n"
            "  --insecure-plaintext     no TLS at all. TESTS ONLY: logs a warning\n"
            "\n"
            "data and training\n"
            "  --data DIR               MNIST-layout IDX directory (default %s)\n"
            "  --partition SPEC         iid | dirichlet:ALPHA | shards:K (default iid); the split\n"
            "                           is computed from the federation seed, as the server does\n"
            "  --shard U --shards N     this client holds part U of N (default 0 of 1)\n"
            "  --model NAME             expected model; refuse a server that runs another\n"
            "                           (default: take the server's)\n"
            "  --threads N              libuv worker threads for work off the event loop\n"
            "                           (default 1; one more is always kept for name lookups).\n"
            "                           A round trains on ONE thread (one trainer per client,\n"
            "                           deterministic; GEMMs are single-threaded), so N > 1\n"
            "                           does not make a round faster\n"
            "  --attack MODE            none | reverse | random | boundary | labelflip (red-team\n"
            "                           drills; DESIGN.md section 2, attack/frl_attack.h). A lone\n"
            "                           daemon sees only its own data, so the colluders' view is\n"
            "                           this one client: 'reverse' trains benignly and submits the\n"
            "                           reverse of ITS OWN ranking (frl-sim reverses the colluders'\n"
            "                           summed consensus); 'random' submits a uniformly random\n"
            "                           permutation without training; 'boundary' trains, then\n"
            "                           pushes the edges near each keep/drop cut-off across it\n"
            "                           (own ranking as consensus; ~50 MB extra for lenet);\n"
            "                           'labelflip' trains honestly on labels y -> C-1-y\n"
            "  --load-test              no data, no training: answer every task at once with a\n"
            "                           valid random ranking (for measuring the server at scale)\n"
            "\n"
            "output\n"
            "  --log-level LEVEL        debug | info | warn | error | off (default info)\n"
            "  --log-format FMT         kv | json (default kv)\n"
            "  --quiet                  no progress display (it is only shown on a terminal)\n"
            "  --config FILE            read options from FILE first\n"
            "  --help, --version\n"
            "\n"
            "exit status: 0 federation done (Bye) or stopped by SIGINT/SIGTERM; 1 gave up\n"
            "reconnecting, refused by the server, model mismatch or bad data; 2 bad options\n",
            FRL_FMNIST_DIR);
}

struct cfg_ctx {
    frl_client_opts_t *o;
    char *err;
    size_t cap;
};

static int cfg_cb(void *user, const char *key, const char *value)
{
    struct cfg_ctx *x = user;
    if (!strcmp(key, "config"))
        return frl_errorf(FRL_EINVAL, x->err, x->cap, "'config' cannot be set inside a config file");
    return frl_client_opts_set(x->o, key, value, x->err, x->cap);
}

int frl_client_opts_parse(frl_client_opts_t *o, int argc, char **argv, char *err, size_t cap)
{
    /* Pass 1: --help, --version, --config. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            frl_client_usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("%s\n", FRL_CLIENT_VERSION);
            return 1;
        }
        if (!strncmp(a, "--config=", 9)) {
            if (copy_str(o->config, sizeof o->config, "config", a + 9, err, cap))
                return FRL_EINVAL;
        } else if (!strcmp(a, "--config")) {
            if (i + 1 >= argc)
                return frl_errorf(FRL_EINVAL, err, cap, "--config needs a value");
            if (copy_str(o->config, sizeof o->config, "config", argv[i + 1], err, cap))
                return FRL_EINVAL;
            i++;
        }
    }
    if (o->config[0]) {
        char why[FRL_CLIENT_PATH_MAX + 300];
        char detail[512] = "";
        struct cfg_ctx x = {o, detail, sizeof detail};
        int r = frl_config_load(o->config, cfg_cb, &x, why, sizeof why);
        if (r) {
            /* The loader's message has file:line; the callback's has the why. */
            if (detail[0]) {
                const char *colon = strstr(why, ": bad setting");
                int head = colon ? (int)(colon - why) : (int)strlen(why);
                return frl_errorf(FRL_EINVAL, err, cap, "%.*s: %s", head, why, detail);
            }
            return frl_errorf(FRL_EINVAL, err, cap, "config file %s", why);
        }
    }
    /* Pass 2: the flags, in order, over the file. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return frl_errorf(FRL_EINVAL, err, cap, "unexpected argument '%s' (options start with --; see --help)", a);
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (nlen >= sizeof name)
            return frl_errorf(FRL_EINVAL, err, cap, "unknown option '%s' (see --help)", a);
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        const opt_t *opt = find_opt(name);
        if (!opt)
            return frl_errorf(FRL_EINVAL, err, cap, "unknown option '--%s' (see --help)", name);
        if (eq) {
            val = eq + 1;
        } else if (!opt->is_bool) {
            if (i + 1 >= argc)
                return frl_errorf(FRL_EINVAL, err, cap, "--%s needs a value", name);
            val = argv[++i];
        }
        if (!strcmp(name, "config"))
            continue; /* done in pass 1 */
        int r = frl_client_opts_set(o, name, val, err, cap);
        if (r)
            return r;
    }
    return frl_client_opts_check(o, err, cap);
}
