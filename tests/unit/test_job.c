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

/* The new output fields, at the top level and in renditions. */
static void test_output_options(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err = {0};
    assert_int_equal(from_json("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"width\":64,"
                               "\"format\":[\"avif\",\"webp\",\"jpeg\"],\"background\":\"#FF8000\","
                               "\"focus\":{\"x\":0,\"y\":1},\"animated\":true,"
                               "\"progressive\":true,\"keep_icc\":false}",
                               &p, &err),
                     0);
    const struct job_output *o = &p.out[0];
    assert_int_equal(p.nout, 1);
    assert_false(p.renditions);
    assert_string_equal(o->name, "default");
    assert_int_equal(o->nformats, 3);
    assert_int_equal(o->formats[0], JOB_FORMAT_AVIF);
    assert_int_equal(o->formats[1], JOB_FORMAT_WEBP);
    assert_int_equal(o->formats[2], JOB_FORMAT_JPEG);
    assert_true(o->has_background);
    assert_memory_equal(o->background, ((unsigned char[]){255, 128, 0, 255}), 4);
    assert_true(o->has_focus);
    assert_true(o->focus_x == 0.0 && o->focus_y == 1.0);
    assert_true(o->animated && o->progressive && !o->keep_icc);
    job_params_free(&p);

    assert_int_equal(from_json("{\"url\":\"http://h/x\",\"background\":\"#00ff0080\","
                               "\"format\":\"jxl\",\"keep_icc\":true}",
                               &p, &err),
                     0);
    assert_memory_equal(p.out[0].background, ((unsigned char[]){0, 255, 0, 128}), 4);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_JXL);
    assert_true(p.out[0].keep_icc);
    job_params_free(&p);

    /* Each refused with the field to blame. */
    expect_json_error("{\"url\":\"http://h/x\",\"background\":\"red\"}", "invalid_param",
                      "background");
    expect_json_error("{\"url\":\"http://h/x\",\"background\":\"#ff00\"}", "invalid_param",
                      "background");
    expect_json_error("{\"url\":\"http://h/x\",\"background\":\"#gg0000\"}", "invalid_param",
                      "background");
    expect_json_error("{\"url\":\"http://h/x\",\"background\":16711680}", "invalid_param",
                      "background");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"focus\":{\"x\":1.5,\"y\":0}}",
                      "invalid_param", "focus");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"focus\":{\"x\":0.5}}",
                      "invalid_param", "focus");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"focus\":{\"x\":0.5,\"y\":0.5,"
                      "\"z\":1}}",
                      "invalid_param", "focus");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"focus\":[0.5,0.5]}",
                      "invalid_param", "focus");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"focus\":{\"x\":\"0\",\"y\":0}}",
                      "invalid_param", "focus");
    /* focus is cover's, and cover's crop modes choose otherwise */
    expect_json_error("{\"url\":\"http://h/x\",\"focus\":{\"x\":0.5,\"y\":0.5}}", "invalid_param",
                      "focus");
    expect_json_error("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"crop\":\"attention\","
                      "\"focus\":{\"x\":0.5,\"y\":0.5}}",
                      "invalid_param", "focus");
    expect_json_error("{\"url\":\"http://h/x\",\"animated\":1}", "invalid_param", "animated");
    expect_json_error("{\"url\":\"http://h/x\",\"progressive\":\"yes\"}", "invalid_param",
                      "progressive");
    expect_json_error("{\"url\":\"http://h/x\",\"keep_icc\":null}", "invalid_param", "keep_icc");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":[]}", "invalid_param", "format");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":[\"webp\",\"webp\"]}", "invalid_param",
                      "format");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":[\"webp\",\"original\"]}",
                      "invalid_param", "format");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":[\"webp\",\"bmp\"]}", "invalid_param",
                      "format");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":[\"webp\",3]}", "invalid_param",
                      "format");
    expect_json_error("{\"url\":\"http://h/x\",\"format\":[\"jpeg\",\"png\",\"webp\",\"avif\","
                      "\"gif\",\"jxl\",\"jpg\"]}",
                      "invalid_param", "format");
    /* A list of one is the format itself. */
    assert_int_equal(from_json("{\"url\":\"http://h/x\",\"format\":[\"original\"]}", &p, &err), 0);
    assert_int_equal(p.out[0].nformats, 1);
    job_params_free(&p);
}

static void test_renditions(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err = {0};
    assert_int_equal(
        from_json("{\"url\":\"http://h/x\",\"renditions\":["
                  "{\"name\":\"w320\",\"width\":320,\"format\":[\"avif\",\"webp\",\"jpeg\"]},"
                  "{\"name\":\"sq_64\",\"width\":64,\"fit\":\"cover\",\"quality\":50,"
                  "\"focus\":{\"x\":0.25,\"y\":0.75}},"
                  "{\"name\":\"hero-1\",\"width\":1920,\"height\":600,\"fit\":\"contain\","
                  "\"background\":\"#000000\",\"progressive\":true}]}",
                  &p, &err),
        0);
    assert_true(p.renditions);
    assert_int_equal(p.nout, 3);
    assert_string_equal(p.out[0].name, "w320");
    assert_int_equal(p.out[0].height, 320); /* height defaults to width in each */
    assert_int_equal(p.out[0].nformats, 3);
    assert_int_equal(p.out[0].quality, 80); /* the configured default */
    assert_string_equal(p.out[1].name, "sq_64");
    assert_int_equal(p.out[1].fit, JOB_FIT_COVER);
    assert_int_equal(p.out[1].quality, 50);
    assert_true(p.out[1].has_focus && p.out[1].focus_x == 0.25);
    assert_string_equal(p.out[2].name, "hero-1");
    assert_int_equal(p.out[2].height, 600);
    assert_true(p.out[2].progressive && p.out[2].has_background);
    assert_int_equal(p.out[2].formats[0], JOB_FORMAT_ORIGINAL);
    job_params_free(&p);

    /* Eight is the most. */
    char body[2048];
    int n = snprintf(body, sizeof(body), "{\"url\":\"http://h/x\",\"renditions\":[");
    for (int i = 0; i < 9; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "%s{\"name\":\"r%d\",\"width\":%d}",
                      i ? "," : "", i, 10 + i);
    snprintf(body + n, sizeof(body) - (size_t)n, "]}");
    expect_json_error(body, "invalid_param", "renditions");
    char *last = strrchr(body, '{'); /* drop the ninth */
    snprintf(last - 1, sizeof(body) - (size_t)(last - 1 - body), "]}");
    assert_int_equal(from_json(body, &p, &err), 0);
    assert_int_equal(p.nout, 8);
    job_params_free(&p);

    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[]}", "invalid_param", "renditions");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":{\"name\":\"a\"}}", "invalid_param",
                      "renditions");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[\"a\"]}", "invalid_param",
                      "renditions[0]");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"width\":10}]}", "invalid_param",
                      "renditions[0].name");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"\"}]}", "invalid_param",
                      "renditions[0].name");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"Big\"}]}",
                      "invalid_param", "renditions[0].name");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a b\"}]}",
                      "invalid_param", "renditions[0].name");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":"
                      "\"abcdefghijabcdefghijabcdefghijabc\"}]}",
                      "invalid_param", "renditions[0].name");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
                      "invalid_param", "renditions[1].name");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\",\"url\":\"x\"}]}",
                      "invalid_param", "renditions[0].url");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\",\"width\":0}]}",
                      "invalid_param", "renditions[0].width");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\"},{\"name\":\"b\","
                      "\"format\":[\"gif\",\"gif\"]}]}",
                      "invalid_param", "renditions[1].format");
    expect_json_error("{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\",\"focus\":{\"x\":0,"
                      "\"y\":0}}]}",
                      "invalid_param", "renditions[0].focus");
    /* Both forms at once: the top-level field is to blame, whatever the order. */
    expect_json_error("{\"url\":\"http://h/x\",\"width\":100,\"renditions\":[{\"name\":\"a\"}]}",
                      "invalid_param", "width");
    expect_json_error(
        "{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\"}],\"format\":\"png\"}",
        "invalid_param", "format");
}

/* What one job may make: each output as before, and their sum. */
static void test_job_pixels(void **state) {
    (void)state;
    const struct job_param_limits l = {.max_dimension = 4096,
                                       .default_quality = 80,
                                       .max_output_pixels = 4194304,
                                       .max_job_pixels = 3 * 1000 * 1000};
    struct job_params p;
    struct job_param_error err = {0};
    const char *ok = "{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\",\"width\":1000,"
                     "\"fit\":\"cover\",\"format\":[\"webp\",\"jpeg\"]},{\"name\":\"b\","
                     "\"width\":1000,\"fit\":\"fill\"}]}";
    job_params_init(&p, &l);
    assert_int_equal(job_params_from_json(&p, ok, strlen(ok), &l, &err), 0);
    assert_int_equal(job_params_finish(&p, false, &l, &err), 0); /* 3 000 000 exactly */
    job_params_free(&p);
    const char *over = "{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\",\"width\":1000,"
                       "\"fit\":\"cover\",\"format\":[\"webp\",\"jpeg\"]},{\"name\":\"b\","
                       "\"width\":1000,\"height\":1001,\"fit\":\"contain\"}]}";
    job_params_init(&p, &l);
    assert_int_equal(job_params_from_json(&p, over, strlen(over), &l, &err), 0);
    assert_int_equal(job_params_finish(&p, false, &l, &err), -1);
    assert_string_equal(err.field, "renditions");
    assert_non_null(strstr(err.message, "image.max_job_pixels"));
    job_params_free(&p);
    /* inside: its size follows the source, the worker checks it */
    const char *inside = "{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\",\"width\":4000,"
                         "\"format\":[\"webp\",\"jpeg\"]}]}";
    job_params_init(&p, &l);
    assert_int_equal(job_params_from_json(&p, inside, strlen(inside), &l, &err), 0);
    assert_int_equal(job_params_finish(&p, false, &l, &err), 0);
    job_params_free(&p);
    /* one rendition over max_output_pixels names its width */
    const char *big = "{\"url\":\"http://h/x\",\"renditions\":[{\"name\":\"a\"},{\"name\":\"b\","
                      "\"width\":4000,\"fit\":\"cover\"}]}";
    job_params_init(&p, &l);
    assert_int_equal(job_params_from_json(&p, big, strlen(big), &l, &err), 0);
    assert_int_equal(job_params_finish(&p, false, &l, &err), -1);
    assert_string_equal(err.field, "renditions[1].width");
    job_params_free(&p);
    /* the top-level form: its format list counts */
    const char *top = "{\"url\":\"http://h/x\",\"width\":1500,\"fit\":\"cover\","
                      "\"format\":[\"avif\",\"webp\"]}";
    job_params_init(&p, &l);
    assert_int_equal(job_params_from_json(&p, top, strlen(top), &l, &err), 0);
    assert_int_equal(job_params_finish(&p, false, &l, &err), -1);
    assert_string_equal(err.field, "format");
    job_params_free(&p);
}

/* The query-string forms of the new fields. */
static void test_text_options(void **state) {
    (void)state;
    struct job_params p;
    struct job_param_error err = {0};
    job_params_init(&p, &lim);
    assert_int_equal(set_text(&p, "format", "avif,webp,jpeg", &lim, &err), 0);
    assert_int_equal(p.out[0].nformats, 3);
    assert_int_equal(p.out[0].formats[2], JOB_FORMAT_JPEG);
    assert_int_equal(set_text(&p, "background", "#102030", &lim, &err), 0);
    assert_int_equal(p.out[0].background[2], 0x30);
    assert_int_equal(set_text(&p, "focus", "0.5,0.25", &lim, &err), 0);
    assert_true(p.out[0].focus_x == 0.5 && p.out[0].focus_y == 0.25);
    assert_int_equal(set_text(&p, "animated", "true", &lim, &err), 0);
    assert_int_equal(set_text(&p, "progressive", "false", &lim, &err), 0);
    assert_true(p.out[0].animated && !p.out[0].progressive);
    static const char *const refused[][2] = {
        {"format", "avif,,jpeg"},
        {"format", "avif,webp,avif"},
        {"format", "a,b,c,d,e,f,g"},
        {"focus", "0.5"},
        {"focus", "0.5,"},
        {"focus", "0.5,0.5,0.5"},
        {"focus", "x,y"},
        {"focus", "-0.1,0.5"},
        {"focus", "0.5,2"},
        {"animated", "1"},
        {"keep_icc", "yes"},
        {"background", "#12345"},
        {"renditions", "[{"},
        {"renditions", "{}"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int rc = set_text(&p, refused[i][0], refused[i][1], &lim, &err);
        if (rc != -1 || strcmp(err.field, refused[i][0]) != 0)
            fail_msg("%s=%s was not refused (rc %d, field '%s')", refused[i][0], refused[i][1], rc,
                     err.field);
    }
    job_params_free(&p);

    /* renditions as JSON in the query (an upload's only way to ask for them) */
    job_params_init(&p, &lim);
    assert_int_equal(
        set_text(&p, "renditions", "[{\"name\":\"a\",\"width\":10},{\"name\":\"b\"}]", &lim, &err),
        0);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), 0);
    assert_int_equal(p.nout, 2);
    assert_int_equal(p.out[1].width, 256);
    job_params_free(&p);
    job_params_init(&p, &lim);
    assert_int_equal(set_text(&p, "width", "10", &lim, &err), 0);
    assert_int_equal(set_text(&p, "renditions", "[{\"name\":\"a\"}]", &lim, &err), 0);
    assert_int_equal(job_params_finish(&p, true, &lim, &err), -1);
    assert_string_equal(err.field, "width");
    job_params_free(&p);
}

/* Both forms survive the job hash, every field of every output. */
static void test_renditions_record(void **state) {
    (void)state;
    struct job_params p, back;
    struct job_param_error err = {0};
    assert_int_equal(
        from_json("{\"url\":\"http://h/x\",\"renditions\":["
                  "{\"name\":\"a\",\"width\":320,\"format\":[\"avif\",\"webp\",\"jpeg\"],"
                  "\"animated\":true},"
                  "{\"name\":\"b\",\"width\":64,\"height\":32,\"fit\":\"cover\",\"quality\":50,"
                  "\"focus\":{\"x\":0.25,\"y\":0.75},\"background\":\"#01020304\","
                  "\"progressive\":true,\"keep_icc\":true,\"format\":\"jxl\"}]}",
                  &p, &err),
        0);
    struct job_record rec = {0};
    assert_int_equal(job_record_from_params(&rec, &p), 0);
    assert_non_null(job_record_get(&rec, "renditions"));
    assert_null(job_record_get(&rec, "width"));
    assert_int_equal(job_params_from_record(&back, &rec), 0);
    assert_int_equal(back.nout, 2);
    assert_true(back.renditions);
    for (int i = 0; i < 2; i++) {
        const struct job_output *a = &p.out[i], *b = &back.out[i];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->width, b->width);
        assert_int_equal(a->height, b->height);
        assert_int_equal(a->fit, b->fit);
        assert_int_equal(a->quality, b->quality);
        assert_int_equal(a->nformats, b->nformats);
        assert_memory_equal(a->formats, b->formats, sizeof(a->formats));
        assert_int_equal(a->has_background, b->has_background);
        assert_memory_equal(a->background, b->background, 4);
        assert_int_equal(a->has_focus, b->has_focus);
        assert_true(a->focus_x == b->focus_x && a->focus_y == b->focus_y);
        assert_int_equal(a->animated, b->animated);
        assert_int_equal(a->progressive, b->progressive);
        assert_int_equal(a->keep_icc, b->keep_icc);
    }
    /* the document echoes the renditions as given (defaults filled) */
    json_t *doc = job_document("j1", &rec);
    json_t *r = json_object_get(json_object_get(doc, "request"), "renditions");
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 1), "background")),
                        "#01020304");
    assert_int_equal(json_array_size(json_object_get(json_array_get(r, 0), "format")), 3);
    json_decref(doc);
    job_params_free(&back);
    job_params_free(&p);
    job_record_free(&rec);

    /* the one-output form keeps today's fields, and the options that are set */
    assert_int_equal(from_json("{\"url\":\"http://h/x\",\"fit\":\"cover\",\"format\":[\"webp\","
                               "\"jpeg\"],\"focus\":{\"x\":1,\"y\":0.5},\"progressive\":true}",
                               &p, &err),
                     0);
    assert_int_equal(job_record_from_params(&rec, &p), 0);
    assert_string_equal(job_record_get(&rec, "format"), "webp,jpeg");
    assert_string_equal(job_record_get(&rec, "focus"), "1,0.5");
    assert_string_equal(job_record_get(&rec, "progressive"), "true");
    assert_null(job_record_get(&rec, "animated"));
    assert_int_equal(job_params_from_record(&back, &rec), 0);
    assert_false(back.renditions);
    assert_int_equal(back.out[0].nformats, 2);
    assert_true(back.out[0].has_focus && back.out[0].focus_x == 1.0);
    assert_true(back.out[0].progressive);
    doc = job_document("j1", &rec);
    json_t *req = json_object_get(doc, "request");
    assert_int_equal(json_array_size(json_object_get(req, "format")), 2);
    assert_true(json_is_true(json_object_get(req, "progressive")));
    assert_true(json_real_value(json_object_get(json_object_get(req, "focus"), "x")) == 1.0);
    json_decref(doc);
    job_params_free(&back);
    job_params_free(&p);
    job_record_free(&rec);
}

/* res_rend: written and read back; the document's result.renditions. */
static void test_result_renditions(void **state) {
    (void)state;
    struct job_encoding e[3] = {
        {0, 2, "a", JOB_FORMAT_JPEG, "image/jpeg", 900, 320, 180, "00ff", 0},
        {0, 0, "a", JOB_FORMAT_AVIF, "image/avif", 400, 320, 180, "11ee", 900},
        {1, 0, "b", JOB_FORMAT_WEBP, "image/webp", 100, 64, 64, "", 1300},
    };
    char text[1024];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        int len = job_encoding_line(&e[i], text + n, sizeof(text) - n);
        assert_true(len > 0);
        n += (size_t)len;
        text[n++] = '\n';
    }
    text[n - 1] = '\0';
    struct job_encoding back[4];
    assert_int_equal(job_encodings_parse(text, back, 4), 3);
    assert_string_equal(back[1].mime, "image/avif");
    assert_int_equal(back[1].offset, 900);
    assert_string_equal(back[2].etag, "");
    assert_int_equal(back[2].output, 1);
    assert_int_equal(job_encodings_parse(NULL, back, 4), 0);
    assert_int_equal(job_encodings_parse("0 0 a jpeg image/jpeg 1 2", back, 4), -1);
    assert_int_equal(job_encodings_parse("0 0 a bmp image/bmp 1 2 3 - 0", back, 4), -1);
    assert_int_equal(job_encodings_parse("9 0 a jpeg image/jpeg 1 2 3 - 0", back, 4), -1);

    struct job_record rec = {0};
    job_record_set(&rec, "state", "done");
    job_record_set(&rec, "res_mime", "image/jpeg");
    job_record_set(&rec, "res_bytes", "900");
    job_record_set(&rec, "res_rend", text);
    job_record_set(&rec, "ph_hash", "LEHV6nWB2yk8pyo0adR*.7kCMdnj");
    job_record_set(&rec, "ph_color", "#336699");
    json_t *doc = job_document("j1", &rec);
    json_t *res = json_object_get(doc, "result");
    json_t *list = json_object_get(res, "renditions");
    assert_int_equal(json_array_size(list), 2);
    json_t *a = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "a");
    assert_string_equal(json_string_value(json_object_get(a, "mime")), "image/jpeg");
    assert_int_equal(json_integer_value(json_object_get(a, "bytes")), 900);
    assert_string_equal(json_string_value(json_object_get(a, "image_url")),
                        "/v1/thumbnails/j1/image/a");
    json_t *formats = json_object_get(a, "formats");
    assert_int_equal(json_array_size(formats), 2); /* in the order listed: avif, then jpeg */
    assert_string_equal(json_string_value(json_object_get(json_array_get(formats, 0), "format")),
                        "avif");
    assert_string_equal(json_string_value(json_object_get(json_array_get(formats, 0), "image_url")),
                        "/v1/thumbnails/j1/image/a?format=avif");
    assert_string_equal(json_string_value(json_object_get(json_array_get(formats, 1), "format")),
                        "jpeg");
    json_t *ph = json_object_get(res, "placeholder");
    assert_string_equal(json_string_value(json_object_get(ph, "color")), "#336699");
    json_decref(doc);

    /* with storage.public_url, each object's own URL */
    job_record_set(&rec, "res_obj", "t/j1/a.jpg t/j1/a.avif t/j1/b.webp");
    job_record_set(&rec, "res_url", "https://cdn.example/t/j1/a.jpg");
    doc = job_document("j1", &rec);
    list = json_object_get(json_object_get(doc, "result"), "renditions");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "image_url")),
                        "https://cdn.example/t/j1/b.webp");
    formats = json_object_get(json_array_get(list, 0), "formats");
    assert_string_equal(json_string_value(json_object_get(json_array_get(formats, 0), "image_url")),
                        "https://cdn.example/t/j1/a.avif");
    json_decref(doc);
    job_record_free(&rec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_defaults),     cmocka_unit_test(test_json_all_fields),
        cmocka_unit_test(test_json_errors),       cmocka_unit_test(test_url_length),
        cmocka_unit_test(test_text_params),       cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_document),          cmocka_unit_test(test_document_deliveries),
        cmocka_unit_test(test_queued_document),   cmocka_unit_test(test_output_bounds),
        cmocka_unit_test(test_text_strict),       cmocka_unit_test(test_output_options),
        cmocka_unit_test(test_renditions),        cmocka_unit_test(test_job_pixels),
        cmocka_unit_test(test_text_options),      cmocka_unit_test(test_renditions_record),
        cmocka_unit_test(test_result_renditions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
