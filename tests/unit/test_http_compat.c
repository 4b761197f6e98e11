/* test_http_compat.c — the original service's documents: status names, data
 * URLs, the POST /api/thumb body and its FastAPI-shaped 422 details. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "compat_doc.h"

static const struct job_param_limits LIMITS = {.max_dimension = 4096, .default_quality = 80};

static void test_status(void **state) {
    (void)state;
    assert_string_equal(compat_doc_status("queued"), "queued");
    assert_string_equal(compat_doc_status("processing"), "started");
    assert_string_equal(compat_doc_status("done"), "finished");
    assert_string_equal(compat_doc_status("failed"), "failed");
    assert_string_equal(compat_doc_status("canceled"), "failed");
    assert_null(compat_doc_status("weird"));
    assert_null(compat_doc_status(""));
    assert_null(compat_doc_status(NULL));
}

static void test_data_url(void **state) {
    (void)state;
    const struct {
        const char *mime, *bytes;
        size_t len;
        const char *want;
    } cases[] = {
        {"image/png", "", 0, "data:image/png;base64,"},
        {"image/png", "f", 1, "data:image/png;base64,Zg=="},
        {"image/jpeg", "fo", 2, "data:image/jpeg;base64,Zm8="},
        {"image/jpeg", "foo", 3, "data:image/jpeg;base64,Zm9v"},
        {"image/webp", "foobar", 6, "data:image/webp;base64,Zm9vYmFy"},
        {NULL, "\xff\xfe\xfd", 3, "data:application/octet-stream;base64,//79"},
        {"", "\0", 1, "data:application/octet-stream;base64,AA=="},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *url = compat_doc_data_url(cases[i].mime, cases[i].bytes, cases[i].len);
        assert_non_null(url);
        assert_string_equal(url, cases[i].want);
        free(url);
    }
    /* A long buffer: no line breaks (EVP_EncodeBlock, not the streaming encoder). */
    unsigned char big[3000];
    memset(big, 0xab, sizeof(big));
    char *url = compat_doc_data_url("image/gif", big, sizeof(big));
    assert_non_null(url);
    assert_int_equal(strlen(url), strlen("data:image/gif;base64,") + 4000);
    assert_null(strchr(url, '\n'));
    free(url);
}

/* Parses body (e-mail to domains on recipients only, NULL for any); returns
 * the detail's "loc" list as compact JSON ("" on success). */
static char *parse_for(const char *body, bool with_email, const char *recipients,
                       struct job_params *p) {
    job_params_init(p, &LIMITS);
    json_t *detail = (json_t *)1;
    int rc = compat_doc_params(p, body, strlen(body), with_email, recipients, &detail);
    if (rc == 0) {
        assert_null(detail);
        return strdup("");
    }
    assert_int_equal(rc, -1);
    assert_non_null(detail);
    assert_null(p->url);
    assert_null(p->email);
    json_t *list = json_object_get(detail, "detail");
    assert_true(json_is_array(list));
    json_t *locs = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        assert_string_equal(json_string_value(json_object_get(e, "type")), "value_error");
        assert_true(json_string_length(json_object_get(e, "msg")) > 0);
        json_array_append(locs, json_object_get(e, "loc"));
    }
    char *text = json_dumps(locs, JSON_COMPACT);
    json_decref(locs);
    json_decref(detail);
    return text;
}

static char *parse(const char *body, bool with_email, struct job_params *p) {
    return parse_for(body, with_email, NULL, p);
}

static void test_good_body(void **state) {
    (void)state;
    struct job_params p;
    char *locs = parse("{\"email\": \"a@b.example\", \"image_url\": \"https://x.example/a.jpg\", "
                       "\"extra\": [1, 2]}",
                       false, &p);
    assert_string_equal(locs, "");
    free(locs);
    assert_string_equal(p.url, "https://x.example/a.jpg");
    assert_null(p.email); /* e-mail off: accepted and dropped */
    assert_int_equal(p.out[0].width, COMPAT_THUMB_SIDE);
    assert_int_equal(p.out[0].height, COMPAT_THUMB_SIDE);
    assert_int_equal(p.out[0].fit, JOB_FIT_COVER);
    assert_int_equal(p.out[0].crop, JOB_CROP_CENTRE);
    assert_int_equal(p.out[0].formats[0], JOB_FORMAT_ORIGINAL);
    assert_int_equal(p.out[0].quality, 80);
    job_params_free(&p);

    locs =
        parse("{\"email\": \"a@b.example\", \"image_url\": \"http://x.example/a.jpg\"}", true, &p);
    assert_string_equal(locs, "");
    free(locs);
    assert_string_equal(p.email, "a@b.example");
    job_params_free(&p);

    /* Without e-mail deliveries any string is an e-mail, as in the original. */
    locs = parse("{\"email\": \"whatever\", \"image_url\": \"http://x.example/a.jpg\"}", false, &p);
    assert_string_equal(locs, "");
    free(locs);
    job_params_free(&p);
}

static void test_bad_bodies(void **state) {
    (void)state;
    const struct {
        const char *body;
        bool with_email;
        const char *locs;
    } cases[] = {
        {"{}", false, "[[\"body\",\"email\"],[\"body\",\"image_url\"]]"},
        {"{\"email\": \"a@b.example\"}", false, "[[\"body\",\"image_url\"]]"},
        {"{\"image_url\": \"http://x.example/a\"}", false, "[[\"body\",\"email\"]]"},
        {"{\"email\": 5, \"image_url\": \"http://x.example/a\"}", false, "[[\"body\",\"email\"]]"},
        {"{\"email\": \"a@b.example\", \"image_url\": null}", false, "[[\"body\",\"image_url\"]]"},
        {"{\"email\": \"a@b.example\", \"image_url\": \"ftp://x.example/a\"}", false,
         "[[\"body\",\"image_url\"]]"},
        {"{\"email\": \"a@b.example\", \"image_url\": \"/a.jpg\"}", false,
         "[[\"body\",\"image_url\"]]"},
        {"{\"email\": \"nope\", \"image_url\": \"http://x.example/a\"}", true,
         "[[\"body\",\"email\"]]"},
        {"{\"email\": \"nope\", \"image_url\": \"gopher://x\"}", true,
         "[[\"body\",\"email\"],[\"body\",\"image_url\"]]"},
        {"[]", false, "[[\"body\"]]"},
        {"\"text\"", false, "[[\"body\"]]"},
        {"{\"email\": ", false, "[[\"body\",10]]"},
        {"", false, "[[\"body\",0]]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct job_params p;
        char *locs = parse(cases[i].body, cases[i].with_email, &p);
        assert_string_equal(locs, cases[i].locs);
        free(locs);
        job_params_free(&p);
    }
}

/* smtp.allow_recipients: an address whose domain is not on it is a 422 on
 * email, beside any other problem; with e-mail off nothing is checked. */
static void test_recipients(void **state) {
    (void)state;
    const struct {
        const char *body;
        bool with_email;
        const char *recipients;
        const char *locs;
    } cases[] = {
        {"{\"email\": \"a@b.example\", \"image_url\": \"http://x.example/a\"}", true, "b.example",
         ""},
        {"{\"email\": \"a@MAIL.B.example\", \"image_url\": \"http://x.example/a\"}", true,
         "other.test b.example", ""},
        {"{\"email\": \"a@b.example\", \"image_url\": \"http://x.example/a\"}", true, "", ""},
        {"{\"email\": \"a@evil.example\", \"image_url\": \"http://x.example/a\"}", true,
         "b.example", "[[\"body\",\"email\"]]"},
        {"{\"email\": \"a@b.example.evil\", \"image_url\": \"ftp://x\"}", true, "b.example",
         "[[\"body\",\"email\"],[\"body\",\"image_url\"]]"},
        {"{\"email\": \"a@evil.example\", \"image_url\": \"http://x.example/a\"}", false,
         "b.example", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct job_params p;
        char *locs = parse_for(cases[i].body, cases[i].with_email, cases[i].recipients, &p);
        if (strcmp(locs, cases[i].locs) != 0)
            fail_msg("case %zu: %s, want %s", i, locs, cases[i].locs);
        free(locs);
        job_params_free(&p);
    }
}

static void test_thumb_doc(void **state) {
    (void)state;
    json_t *doc = compat_doc_thumb("queued", NULL);
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(text, "{\"status\":\"queued\",\"image_base64\":null}");
    free(text);
    json_decref(doc);
    doc = compat_doc_thumb("finished", "data:image/png;base64,Zg==");
    text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(
        text, "{\"status\":\"finished\",\"image_base64\":\"data:image/png;base64,Zg==\"}");
    free(text);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),     cmocka_unit_test(test_data_url),
        cmocka_unit_test(test_good_body),  cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_recipients), cmocka_unit_test(test_thumb_doc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
