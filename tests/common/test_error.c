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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_name_and_message),
        cmocka_unit_test(test_success_and_unknown_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
