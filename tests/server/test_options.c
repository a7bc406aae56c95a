/* server/options.c: flags, config file keys, precedence, validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/frl_error.h"
#include "server/frl_server.h"

static void test_defaults_are_documented_values(void **st)
{
    frl_server_opts o;
    frl_server_opts_defaults(&o);
    assert_string_equal(o.listen, "127.0.0.1:7700");
    assert_string_equal(o.model, "lenet");
    assert_string_equal(o.auth, "mtls");
    assert_true(o.keep == 0.5);
    assert_string_equal(o.rule, "abs");
    assert_string_equal(o.seed, "");
}

static void test_flags_override_config_file(void **st)
{
    char path[] = "/tmp/frl-test-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\nrounds = 7\nper_round = 3\nmodel = mlp  # trailing\ninsecure-plaintext = yes\n"
                       "state-dir = \"/tmp/a # b\"\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    frl_server_opts o;
    frl_server_opts_defaults(&o);
    char err[256];
    char *argv[] = {"frl-server", "--rounds", "9", "--config", path, "--keep=0.25", "--quorum", "2", NULL};
    assert_int_equal(frl_server_opts_parse(&o, 8, argv, err, sizeof err), 0);
    assert_int_equal(o.rounds, 9); /* the flag wins, wherever it is */
    assert_int_equal(o.per_round, 3);
    assert_string_equal(o.model, "mlp");
    assert_int_equal(o.insecure_plaintext, 1);
    assert_string_equal(o.state_dir, "/tmp/a # b");
    assert_true(o.keep == 0.25);
    assert_int_equal(frl_server_opts_check(&o, err, sizeof err), 0);
    unlink(path);
}

static void test_bad_values_and_unknown_keys_are_refused(void **st)
{
    frl_server_opts o;
    char err[256];
    frl_server_opts_defaults(&o);
    assert_int_equal(frl_server_opts_set(&o, "rounds", "0", err, sizeof err), FRL_EINVAL);
    assert_int_equal(frl_server_opts_set(&o, "rounds", "3x", err, sizeof err), FRL_EINVAL);
    assert_int_equal(frl_server_opts_set(&o, "keep", "1.5", err, sizeof err), FRL_EINVAL);
    assert_int_equal(frl_server_opts_set(&o, "nope", "1", err, sizeof err), FRL_ENOENT);
    char *argv[] = {"frl-server", "--bogus", "1", NULL};
    assert_int_equal(frl_server_opts_parse(&o, 3, argv, err, sizeof err), FRL_EINVAL);
    assert_non_null(strstr(err, "bogus"));
    /* Cross checks. */
    frl_server_opts_defaults(&o);
    assert_int_equal(frl_server_opts_check(&o, err, sizeof err), FRL_EINVAL); /* no cert */
    o.insecure_plaintext = 1;
    assert_int_equal(frl_server_opts_check(&o, err, sizeof err), 0);
    snprintf(o.auth, sizeof o.auth, "token");
    assert_int_equal(frl_server_opts_check(&o, err, sizeof err), FRL_EINVAL); /* token-file missing */
    snprintf(o.auth, sizeof o.auth, "mtls");
    o.quorum = 11;
    assert_int_equal(frl_server_opts_check(&o, err, sizeof err), FRL_EINVAL); /* > per-round */
}

static void test_print_config_reads_back(void **st)
{
    frl_server_opts o, p;
    frl_server_opts_defaults(&o);
    snprintf(o.state_dir, sizeof o.state_dir, "/var/lib/frl # x");
    o.lr = 0.123456789;
    char path[] = "/tmp/frl-test-print-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    frl_server_opts_print(&o, f, 0);
    fclose(f);
    frl_server_opts_defaults(&p);
    char err[256];
    char *argv[] = {"frl-server", "--config", path, NULL};
    assert_int_equal(frl_server_opts_parse(&p, 3, argv, err, sizeof err), 0);
    assert_string_equal(p.state_dir, o.state_dir);
    assert_true(p.lr == o.lr);
    unlink(path);
}

static void test_split_hostport(void **st)
{
    char h[64];
    int port;
    assert_int_equal(frl_server_split_hostport("127.0.0.1:7700", h, sizeof h, &port), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(port, 7700);
    assert_int_equal(frl_server_split_hostport("[::1]:9", h, sizeof h, &port), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(frl_server_split_hostport("host", h, sizeof h, &port), FRL_EINVAL);
    assert_int_equal(frl_server_split_hostport("h:70000", h, sizeof h, &port), FRL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_documented_values),
        cmocka_unit_test(test_flags_override_config_file),
        cmocka_unit_test(test_bad_values_and_unknown_keys_are_refused),
        cmocka_unit_test(test_print_config_reads_back),
        cmocka_unit_test(test_split_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
