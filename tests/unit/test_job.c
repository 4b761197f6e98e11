/* test_job.c — request validation (every field, every range) and the job document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "job.h"

static const struct job_param_limits lim = {.max_dimension = 4096, .default_quality = 80};

/* job_params_set_text on a NUL-terminated value. */
static int set_text(struct job_params *p, const char *field, const char *value,
                    const struct job_param_limits *l, struct job_param_error *err) {
    return job_params_set_text(p, field, value, strlen(value), l, err);
}

static int from_json(const char *body, struct job_params *p, struct job_param_error *err) {
    job_params_init(p, &lim);
    int rc = job_params_from_json(p, body, strlen(body), &lim, err);
    if (rc == 0)
        rc = job_params_finish(p, false, &lim, err);
    return rc;
}

static void expect_json_error(const char *body, const char *code, const char *field) {
    struct job_params p;
    struct job_param_error err = {0};
    int rc = from_json(body, &p, &err);
    job_params_free(&p);
    if (rc != -1 || strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)
        fail_msg("%s: expected %s/%s, got rc %d %s/%s (%s)", body, code, field, rc,
                 err.code ? err.code : "-", err.field, err.message);
    assert_true(strlen(err.message) > 0);
}

static void test_json_defaults(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err = {0};
    assert_int_equal(from_json("{\"url\":\"https://example.org/a.jpg\"}", &p, &err), 0);
    assert_string_equal(p.url, "https://example.org/a.jpg");
    assert_int_equal(p.out[0].width, 256);
    assert_int_equal(p.out[0].height, 256);
    assert_int_equal(p.out[0].fit, JOB_FIT_INSIDE);
    assert_int_equal(p.out[0].crop, JOB_CROP_CENTRE);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_ORIGINAL);
    assert_int_equal(p.out[0].quality, 80);
    assert_null(p.callback_url);
    assert_null(p.email);
    job_params_free(&p);
}

static void test_json_all_fields(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err = {0};
    assert_int_equal(from_json("{\"url\":\"http://h/x.png\",\"width\":100,\"height\":50,"
                               "\"fit\":\"cover\",\"crop\":\"attention\",\"format\":\"webp\","
                               "\"quality\":55,\"callback_url\":\"https://cb.example/hook\","
                               "\"email\":\"a@b.example\"}",
                               &p, &err),
                     0);
    assert_int_equal(p.out[0].width, 100);
    assert_int_equal(p.out[0].height, 50);
    assert_int_equal(p.out[0].fit, JOB_FIT_COVER);
    assert_int_equal(p.out[0].crop, JOB_CROP_ATTENTION);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_WEBP);
    assert_int_equal(p.out[0].quality, 55);
    assert_string_equal(p.callback_url, "https://cb.example/hook");
    assert_string_equal(p.email, "a@b.example");
    job_params_free(&p);

    /* Height defaults to width; the edges of every range are accepted. */
    assert_int_equal(from_json("{\"url\":\"http://h/x\",\"width\":4096,\"quality\":1}", &p, &err),
                     0);
    assert_int_equal(p.out[0].height, 4096);
    job_params_free(&p);
    assert_int_equal(from_json("{\"url\":\"http://h/x\",\"width\":1,\"height\":1,"
                               "\"quality\":100,\"fit\":\"fill\",\"crop\":\"entropy\","
                               "\"format\":\"avif\"}",
                               &p, &err),
                     0);
    job_params_free(&p);
    const char *fits[] = {"inside", "cover", "contain", "fill"};
    for (int i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"url\":\"http://h/x\",\"fit\":\"%s\"}", fits[i]);
        assert_int_equal(from_json(body, &p, &err), 0);
        assert_int_equal(p.out[0].fit, i);
        job_params_free(&p);
    }
    const char *formats[] = {"original", "jpeg", "png", "webp", "avif", "gif"};
    for (int i = 0; i < 6; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"url\":\"http://h/x\",\"format\":\"%s\"}", formats[i]);
        assert_int_equal(from_json(body, &p, &err), 0);
        assert_int_equal(p.out[0].formats[0], i);
        job_params_free(&p);
    }
}

static void test_json_errors(void **state) {
    (void)state;
    expect_json_error("", "invalid_json", "");
    expect_json_error("{", "invalid_json", "");
    expect_json_error("[1,2]", "invalid_json", "");
    expect_json_error("\"url\"", "invalid_json", "");
    expect_json_error("{\"url\":\"http://h/x\",\"url\":\"http://h/y\"}", "invalid_json", "");
    expect_json_error("{\"url\":\"http://h/x\",\"nested\":{\"a\":{\"b\":{\"c\":{\"d\":1}}}}}",
                      "invalid_json", "");
    expect_json_error("{}", "invalid_param", "url");
    expect_json_error("{\"url\":\"ftp://h/x\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"file:///etc/passwd\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"http://\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"not a url\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"http://h/x y\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"http://h/caf\u00e9\"}", "invalid_param", "url");
    expect_json_error("{\"url\":42}", "invalid_param", "url");
    expect_json_error("{\"url\":\"http://h/x\",\"width\":0}", "invalid_param", "width");
    expect_json_error("{\"url\":\"http://h/x\",\"width\":4097}", "invalid_param", "width");
    expect_json_error("{\"url\":\"http://h/x\",\"width\":-5}", "invalid_param", "width");
    expect_json_error("{\"url\":\"http://h/x\",\"width\":\"100\"}", "invalid_param", "width");
    expect_json_error("{\"url\":\"http://h/x\",\"width\":10.5}", "invalid_param", "width");
    expect_json_error("{\"url\":\"http://h/x\",\"width\":99999999999999999999}", "invalid_json",
                      "");
    expect_json_error("{\"url\":\"http://h/x\",\"height\":0}", "invalid_param", "height");
    expect_json_error("{\"url\":\"http://h/x\",\"height\":5000}", "invalid_param", "height");
    expect_json_error("{\"url\":\"http://h/x\",\"quality\":0}", "invalid_param", "quality");
    expect_json_error("{\"url\":\"http://h/x\",\"quality\":101}", "invalid_param", "quality");
    expect_json_error("{\"url\":\"http://h/x\",\"quality\":null}", "invalid_param", "quality");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"stretch\"}", "invalid_param", "fit");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":1}", "invalid_param", "fit");
    expect_json_error("{\"url\":\"http://h/x\",\"crop\":\"left\"}", "invalid_param", "crop");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":\"bmp\"}", "invalid_param", "format");
    expect_json_error("{\"url\":\"http://h/x\",\"callback_url\":\"gopher://h\"}", "invalid_param",
                      "callback_url");
    expect_json_error("{\"url\":\"http://h/x\",\"email\":\"nobody\"}", "invalid_param", "email");
    expect_json_error("{\"url\":\"http://h/x\",\"email\":\"a@b\"}", "invalid_param", "email");
    expect_json_error("{\"url\":\"http://h/x\",\"email\":\"a@b.c\\r\\nBcc: x@y.z\"}",
                      "invalid_param", "email");
    expect_json_error("{\"url\":\"http://h/x\",\"widht\":100}", "invalid_param", "widht");
    /* A NUL in a string is refused naming the field (it would cut the value
     * short in C); in a name it is not JSON we take. */
    expect_json_error("{\"url\":\"http://h/\\u0000x\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"http://h/x\",\"email\":\"a@b.example\\u0000x\"}", "invalid_param",
                      "email");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"fill\\u0000\"}", "invalid_param", "fit");
    expect_json_error("{\"url\":\"http://h/x\",\"wid\\u0000th\":1}", "invalid_json", "");
    /* White space at either end is no part of any value. */
    expect_json_error("{\"url\":\" http://h/x\"}", "invalid_param", "url");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover \"}", "invalid_param", "fit");
    expect_json_error("{\"url\":\"http://h/x\",\"email\":\"a@b.example\\n\"}", "invalid_param",
                      "email");
}

static void test_url_length(void **state) {
    (void)state;
    char *body = malloc(JOB_URL_MAX + 100);
    strcpy(body, "{\"url\":\"http://h/");
    size_t len = strlen(body);
    memset(body + len, 'a', JOB_URL_MAX);
    strcpy(body + len + JOB_URL_MAX, "\"}");
    expect_json_error(body, "invalid_param", "url");
    free(body);
}

static void test_text_params(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err = {0};
    job_params_init(&p, &lim);
    assert_int_equal(set_text(&p, "width", "120", &lim, &err), 0);
    assert_int_equal(set_text(&p, "fit", "contain", &lim, &err), 0);
    assert_int_equal(set_text(&p, "format", "jpg", &lim, &err), 0);
    assert_int_equal(set_text(&p, "crop", "center", &lim, &err), 0);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), 0);
    assert_int_equal(p.out[0].width, 120);
    assert_int_equal(p.out[0].height, 120);
    assert_int_equal(p.out[0].fit, JOB_FIT_CONTAIN);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_JPEG);
    assert_int_equal(p.out[0].crop, JOB_CROP_CENTRE);

    assert_int_equal(set_text(&p, "width", "12x", &lim, &err), -1);
    assert_string_equal(err.field, "width");
    assert_int_equal(set_text(&p, "width", "", &lim, &err), -1);
    assert_int_equal(set_text(&p, "height", "0", &lim, &err), -1);
    assert_string_equal(err.field, "height");
    assert_int_equal(set_text(&p, "quality", "101", &lim, &err), -1);
    assert_int_equal(set_text(&p, "colour", "red", &lim, &err), -1);
    assert_string_equal(err.field, "colour");
    assert_string_equal(err.code, "invalid_param");
    /* An upload must not also name a URL. */
    assert_int_equal(set_text(&p, "url", "http://h/x", &lim, &err), 0);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), -1);
    assert_string_equal(err.field, "url");
    job_params_free(&p);
}

/* fit cover, contain and fill make the box itself: over max_output_pixels it
 * is refused at submit, naming width. inside only fits within the box: the
 * worker checks the size the source's aspect gives. */
static void test_output_bounds(void **state) {
    (void)state;
    const struct job_param_limits bounded = {
        .max_dimension = 4096, .default_quality = 80, .max_output_pixels = 2048 * 2048};
    static const struct {
        const char *query[4]; /* name, value pairs */
        int ok;
    } cases[] = {
        {{"width", "4096", "fit", "fill"}, 0},    {{"width", "4096", "fit", "cover"}, 0},
        {{"width", "4096", "fit", "contain"}, 0}, {{"width", "4096", "fit", "inside"}, 1},
        {{"width", "2048", "fit", "fill"}, 1},    {{"width", "2049", "fit", "cover"}, 0},
        {{"width", "4096", "height", "1024"}, 1}, /* inside: the default fit */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct job_params p;
        struct job_param_error err = {0};
        job_params_init(&p, &bounded);
        for (int f = 0; f < 4; f += 2)
            assert_int_equal(set_text(&p, cases[i].query[f], cases[i].query[f + 1], &bounded, &err),
                             0);
        int rc = job_params_finish(&p, true, &bounded, &err);
        if (cases[i].ok ? rc != 0 : rc != -1)
            fail_msg("%s=%s %s=%s: rc %d (%s)", cases[i].query[0], cases[i].query[1],
                     cases[i].query[2], cases[i].query[3], rc, err.message);
        if (!cases[i].ok) {
            assert_string_equal(err.code, "invalid_param");
            assert_string_equal(err.field, "width");
            assert_non_null(strstr(err.message, "image.max_output_pixels"));
        }
        job_params_free(&p);
    }
    /* Both sides given: 2048x2048 is at the bound, 2048x2049 over it. */
    struct job_params p;
    struct job_param_error err = {0};
    const char *body = "{\"url\":\"http://h/x\",\"width\":2048,\"height\":2048,\"fit\":\"fill\"}";
    job_params_init(&p, &bounded);
    assert_int_equal(job_params_from_json(&p, body, strlen(body), &bounded, &err), 0);
    assert_int_equal(job_params_finish(&p, false, &bounded, &err), 0);
    p.out[0].height = 2049;
    assert_int_equal(job_params_finish(&p, false, &bounded, &err), -1);
    assert_string_equal(err.field, "width");
    job_params_free(&p);
    /* Without a bound (0) the box is not checked here. */
    job_params_init(&p, &lim);
    p.out[0].width = p.out[0].height = 4096;
    p.out[0].fit = JOB_FIT_FILL;
    assert_int_equal(job_params_finish(&p, true, &lim, &err), 0);
    job_params_free(&p);
}

/* A query value is checked as its JSON twin: the whole value, NUL bytes and
 * white space included, and an integer only as JSON writes one. */
static void test_text_strict(void **state) {
    (void)state;
    static const struct {
        const char *field;
        const char *value;
        size_t len; /* 0: strlen */
    } refused[] = {
        {"email", "a@b.example\0x", 13},
        {"email", "a@b.example\0", 12},
        {"url", "http://h/\0x", 11},
        {"callback_url", "http://h/x\0", 11},
        {"fit", "fill\0", 5},
        {"crop", "\0centre", 7},
        {"format", "png\0jpeg", 8},
        {"width", "100\0", 4},
        {"quality",
         "5\0"
         "0",
         3},
        {"width", " 100", 0},
        {"width", "100 ", 0},
        {"width", "\t100", 0},
        {"width", "100\n", 0},
        {"height", "+5", 0},
        {"height", "100abc", 0},
        {"width", "0100", 0},
        {"width", "1e2", 0},
        {"width", "1.0", 0},
        {"width", "0x10", 0},
        {"width", "-", 0},
        {"width", "--5", 0},
        {"quality", "", 0},
        {"width", "99999999999999999999", 0},
        {"fit", " cover", 0},
        {"format", "png ", 0},
        {"email", " a@b.example", 0},
        {"url", "http://h/x ", 0},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct job_params p;
        struct job_param_error err = {0};
        job_params_init(&p, &lim);
        size_t len = refused[i].len ? refused[i].len : strlen(refused[i].value);
        int rc = job_params_set_text(&p, refused[i].field, refused[i].value, len, &lim, &err);
        if (rc != -1 || strcmp(err.code, "invalid_param") != 0 ||
            strcmp(err.field, refused[i].field) != 0)
            fail_msg("%s (%zu bytes of '%s') was not refused: rc %d field '%s'", refused[i].field,
                     len, refused[i].value, rc, err.field);
        assert_null(p.email);
        assert_null(p.url);
        assert_null(p.callback_url);
        assert_int_equal(p.out[0].width, 256); /* nothing stored */
        job_params_free(&p);
    }
    /* What JSON takes, the query takes, and stores as given. */
    struct job_params p;
    struct job_param_error err = {0};
    job_params_init(&p, &lim);
    assert_int_equal(set_text(&p, "email", "a@b.example", &lim, &err), 0);
    assert_string_equal(p.email, "a@b.example");
    assert_int_equal(set_text(&p, "width", "100", &lim, &err), 0);
    assert_int_equal(p.out[0].width, 100);
    assert_int_equal(set_text(&p, "height", "0", &lim, &err), -1); /* 0 is an integer: range */
    assert_non_null(strstr(err.message, "1..4096"));
    assert_int_equal(set_text(&p, "height", "-5", &lim, &err), -1);
    assert_non_null(strstr(err.message, "1..4096"));
    job_params_free(&p);
}

static void test_record_round_trip(void **state) {
    (void)state;
    struct job_params p, back;
    struct job_param_error err = {0};
    assert_int_equal(from_json("{\"url\":\"http://h/x.png\",\"width\":100,\"height\":50,"
                               "\"fit\":\"cover\",\"crop\":\"entropy\",\"format\":\"png\","
                               "\"quality\":70}",
                               &p, &err),
                     0);
    struct job_record rec = {0};
    assert_int_equal(job_record_from_params(&rec, &p), 0);
    assert_string_equal(job_record_get(&rec, "src"), "url");
    assert_int_equal(job_params_from_record(&back, &rec), 0);
    assert_string_equal(back.url, p.url);
    assert_int_equal(back.out[0].width, 100);
    assert_int_equal(back.out[0].height, 50);
    assert_int_equal(back.out[0].fit, JOB_FIT_COVER);
    assert_int_equal(back.out[0].crop, JOB_CROP_ENTROPY);
    assert_int_equal(back.out[0].formats[0], JOB_FORMAT_PNG);
    assert_int_equal(back.out[0].quality, 70);
    job_params_free(&back);
    job_params_free(&p);

    /* A damaged record is refused, not guessed at. */
    assert_int_equal(job_record_set(&rec, "fit", "bogus"), 0);
    assert_int_equal(job_params_from_record(&back, &rec), -1);
    job_params_free(&back);
    job_record_free(&rec);
}

/* The deliveries' status on the document, and whether a cache may keep it. */
static void test_document_deliveries(void **state) {
    (void)state;
    struct job_record rec = {0};
    assert_int_equal(job_record_set(&rec, "state", "done"), 0);
    assert_false(job_deliveries_pending(&rec));
    json_t *doc = job_document("AAAAAAAAAAAAAAAAAAAAAA", &rec);
    assert_null(json_object_get(doc, "callback"));
    assert_null(json_object_get(doc, "email_delivery"));
    json_decref(doc);

    assert_int_equal(job_record_set(&rec, "callback_url", "http://cb.example/h"), 0);
    assert_int_equal(job_record_set(&rec, "email", "a@b.example"), 0);
    assert_true(job_deliveries_pending(&rec));
    doc = job_document("AAAAAAAAAAAAAAAAAAAAAA", &rec);
    char *text = json_dumps(json_object_get(doc, "callback"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"attempts\":0,\"status\":\"pending\"}");
    free(text);
    json_decref(doc);

    const char *fields[][2] = {{"cb_status", "pending"},     {"cb_attempts", "2"},
                               {"cb_last_status", "500"},    {"cb_last_error", "answered 500"},
                               {"mail_status", "delivered"}, {"mail_attempts", "1"},
                               {"mail_last_status", "250"},  {"mail_last_error", "accepted"}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        assert_int_equal(job_record_set(&rec, fields[i][0], fields[i][1]), 0);
    assert_true(job_deliveries_pending(&rec));
    doc = job_document("AAAAAAAAAAAAAAAAAAAAAA", &rec);
    text = json_dumps(json_object_get(doc, "callback"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"attempts\":2,\"last_error\":\"answered "
                              "500\",\"last_status\":500,\"status\":\"pending\"}");
    free(text);
    text = json_dumps(json_object_get(doc, "email_delivery"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"attempts\":1,\"last_status\":250,\"status\":\"delivered\"}");
    free(text);
    json_decref(doc);

    assert_int_equal(job_record_set(&rec, "cb_status", "stopped"), 0);
    assert_false(job_deliveries_pending(&rec));
    job_record_free(&rec);
}

static void test_document(void **state) {
    (void)state;
    struct job_record rec = {0};
    const char *fields[][2] = {
        {"state", "done"},
        {"created", "1795857294123"},
        {"started", "1795857294200"},
        {"finished", "1795857295000"},
        {"attempts", "1"},
        {"src", "url"},
        {"url", "http://h/a.jpg"},
        {"width", "256"},
        {"height", "256"},
        {"fit", "cover"},
        {"crop", "centre"},
        {"format", "webp"},
        {"quality", "80"},
        {"src_mime", "image/jpeg"},
        {"src_bytes", "744777"},
        {"src_width", "2560"},
        {"src_height", "1600"},
        {"res_mime", "image/webp"},
        {"res_bytes", "5123"},
        {"res_width", "256"},
        {"res_height", "256"},
        {"token", "secret"},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        assert_int_equal(job_record_set(&rec, fields[i][0], fields[i][1]), 0);
    json_t *doc = job_document("kq3v7AAAAAAAAAAAAAAAAA", &rec);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "kq3v7AAAAAAAAAAAAAAAAA");
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "done");
    assert_string_equal(json_string_value(json_object_get(doc, "created_at")),
                        "2026-11-28T09:14:54.123Z");
    assert_non_null(json_object_get(doc, "started_at"));
    assert_non_null(json_object_get(doc, "finished_at"));
    assert_int_equal(json_integer_value(json_object_get(doc, "attempts")), 1);
    json_t *req = json_object_get(doc, "request");
    assert_string_equal(json_string_value(json_object_get(req, "url")), "http://h/a.jpg");
    assert_int_equal(json_integer_value(json_object_get(req, "width")), 256);
    assert_string_equal(json_string_value(json_object_get(req, "fit")), "cover");
    assert_string_equal(json_string_value(json_object_get(req, "format")), "webp");
    json_t *src = json_object_get(doc, "source");
    assert_string_equal(json_string_value(json_object_get(src, "mime")), "image/jpeg");
    assert_int_equal(json_integer_value(json_object_get(src, "bytes")), 744777);
    assert_int_equal(json_integer_value(json_object_get(src, "width")), 2560);
    json_t *res = json_object_get(doc, "result");
    assert_string_equal(json_string_value(json_object_get(res, "mime")), "image/webp");
    assert_int_equal(json_integer_value(json_object_get(res, "height")), 256);
    assert_string_equal(json_string_value(json_object_get(res, "image_url")),
                        "/v1/thumbnails/kq3v7AAAAAAAAAAAAAAAAA/image");
    assert_null(json_object_get(doc, "error"));
    /* Internal fields never leak into the document. */
    char *text = json_dumps(doc, 0);
    assert_null(strstr(text, "secret"));
    free(text);
    json_decref(doc);

    /* A failed job: error present, no result. */
    assert_int_equal(job_record_set(&rec, "state", "failed"), 0);
    assert_int_equal(job_record_set(&rec, "err_code", "fetch_timeout"), 0);
    assert_int_equal(job_record_set(&rec, "err_msg", "took too long"), 0);
    doc = job_document("kq3v7AAAAAAAAAAAAAAAAA", &rec);
    assert_null(json_object_get(doc, "result"));
    json_t *e = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "fetch_timeout");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "took too long");
    json_decref(doc);
    job_record_free(&rec);
}

static void test_queued_document(void **state) {
    (void)state;
    struct job_record rec = {0};
    assert_int_equal(job_record_set(&rec, "state", "queued"), 0);
    assert_int_equal(job_record_set(&rec, "created", "0"), 0);
    assert_int_equal(job_record_set(&rec, "src", "upload"), 0);
    json_t *doc = job_document("AAAAAAAAAAAAAAAAAAAAAA", &rec);
    assert_string_equal(json_string_value(json_object_get(doc, "created_at")),
                        "1970-01-01T00:00:00.000Z");
    assert_null(json_object_get(doc, "started_at"));
    assert_null(json_object_get(doc, "source"));
    assert_null(json_object_get(doc, "result"));
    assert_true(json_is_true(json_object_get(json_object_get(doc, "request"), "upload")));
    json_decref(doc);
    job_record_free(&rec);
    assert_true(job_state_is_terminal("done"));
    assert_true(job_state_is_terminal("failed"));
    assert_true(job_state_is_terminal("canceled"));
    assert_false(job_state_is_terminal("queued"));
    assert_false(job_state_is_terminal(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_defaults),   cmocka_unit_test(test_json_all_fields),
        cmocka_unit_test(test_json_errors),     cmocka_unit_test(test_url_length),
        cmocka_unit_test(test_text_params),     cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_document),        cmocka_unit_test(test_document_deliveries),
        cmocka_unit_test(test_queued_document), cmocka_unit_test(test_output_bounds),
        cmocka_unit_test(test_text_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
