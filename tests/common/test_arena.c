#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/frl_arena.h"

static void test_alloc_respects_alignment_and_capacity(void **state)
{
    (void)state;
    frl_arena_t a;
    assert_int_equal(frl_arena_init(&a, 1000), 0);
    char *p = frl_arena_alloc(&a, 3, 1);
    assert_non_null(p);
    float *f = frl_arena_alloc(&a, 16, 64);
    assert_non_null(f);
    assert_int_equal((uintptr_t)f % 64, 0);
    assert_null(frl_arena_alloc(&a, 5000, 8));
    assert_null(frl_arena_alloc(&a, SIZE_MAX, 8)); /* no overflow */
    frl_arena_free(&a);
}

static void test_reset_reuses_memory_and_keeps_high_water(void **state)
{
    (void)state;
    frl_arena_t a;
    assert_int_equal(frl_arena_init(&a, 256), 0);
    void *p1 = frl_arena_alloc(&a, 200, 8);
    frl_arena_reset(&a);
    void *p2 = frl_arena_calloc(&a, 100, 8);
    assert_ptr_equal(p1, p2);
    assert_int_equal(((unsigned char *)p2)[99], 0);
    assert_true(a.high >= 200);
    frl_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_respects_alignment_and_capacity),
        cmocka_unit_test(test_reset_reuses_memory_and_keeps_high_water),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
