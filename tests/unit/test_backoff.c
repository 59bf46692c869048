/* test_backoff.c - unit tests for backoff_ms: 1 s doubling to 60 s, times jitter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "backoff.h"

/* The result is a whole number of ms; allow 1 ms for how a product with a jitter is rounded. */
#define assert_ms(actual, expected) assert_in_range((actual), (expected) - 1, (expected) + 1)

static void test_doubling(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(1, 1.0), 1000);
    assert_int_equal(backoff_ms(2, 1.0), 2000);
    assert_int_equal(backoff_ms(3, 1.0), 4000);
    assert_int_equal(backoff_ms(4, 1.0), 8000);
    assert_int_equal(backoff_ms(5, 1.0), 16000);
    assert_int_equal(backoff_ms(6, 1.0), 32000);
}

static void test_capped(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(7, 1.0), 60000);
    assert_int_equal(backoff_ms(8, 1.0), 60000);
    assert_int_equal(backoff_ms(32, 1.0), 60000);
    assert_int_equal(backoff_ms(33, 1.0), 60000);
    assert_int_equal(backoff_ms(50, 1.0), 60000);
    assert_int_equal(backoff_ms(1000, 1.0), 60000);
    assert_int_equal(backoff_ms(UINT_MAX, 1.0), 60000);
}

static void test_never_decreases(void **state)
{
    (void)state;
    unsigned prev = 0;
    for (unsigned n = 1; n <= 200; n++) {
        unsigned ms = backoff_ms(n, 1.0);
        assert_true(ms >= prev);
        assert_true(ms <= 60000);
        prev = ms;
    }
}

static void test_jitter_scales(void **state)
{
    (void)state;
    assert_ms(backoff_ms(1, 0.8), 800);
    assert_ms(backoff_ms(1, 1.2), 1200);
    assert_ms(backoff_ms(2, 0.8), 1600);
    assert_ms(backoff_ms(2, 1.2), 2400);
    assert_ms(backoff_ms(3, 0.8), 3200);
    assert_ms(backoff_ms(3, 1.2), 4800);
    /* the jitter applies to the capped delay too, and never takes it past 60 s */
    assert_ms(backoff_ms(7, 0.8), 48000);
    assert_ms(backoff_ms(7, 1.2), 60000);
    assert_ms(backoff_ms(1000, 0.8), 48000);
    assert_ms(backoff_ms(1000, 1.2), 60000);
}

/* Any jitter in 0.8..1.2 stays within those bounds of the plain delay. */
static void test_jitter_bounds(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= 10; n++) {
        unsigned base = backoff_ms(n, 1.0);
        for (int j = 0; j <= 40; j++) {
            double jitter = 0.8 + 0.01 * j;
            unsigned ms = backoff_ms(n, jitter);
            assert_true(ms + 1 >= (unsigned)(base * 0.8));
            assert_true(ms <= (unsigned)(base * 1.2) + 1);
            assert_true(ms <= 60000);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling),        cmocka_unit_test(test_capped),
        cmocka_unit_test(test_never_decreases), cmocka_unit_test(test_jitter_scales),
        cmocka_unit_test(test_jitter_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
