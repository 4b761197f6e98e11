/* test_store.c — the object store's key layout, URLs and canonical query
 * escaping (store.h); requests themselves are tested against a real
 * S3-speaking server by tests/integration/test_storage.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "store.h"

static struct config s3_config(const char *endpoint, bool path_style) {
    struct config cfg;
    assert_int_equal(config_defaults(&cfg), 0);
    free(cfg.storage_endpoint);
    free(cfg.storage_bucket);
    cfg.storage_endpoint = strdup(endpoint);
    cfg.storage_bucket = strdup("thumbs");
    cfg.storage_backend = CONFIG_STORAGE_S3;
    cfg.storage_path_style = path_style;
    return cfg;
}

static void test_ext_of_mime(void **state) {
    (void)state;
    assert_string_equal(store_ext_of_mime("image/jpeg"), "jpg");
    assert_string_equal(store_ext_of_mime("image/webp"), "webp");
    assert_string_equal(store_ext_of_mime("image/avif"), "avif");
    assert_string_equal(store_ext_of_mime("image/png"), "png");
    assert_string_equal(store_ext_of_mime("image/gif"), "gif");
    assert_string_equal(store_ext_of_mime("text/html"), "bin");
    assert_string_equal(store_ext_of_mime(NULL), "bin");
}

/* <prefix>/<id>/<name>.<ext> and <upload_prefix>/<id>. */
static void test_keys(void **state) {
    (void)state;
    struct config cfg = s3_config("http://127.0.0.1:9000", true);
    char key[STORE_KEY_MAX];
    assert_int_equal(store_result_key(&cfg, "01HABCDEF", "default", "image/webp", key), 0);
    assert_string_equal(key, "results/01HABCDEF/default.webp");
    assert_int_equal(store_upload_key(&cfg, "01HABCDEF", key), 0);
    assert_string_equal(key, "uploads/01HABCDEF");
    free(cfg.storage_prefix);
    cfg.storage_prefix = strdup("prod/thumbs");
    assert_int_equal(store_result_key(&cfg, "X", "default", "image/jpeg", key), 0);
    assert_string_equal(key, "prod/thumbs/X/default.jpg");
    /* A key that cannot fit is refused, not cut. */
    char name[STORE_KEY_MAX];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(store_result_key(&cfg, "X", name, "image/jpeg", key), -1);
    config_free(&cfg);
}

static void test_urls(void **state) {
    (void)state;
    char url[STORE_URL_MAX];
    struct config cfg = s3_config("http://127.0.0.1:9000", true);
    assert_int_equal(store_object_url(&cfg, "results/A/default.jpg", NULL, url, sizeof(url)), 0);
    assert_string_equal(url, "http://127.0.0.1:9000/thumbs/results/A/default.jpg");
    assert_int_equal(store_object_url(&cfg, "", "list-type=2", url, sizeof(url)), 0);
    assert_string_equal(url, "http://127.0.0.1:9000/thumbs?list-type=2");
    /* Characters SigV4 encodes are sent encoded ('/' kept in a path). */
    assert_int_equal(store_object_url(&cfg, "a!b/c d(1)", NULL, url, sizeof(url)), 0);
    assert_string_equal(url, "http://127.0.0.1:9000/thumbs/a%21b/c%20d%281%29");
    config_free(&cfg);

    /* The endpoint's own path is kept, its trailing '/' dropped. */
    cfg = s3_config("https://store.example/s3/", true);
    assert_int_equal(store_object_url(&cfg, "k", NULL, url, sizeof(url)), 0);
    assert_string_equal(url, "https://store.example/s3/thumbs/k");
    config_free(&cfg);

    /* Virtual-host style: the bucket in the host name. */
    cfg = s3_config("https://s3.eu-west-1.amazonaws.com", false);
    assert_int_equal(store_object_url(&cfg, "results/A/default.png", NULL, url, sizeof(url)), 0);
    assert_string_equal(url, "https://thumbs.s3.eu-west-1.amazonaws.com/results/A/default.png");
    assert_int_equal(store_object_url(&cfg, "", NULL, url, sizeof(url)), 0);
    assert_string_equal(url, "https://thumbs.s3.eu-west-1.amazonaws.com/");
    char small[16];
    assert_int_equal(store_object_url(&cfg, "k", NULL, small, sizeof(small)), -1);

    /* Public URLs: none without public_url; its trailing '/' dropped. */
    assert_int_equal(store_public_url(&cfg, "k", url, sizeof(url)), -1);
    free(cfg.storage_public_url);
    cfg.storage_public_url = strdup("https://cdn.example/t/");
    assert_int_equal(store_public_url(&cfg, "results/A/default.avif", url, sizeof(url)), 0);
    assert_string_equal(url, "https://cdn.example/t/results/A/default.avif");
    config_free(&cfg);
}

/* Canonical query values: unreserved kept, everything else %XX, '/' too. */
static void test_query_escape(void **state) {
    (void)state;
    char out[64];
    assert_int_equal(store_query_escape("results/", out, sizeof(out)), 0);
    assert_string_equal(out, "results%2F");
    assert_int_equal(store_query_escape("a b~c-d_e.f+g=h&", out, sizeof(out)), 0);
    assert_string_equal(out, "a%20b~c-d_e.f%2Bg%3Dh%26");
    assert_int_equal(store_query_escape("\xc3\xa9", out, sizeof(out)), 0);
    assert_string_equal(out, "%C3%A9");
    char tiny[4];
    assert_int_equal(store_query_escape("/", tiny, sizeof(tiny)), 0);
    assert_string_equal(tiny, "%2F");
    assert_int_equal(store_query_escape("//", tiny, sizeof(tiny)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ext_of_mime),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_query_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
