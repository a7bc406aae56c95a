#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/frl_error.h"

static void test_every_code_has_a_name_and_message(void **state)
{
    (void)state;
#define XX(name, value, msg)                                                                                           \
    assert_string_equal(frl_err_name(value), "FRL_" #name);                                                           \
    assert_string_equal(frl_strerror(value), msg);                                                                     \
    assert_true(value < 0);
    FRL_ERRNO_MAP(XX)
#undef XX
}

static void test_success_and_unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(frl_err_name(0), "FRL_OK");
    assert_string_equal(frl_strerror(0), "success");
    assert_string_equal(frl_err_name(-9999), "FRL_EUNKNOWN");
    assert_string_equal(frl_strerror(12345), "unknown error");
}

static void test_errorf_formats_the_message_and_returns_the_code(void **state)
{
    (void)state;
    char err[64];
    assert_int_equal(frl_errorf(FRL_EFORMAT, err, sizeof err, "line %u: %s", 7u, "bad"), FRL_EFORMAT);
    assert_string_equal(err, "line 7: bad");
}

static void test_errorf_truncates_to_the_buffer(void **state)
{
    (void)state;
    char err[8];
    memset(err, 'x', sizeof err);
    assert_int_equal(frl_errorf(FRL_EINVAL, err, sizeof err, "%s", "0123456789"), FRL_EINVAL);
    assert_string_equal(err, "0123456");
}

static void test_errorf_without_a_buffer_only_returns_the_code(void **state)
{
    (void)state;
    char err[4] = "abc";
    assert_int_equal(frl_errorf(FRL_EIO, NULL, 16, "x"), FRL_EIO);
    assert_int_equal(frl_errorf(FRL_EIO, err, 0, "x"), FRL_EIO);
    assert_string_equal(err, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_name_and_message),
        cmocka_unit_test(test_success_and_unknown_codes),
        cmocka_unit_test(test_errorf_formats_the_message_and_returns_the_code),
        cmocka_unit_test(test_errorf_truncates_to_the_buffer),
        cmocka_unit_test(test_errorf_without_a_buffer_only_returns_the_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
