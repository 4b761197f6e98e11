/* test_id.c — job ids: shape, alphabet, uniqueness; fencing tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "id.h"

static int cmp(const void *a, const void *b) {
    return strcmp(a, b);
}

static void test_shape_and_uniqueness(void **state) {
    (void)state;
    enum { N = 10000 };
    char(*ids)[ID_LEN + 1] = calloc(N, sizeof(*ids));
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        assert_int_equal(id_generate(ids[i]), 0);
        assert_int_equal(strlen(ids[i]), ID_LEN);
        assert_true(id_is_valid(ids[i]));
        assert_int_equal(strspn(ids[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_"),
                         ID_LEN);
    }
    qsort(ids, N, sizeof(*ids), cmp);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_validation(void **state) {
    (void)state;
    assert_false(id_is_valid(NULL));
    assert_false(id_is_valid(""));
    assert_false(id_is_valid("short"));
    assert_false(id_is_valid("AAAAAAAAAAAAAAAAAAAAAAA")); /* 23 chars */
    assert_false(id_is_valid("AAAAAAAAAAAAAAAAAAAA/A"));  /* '/' is not base64url */
    assert_false(id_is_valid("AAAAAAAAAAAAAAAAAAAA.."));  /* path tricks */
    assert_false(id_is_valid("AAAAAAAAAAAAAAAAAAAAAB"));  /* last char carries 2 bits only */
    assert_true(id_is_valid("AAAAAAAAAAAAAAAAAAAAAA"));
    assert_true(id_is_valid("-_-_-_-_-_-_-_-_-_-_-w"));
}

static void test_random_hex(void **state) {
    (void)state;
    char a[33], b[33];
    assert_int_equal(id_random_hex(a, 16), 0);
    assert_int_equal(id_random_hex(b, 16), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_and_uniqueness),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_random_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
