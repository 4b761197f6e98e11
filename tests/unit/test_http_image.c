/* test_http_image.c — which of a done job's encodings a request gets
 * (image_choose): the rendition by name, then ?format=, else the Accept header
 * among the rendition's formats, the last listed the fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "handlers.h"

/* Two outputs: a (avif, webp, jpeg: jpeg its fallback, first) and b (png). */
static const char index_text[] = "0 2 a jpeg image/jpeg 900 320 180 e0 0\n"
                                 "0 0 a avif image/avif 400 320 180 e1 900\n"
                                 "0 1 a webp image/webp 500 320 180 e2 1300\n"
                                 "1 0 b png image/png 100 64 64 e3 1800";

static int choose(const char *name, const char *format, const char *accept,
                  struct image_choice *c) {
    return image_choose(index_text, strlen(index_text), "image/jpeg", name, format, accept, c);
}

static void test_by_accept(void **state) {
    (void)state;
    struct image_choice c;
    const struct {
        const char *accept;
        int line;
    } cases[] = {
        {NULL, 0},
        {"*/*", 0},
        {"image/avif,image/webp,*/*", 1},
        {"image/webp,*/*", 2},
        {"image/avif;q=0.5,image/webp", 2},
        {"image/png", 0},
        {"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(choose(NULL, "", cases[i].accept, &c), IMAGE_CHOSEN);
        if (c.line != cases[i].line)
            fail_msg("Accept %s: line %d, expected %d", cases[i].accept ? cases[i].accept : "-",
                     c.line, cases[i].line);
        assert_true(c.vary);
    }
    assert_int_equal(choose("a", "", "image/avif", &c), IMAGE_CHOSEN);
    assert_int_equal(c.line, 1);
    assert_string_equal(c.e.mime, "image/avif");
    assert_int_equal(c.e.offset, 900);
    assert_int_equal(c.e.bytes, 400);
    assert_string_equal(c.e.etag, "e1");
    /* One encoding: nothing to vary by. */
    assert_int_equal(choose("b", "", "image/avif", &c), IMAGE_CHOSEN);
    assert_int_equal(c.line, 3);
    assert_false(c.vary);
}

static void test_by_name_and_format(void **state) {
    (void)state;
    struct image_choice c;
    assert_int_equal(choose("a", "webp", "image/avif", &c), IMAGE_CHOSEN);
    assert_int_equal(c.line, 2);
    assert_false(c.vary); /* chosen by the URL, not the header */
    assert_int_equal(choose(NULL, "jpeg", NULL, &c), IMAGE_CHOSEN);
    assert_int_equal(c.line, 0);
    assert_int_equal(choose("a", "gif", NULL, &c), IMAGE_NO_FORMAT);
    assert_string_equal(c.have, "avif, webp, jpeg");
    assert_int_equal(choose("zz", "", NULL, &c), IMAGE_NO_RENDITION);
    assert_string_equal(c.have, "a, b");
    assert_int_equal(choose("b", "avif", NULL, &c), IMAGE_NO_FORMAT);
    assert_string_equal(c.have, "png");
}

/* A job without res_rend (finished before renditions): one encoding, default. */
static void test_without_index(void **state) {
    (void)state;
    struct image_choice c;
    assert_int_equal(image_choose(NULL, 0, "image/webp", NULL, "", "image/avif", &c), IMAGE_CHOSEN);
    assert_int_equal(c.line, 0);
    assert_false(c.vary);
    assert_int_equal(image_choose(NULL, 0, "image/webp", "default", "webp", NULL, &c),
                     IMAGE_CHOSEN);
    assert_int_equal(image_choose(NULL, 0, "image/webp", "a", "", NULL, &c), IMAGE_NO_RENDITION);
    assert_int_equal(image_choose(NULL, 0, "image/webp", NULL, "jpeg", NULL, &c), IMAGE_NO_FORMAT);
    /* A damaged index is as none. */
    assert_int_equal(image_choose("junk", 4, "image/webp", NULL, "", NULL, &c), IMAGE_CHOSEN);
    assert_int_equal(c.line, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_accept),
        cmocka_unit_test(test_by_name_and_format),
        cmocka_unit_test(test_without_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
