#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/frl_config.h"
#include "common/frl_error.h"

typedef struct {
    char seen[8][2][64];
    int n;
} kv;

static int collect(void *user, const char *key, const char *value)
{
    kv *k = user;
    if (strcmp(key, "reject") == 0)
        return FRL_EINVAL;
    snprintf(k->seen[k->n][0], 64, "%s", key);
    snprintf(k->seen[k->n][1], 64, "%s", value);
    k->n++;
    return 0;
}

static void test_parses_keys_values_comments_and_quotes(void **state)
{
    (void)state;
    kv k = {0};
    const char *text = "# header\n\nlisten = 127.0.0.1:7700\nrounds=20   # twenty\n  name = \"a # b\"  \nempty =\n";
    assert_int_equal(frl_config_parse("t", text, collect, &k, NULL, 0), 0);
    assert_int_equal(k.n, 4);
    assert_string_equal(k.seen[0][0], "listen");
    assert_string_equal(k.seen[0][1], "127.0.0.1:7700");
    assert_string_equal(k.seen[1][1], "20");
    assert_string_equal(k.seen[2][1], "a # b");
    assert_string_equal(k.seen[3][1], "");
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    kv k = {0};
    char err[128];
    assert_int_equal(frl_config_parse("cfg", "a = 1\nno equals here\n", collect, &k, err, sizeof err), FRL_EFORMAT);
    assert_string_equal(err, "cfg:2: expected 'key = value'");
    assert_int_equal(frl_config_parse("cfg", "x = \"open\n", collect, &k, err, sizeof err), FRL_EFORMAT);
    assert_int_equal(frl_config_parse("cfg", "b@d = 1\n", collect, &k, err, sizeof err), FRL_EFORMAT);
    assert_int_equal(frl_config_parse("cfg", "ok = 1\nreject = 2\n", collect, &k, err, sizeof err), FRL_EINVAL);
    assert_non_null(strstr(err, "cfg:2: bad setting 'reject'"));
}

static void test_missing_file_is_a_clear_error(void **state)
{
    (void)state;
    kv k = {0};
    char err[128];
    assert_int_equal(frl_config_load("/nonexistent/frl.conf", collect, &k, err, sizeof err), FRL_ENOENT);
    assert_non_null(strstr(err, "/nonexistent/frl.conf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_keys_values_comments_and_quotes),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_missing_file_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
