/* test_http_respond.c — the error code -> status table and the error document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "respond.h"

static void test_table(void **state) {
    (void)state;
    const struct {
        const char *code;
        int status;
    } want[] = {
        {"invalid_json", 400},       {"invalid_param", 400},    {"bad_request", 400},
        {"unauthorized", 401},       {"forbidden", 403},        {"not_found", 404},
        {"method_not_allowed", 405}, {"not_ready", 409},        {"conflict", 409},
        {"too_large", 413},          {"unsupported_type", 415}, {"unsupported_media_type", 415},
        {"expectation_failed", 417}, {"rate_limited", 429},     {"internal", 500},
        {"not_implemented", 501},    {"queue_full", 503},       {"unavailable", 503},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(respond_status_of(want[i].code), want[i].status);
    assert_int_equal(respond_status_of("no_such_code"), 500);
    assert_int_equal(respond_status_of(""), 500);
}

/* The body written for an error, parsed back. */
static json_t *error_json(const char *code, const char *message, const char *field) {
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(respond_error_body(b, code, message, field), 0);
    size_t len = evbuffer_get_length(b);
    const char *text = (const char *)evbuffer_pullup(b, -1);
    assert_int_equal(text[len - 1], '\n');
    json_t *doc = json_loadb(text, len, 0, NULL);
    evbuffer_free(b);
    assert_non_null(doc);
    return doc;
}

static void test_error_document(void **state) {
    (void)state;
    json_t *doc = error_json("invalid_param", "width must be an integer 1..4096", "width");
    assert_int_equal(json_object_size(doc), 1);
    json_t *err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "invalid_param");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "width must be an integer 1..4096");
    assert_string_equal(json_string_value(json_object_get(err, "field")), "width");
    json_decref(doc);

    doc = error_json("not_found", "no \"such\" job\n", NULL);
    err = json_object_get(doc, "error");
    assert_null(json_object_get(err, "field"));
    assert_string_equal(json_string_value(json_object_get(err, "message")), "no \"such\" job\n");
    json_decref(doc);

    doc = error_json("not_found", "x", "");
    assert_null(json_object_get(json_object_get(doc, "error"), "field"));
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_error_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
