/* test_units.c — sizes, counts and durations through the one shared parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "units.h"

static void test_sizes(void **state) {
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(units_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(units_parse_size("16K", &v), 0);
    assert_int_equal(v, 16384);
    assert_int_equal(units_parse_size("20M", &v), 0);
    assert_int_equal(v, 20ULL << 20);
    assert_int_equal(units_parse_size("1g", &v), 0);
    assert_int_equal(v, 1ULL << 30);
    assert_int_equal(units_parse_size(" 2T ", &v), 0);
    assert_int_equal(v, 2ULL << 40);
}

static void test_size_errors(void **state) {
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_size("", &v), -1);
    assert_int_equal(units_parse_size("M", &v), -1);
    assert_int_equal(units_parse_size("-1", &v), -1);
    assert_int_equal(units_parse_size("20Q", &v), -1);
    assert_int_equal(units_parse_size("20MB", &v), -1);
    assert_int_equal(units_parse_size("1.5M", &v), -1);
    assert_int_equal(units_parse_size("99999999999999999999", &v), -1);
    assert_int_equal(units_parse_size("17179869184G", &v), -1); /* 2^34 G overflows */
    assert_int_equal(units_parse_size(NULL, &v), -1);
}

static void test_counts(void **state) {
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_count("50M", &v), 0);
    assert_int_equal(v, 50000000);
    assert_int_equal(units_parse_count("3K", &v), 0);
    assert_int_equal(v, 3000);
    assert_int_equal(units_parse_count("7", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(units_parse_count("1T", &v), -1);
}

static void test_durations(void **state) {
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_duration("200ms", &v), 0);
    assert_int_equal(v, 200);
    assert_int_equal(units_parse_duration("10s", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(units_parse_duration("10", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(units_parse_duration("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(units_parse_duration("24h", &v), 0);
    assert_int_equal(v, 86400000);
    assert_int_equal(units_parse_duration("7d", &v), 0);
    assert_int_equal(v, 7 * 86400000ULL);
    assert_int_equal(units_parse_duration("10x", &v), -1);
    assert_int_equal(units_parse_duration("s", &v), -1);
    assert_int_equal(units_parse_duration("1 h", &v), 0);
    assert_int_equal(v, 3600000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
