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
#include "common/frl_file.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/frl-test-file-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_atomic_write_then_read_round_trip(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/state.bin", dir);
    assert_int_equal(frl_file_write_atomic(path, "hello", 5), 0);
    assert_int_equal(frl_file_write_atomic(path, "world!", 6), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(frl_file_read_all(path, 100, &buf, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "world!", 6);
    free(buf);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0); /* no temp file left behind */
}

static void test_read_refuses_missing_and_oversized_files(void **state)
{
    (void)state;
    char path[128];
    uint8_t *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(frl_file_read_all(path, 100, &buf, &len), FRL_ENOENT);
    snprintf(path, sizeof path, "%s/big", dir);
    assert_int_equal(frl_file_write_atomic(path, "0123456789", 10), 0);
    assert_int_equal(frl_file_read_all(path, 9, &buf, &len), FRL_ETOOBIG);
    assert_null(buf);
}

static void test_mkdirs_creates_nested_directories(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(frl_file_mkdirs(path), 0);
    assert_int_equal(frl_file_mkdirs(path), 0);
    assert_int_equal(access(path, W_OK), 0);
}

static void test_peak_rss_is_reported(void **state)
{
    (void)state;
    assert_true(frl_peak_rss_kb() > 0);
    assert_true(frl_rss_kb() > 0);
    assert_true(frl_now_s() > 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_then_read_round_trip),
        cmocka_unit_test(test_read_refuses_missing_and_oversized_files),
        cmocka_unit_test(test_mkdirs_creates_nested_directories),
        cmocka_unit_test(test_peak_rss_is_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
