/* test_http_request.c — Content-Type classification, upload query parameters
 * (every field, every range, unknown and repeated names), the long-poll wait
 * parameter, If-None-Match, the client behind trusted proxies (X-Forwarded-For). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "request.h"

static const struct job_param_limits lim = {.max_dimension = 4096, .default_quality = 80};

static void test_body_kind(void **state) {
    (void)state;
    assert_int_equal(request_body_kind(NULL), REQUEST_BODY_JSON);
    assert_int_equal(request_body_kind(""), REQUEST_BODY_JSON);
    assert_int_equal(request_body_kind("application/json"), REQUEST_BODY_JSON);
    assert_int_equal(request_body_kind("Application/JSON; charset=utf-8"), REQUEST_BODY_JSON);
    assert_int_equal(request_body_kind("  application/json ;charset=UTF-8"), REQUEST_BODY_JSON);
    assert_int_equal(request_body_kind("image/jpeg"), REQUEST_BODY_UPLOAD);
    assert_int_equal(request_body_kind("IMAGE/PNG"), REQUEST_BODY_UPLOAD);
    assert_int_equal(request_body_kind("image/svg+xml"), REQUEST_BODY_UPLOAD);
    assert_int_equal(request_body_kind("image/webp; q=1"), REQUEST_BODY_UPLOAD);
    assert_int_equal(request_body_kind("application/octet-stream"), REQUEST_BODY_UPLOAD);
    assert_int_equal(request_body_kind("image/"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("image"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("image/a/b"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("text/plain"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("application/x-www-form-urlencoded"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("multipart/form-data; boundary=x"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("application/jsonx"), REQUEST_BODY_OTHER);
    assert_int_equal(request_body_kind("video/mp4"), REQUEST_BODY_OTHER);
}

/* Parses query into fresh params; returns the rc and leaves err/p for checks. */
static int parse(const char *query, struct job_params *p, struct job_param_error *err) {
    job_params_init(p, &lim);
    memset(err, 0, sizeof(*err));
    return request_params_from_query(p, query, &lim, err);
}

static void test_query_every_field(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err;
    assert_int_equal(parse("width=640&height=480&fit=cover&crop=attention&format=webp&quality=55"
                           "&callback_url=https%3A%2F%2Fexample.com%2Fcb&email=a%40b.example",
                           &p, &err),
                     0);
    assert_int_equal(p.out[0].width, 640);
    assert_int_equal(p.out[0].height, 480);
    assert_int_equal(p.out[0].fit, JOB_FIT_COVER);
    assert_int_equal(p.out[0].crop, JOB_CROP_ATTENTION);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_WEBP);
    assert_int_equal(p.out[0].quality, 55);
    assert_string_equal(p.callback_url, "https://example.com/cb");
    assert_string_equal(p.email, "a@b.example");
    assert_null(p.url);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), 0);
    job_params_free(&p);

    /* Defaults when nothing is given; height follows width after finish. */
    assert_int_equal(parse(NULL, &p, &err), 0);
    assert_int_equal(parse("", &p, &err), 0);
    assert_int_equal(parse("width=100", &p, &err), 0);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), 0);
    assert_int_equal(p.out[0].width, 100);
    assert_int_equal(p.out[0].height, 100);
    assert_int_equal(p.out[0].quality, 80);
    assert_int_equal(p.out[0].fit, JOB_FIT_INSIDE);
    job_params_free(&p);

    /* Every enum value and alias. */
    const char *ok[] = {"fit=inside",  "fit=contain",  "fit=fill",        "crop=centre",
                        "crop=center", "crop=entropy", "format=original", "format=jpeg",
                        "format=jpg",  "format=png",   "format=avif",     "format=gif",
                        "width=1",     "width=4096",   "height=1",        "height=4096",
                        "quality=1",   "quality=100",  "fit=cover&",      NULL};
    for (int i = 0; ok[i]; i++) {
        assert_int_equal(parse(ok[i], &p, &err), 0);
        job_params_free(&p);
    }
}

static void expect_refused(const char *query, const char *code, const char *field) {
    struct job_params p;
    struct job_param_error err;
    assert_int_equal(parse(query, &p, &err), -1);
    assert_string_equal(err.code, code);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 0);
    job_params_free(&p);
}

static void test_query_ranges_and_names(void **state) {
    (void)state;
    expect_refused("width=0", "invalid_param", "width");
    expect_refused("width=4097", "invalid_param", "width");
    expect_refused("width=-1", "invalid_param", "width");
    expect_refused("width=abc", "invalid_param", "width");
    expect_refused("width=", "invalid_param", "width");
    expect_refused("width=1.5", "invalid_param", "width");
    expect_refused("width=99999999999999999999", "invalid_param", "width");
    expect_refused("height=0", "invalid_param", "height");
    expect_refused("height=4097", "invalid_param", "height");
    expect_refused("quality=0", "invalid_param", "quality");
    expect_refused("quality=101", "invalid_param", "quality");
    expect_refused("fit=zoom", "invalid_param", "fit");
    expect_refused("crop=left", "invalid_param", "crop");
    expect_refused("format=bmp", "invalid_param", "format");
    expect_refused("callback_url=ftp%3A%2F%2Fx", "invalid_param", "callback_url");
    expect_refused("email=nobody", "invalid_param", "email");
    expect_refused("url=not-a-url", "invalid_param", "url");
    expect_refused("size=10", "invalid_param", "size");
    expect_refused("Width=10", "invalid_param", "Width");
    expect_refused("width=10&width=20", "invalid_param", "width");
    expect_refused("fit=cover&quality=5&fit=fill", "invalid_param", "fit");
    /* malformed: no '=', or an empty name */
    expect_refused("width", "invalid_param", "");
    expect_refused("=5", "invalid_param", "");
    expect_refused("width=5&&height=5", "invalid_param", "");
    expect_refused("width=abc&&", "invalid_param", ""); /* malformed before any value */
}

/* A value is checked whole, as its JSON twin: a %00 does not cut it short, white
 * space ('+' is one) is not trimmed, an integer is all digits. */
static void test_query_values_strict(void **state) {
    (void)state;
    static const char *const refused[][2] = {
        {"email=a%40b.example%00x", "email"},
        {"email=a@b.example%00x", "email"},
        {"email=a%40b.example%00", "email"},
        {"url=http%3A%2F%2Fh%2Fx%00y", "url"},
        {"callback_url=https%3A%2F%2Fh%2F%00", "callback_url"},
        {"fit=fill%00", "fit"},
        {"format=png%00jpeg", "format"},
        {"width=100%00", "width"},
        {"width=%00100", "width"},
        {"width=%20100", "width"},
        {"width=+100", "width"},
        {"width=100+", "width"},
        {"width=100%20", "width"},
        {"width=%09100", "width"},
        {"width=100%0A", "width"},
        {"height=%2B5", "height"},
        {"height=+5", "height"},
        {"width=100abc", "width"},
        {"width=0100", "width"},
        {"quality=1e2", "quality"},
        {"quality=0x10", "quality"},
        {"fit=+cover", "fit"},
        {"email=+a%40b.example", "email"},
        {"width=10&email=a%40b.example%00x", "email"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct job_params p;
        struct job_param_error err;
        if (parse(refused[i][0], &p, &err) != -1 || strcmp(err.code, "invalid_param") != 0 ||
            strcmp(err.field, refused[i][1]) != 0)
            fail_msg("%s: not refused as invalid_param %s (field '%s')", refused[i][0],
                     refused[i][1], err.field);
        assert_null(p.email); /* nothing of a refused value stored */
        job_params_free(&p);
    }
    /* What is accepted is stored exactly: the decoded value, whole. */
    struct job_params p;
    struct job_param_error err;
    assert_int_equal(parse("email=a%40b.example&width=100&format=%6Apg", &p, &err), 0);
    assert_string_equal(p.email, "a@b.example");
    assert_int_equal(p.out[0].width, 100);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_JPEG);
    job_params_free(&p);
}

static void test_query_url_with_upload(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err;
    assert_int_equal(parse("url=https%3A%2F%2Fexample.com%2Fa.jpg", &p, &err), 0);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), -1);
    assert_string_equal(err.field, "url");
    job_params_free(&p);
}

static void test_etag(void **state) {
    (void)state;
    assert_true(request_etag_matches("\"abc\"", "abc"));
    assert_true(request_etag_matches("W/\"abc\"", "abc"));
    assert_true(request_etag_matches("\"x\", \"abc\"", "abc"));
    assert_true(request_etag_matches("\"x\",W/\"abc\" , \"y\"", "abc"));
    assert_true(request_etag_matches("*", "abc"));
    assert_true(request_etag_matches("  * ", "abc"));
    assert_true(request_etag_matches(",,\"abc\"", "abc"));
    assert_false(request_etag_matches("\"abcd\"", "abc"));
    assert_false(request_etag_matches("\"ab\"", "abc"));
    assert_false(request_etag_matches("abc", "abc")); /* unquoted: not an entity tag */
    assert_false(request_etag_matches("\"abc", "abc"));
    assert_false(request_etag_matches("", "abc"));
    assert_false(request_etag_matches(NULL, "abc"));
    assert_false(request_etag_matches("\"x\", \"y\"", "abc"));
    assert_false(request_etag_matches("*x", "abc"));
    assert_false(request_etag_matches("\"\"", "abc"));
}

static void test_wait(void **state) {
    (void)state;
    int s = -1;
    assert_int_equal(request_wait_seconds(NULL, 30, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(request_wait_seconds("", 30, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(request_wait_seconds("waiting=5&x", 30, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(request_wait_seconds("wait=0", 30, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(request_wait_seconds("wait=30", 30, &s), 0);
    assert_int_equal(s, 30);
    assert_int_equal(request_wait_seconds("a=b&wait=07&c", 30, &s), 0);
    assert_int_equal(s, 7);
    assert_int_equal(request_wait_seconds("wait=%31%32", 30, &s), 0);
    assert_int_equal(s, 12);
    static const char *const bad[] = {
        "wait=31",       "wait=-1", "wait=abc",  "wait=",     "wait",
        "wait=1.5",      "wait=+5", "wait= 5",   "wait=5x",   "wait=99999999999999999999",
        "wait=1&wait=2", "wait=%",  "wait=5%00", "wait=5%00x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = -1;
        assert_int_equal(request_wait_seconds(bad[i], 30, &s), -1);
    }
}

/* Which address is the client: the peer, or from a trusted peer the
 * rightmost X-Forwarded-For entry that is not trusted. */
static void test_query_value(void **state) {
    (void)state;
    char v[8];
    assert_int_equal(request_query_value(NULL, "state", v, sizeof(v)), 0);
    assert_int_equal(request_query_value("", "state", v, sizeof(v)), 0);
    assert_int_equal(request_query_value("states=done", "state", v, sizeof(v)), 0);
    assert_int_equal(request_query_value("a=1&state=done&b", "state", v, sizeof(v)), 1);
    assert_string_equal(v, "done");
    assert_int_equal(request_query_value("cursor=12%3A3", "cursor", v, sizeof(v)), 1);
    assert_string_equal(v, "12:3");
    assert_int_equal(request_query_value("state", "state", v, sizeof(v)), 1);
    assert_string_equal(v, "");
    assert_int_equal(request_query_value("state=a+b", "state", v, sizeof(v)), 1);
    assert_string_equal(v, "a b");
    assert_int_equal(request_query_value("state=1&state=2", "state", v, sizeof(v)), -1);
    assert_int_equal(request_query_value("state=a%00b", "state", v, sizeof(v)), -1);
    assert_int_equal(request_query_value("state=1234567", "state", v, sizeof(v)), 1);
    assert_int_equal(request_query_value("state=12345678", "state", v, sizeof(v)), -1);
}

static void test_client_address(void **state) {
    (void)state;
    static const char trusted_text[] = "127.0.0.1/32 10.0.0.0/8 ::1/128";
    static const struct {
        const char *peer;
        const char *xff; /* the headers joined, as request_forwarded_for gives them */
        const char *want;
    } cases[] = {
        /* No trusted peer: X-Forwarded-For is not believed. */
        {"203.0.113.5", NULL, "203.0.113.5"},
        {"203.0.113.5", "198.51.100.1", "203.0.113.5"},
        {"192.168.1.1", "10.0.0.1, 198.51.100.1", "192.168.1.1"},
        /* From a trusted proxy: the rightmost untrusted entry. */
        {"127.0.0.1", NULL, "127.0.0.1"},
        {"127.0.0.1", "198.51.100.1", "198.51.100.1"},
        {"127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"},  /* a forged left part */
        {"127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"}, /* through two proxies */
        {"127.0.0.1", "198.51.100.1,10.1.2.3,10.9.9.9", "198.51.100.1"},
        {"127.0.0.1", "  198.51.100.1 ,\t10.1.2.3  ", "198.51.100.1"},
        {"::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"}, /* a dual-stack socket */
        {"::1", "2001:db8::7", "2001:db8::7"},
        {"::1", "::ffff:198.51.100.1", "198.51.100.1"},
        {"127.0.0.1", "2001:DB8:0::7", "2001:db8::7"}, /* canonical text */
        /* Every entry trusted: the leftmost. */
        {"127.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.1"},
        {"127.0.0.1", "127.0.0.1", "127.0.0.1"},
        /* A malformed entry stops the walk at the last address read. */
        {"127.0.0.1", "", "127.0.0.1"},
        {"127.0.0.1", "unknown", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.1, unknown", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.1, ", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.1:4711", "127.0.0.1"},
        {"127.0.0.1", "[2001:db8::7]", "127.0.0.1"},
        {"127.0.0.1", "proxy.example, 10.0.0.7", "10.0.0.7"},
        {"127.0.0.1", "198.51.100.1, , 10.0.0.7", "10.0.0.7"},
        {"127.0.0.1", "garbage, 198.51.100.1", "198.51.100.1"}, /* never reached */
        {"127.0.0.1", "198.51.100.1 10.0.0.7", "127.0.0.1"},    /* not a list */
        /* A zone on the peer is ignored. */
        {"fe80::1%eth0", "198.51.100.1", "fe80::1"},
    };
    struct cidr_list trusted;
    char why[128];
    assert_int_equal(cidr_list_parse(&trusted, trusted_text, why, sizeof(why)), 0);
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char a[16];
        char got[CIDR_ADDR_TEXT_MAX] = "(none)";
        if (request_client_address(cases[i].peer, cases[i].xff, &trusted, a) == 0)
            cidr_addr_text(a, got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0) {
            print_error("peer %s, X-Forwarded-For '%s': got %s, want %s\n", cases[i].peer,
                        cases[i].xff ? cases[i].xff : "(none)", got, cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);

    /* Without trusted proxies the peer is always the client. */
    struct cidr_list none = {0};
    unsigned char a[16];
    char got[CIDR_ADDR_TEXT_MAX];
    assert_int_equal(request_client_address("127.0.0.1", "198.51.100.1", &none, a), 0);
    assert_string_equal(cidr_addr_text(a, got, sizeof(got)), "127.0.0.1");
    /* A peer that is no IP address (a unix socket) is no client address. */
    assert_int_equal(request_client_address(NULL, "198.51.100.1", &trusted, a), -1);
    assert_int_equal(request_client_address("/run/t.sock", NULL, &trusted, a), -1);
    cidr_list_free(&trusted);
}

/* The request of head, parsed (its head complete) into ps. */
static const struct parse_request *parsed(struct parse *ps, const char *head) {
    struct parse_limits limits = {.max_header = 4096, .max_body = 0};
    parse_init(ps, &limits);
    size_t used = 0, off = 0, len = strlen(head);
    enum parse_status st;
    do {
        st = parse_feed(ps, head + off, len - off, &used);
        off += used;
    } while (st == PARSE_HEADERS);
    assert_int_equal(st, PARSE_COMPLETE);
    return &ps->req;
}

/* All X-Forwarded-For headers, joined in the order they came. */
static void test_forwarded_for(void **state) {
    (void)state;
    struct parse ps;
    assert_null(request_forwarded_for(parsed(&ps, "GET / HTTP/1.1\r\n\r\n")));
    parse_free(&ps);
    assert_null(request_forwarded_for(parsed(&ps, "GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")));
    parse_free(&ps);
    char *joined =
        request_forwarded_for(parsed(&ps, "GET / HTTP/1.1\r\nHost: example.test\r\n"
                                          "X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n\r\n"));
    assert_string_equal(joined, "6.6.6.6, 198.51.100.1");
    free(joined);
    parse_free(&ps);
    joined = request_forwarded_for(parsed(&ps, "GET / HTTP/1.1\r\nHost: example.test\r\n"
                                               "X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n"
                                               "Accept: */*\r\n"
                                               "x-forwarded-for: 10.0.0.7\r\n"
                                               "X-Forwarded-For:\r\n\r\n"));
    assert_string_equal(joined, "6.6.6.6, 198.51.100.1, 10.0.0.7, ");
    free(joined);
    parse_free(&ps);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_kind),
        cmocka_unit_test(test_query_every_field),
        cmocka_unit_test(test_query_ranges_and_names),
        cmocka_unit_test(test_query_values_strict),
        cmocka_unit_test(test_query_url_with_upload),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_query_value),
        cmocka_unit_test(test_client_address),
        cmocka_unit_test(test_forwarded_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
