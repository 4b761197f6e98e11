/* test_openapi.c — docs/openapi.json describes exactly the route table of
 * route.c: every route's template path is a path of the document with the
 * route's methods as its operations (HEAD written out as its own operation),
 * and the document has no path or operation the daemon does not serve. The
 * document's path comes from CMake (TH_OPENAPI_JSON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "route.h"
#include "version.h"

#ifndef TH_OPENAPI_JSON
#error "TH_OPENAPI_JSON (the path of docs/openapi.json) is set by tests/unit/CMakeLists.txt"
#endif

/* The operations an OpenAPI path item can have, and the method of each. */
static const struct {
    const char *key;
    enum http_method method;
} operations[] = {
    {"get", HTTP_GET},         {"put", HTTP_PUT},   {"post", HTTP_POST},   {"delete", HTTP_DELETE},
    {"options", HTTP_OPTIONS}, {"head", HTTP_HEAD}, {"patch", HTTP_PATCH}, {"trace", HTTP_TRACE},
};
#define NOPERATIONS (sizeof(operations) / sizeof(operations[0]))

static json_t *load_paths(json_t **doc) {
    json_error_t err;
    *doc = json_load_file(TH_OPENAPI_JSON, JSON_REJECT_DUPLICATES, &err);
    if (*doc == NULL)
        fail_msg("%s:%d: %s", TH_OPENAPI_JSON, err.line, err.text);
    json_t *paths = json_object_get(*doc, "paths");
    if (!json_is_object(paths))
        fail_msg("%s has no paths object", TH_OPENAPI_JSON);
    return paths;
}

/* Every route is in the document with exactly its methods. */
static void test_routes_documented(void **state) {
    (void)state;
    json_t *doc;
    json_t *paths = load_paths(&doc);
    int problems = 0;
    for (int r = ROUTE_NONE + 1; r < ROUTE_COUNT; r++) {
        const char *t = route_template(r);
        unsigned long long methods = route_methods(r);
        json_t *item = json_object_get(paths, t);
        if (!json_is_object(item)) {
            print_error("route %s: its path %s is not in %s\n", route_name(r), t, TH_OPENAPI_JSON);
            problems++;
            continue;
        }
        for (size_t i = 0; i < NOPERATIONS; i++) {
            bool served = (methods & (1ULL << operations[i].method)) != 0;
            bool written = json_object_get(item, operations[i].key) != NULL;
            if (served && !written) {
                print_error("route %s: %s %s is served but not in the document\n", route_name(r),
                            http_method_str(operations[i].method), t);
                problems++;
            } else if (written && !served) {
                print_error("route %s: the document has %s %s, which the daemon does not serve\n",
                            route_name(r), http_method_str(operations[i].method), t);
                problems++;
            }
        }
        /* A method OpenAPI has no operation for cannot be described at all. */
        for (int m = 0; m < 64; m++) {
            bool known = false;
            for (size_t i = 0; i < NOPERATIONS; i++)
                known |= (int)operations[i].method == m;
            if ((methods & (1ULL << m)) && !known) {
                print_error("route %s: method %s has no OpenAPI operation\n", route_name(r),
                            http_method_str((enum http_method)m));
                problems++;
            }
        }
    }
    json_decref(doc);
    assert_int_equal(problems, 0);
}

/* Every path of the document is a route. */
static void test_no_other_paths(void **state) {
    (void)state;
    json_t *doc;
    json_t *paths = load_paths(&doc);
    int problems = 0;
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        bool found = false;
        for (int r = ROUTE_NONE + 1; r < ROUTE_COUNT && !found; r++)
            found = strcmp(route_template(r), path) == 0;
        if (!found) {
            print_error("%s names the path %s, which is no route of route.c\n", TH_OPENAPI_JSON,
                        path);
            problems++;
        }
    }
    assert_int_equal(problems, 0);
    assert_int_equal(json_object_size(paths), ROUTE_COUNT - 1);
    json_decref(doc);
}

/* The document's info.version is the daemon's (CMake's PROJECT_VERSION). */
static void test_version(void **state) {
    (void)state;
    json_t *doc;
    load_paths(&doc);
    const char *v = json_string_value(json_object_get(json_object_get(doc, "info"), "version"));
    if (v == NULL || strcmp(v, THUMBNAILED_VERSION) != 0)
        print_error("%s: info.version is %s, the daemon is %s\n", TH_OPENAPI_JSON, v ? v : "(none)",
                    THUMBNAILED_VERSION);
    assert_non_null(v);
    assert_string_equal(v, THUMBNAILED_VERSION);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_documented),
        cmocka_unit_test(test_no_other_paths),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
