#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/frl_error.h"
#include "common/frl_log.h"

static char *capture(frl_log_format fmt, frl_log_level lvl, const char *event, const char *kv)
{
    static char buf[4096];
    memset(buf, 0, sizeof buf);
    FILE *f = fmemopen(buf, sizeof buf, "w");
    frl_log_set_stream(f);
    frl_log_set_format(fmt);
    frl_log(lvl, event, "%s", kv);
    fclose(f);
    frl_log_set_stream(NULL);
    frl_log_set_format(FRL_LOG_KV);
    return buf;
}

static void test_kv_line_has_level_event_and_fields(void **state)
{
    (void)state;
    frl_log_set_level(FRL_LOG_INFO);
    char *s = capture(FRL_LOG_KV, FRL_LOG_INFO, "round_done", "round=3 acc=0.81");
    assert_non_null(strstr(s, "level=info event=round_done round=3 acc=0.81\n"));
}

static void test_json_line_quotes_and_escapes_values(void **state)
{
    (void)state;
    frl_log_set_level(FRL_LOG_INFO);
    char *s = capture(FRL_LOG_JSON, FRL_LOG_WARN, "peer", "reason=\"bad \\\"frame\\\" len\" n=5");
    assert_non_null(strstr(s, "\"level\":\"warn\",\"event\":\"peer\""));
    assert_non_null(strstr(s, "\"n\":\"5\"}"));
}

static void test_messages_below_the_level_are_dropped(void **state)
{
    (void)state;
    frl_log_set_level(FRL_LOG_WARN);
    char *s = capture(FRL_LOG_KV, FRL_LOG_INFO, "noise", "x=1");
    assert_int_equal(strlen(s), 0);
    frl_log_set_level(FRL_LOG_INFO);
}

static void test_level_names_parse(void **state)
{
    (void)state;
    frl_log_level l;
    assert_int_equal(frl_log_parse_level("debug", &l), 0);
    assert_int_equal(l, FRL_LOG_DEBUG);
    assert_int_equal(frl_log_parse_level("loud", &l), FRL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_line_has_level_event_and_fields),
        cmocka_unit_test(test_json_line_quotes_and_escapes_values),
        cmocka_unit_test(test_messages_below_the_level_are_dropped),
        cmocka_unit_test(test_level_names_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
