/* test_http_route.c — the route table: paths, ids and methods to route, 404 or 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "id.h"
#include "route.h"

#define ID "kq3v7AAAAAAAAAAAAAAAAA"

static void check(enum http_method m, const char *path, enum route_id want, bool method_ok,
                  const char *id) {
    struct route_match rm;
    assert_int_equal(route_match(m, path, &rm), want);
    assert_int_equal(rm.route, want);
    assert_int_equal(rm.method_ok, method_ok);
    assert_string_equal(rm.id, id);
    if (want == ROUTE_NONE)
        assert_null(rm.allow);
    else
        assert_non_null(rm.allow);
}

static void test_paths(void **state) {
    (void)state;
    check(HTTP_GET, "/healthz", ROUTE_HEALTHZ, true, "");
    check(HTTP_GET, "/readyz", ROUTE_READYZ, true, "");
    check(HTTP_POST, "/v1/thumbnails", ROUTE_SUBMIT, true, "");
    check(HTTP_GET, "/v1/thumbnails/" ID, ROUTE_JOB, true, ID);
    check(HTTP_GET, "/v1/thumbnails/" ID "/image", ROUTE_IMAGE, true, ID);
    assert_true(id_is_valid(ID));
}

/* A rendition's image: its name is kept as sent, up to ROUTE_NAME_MAX. */
static void test_rendition_paths(void **state) {
    (void)state;
    struct route_match rm;
    check(HTTP_GET, "/v1/thumbnails/" ID "/image/w640", ROUTE_IMAGE_RENDITION, true, ID);
    route_match(HTTP_HEAD, "/v1/thumbnails/" ID "/image/w640", &rm);
    assert_true(rm.method_ok);
    assert_string_equal(rm.name, "w640");
    route_match(HTTP_GET, "/v1/thumbnails/" ID "/image", &rm);
    assert_string_equal(rm.name, "");
    char path[256], name[ROUTE_NAME_MAX + 2];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(path, sizeof(path), "/v1/thumbnails/" ID "/image/%s", name);
    check(HTTP_GET, path, ROUTE_IMAGE_RENDITION, true, ID);
    route_match(HTTP_GET, path, &rm);
    assert_string_equal(rm.name, ""); /* too long: never a name */
    name[ROUTE_NAME_MAX] = '\0';
    snprintf(path, sizeof(path), "/v1/thumbnails/" ID "/image/%s", name);
    route_match(HTTP_GET, path, &rm);
    assert_string_equal(rm.name, name);
    check(HTTP_POST, "/v1/thumbnails/" ID "/image/w640", ROUTE_IMAGE_RENDITION, false, ID);
    check(HTTP_GET, "/v1/thumbnails/" ID "/image/w640/x", ROUTE_NONE, false, "");
    check(HTTP_GET, "/v1/thumbnails/" ID "/image//", ROUTE_NONE, false, "");
    assert_string_equal(route_name(ROUTE_IMAGE_RENDITION), "image_rendition");
}

static void test_pages_and_admin(void **state) {
    (void)state;
    check(HTTP_GET, "/", ROUTE_ROOT, true, "");
    check(HTTP_GET, "/openapi.json", ROUTE_OPENAPI, true, "");
    check(HTTP_GET, "/docs", ROUTE_DOCS, true, "");
    check(HTTP_GET, "/docs/swagger-ui.css", ROUTE_DOCS_FILE, true, "swagger-ui.css");
    check(HTTP_GET, "/dashboard", ROUTE_DASHBOARD, true, "");
    check(HTTP_HEAD, "/dashboard/app.js", ROUTE_DASHBOARD_FILE, true, "app.js");
    check(HTTP_GET, "/v1/admin/overview", ROUTE_ADMIN_OVERVIEW, true, "");
    check(HTTP_GET, "/v1/admin/jobs", ROUTE_ADMIN_JOBS, true, "");
    check(HTTP_GET, "/v1/admin/jobs/" ID, ROUTE_ADMIN_JOB, true, ID);
    check(HTTP_GET, "/v1/admin/jobs/" ID "/image", ROUTE_ADMIN_JOB_IMAGE, true, ID);
    check(HTTP_POST, "/v1/admin/jobs/" ID "/retry", ROUTE_ADMIN_RETRY, true, ID);
    check(HTTP_GET, "/v1/admin/jobs/" ID "/retry", ROUTE_ADMIN_RETRY, false, ID);
    check(HTTP_DELETE, "/v1/admin/dead", ROUTE_ADMIN_DEAD, true, "");
    check(HTTP_POST, "/v1/admin/pause", ROUTE_ADMIN_PAUSE, true, "");
    check(HTTP_POST, "/v1/admin/resume", ROUTE_ADMIN_RESUME, true, "");
    check(HTTP_POST, "/v1/admin/overview", ROUTE_ADMIN_OVERVIEW, false, "");
}

/* Every route has a template path and methods, and its template (with {id}
 * and {file} filled in) matches it again. */
static void test_templates(void **state) {
    (void)state;
    for (int r = ROUTE_NONE + 1; r < ROUTE_COUNT; r++) {
        const char *t = route_template(r);
        assert_non_null(t);
        assert_true(route_methods(r) != 0);
        char path[256];
        size_t n = 0;
        for (const char *p = t; *p && n + 32 < sizeof(path);) {
            if (*p == '{') {
                const char *fill = strncmp(p, "{id}", 4) == 0 ? ID : "f.js";
                n += (size_t)snprintf(path + n, sizeof(path) - n, "%s", fill);
                p = strchr(p, '}') + 1;
            } else {
                path[n++] = *p++;
            }
        }
        path[n] = '\0';
        struct route_match rm;
        assert_int_equal(route_match(HTTP_GET, path, &rm), r);
    }
}

static void test_unknown_paths(void **state) {
    (void)state;
    const char *paths[] = {"",
                           "//",
                           "/healthz/",
                           "/docs/",
                           "/docsx",
                           "/docs/a/b",
                           "/dashboard/",
                           "/dashboard//x",
                           "/v1/admin",
                           "/v1/admin/",
                           "/v1/admin/jobs/",
                           "/v1/admin/jobs/" ID "/other",
                           "/v1/admin/jobs/" ID "/retry/",
                           "/v1/admin/overviewx",
                           "/healthzz",
                           "/v1",
                           "/v1/thumbnails/",
                           "/v1/thumbnailsX",
                           "/v1/thumbnails//image",
                           "/v1/thumbnails/" ID "/",
                           "/v1/thumbnails/" ID "/image/",
                           "/v1/thumbnails/" ID "/imagex",
                           "/v1/thumbnails/" ID "/other",
                           "/v1/thumbnails/a/b/c",
                           "/v2/thumbnails",
                           "/V1/thumbnails",
                           NULL};
    for (int i = 0; paths[i]; i++) {
        struct route_match rm;
        assert_int_equal(route_match(HTTP_GET, paths[i], &rm), ROUTE_NONE);
        assert_false(rm.method_ok);
        assert_null(rm.allow);
    }
    struct route_match rm;
    assert_int_equal(route_match(HTTP_GET, NULL, &rm), ROUTE_NONE);
}

static void test_ids_are_kept_not_judged(void **state) {
    (void)state;
    /* Any single segment is the job route; the handler answers 404 for a bad id. */
    check(HTTP_GET, "/v1/thumbnails/short", ROUTE_JOB, true, "short");
    check(HTTP_GET, "/v1/thumbnails/%41%41", ROUTE_JOB, true, "%41%41");
    assert_false(id_is_valid("short"));
    char path[256];
    char longseg[ROUTE_ID_MAX + 2];
    memset(longseg, 'A', sizeof(longseg) - 1);
    longseg[sizeof(longseg) - 1] = '\0';
    snprintf(path, sizeof(path), "/v1/thumbnails/%s/image", longseg);
    check(HTTP_GET, path, ROUTE_IMAGE, true, "");
}

static void test_methods(void **state) {
    (void)state;
    struct route_match rm;
    route_match(HTTP_HEAD, "/v1/thumbnails/" ID "/image", &rm);
    assert_true(rm.method_ok);
    route_match(HTTP_HEAD, "/v1/thumbnails/" ID, &rm);
    assert_true(rm.method_ok);
    route_match(HTTP_HEAD, "/healthz", &rm);
    assert_true(rm.method_ok);

    const enum http_method not_get[] = {HTTP_POST,  HTTP_PUT,     HTTP_DELETE,
                                        HTTP_PATCH, HTTP_OPTIONS, HTTP_TRACE};
    for (size_t i = 0; i < sizeof(not_get) / sizeof(not_get[0]); i++) {
        check(not_get[i], "/healthz", ROUTE_HEALTHZ, false, "");
        check(not_get[i], "/v1/thumbnails/" ID, ROUTE_JOB, not_get[i] == HTTP_DELETE, ID);
        check(not_get[i], "/v1/thumbnails/" ID "/image", ROUTE_IMAGE, false, ID);
    }
    route_match(HTTP_DELETE, "/v1/thumbnails/" ID, &rm);
    assert_string_equal(rm.allow, "GET, HEAD, DELETE");
    const enum http_method not_post[] = {HTTP_GET, HTTP_HEAD, HTTP_PUT, HTTP_DELETE, HTTP_PATCH};
    for (size_t i = 0; i < sizeof(not_post) / sizeof(not_post[0]); i++)
        check(not_post[i], "/v1/thumbnails", ROUTE_SUBMIT, false, "");

    route_match(HTTP_PUT, "/v1/thumbnails/" ID "/image", &rm);
    assert_string_equal(rm.allow, "GET, HEAD");
    route_match(HTTP_GET, "/v1/thumbnails", &rm);
    assert_string_equal(rm.allow, "POST");
}

static void test_compat_paths(void **state) {
    (void)state;
    check(HTTP_GET, "/api/health", ROUTE_COMPAT_HEALTH, true, "");
    check(HTTP_POST, "/api/thumb", ROUTE_COMPAT_SUBMIT, true, "");
    check(HTTP_GET, "/api/thumb/" ID, ROUTE_COMPAT_THUMB, true, ID);
    check(HTTP_GET, "/api/thumb", ROUTE_COMPAT_SUBMIT, false, "");
    check(HTTP_POST, "/api/health", ROUTE_COMPAT_HEALTH, false, "");
    check(HTTP_DELETE, "/api/thumb/" ID, ROUTE_COMPAT_THUMB, false, ID);
    const char *none[] = {
        "/api",        "/api/",        "/api/thumb/", "/api/thumb/a/b", "/api/thumb//a",
        "/api/thumbs", "/api/health/", "/API/thumb",  "/apithumb",      "/api/thumb/" ID "/",
        NULL};
    for (int i = 0; none[i]; i++) {
        struct route_match rm;
        assert_int_equal(route_match(HTTP_GET, none[i], &rm), ROUTE_NONE);
    }
    assert_string_equal(route_name(ROUTE_COMPAT_SUBMIT), "compat_submit");
    assert_string_equal(route_name(ROUTE_COMPAT_THUMB), "compat_thumb");
    assert_string_equal(route_name(ROUTE_COMPAT_HEALTH), "compat_health");
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(route_name(ROUTE_SUBMIT), "submit");
    assert_string_equal(route_name(ROUTE_IMAGE), "image");
    assert_string_equal(route_name(ROUTE_NONE), "none");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),         cmocka_unit_test(test_rendition_paths),
        cmocka_unit_test(test_unknown_paths), cmocka_unit_test(test_pages_and_admin),
        cmocka_unit_test(test_templates),     cmocka_unit_test(test_ids_are_kept_not_judged),
        cmocka_unit_test(test_methods),       cmocka_unit_test(test_compat_paths),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
