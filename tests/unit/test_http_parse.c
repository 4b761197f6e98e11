/* test_http_parse.c — the request parser of the coming HTTP layer: a request
 * whole and byte by byte, a body by Content-Length and chunked, pipelining,
 * keep-alive by version and Connection, Expect, limits, and each form request
 * smuggling needs, refused with its status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "parse.h"

#include <stdio.h>
#include <string.h>

static const struct parse_limits LIMITS = {.max_header = 4096, .max_body = 1000};

/* Feeds text in pieces of step bytes (0: whole), answering PARSE_HEADERS by
 * going on; returns the final status and sets *used to the bytes taken. */
static enum parse_status feed(struct parse *ps, const char *text, size_t step, size_t *taken) {
    size_t len = strlen(text), off = 0;
    enum parse_status st = PARSE_MORE;
    while (off < len) {
        size_t n = step ? (len - off < step ? len - off : step) : len - off;
        size_t used;
        st = parse_feed(ps, text + off, n, &used);
        off += used;
        if (st == PARSE_COMPLETE || st == PARSE_ERROR)
            break;
        if (st == PARSE_MORE && used < n)
            fail_msg("PARSE_MORE but only %zu of %zu bytes taken", used, n);
    }
    *taken = off;
    return st;
}

static void expect_target(const struct parse *ps, const char *want) {
    size_t len;
    const char *t = parse_target(&ps->req, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(t, want, len);
}

static void expect_header(const struct parse *ps, const char *name, const char *want) {
    size_t len;
    const char *v = parse_header_get(&ps->req, name, &len);
    if (v == NULL)
        fail_msg("no header %s", name);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

static void test_whole_and_byte_by_byte(void **state) {
    (void)state;
    const char *req = "GET /v1/thumbnails/abc?wait=5 HTTP/1.1\r\nHost: x\r\n"
                      "X-Long: aaaaaaaaaaaaaaaa\r\n\r\n";
    for (size_t step = 0; step <= 1; step++) {
        struct parse ps;
        parse_init(&ps, &LIMITS);
        size_t used;
        assert_int_equal(feed(&ps, req, step, &used), PARSE_COMPLETE);
        assert_int_equal(used, strlen(req));
        assert_int_equal(ps.req.method, HTTP_GET);
        expect_target(&ps, "/v1/thumbnails/abc?wait=5");
        expect_header(&ps, "host", "x");
        expect_header(&ps, "X-LONG", "aaaaaaaaaaaaaaaa");
        assert_true(ps.req.keep_alive);
        assert_int_equal(ps.req.body_len, 0);
        parse_free(&ps);
    }
}

static void test_bodies(void **state) {
    (void)state;
    struct parse ps;
    parse_init(&ps, &LIMITS);
    size_t used;
    assert_int_equal(
        feed(&ps, "POST /v1/thumbnails HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 3, &used),
        PARSE_COMPLETE);
    assert_int_equal(ps.req.body_len, 5);
    assert_memory_equal(ps.req.body, "hello", 5);
    parse_next(&ps);
    assert_int_equal(feed(&ps,
                          "POST /v1/thumbnails HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                          1, &used),
                     PARSE_COMPLETE);
    assert_int_equal(ps.req.body_len, 5);
    assert_memory_equal(ps.req.body, "abcde", 5);
    parse_free(&ps);
}

/* 100 requests in one buffer: each comes out in turn, the rest left for the next. */
static void test_pipelining(void **state) {
    (void)state;
    char buf[8192] = "";
    for (int i = 0; i < 100; i++) {
        char one[64];
        snprintf(one, sizeof(one), "GET /r/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        strcat(buf, one);
    }
    struct parse ps;
    parse_init(&ps, &LIMITS);
    size_t off = 0, len = strlen(buf);
    for (int i = 0; i < 100; i++) {
        size_t used;
        enum parse_status st = parse_feed(&ps, buf + off, len - off, &used);
        off += used;
        if (st == PARSE_HEADERS) {
            st = parse_feed(&ps, buf + off, len - off, &used);
            off += used;
        }
        assert_int_equal(st, PARSE_COMPLETE);
        char want[32];
        snprintf(want, sizeof(want), "/r/%d", i);
        expect_target(&ps, want);
        parse_next(&ps);
    }
    assert_int_equal(off, len);
    parse_free(&ps);
}

static void test_keep_alive_and_expect(void **state) {
    (void)state;
    static const struct {
        const char *req;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parse ps;
        parse_init(&ps, &LIMITS);
        size_t used;
        assert_int_equal(feed(&ps, cases[i].req, 0, &used), PARSE_COMPLETE);
        if (ps.req.keep_alive != cases[i].keep_alive)
            fail_msg("%s: keep_alive %d", cases[i].req, ps.req.keep_alive);
        parse_free(&ps);
    }
    /* Expect: 100-continue is reported with the head, before the body comes. */
    struct parse ps;
    parse_init(&ps, &LIMITS);
    const char *head = "POST /x HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
    size_t used;
    assert_int_equal(parse_feed(&ps, head, strlen(head), &used), PARSE_HEADERS);
    assert_true(ps.req.expect_continue);
    assert_int_equal(parse_feed(&ps, head + used, strlen(head) - used, &used), PARSE_MORE);
    assert_int_equal(parse_feed(&ps, "ok", 2, &used), PARSE_COMPLETE);
    parse_free(&ps);
}

static void test_refused(void **state) {
    (void)state;
    static const struct {
        const char *req;
        int status;
        const char *why;
    } cases[] = {
        {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400,
         "Content-Length with Transfer-Encoding"},
        {"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
         "two Content-Lengths"},
        {"GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", 400, "obs-fold"},
        {"GET / HTTP/1.1\nHost: x\n\n", 400, "bare LF"},
        {"GET / HTTP/1.1\r\nHost: x\n\r\n", 400, "bare LF in a header"},
        {"GET http://evil.example/ HTTP/1.1\r\n\r\n", 400, "absolute-form"},
        {"GET * HTTP/1.1\r\n\r\n", 400, "* other than OPTIONS"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "another coding"},
        {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417, "another Expect"},
        {"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "a body over the limit"},
        {"GET / HTTP/2.0\r\n\r\n", 505, "another version"},
        {"BREW / HTTP/1.1\r\n\r\n", 501, "an unknown method"},
        {"GET / HTTP/1.1\r\nX: \x01\r\n\r\n", 400, "a control character"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            struct parse ps;
            parse_init(&ps, &LIMITS);
            size_t used;
            enum parse_status st = feed(&ps, cases[i].req, step, &used);
            if (st != PARSE_ERROR || ps.err.status != cases[i].status)
                fail_msg("%s (step %zu): status %d, error %d (%s)", cases[i].why, step, st,
                         ps.err.status, ps.err.message);
            /* Once refused, it stays refused. */
            assert_int_equal(parse_feed(&ps, "GET / HTTP/1.1\r\n\r\n", 18, &used), PARSE_ERROR);
            parse_free(&ps);
        }
    }
    /* OPTIONS * is the one place for *. */
    struct parse ps;
    parse_init(&ps, &LIMITS);
    size_t used;
    assert_int_equal(feed(&ps, "OPTIONS * HTTP/1.1\r\n\r\n", 0, &used), PARSE_COMPLETE);
    parse_free(&ps);
}

static void test_limits(void **state) {
    (void)state;
    struct parse_limits small = {.max_header = 64, .max_body = 4};
    struct parse ps;
    parse_init(&ps, &small);
    size_t used;
    assert_int_equal(feed(&ps,
                          "GET / HTTP/1.1\r\nX-Pad: 0123456789012345678901234567890123456789"
                          "0123456789\r\n\r\n",
                          7, &used),
                     PARSE_ERROR);
    assert_int_equal(ps.err.status, 400);
    parse_free(&ps);
    /* A chunked body is counted as it comes. */
    parse_init(&ps, &small);
    assert_int_equal(
        feed(&ps, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", 0, &used),
        PARSE_ERROR);
    assert_int_equal(ps.err.status, 413);
    assert_string_equal(ps.err.code, "too_large");
    parse_free(&ps);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_and_byte_by_byte),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_keep_alive_and_expect),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests_name("http_parse", tests, NULL, NULL);
}
