/* test_http_accept.c — accept_pick: what browsers send, wildcards and the
 * fallback, q-values (grammar and order), the most specific range, case,
 * parameters and OWS, malformed ranges skipped, the length and count limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accept.h"

enum { AVIF, WEBP, JPEG };
static const char *const aw_j[] = {"image/avif", "image/webp", "image/jpeg"};
#define PICK(accept) accept_pick((accept), aw_j, 3)

static void test_browsers(void **state) {
    (void)state;
    const char *chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    const char *firefox = "image/avif,image/webp,*/*";
    const char *safari = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,"
                         "video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
    assert_int_equal(PICK(chrome), AVIF);
    assert_int_equal(PICK(firefox), AVIF);
    assert_int_equal(PICK(safari), AVIF); /* webp and avif both q 1: the offers' order */
    const char *const jxl_first[] = {"image/jxl", "image/avif", "image/jpeg"};
    assert_int_equal(accept_pick(safari, jxl_first, 3), 0);
    assert_int_equal(PICK("image/webp,*/*"), WEBP); /* a browser without AVIF */
    const char *const webp_jpeg[] = {"image/webp", "image/jpeg"};
    assert_int_equal(accept_pick(chrome, webp_jpeg, 2), 0);
    assert_int_equal(accept_pick("image/avif,*/*", webp_jpeg, 2), 1);
}

static void test_wildcards_and_fallback(void **state) {
    (void)state;
    /* Matched only through a wildcard: nothing said about AVIF or WebP. */
    assert_int_equal(PICK("*/*"), JPEG);
    assert_int_equal(PICK("image/*"), JPEG);
    assert_int_equal(PICK("image/*, */*;q=0.1"), JPEG);
    assert_int_equal(PICK(NULL), JPEG);
    assert_int_equal(PICK(""), JPEG);
    assert_int_equal(PICK(" \t "), JPEG);
    assert_int_equal(PICK(" , ,,"), JPEG);
    /* Nothing acceptable: the fallback, even when it is refused itself. */
    assert_int_equal(PICK("image/png"), JPEG);
    assert_int_equal(PICK("text/html, application/json;q=0.9"), JPEG);
    assert_int_equal(PICK("image/webp;q=0"), JPEG);
    assert_int_equal(PICK("image/avif;q=0, image/webp;q=0, image/jpeg;q=0"), JPEG);
    assert_int_equal(PICK("*/*;q=0"), JPEG);
    /* The fallback refused, the others only through star/star: the earliest. */
    assert_int_equal(PICK("image/jpeg;q=0, */*"), AVIF);
    assert_int_equal(PICK("image/jpeg;q=0.5, */*"), AVIF);
    assert_int_equal(PICK("image/jpeg;q=0, image/avif;q=0, image/*"), WEBP);
    /* An exact match beats a wildcard at the same q, wherever the offer is. */
    assert_int_equal(PICK("image/webp, image/*"), WEBP);
    assert_int_equal(PICK("image/jpeg, */*"), JPEG);
    assert_int_equal(PICK("image/avif, image/*"), AVIF);
    /* type/star beats star/star at the same q, even over the fallback. */
    const char *const avif_text[] = {"image/avif", "text/plain"};
    assert_int_equal(accept_pick("image/*, */*", avif_text, 2), 0);
    assert_int_equal(accept_pick("*/*", avif_text, 2), 1);
    assert_int_equal(accept_pick("text/*, */*", avif_text, 2), 1);
}

static void test_q_order(void **state) {
    (void)state;
    assert_int_equal(PICK("image/avif;q=0.5,image/webp"), WEBP);
    assert_int_equal(PICK("image/avif,image/webp;q=0.9,*/*;q=0.1"), AVIF);
    assert_int_equal(PICK("image/avif;q=0.001,image/webp;q=0.002"), WEBP);
    assert_int_equal(PICK("image/avif;q=0.002,image/webp;q=0.001"), AVIF);
    assert_int_equal(PICK("image/avif;q=0.3,image/webp;q=0.3"), AVIF); /* tie: the earlier */
    assert_int_equal(PICK("image/webp, image/avif"), AVIF);
    assert_int_equal(PICK("image/jpeg, image/webp"), WEBP);
    /* q before specificity: a wildcard at a higher q beats an exact match. */
    assert_int_equal(PICK("image/avif;q=0.9, */*"), JPEG);
    assert_int_equal(PICK("image/webp;q=0.5, image/*"), JPEG);
    /* Every form of the grammar. */
    assert_int_equal(PICK("image/avif;q=0.5,image/webp;q=1."), WEBP);
    assert_int_equal(PICK("image/avif;q=0.5,image/webp;q=1.0"), WEBP);
    assert_int_equal(PICK("image/avif;q=0.5,image/webp;q=1.000"), WEBP);
    assert_int_equal(PICK("image/avif;q=0.5,image/webp;q=1"), WEBP);
    assert_int_equal(PICK("image/avif;q=0.,image/webp;q=0.001"), WEBP);
    assert_int_equal(PICK("image/avif;q=0.000,image/webp;q=0.01"), WEBP);
    assert_int_equal(PICK("image/avif;q=0,image/webp;q=0.1"), WEBP);
    assert_int_equal(PICK("image/avif;q=0.999,image/webp;q=0.99"), AVIF);
    assert_int_equal(PICK("image/avif;Q=0.2,image/webp;q=0.3"), WEBP);
    assert_int_equal(PICK("image/avif;Q=0, */*"), JPEG);
}

static void test_most_specific(void **state) {
    (void)state;
    /* image/avif;q=0 decides avif's q, not image/star;q=1. */
    const char *const avif_jpeg[] = {"image/avif", "image/jpeg"};
    assert_int_equal(accept_pick("image/avif;q=0,image/*;q=1,image/jpeg;q=0.1", avif_jpeg, 2), 1);
    assert_int_equal(accept_pick("*/*;q=1,image/*;q=0.1,image/jpeg;q=0.2", avif_jpeg, 2), 1);
    assert_int_equal(PICK("image/*;q=0.1, image/webp;q=0.5, */*;q=0.9"), WEBP);
    assert_int_equal(PICK("*/*;q=0.9, image/*;q=0.1, image/webp;q=0.2"), WEBP);
    assert_int_equal(PICK("image/avif;q=0, image/*"), JPEG);
    /* The same range twice: the higher q. */
    assert_int_equal(PICK("image/webp;q=0.2, image/webp;q=0.7, image/avif;q=0.5"), WEBP);
    assert_int_equal(PICK("image/webp;q=0.7, image/webp;q=0.2, image/avif;q=0.5"), WEBP);
    assert_int_equal(PICK("image/webp;q=0, image/webp, image/avif;q=0.5"), WEBP);
}

static void test_case_params_ows(void **state) {
    (void)state;
    assert_int_equal(PICK("IMAGE/AVIF"), AVIF);
    assert_int_equal(PICK("Image/WebP;Q=0.5, image/AVIF;q=0.4"), WEBP);
    assert_int_equal(PICK("IMAGE/*;q=0.5, image/WEBP;q=0.4"), JPEG);
    const char *const upper[] = {"IMAGE/Avif", "Image/JPEG"};
    assert_int_equal(accept_pick("image/avif", upper, 2), 0);
    /* Parameters other than q are read and ignored, quoted ones included:
     * the comma and q=1 inside the quotes are no range and no weight. */
    assert_int_equal(PICK("image/avif;foo=bar;q=0.5;baz=\"a,b;q=1\", image/webp;q=0.4"), AVIF);
    assert_int_equal(PICK("image/avif;x=\"a\\\"b,c\";q=0.5, image/webp;q=0.4"), AVIF);
    assert_int_equal(PICK("image/webp;level=1"), WEBP);
    assert_int_equal(PICK("image/webp;level=1;q=0.5, image/avif;q=0.4"), WEBP);
    assert_int_equal(PICK("image/avif;;q=0.5 ;, image/webp;q=0.4"), AVIF);
    /* OWS around commas and semicolons. */
    assert_int_equal(PICK("  image/webp ; q=0.5 ,\timage/avif;q=0.4  "), WEBP);
    assert_int_equal(PICK("image/webp\t;\tq=0.5\t,image/avif ;q=0.4"), WEBP);
    /* An offer written with parameters is matched by its type/subtype. */
    const char *const with_params[] = {"image/avif; q=1", "image/jpeg"};
    assert_int_equal(accept_pick("image/avif", with_params, 2), 0);
}

static void test_malformed_skipped(void **state) {
    (void)state;
    /* Read as absent, each would have given AVIF or JPEG, not WEBP. */
    static const char *const bad[] = {
        "image/avif;q=1.001",
        "image/avif;q=1.01",
        "image/avif;q=0.1234",
        "image/avif;q=2",
        "image/avif;q=-1",
        "image/avif;q=.5",
        "image/avif;q=",
        "image/avif;q",
        "image/avif;q=\"1\"",
        "image/avif;q=1;q=1",
        "image/avif;q = 1",
        "image/avif;q =1",
        "image/avif;q=0.5x",
        "image/avif;=1",
        "image/avif;foo",
        "image/avif;foo=",
        "image/avif foo",
        "image/avif;foo=bar baz",
        "image/avif/x",
        "image/ avif",
        "image /avif",
        "*/avif",
        "im\xc3\xa1ge/avif",
        "image/av\x01if",
        "image/avif;q=0x1",
        "image/avif;q=1e0",
        "image/avif;f=\"a\x01\"",
    };
    char header[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(header, sizeof(header), "%s, image/webp;q=0.5", bad[i]);
        if (PICK(header) != WEBP)
            fail_msg("\"%s\" not skipped", header);
    }
    /* An unterminated quote takes the rest of the header with it. */
    assert_int_equal(PICK("image/webp;q=0.5, image/avif;x=\"a, image/avif"), WEBP);
    /* Nothing usable: the fallback. */
    static const char *const garbage[] = {
        "garbage",
        ";;;",
        ",,,",
        "\"",
        "image/avif;foo=\"x",
        "/",
        "*",
        "*/",
        "/*",
        "image/",
        "\"image/avif\"",
        ";q=1",
        "image/avif;q=1.5, image/webp;q=9",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        if (PICK(garbage[i]) != JPEG)
            fail_msg("\"%s\" not the fallback", garbage[i]);
}

static void test_limits(void **state) {
    (void)state;
    /* 4096 bytes are read; 4097 are not. */
    char *h = malloc(4098);
    assert_non_null(h);
    memset(h, ' ', 4096);
    memcpy(h + 4096 - strlen("image/webp"), "image/webp", strlen("image/webp"));
    h[4096] = '\0';
    assert_int_equal(PICK(h), WEBP);
    memmove(h + 1, h, 4097);
    h[0] = ' ';
    assert_int_equal(strlen(h), 4097);
    assert_int_equal(PICK(h), JPEG);
    free(h);

    /* 64 elements are read, malformed ones counted; empty ones are not. */
    char buf[2048];
    static const char *const fillers[] = {"x/y,", "bad,", "a/b;q=9,"};
    for (size_t f = 0; f < sizeof(fillers) / sizeof(fillers[0]); f++) {
        for (int count = 63; count <= 64; count++) {
            buf[0] = '\0';
            for (int i = 0; i < count; i++)
                strcat(buf, fillers[f]);
            strcat(buf, "image/webp");
            assert_int_equal(PICK(buf), count == 63 ? WEBP : JPEG);
        }
    }
    memset(buf, ',', 200);
    strcpy(buf + 200, "image/webp");
    assert_int_equal(PICK(buf), WEBP);
}

static void test_one_offer(void **state) {
    (void)state;
    const char *const one[] = {"image/jpeg"};
    assert_int_equal(accept_pick(NULL, one, 1), 0);
    assert_int_equal(accept_pick("image/png", one, 1), 0);
    assert_int_equal(accept_pick("image/jpeg;q=0", one, 1), 0);
    assert_int_equal(accept_pick("image/jpeg", one, 1), 0);
    assert_int_equal(accept_pick("*/*", one, 1), 0);
    assert_int_equal(accept_pick("*/*", one, 0), -1);
}

/* Every prefix of some tricky headers, each in a buffer of its own length (so
 * that ASan sees a read past the end), and every byte value at every place:
 * an index in range, never a crash. */
static void test_any_input(void **state) {
    (void)state;
    static const char *const seeds[] = {
        "image/avif;foo=\"a\\\"b,c\";q=0.5 , image/webp;q=0.4;x=\"\\",
        "image/webp,image/avif,image/jxl,video/*;q=0.8,image/*;q=0.8,*/*;q=0.5",
        "*/*;q=1.000;Q=0.;\t;,image/*;q=0.001\"",
    };
    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
        size_t len = strlen(seeds[s]);
        for (size_t cut = 0; cut <= len; cut++) {
            char *h = malloc(cut + 1);
            assert_non_null(h);
            memcpy(h, seeds[s], cut);
            h[cut] = '\0';
            int i = PICK(h);
            assert_true(i >= 0 && i < 3);
            for (size_t at = 0; at < cut; at++) {
                char was = h[at];
                for (int c = 1; c < 256; c++) {
                    h[at] = (char)c;
                    i = PICK(h);
                    assert_true(i >= 0 && i < 3);
                }
                h[at] = was;
            }
            free(h);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browsers),        cmocka_unit_test(test_wildcards_and_fallback),
        cmocka_unit_test(test_q_order),         cmocka_unit_test(test_most_specific),
        cmocka_unit_test(test_case_params_ows), cmocka_unit_test(test_malformed_skipped),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_one_offer),
        cmocka_unit_test(test_any_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
