/* test_http_admin.c — the admin API's pure parts: states, limit, cursor,
 * percentiles from duration buckets, page items, the overview's last touches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "admin_doc.h"

static void test_states(void **state) {
    (void)state;
    assert_string_equal(admin_state_index("queued"), "ready");
    assert_string_equal(admin_state_index("processing"), "nodes");
    assert_string_equal(admin_state_index("done"), "recent:done");
    assert_string_equal(admin_state_index("failed"), "recent:failed");
    assert_string_equal(admin_state_index("dead"), "dead");
    assert_false(admin_state_is_valid("canceled"));
    assert_false(admin_state_is_valid("Done"));
    assert_false(admin_state_is_valid(""));
    assert_false(admin_state_is_valid(NULL));
}

static void test_limit(void **state) {
    (void)state;
    int n = 0;
    assert_int_equal(admin_limit_parse("1", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(admin_limit_parse("200", &n), 0);
    assert_int_equal(n, 200);
    static const char *const bad[] = {"0", "201", "", "-1", "+5", "05", "1e2", "ten", "50 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(admin_limit_parse(bad[i], &n), -1);
}

static void test_cursor(void **state) {
    (void)state;
    long long a = -1, b = -1;
    assert_int_equal(admin_cursor_parse("1764650000000:2", &a, &b), 0);
    assert_int_equal(a, 1764650000000LL);
    assert_int_equal(b, 2);
    assert_int_equal(admin_cursor_parse("0:0", &a, &b), 0);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    assert_int_equal(admin_cursor_parse("9007199254740992:1000000000", &a, &b), 0);
    static const char *const bad[] = {"",
                                      ":",
                                      "1:",
                                      ":1",
                                      "1",
                                      "1:2:3",
                                      "-1:0",
                                      "01:0",
                                      "1:02",
                                      "a:b",
                                      "1 :2",
                                      "1:2 ",
                                      "+1:2",
                                      "1.5:2",
                                      "9007199254740993:0",
                                      "1:1000000001",
                                      "99999999999999999:0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(admin_cursor_parse(bad[i], &a, &b), -1);
}

static void test_quantile(void **state) {
    (void)state;
    long long c[JOBSTATS_NBOUNDS + 1] = {0};
    assert_true(admin_quantile(c, 0.5) < 0); /* nothing counted */
    /* Ten attempts in (10, 25]: the median half-way through the bucket. */
    c[1] = 10;
    assert_true(fabs(admin_quantile(c, 0.5) - 17.5) < 1e-9);
    assert_true(fabs(admin_quantile(c, 0.95) - 24.25) < 1e-9);
    /* 50 in [0, 10], 50 in (100, 250]: p50 ends the first, p95 is 90 % into the second. */
    memset(c, 0, sizeof(c));
    c[0] = 50;
    c[4] = 50;
    assert_true(fabs(admin_quantile(c, 0.5) - 10) < 1e-9);
    assert_true(fabs(admin_quantile(c, 0.95) - 235) < 1e-9);
    /* The +Inf bucket answers its lower bound. */
    memset(c, 0, sizeof(c));
    c[JOBSTATS_NBOUNDS] = 3;
    assert_true(fabs(admin_quantile(c, 0.5) - 60000) < 1e-9);
    c[0] = 97;
    assert_true(admin_quantile(c, 0.5) <= 10);
    assert_true(fabs(admin_quantile(c, 0.99) - 60000) < 1e-9);
}

/* A STRING or NIL element of a fake reply. */
static redisReply *elem(const char *s) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = s ? REDIS_REPLY_STRING : REDIS_REPLY_NIL;
    r->str = (char *)s;
    r->len = s ? strlen(s) : 0;
    return r;
}

static void free_fake(redisReply *r) {
    for (size_t i = 0; i < r->elements; i++)
        free(r->element[i]);
    free(r->element);
    free(r);
}

static redisReply *item(const char *const v[10]) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = 10;
    r->element = calloc(10, sizeof(redisReply *));
    for (int i = 0; i < 10; i++)
        r->element[i] = elem(v[i]);
    return r;
}

static void test_list_item(void **state) {
    (void)state;
    const char *const failed[10] = {
        "id1", "failed", "1000",           "2000",           "3000",
        "3",   "url",    "http://a/b.png", "fetch_http_404", "it answered 404"};
    redisReply *r = item(failed);
    json_t *o = admin_list_item(r);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"attempts\":3,\"created_at\":\"1970-01-01T00:00:01.000Z\","
                              "\"error\":{\"code\":\"fetch_http_404\",\"message\":\"it answered "
                              "404\"},\"finished_at\":\"1970-01-01T00:00:03.000Z\",\"id\":\"id1\","
                              "\"source\":{\"url\":\"http://a/b.png\"},\"started_at\":\"1970-01-"
                              "01T00:00:02.000Z\",\"status\":\"failed\"}");
    free(text);
    json_decref(o);
    free_fake(r);

    const char *const queued[10] = {"id2", "queued", "1000", NULL, NULL,
                                    "0",   "upload", NULL,   NULL, NULL};
    r = item(queued);
    o = admin_list_item(r);
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"attempts\":0,\"created_at\":\"1970-01-01T00:00:01.000Z\","
                              "\"id\":\"id2\",\"source\":{\"upload\":true},\"status\":\"queued\"}");
    free(text);
    json_decref(o);
    free_fake(r);

    const char *const gone[10] = {"id3", NULL};
    r = item(gone);
    assert_null(admin_list_item(r));
    free_fake(r);
    assert_null(admin_list_item(NULL));
}

static void test_overview_finish(void **state) {
    (void)state;
    json_t *doc = json_loads(
        "{\"nodes\":{},\"series\":{\"minute_ms\":[0,60000],\"done\":[0,2],\"failed\":[0,0],"
        "\"retried\":[0,0],\"bytes_fetched\":[0,9],"
        "\"buckets\":[[0,0,0,0,0,0,0,0,0,0,0,0,0],[0,2,0,0,0,0,0,0,0,0,0,0,0]]}}",
        0, NULL);
    assert_non_null(doc);
    assert_int_equal(admin_overview_finish(doc), 0);
    assert_true(json_is_array(json_object_get(doc, "nodes")));
    json_t *series = json_object_get(doc, "series");
    assert_null(json_object_get(series, "buckets"));
    assert_true(json_is_null(json_array_get(json_object_get(series, "p50_ms"), 0)));
    assert_true(fabs(json_number_value(json_array_get(json_object_get(series, "p50_ms"), 1)) -
                     17.5) < 1e-9);
    assert_int_equal(json_array_size(json_object_get(series, "p95_ms")), 2);
    json_decref(doc);

    doc = json_loads("{\"nodes\":[{\"workers\":{},\"http\":{},\"delivery\":[{\"pid\":1}]}],"
                     "\"series\":{\"minute_ms\":{},\"done\":{},\"failed\":{},\"retried\":{},"
                     "\"bytes_fetched\":{},\"buckets\":{}}}",
                     0, NULL);
    assert_int_equal(admin_overview_finish(doc), 0);
    json_t *node = json_array_get(json_object_get(doc, "nodes"), 0);
    assert_true(json_is_array(json_object_get(node, "workers")));
    assert_true(json_is_array(json_object_get(node, "http")));
    assert_int_equal(json_array_size(json_object_get(node, "delivery")), 1);
    assert_true(json_is_array(json_object_get(json_object_get(doc, "series"), "p50_ms")));
    json_decref(doc);

    doc = json_loads("{\"nodes\":[]}", 0, NULL);
    assert_int_equal(admin_overview_finish(doc), -1);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),    cmocka_unit_test(test_limit),
        cmocka_unit_test(test_cursor),    cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_list_item), cmocka_unit_test(test_overview_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
