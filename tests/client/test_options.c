/* frl-client options: flags, config file (same keys), overrides, and bad
 * values refused with a message that names the option. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/frl_client.h"
#include "common/frl_error.h"

static char err[1024];

/* Parses a NULL-terminated list of arguments (argv[0] added). */
static int parse(frl_client_opts_t *o, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "frl-client";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    frl_client_opts_defaults(o);
    err[0] = '\0';
    return frl_client_opts_parse(o, argc, argv, err, sizeof err);
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[4][600];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, sizeof path[0], "%s/test-client-%s-%d", FRL_BINARY_DIR, name, (int)getpid());
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
    return p;
}

static void test_defaults(void **state)
{
    (void)state;
    frl_client_opts_t o;
    frl_client_opts_defaults(&o);
    assert_string_equal(o.server_name, "localhost");
    assert_int_equal(o.partition.kind, FRL_PART_IID);
    assert_int_equal(o.shard, 0);
    assert_int_equal(o.shards, 1);
    assert_int_equal(o.threads, 1);
    assert_int_equal(o.attack, FRL_ATTACK_NONE);
    assert_int_equal(o.reconnect_base_ms, 500);
    assert_int_equal(o.reconnect_max_ms, 30000);
    assert_int_equal(o.max_retries, 0);
    assert_int_equal(o.log_level, FRL_LOG_INFO);
    assert_int_equal(o.log_format, FRL_LOG_KV);
    assert_false(o.quiet);
    assert_false(o.load_test);
    assert_false(o.insecure_plaintext);
}

static void test_full_flag_set_is_parsed(void **state)
{
    (void)state;
    frl_client_opts_t o;
    const char *args[] = {"--server",
                          "example.org:7443",
                          "--server-name",
                          "frl.example.org",
                          "--ca",
                          "/etc/frl/ca.crt",
                          "--cert",
                          "/etc/frl/c.crt",
                          "--key=/etc/frl/c.key",
                          "--client-id",
                          "edge-7",
                          "--data",
                          "/data",
                          "--partition",
                          "dirichlet:0.5",
                          "--shard",
                          "7",
                          "--shards",
                          "100",
                          "--model",
                          "lenet",
                          "--threads",
                          "2",
                          "--attack",
                          "reverse",
                          "--reconnect-base-ms",
                          "100",
                          "--reconnect-max-ms",
                          "5000",
                          "--max-retries",
                          "9",
                          "--log-level",
                          "debug",
                          "--log-format",
                          "json",
                          "--quiet",
                          NULL};
    assert_int_equal(parse(&o, args), 0);
    assert_string_equal(o.server_host, "example.org");
    assert_int_equal(o.server_port, 7443);
    assert_string_equal(o.server_name, "frl.example.org");
    assert_string_equal(o.key, "/etc/frl/c.key");
    assert_string_equal(o.client_id, "edge-7");
    assert_int_equal(o.partition.kind, FRL_PART_DIRICHLET);
    assert_true(o.partition.alpha == 0.5);
    assert_int_equal(o.shard, 7);
    assert_int_equal(o.shards, 100);
    assert_string_equal(o.model, "lenet");
    assert_int_equal(o.threads, 2);
    assert_int_equal(o.attack, FRL_ATTACK_REVERSE);
    assert_int_equal(o.max_retries, 9);
    assert_int_equal(o.log_level, FRL_LOG_DEBUG);
    assert_int_equal(o.log_format, FRL_LOG_JSON);
    assert_true(o.quiet);
}

static void test_ipv6_server_address(void **state)
{
    (void)state;
    frl_client_opts_t o;
    const char *args[] = {"--server", "[::1]:9000", "--client-id", "a", "--insecure-plaintext", NULL};
    assert_int_equal(parse(&o, args), 0);
    assert_string_equal(o.server_host, "::1");
    assert_int_equal(o.server_port, 9000);
}

/* Each bad value is refused, and the message names the option. */
static void test_bad_values_are_refused_with_the_option_named(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *expect;
    } bad[] = {
        {"--server", "nohost", "--server"},
        {"--server", "h:0", "--server"},
        {"--server", "h:99999", "--server"},
        {"--server", "::1:80", "IPv6"},
        {"--client-id", "a b", "--client-id"},
        {"--partition", "zipf", "--partition"},
        {"--partition", "dirichlet:-1", "--partition"},
        {"--shard", "-1", "--shard"},
        {"--shards", "0", "--shards"},
        {"--shards", "12x", "--shards"},
        {"--threads", "0", "--threads"},
        {"--threads", "65", "--threads"},
        {"--attack", "nuke", "--attack"},
        {"--reconnect-base-ms", "0", "--reconnect-base-ms"},
        {"--max-retries", "many", "--max-retries"},
        {"--log-level", "loud", "--log-level"},
        {"--log-format", "xml", "--log-format"},
        {"--token", "xyz", "--token"},
        {"--token", "abc", "--token"},
        {"--model", "resnet", "--model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frl_client_opts_t o;
        const char *args[] = {"--server", "h:1", "--client-id", "a", "--insecure-plaintext", bad[i].flag, bad[i].value, NULL};
        int r = parse(&o, args);
        if (r != FRL_EINVAL || !strstr(err, bad[i].expect))
            fail_msg("%s %s: rc=%d err=\"%s\"", bad[i].flag, bad[i].value, r, err);
    }
}

static void test_unknown_option_and_missing_value(void **state)
{
    (void)state;
    frl_client_opts_t o;
    const char *a1[] = {"--server", "h:1", "--bogus", NULL};
    assert_int_equal(parse(&o, a1), FRL_EINVAL);
    assert_non_null(strstr(err, "unknown option '--bogus'"));
    const char *a2[] = {"--server", NULL};
    assert_int_equal(parse(&o, a2), FRL_EINVAL);
    assert_non_null(strstr(err, "--server needs a value"));
    const char *a3[] = {"stray", NULL};
    assert_int_equal(parse(&o, a3), FRL_EINVAL);
    assert_non_null(strstr(err, "unexpected argument"));
}

static void test_cross_checks(void **state)
{
    (void)state;
    frl_client_opts_t o;
    const char *a1[] = {"--client-id", "a", "--insecure-plaintext", NULL};
    assert_int_equal(parse(&o, a1), FRL_EINVAL);
    assert_non_null(strstr(err, "--server"));
    const char *a2[] = {"--server", "h:1", "--insecure-plaintext", NULL};
    assert_int_equal(parse(&o, a2), FRL_EINVAL);
    assert_non_null(strstr(err, "--client-id"));
    const char *a3[] = {"--server", "h:1", "--client-id", "a", NULL};
    assert_int_equal(parse(&o, a3), FRL_EINVAL);
    assert_non_null(strstr(err, "--ca is required"));
    const char *a4[] = {"--server", "h:1", "--client-id", "a", "--ca", "ca.crt", NULL};
    assert_int_equal(parse(&o, a4), FRL_EINVAL);
    assert_non_null(strstr(err, "no client credentials"));
    const char *a5[] = {"--server", "h:1", "--client-id", "a", "--ca", "ca.crt", "--cert", "c.crt", NULL};
    assert_int_equal(parse(&o, a5), FRL_EINVAL);
    assert_non_null(strstr(err, "--cert and --key"));
    const char *a6[] = {"--server", "h:1", "--client-id", "a", "--insecure-plaintext", "--shard", "4", "--shards", "4", NULL};
    assert_int_equal(parse(&o, a6), FRL_EINVAL);
    assert_non_null(strstr(err, "--shard 4 must be smaller than --shards 4"));
    const char *a7[] = {"--server", "h:1", "--client-id", "a", "--insecure-plaintext", "--load-test", "--attack", "random", NULL};
    assert_int_equal(parse(&o, a7), FRL_EINVAL);
    assert_non_null(strstr(err, "--load-test"));
    const char *a8[] = {"--server",           "h:1", "--client-id", "a", "--insecure-plaintext", "--reconnect-base-ms", "900",
                        "--reconnect-max-ms", "800", NULL};
    assert_int_equal(parse(&o, a8), FRL_EINVAL);
    assert_non_null(strstr(err, "--reconnect-base-ms"));
}

static void test_token_flag_and_token_file(void **state)
{
    (void)state;
    frl_client_opts_t o;
    const char *a1[] = {"--server", "h:1", "--client-id", "a", "--ca", "ca.crt", "--token", "00ff10", NULL};
    assert_int_equal(parse(&o, a1), 0);
    assert_int_equal(o.token_len, 3);
    assert_int_equal(o.token[1], 0xff);
    frl_client_opts_wipe(&o);
    assert_int_equal(o.token_len, 0);

    const char *tf = write_file("tok", "# my token\n\na 0a0b0c0d\n", 0600);
    const char *a2[] = {"--server", "h:1", "--client-id", "a", "--ca", "ca.crt", "--token-file", tf, NULL};
    assert_int_equal(parse(&o, a2), 0);
    assert_int_equal(o.token_len, 4);
    assert_int_equal(o.token[3], 0x0d);

    const char *a3[] = {"--server", "h:1", "--client-id", "b", "--ca", "ca.crt", "--token-file", tf, NULL};
    assert_int_equal(parse(&o, a3), FRL_EINVAL);
    assert_non_null(strstr(err, "is for client 'a', not 'b'"));

    const char *a4[] = {"--server", "h:1", "--client-id", "a", "--ca", "ca.crt", "--token-file", tf, "--token", "00", NULL};
    assert_int_equal(parse(&o, a4), FRL_EINVAL);
    assert_non_null(strstr(err, "mutually exclusive"));

    const char *a5[] = {"--server", "h:1", "--client-id", "a", "--ca", "ca.crt", "--token-file", "/nonexistent/tok", NULL};
    assert_int_equal(parse(&o, a5), FRL_EINVAL);
    assert_non_null(strstr(err, "cannot read"));

    const char *a6[] = {"--server", "h:1",    "--client-id", "a",     "--ca", "ca.crt", "--token",
                        "00",       "--cert", "c",           "--key", "k",    NULL};
    assert_int_equal(parse(&o, a6), FRL_EINVAL);
    assert_non_null(strstr(err, "not both"));
    unlink(tf);
}

static void test_config_file_then_flags_override(void **state)
{
    (void)state;
    const char *cf = write_file("conf",
                                "# frl-client\n"
                                "server = 10.0.0.1:7000\n"
                                "client-id = \"edge#1\"   # quoted: '#' is literal\n"
                                "shard = 3\n"
                                "shards = 10\n"
                                "insecure-plaintext = yes\n"
                                "quiet = off\n"
                                "partition = shards:2\n",
                                0600);
    frl_client_opts_t o;
    const char *a1[] = {"--config", cf, "--shard", "5", NULL};
    assert_int_equal(parse(&o, a1), FRL_EINVAL); /* '#' is not allowed in a client id */
    assert_non_null(strstr(err, "--client-id"));
    assert_non_null(strstr(err, ":3:")); /* file:line */

    const char *cf2 = write_file("conf2",
                                 "server = 10.0.0.1:7000\n"
                                 "client-id = edge-1\n"
                                 "shard = 3\n"
                                 "shards = 10\n"
                                 "insecure-plaintext = yes\n"
                                 "quiet = off\n"
                                 "partition = shards:2\n",
                                 0600);
    const char *a2[] = {"--shard", "5", "--config", cf2, NULL}; /* the file is read first wherever --config is */
    assert_int_equal(parse(&o, a2), 0);
    assert_string_equal(o.server_host, "10.0.0.1");
    assert_int_equal(o.shard, 5);
    assert_int_equal(o.shards, 10);
    assert_true(o.insecure_plaintext);
    assert_false(o.quiet);
    assert_int_equal(o.partition.kind, FRL_PART_SHARDS);
    unlink(cf);
    unlink(cf2);
}

static void test_config_file_errors(void **state)
{
    (void)state;
    frl_client_opts_t o;
    const char *cf = write_file("conf3", "server = h:1\nthreads = lots\n", 0600);
    const char *a1[] = {"--config", cf, NULL};
    assert_int_equal(parse(&o, a1), FRL_EINVAL);
    assert_non_null(strstr(err, ":2:"));
    assert_non_null(strstr(err, "--threads"));
    const char *cf2 = write_file("conf4", "colour = blue\n", 0600);
    const char *a2[] = {"--config", cf2, NULL};
    assert_int_equal(parse(&o, a2), FRL_EINVAL);
    assert_non_null(strstr(err, "unknown option 'colour'"));
    const char *cf3 = write_file("conf5", "quiet = maybe\n", 0600);
    const char *a3[] = {"--config", cf3, NULL};
    assert_int_equal(parse(&o, a3), FRL_EINVAL);
    assert_non_null(strstr(err, "not a boolean"));
    const char *a4[] = {"--config", "/nonexistent/frl-client.conf", NULL};
    assert_int_equal(parse(&o, a4), FRL_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/frl-client.conf"));
    unlink(cf);
    unlink(cf2);
    unlink(cf3);
}

/* deploy/frl-client.conf lists every option; uncommenting all of them
 * (with the required ones filled in) must parse. */
static void test_deploy_example_config_parses(void **state)
{
    (void)state;
    char path[600], cmd[2000];
    snprintf(path, sizeof path, "%s/test-client-example-%d.conf", FRL_BINARY_DIR, (int)getpid());
    snprintf(cmd, sizeof cmd, "sed -n 's/^#\\([a-z-]* = .*\\)$/\\1/p' '%s/deploy/frl-client.conf' > '%s'", FRL_SOURCE_DIR, path);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int keys = 0;
    while (fgets(line, sizeof line, f))
        keys++;
    fclose(f);
    assert_true(keys >= 20);
    frl_client_opts_t o;
    const char *args[] = {"--config", path, NULL};
    int r = parse(&o, args);
    if (r != 0)
        fail_msg("deploy/frl-client.conf: %s", err);
    unlink(path);
    /* Every option is mentioned ("#key = " default or "# key = " example). */
    static const char *const all[] = {"server",
                                      "server-name",
                                      "ca",
                                      "cert",
                                      "key",
                                      "client-id",
                                      "token",
                                      "token-file",
                                      "data",
                                      "partition",
                                      "shard",
                                      "shards",
                                      "model",
                                      "threads",
                                      "attack",
                                      "load-test",
                                      "reconnect-base-ms",
                                      "reconnect-max-ms",
                                      "max-retries",
                                      "log-level",
                                      "log-format",
                                      "quiet",
                                      "insecure-plaintext"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        snprintf(cmd, sizeof cmd, "grep -Eq '^# ?%s = ' '%s/deploy/frl-client.conf'", all[i], FRL_SOURCE_DIR);
        if (system(cmd) != 0)
            fail_msg("deploy/frl-client.conf does not mention '%s'", all[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_flag_set_is_parsed),
        cmocka_unit_test(test_ipv6_server_address),
        cmocka_unit_test(test_bad_values_are_refused_with_the_option_named),
        cmocka_unit_test(test_unknown_option_and_missing_value),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_token_flag_and_token_file),
        cmocka_unit_test(test_config_file_then_flags_override),
        cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_deploy_example_config_parses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
