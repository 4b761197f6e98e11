/* test_config.c — defaults, the shipped file, and every kind of error with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char tmp_path[64];

static const char *write_conf(const char *text) {
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/th_test_conf_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return tmp_path;
}

/* Loads text; returns the number of errors and copies the first into first. */
static size_t load(const char *text, struct config *cfg, char *first, size_t n) {
    struct config_errors errs = {0};
    const char *path = write_conf(text);
    int rc = config_load(cfg, path, &errs);
    unlink(path);
    size_t count = errs.count;
    assert_int_equal(rc, count ? -1 : 0);
    if (first) {
        first[0] = '\0';
        if (count) {
            /* Strip the temporary path: compare from the line number on. */
            const char *colon = strchr(errs.msgs[0], ':');
            snprintf(first, n, "%s", colon ? colon : errs.msgs[0]);
        }
    }
    config_errors_free(&errs);
    return count;
}

static void expect_error(const char *text, const char *expected_prefix) {
    struct config cfg;
    char first[512];
    size_t count = load(text, &cfg, first, sizeof(first));
    config_free(&cfg);
    if (count == 0 || strncmp(first, expected_prefix, strlen(expected_prefix)) != 0)
        fail_msg("for %s\nexpected error starting '%s', got '%s' (%zu errors)", text,
                 expected_prefix, first, count);
}

/* redis.max_memory: auto (the default: a quarter of the memory), a size, 0. */
static void test_redis_max_memory(void **state) {
    (void)state;
    struct config cfg;
    assert_int_equal(config_defaults(&cfg), 0);
    assert_int_equal(cfg.redis_max_memory, CONFIG_MAX_MEMORY_AUTO);
    config_free(&cfg);
    assert_int_equal(load("[redis]\nmax_memory = 512M\n", &cfg, NULL, 0), 0);
    assert_int_equal(cfg.redis_max_memory, 512LL << 20);
    config_free(&cfg);
    assert_int_equal(load("[redis]\nmax_memory = 0\n", &cfg, NULL, 0), 0);
    assert_int_equal(cfg.redis_max_memory, 0);
    config_free(&cfg);
    expect_error("[redis]\nmax_memory = lots\n", ":2: redis.max_memory: 'lots' is not a size");
}

static void test_defaults(void **state) {
    (void)state;
    struct config cfg;
    assert_int_equal(config_defaults(&cfg), 0);
    assert_string_equal(cfg.user, "thumbnailed");
    assert_string_equal(cfg.http_listen, "127.0.0.1:8080");
    assert_int_equal(cfg.http_processes, 2);
    assert_int_equal(cfg.http_max_body, 20 << 20);
    assert_int_equal(cfg.http_max_header, 16 << 10);
    assert_int_equal(cfg.http_timeout, 30000);
    assert_true(cfg.worker_processes >= 1);
    assert_int_equal(cfg.worker_job_timeout, 60000);
    assert_int_equal(cfg.worker_max_attempts, 5);
    assert_int_equal(cfg.worker_max_memory, 1 << 30);
    assert_false(cfg.fetch_allow_private);
    assert_int_equal(cfg.fetch_max_redirects, 3);
    assert_int_equal(cfg.image_max_pixels, 50000000);
    assert_int_equal(cfg.image_max_dimension, 4096);
    assert_int_equal(cfg.image_max_output_pixels, 2048 * 2048);
    assert_int_equal(cfg.image_max_result_bytes, 8 << 20);
    assert_int_equal(cfg.image_avif_effort, 2);
    assert_true(config_list_contains(cfg.image_allowed_types, "image/avif"));
    assert_false(config_list_contains(cfg.image_allowed_types, "image/svg+xml"));
    assert_int_equal(cfg.cache_size, 256 << 20);
    assert_int_equal(cfg.cache_pending_ttl, 200);
    assert_int_equal(cfg.redis_mode, CONFIG_REDIS_EMBEDDED);
    assert_string_equal(cfg.redis_key_prefix, "thumbnailed");
    assert_int_equal(cfg.redis_connect_timeout, 500);
    assert_int_equal(cfg.redis_result_ttl, 86400000);
    assert_int_equal(cfg.redis_failure_ttl, 7 * 86400000LL);
    assert_int_equal(cfg.redis_max_queue, 100000);
    assert_string_equal(cfg.callback_schedule, "5s 5m 30m 2h 5h 10h");
    config_free(&cfg);
}

static void test_valid_file(void **state) {
    (void)state;
    struct config cfg;
    char first[512];
    size_t n = load("; comment\n# comment too\n[daemon]\nuser =\nlog_level = debug\n"
                    "log_target = file:/var/log/t.log\n"
                    "[http]\nlisten = [::1]:9000 ; inline comment\nprocesses = 4\n"
                    "max_body = 1M\ntimeout = 2500ms\n"
                    "[worker]\nprocesses = 3\n[fetch]\nallow_private = yes\n"
                    "[image]\nmax_pixels = 10M\nallowed_types = image/png image/svg+xml\n"
                    "[redis]\nmode = external\nurl = redis://:pw@10.0.0.1:6380/2\n"
                    "[callback]\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
                    "[smtp]\nurl = smtp://mail.example:25\nfrom = t@example.org\n",
                    &cfg, first, sizeof(first));
    if (n)
        fail_msg("unexpected error %s", first);
    assert_string_equal(cfg.user, "");
    assert_int_equal(cfg.log_level, 0);
    assert_string_equal(cfg.http_listen, "[::1]:9000");
    assert_int_equal(cfg.http_processes, 4);
    assert_int_equal(cfg.http_max_body, 1 << 20);
    assert_int_equal(cfg.http_timeout, 2500);
    assert_int_equal(cfg.worker_processes, 3);
    assert_true(cfg.fetch_allow_private);
    assert_int_equal(cfg.image_max_pixels, 10000000);
    assert_int_equal(cfg.redis_mode, CONFIG_REDIS_EXTERNAL);
    config_free(&cfg);
}

/* etc/thumbnailed.conf of the source tree: under $TH_SOURCE_DIR (ctest sets it),
 * else the tree this test was built from. Never a skip: without the file the
 * test fails, since a skip would pass without checking the shipped file. */
static void shipped_path(char *path, size_t size) {
    const char *src = getenv("TH_SOURCE_DIR");
    if (src == NULL || *src == '\0')
        src = TH_TEST_SOURCE_DIR;
    snprintf(path, size, "%s/etc/thumbnailed.conf", src);
    if (access(path, R_OK) != 0)
        fail_msg("%s: %s (set TH_SOURCE_DIR to the source tree)", path, strerror(errno));
}

static void test_shipped_file(void **state) {
    (void)state;
    char path[1024];
    shipped_path(path, sizeof(path));
    struct config cfg, def;
    struct config_errors errs = {0};
    int rc = config_load(&cfg, path, &errs);
    for (size_t i = 0; i < errs.count; i++)
        print_error("%s\n", errs.msgs[i]);
    assert_int_equal(rc, 0);
    config_errors_free(&errs);
    /* The shipped file states the defaults: loading it changes nothing. */
    assert_int_equal(config_defaults(&def), 0);
    assert_string_equal(cfg.user, def.user);
    assert_string_equal(cfg.image_allowed_types, def.image_allowed_types);
    assert_int_equal(cfg.http_max_body, def.http_max_body);
    assert_int_equal(cfg.worker_processes, def.worker_processes);
    assert_int_equal(cfg.redis_failure_ttl, def.redis_failure_ttl);
    config_free(&cfg);
    config_free(&def);
}

struct key_check {
    char *text;
    int missing;
};

static void check_key_in_file(const char *section, const char *key, const char *def, void *arg) {
    struct key_check *kc = arg;
    (void)def;
    char header[64], line[128];
    snprintf(header, sizeof(header), "\n[%s]\n", section);
    snprintf(line, sizeof(line), "\n%s =", key);
    const char *sec = strstr(kc->text, header);
    const char *next = sec ? strstr(sec + 1, "\n[") : NULL;
    const char *found = sec ? strstr(sec, line) : NULL;
    if (found == NULL || (next && found > next)) {
        print_error("%s.%s is not in etc/thumbnailed.conf\n", section, key);
        kc->missing++;
    }
}

static void test_shipped_file_lists_every_key(void **state) {
    (void)state;
    char path[1024];
    shipped_path(path, sizeof(path));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    struct key_check kc = {calloc(1, 65536), 0};
    kc.text[0] = '\n';
    size_t n = fread(kc.text + 1, 1, 65534, f);
    fclose(f);
    assert_true(n > 0);
    config_each_key(check_key_in_file, &kc);
    free(kc.text);
    assert_int_equal(kc.missing, 0);
}

static void test_errors_with_lines(void **state) {
    (void)state;
    expect_error("[http]\nlisten\n", ":2: syntax error");
    expect_error("[http]\n[broken\n", ":2: syntax error");
    expect_error("[nope]\nkey = 1\n", ":1: unknown section [nope]");
    expect_error("[http]\n\n  [empty]\n", ":3: unknown section [empty]");
    expect_error("key = 1\n", ":1: 'key' is outside any [section]");
    expect_error("[http]\n\nbogus = 1\n", ":3: unknown key 'bogus' in section [http]");
    expect_error("[http]\nmax_body = 20Q\n", ":2: http.max_body: '20Q' is not a size");
    expect_error("[http]\nmax_body = 2G\n", ":2: http.max_body: '2G' is out of range");
    expect_error("[http]\ntimeout = soon\n", ":2: http.timeout: 'soon' is not a duration");
    expect_error("[http]\nprocesses = 0\n", ":2: http.processes: 0 is out of range 1..256");
    expect_error("[http]\nprocesses = two\n", ":2: http.processes: 'two' is not an integer");
    expect_error("[http]\nprocesses = 2\nprocesses = 3\n",
                 ":3: http.processes already set on line 2");
    expect_error("[http]\nlisten = localhost\n", ":2: http.listen: expected host:port");
    expect_error("[http]\nlisten = 127.0.0.1:99999\n", ":2: http.listen: port must be");
    expect_error("[fetch]\nallow_private = maybe\n", ":2: fetch.allow_private: 'maybe' is not");
    expect_error("[daemon]\nlog_level = loud\n", ":2: daemon.log_level: 'loud' is not one of");
    expect_error("[daemon]\nlog_target = console\n", ":2: daemon.log_target: expected");
    expect_error("[daemon]\npid_file = run/t.pid\n", ":2: daemon.pid_file: must be an absolute");
    expect_error("[image]\nallowed_types = image/bmp\n", ":2: image.allowed_types: unknown image");
    expect_error("[image]\ndefault_quality = 101\n", ":2: image.default_quality: 101 is out");
    expect_error("[image]\nmax_output_pixels = 0\n", ":2: image.max_output_pixels: '0' is out");
    expect_error("[image]\nmax_result_bytes = 1G\n", ":2: image.max_result_bytes: '1G' is out");
    expect_error("[image]\navif_effort = 10\n", ":2: image.avif_effort: 10 is out of range 0..9");
    expect_error("[redis]\nmode = external\n", ":2: redis.url is required");
    expect_error("[redis]\nurl = http://x\n", ":2: redis.url: expected redis://");
    expect_error("[redis]\nkey_prefix = a b\n", ":2: redis.key_prefix: may contain only");
    expect_error("[callback]\nsecret = hunter2\n", ":2: callback.secret: each secret must be");
    expect_error("[callback]\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS\n",
                 ":2: callback.secret: a secret does not decode as base64");
    expect_error("[callback]\nschedule = 5s soon\n", ":2: callback.schedule: 'soon' is not");
    expect_error("[smtp]\nurl = smtp://mail:25\n", ":2: smtp.from is required");
    expect_error("[http]\nmax_body = 20M\n  continued\n", ":3: syntax error");
    expect_error("[fetch]\nallow_hosts = a.test:0\n", ":2: fetch.allow_hosts: 'a.test:0' is not");
    expect_error("[fetch]\ndeny_hosts = a.test:80\n", ":2: fetch.deny_hosts: 'a.test:80': no port");
    expect_error("[callback]\nallow_hosts = hooks.test [::1\n",
                 ":2: callback.allow_hosts: '[::1' is not");
    expect_error("[smtp]\nallow_recipients = ops@example.test\n",
                 ":2: smtp.allow_recipients: 'ops@example.test': an entry is a domain");
    expect_error("[http]\ntrusted_proxies = 127.0.0.1/32 10.0.0.1/8\n",
                 ":2: http.trusted_proxies: '10.0.0.1/8' has bits set past /8");
    expect_error("[http]\nmetrics_allow = localhost\n",
                 ":2: http.metrics_allow: 'localhost' is not an address block");
    expect_error("[smtp]\nallow_recipients = example.test:25\n",
                 ":2: smtp.allow_recipients: 'example.test:25': no port");
}

/* Push without authentication: a warning per open push, none once API keys or
 * the push's allow-list limit it. */
struct warnings {
    int n;
    char text[2][512];
};

static void collect(const char *msg, void *arg) {
    struct warnings *w = arg;
    if (w->n < 2)
        snprintf(w->text[w->n], sizeof(w->text[0]), "%s", msg);
    w->n++;
}

static struct warnings warnings_of(const char *text) {
    struct config cfg;
    struct warnings w = {0};
    assert_int_equal(load(text, &cfg, NULL, 0), 0);
    config_each_warning(&cfg, collect, &w);
    config_free(&cfg);
    return w;
}

static void test_open_push_warnings(void **state) {
    (void)state;
    static const char cb[] = "[callback]\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
    static const char mail[] = "[smtp]\nurl = smtp://mail.test\nfrom = t@example.test\n";
    char text[1024];

    assert_int_equal(warnings_of("[http]\nprocesses = 2\n").n, 0); /* no push: nothing open */

    struct warnings w = warnings_of(cb);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.text[0], "callbacks are open to anyone"));
    assert_non_null(strstr(w.text[0], "http.api_keys_file"));
    assert_non_null(strstr(w.text[0], "callback.allow_hosts"));

    w = warnings_of(mail);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.text[0], "e-mail is open to anyone"));
    assert_non_null(strstr(w.text[0], "smtp.allow_recipients"));

    snprintf(text, sizeof(text), "%s%s", cb, mail);
    assert_int_equal(warnings_of(text).n, 2);

    /* API keys close both. */
    snprintf(text, sizeof(text), "%s%s[http]\napi_keys_file = /etc/keys\n", cb, mail);
    assert_int_equal(warnings_of(text).n, 0);

    /* An allow-list closes its own push only. */
    snprintf(text, sizeof(text), "%sallow_hosts = hooks.test:443\n%s", cb, mail);
    w = warnings_of(text);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.text[0], "e-mail is open"));
    snprintf(text, sizeof(text), "%s%sallow_recipients = example.test\n", cb, mail);
    w = warnings_of(text);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.text[0], "callbacks are open"));
}

static void test_every_error_reported(void **state) {
    (void)state;
    struct config cfg;
    size_t n = load("[http]\nprocesses = 0\nmax_body = x\n[nope]\na = 1\nb = 2\n[worker]\nz = 1\n",
                    &cfg, NULL, 0);
    config_free(&cfg);
    /* One per bad value, one for the unknown section (not per key), one for z. */
    assert_int_equal(n, 4);
}

static void test_missing_file(void **state) {
    (void)state;
    struct config cfg;
    struct config_errors errs = {0};
    assert_int_equal(config_load(&cfg, "/nonexistent/thumbnailed.conf", &errs), -1);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.msgs[0], "/nonexistent/thumbnailed.conf: cannot open"));
    config_errors_free(&errs);
    config_free(&cfg);
}

static void test_long_line(void **state) {
    (void)state;
    char *text = malloc(10000);
    strcpy(text, "[fetch]\nallow_hosts = ");
    size_t len = strlen(text);
    memset(text + len, 'a', 5000);
    strcpy(text + len + 5000, "\n[http]\nbogus = 1\n");
    expect_error(text, ":2: line longer than");
    struct config cfg;
    char first[512];
    /* The line count stays right after the long line. */
    assert_int_equal(load(text, &cfg, first, sizeof(first)), 2);
    config_free(&cfg);
    free(text);
}

/* [storage]: what backend = s3 needs, each key's checks, and the credentials file. */
static void test_storage(void **state) {
    (void)state;
    struct config cfg;
    const char *s3 = "[storage]\nbackend = s3\nendpoint = http://127.0.0.1:9000\nbucket = thumbs\n"
                     "access_key = AKIAEXAMPLE\nsecret_key = secret\n";
    assert_int_equal(load(s3, &cfg, NULL, 0), 0);
    assert_int_equal(cfg.storage_backend, CONFIG_STORAGE_S3);
    assert_string_equal(cfg.storage_region, "us-east-1");
    assert_string_equal(cfg.storage_prefix, "results");
    assert_string_equal(cfg.storage_upload_prefix, "uploads");
    assert_int_equal(cfg.storage_expiry, CONFIG_EXPIRY_DELETE);
    assert_int_equal(cfg.storage_timeout, 10000);
    config_free(&cfg);

    expect_error("[storage]\nbackend = s3\nbucket = thumbs\naccess_key = a\nsecret_key = b\n",
                 ":2: storage.endpoint (the store's URL");
    expect_error("[storage]\nbackend = s3\nendpoint = http://h\naccess_key = a\nsecret_key = b\n",
                 ":2: storage.bucket is required");
    expect_error("[storage]\nbackend = s3\nendpoint = http://h\nbucket = thumbs\n",
                 ":2: storage.backend = s3 needs credentials");
    expect_error("[storage]\nendpoint = ftp://h\n", ":2: storage.endpoint: expected an http://");
    expect_error("[storage]\nendpoint = http://u:p@h\n",
                 ":2: storage.endpoint: the URL must not hold credentials");
    expect_error("[storage]\npublic_url = https://cdn.example/x?y=1\n",
                 ":2: storage.public_url: the URL must not hold a query");
    expect_error("[storage]\nbucket = Thumbs\n", ":2: storage.bucket: a bucket name is 3 to 63");
    expect_error("[storage]\nbucket = ab\n", ":2: storage.bucket: a bucket name is 3 to 63");
    expect_error("[storage]\nprefix = /results\n", ":2: storage.prefix: expected segments");
    expect_error("[storage]\nprefix = a//b\n", ":2: storage.prefix: expected segments");
    expect_error("[storage]\nprefix = a/../b\n", ":2: storage.prefix: expected segments");
    expect_error("[storage]\nupload_prefix = results/up\n",
                 ":2: storage.prefix (results) and storage.upload_prefix (results/up) must be");
    expect_error("[storage]\nprefix = same\nupload_prefix = same\n",
                 ":3: storage.prefix (same) and storage.upload_prefix (same) must be");
    expect_error("[storage]\naccess_key = has space\n", ":2: storage.access_key: expected at");
    expect_error("[storage]\nregion = eu west\n", ":2: storage.region: expected a region");
    expect_error("[storage]\nexpiry = never\n", ":2: storage.expiry:");
    expect_error("[storage]\ncredentials_file = relative\n",
                 ":2: storage.credentials_file: must be an absolute path");

    /* AWS's shared credentials file: [default] wins over other profiles. */
    char creds[64];
    snprintf(creds, sizeof(creds), "/tmp/th_test_creds_XXXXXX");
    int fd = mkstemp(creds);
    assert_true(fd >= 0);
    const char *text = "[other]\naws_access_key_id = NOPE\naws_secret_access_key = NOPE\n"
                       "[default]\naws_access_key_id = AKIDFILE\n"
                       "aws_secret_access_key = s3cr3t/FROM+file\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char conf[512];
    snprintf(conf, sizeof(conf),
             "[storage]\nbackend = s3\nendpoint = https://s3.eu-west-1.amazonaws.com\n"
             "bucket = thumbs\ncredentials_file = %s\n",
             creds);
    assert_int_equal(load(conf, &cfg, NULL, 0), 0);
    assert_string_equal(cfg.storage_access_key, "AKIDFILE");
    assert_string_equal(cfg.storage_secret_key, "s3cr3t/FROM+file");
    config_free(&cfg);
    snprintf(conf, sizeof(conf), "[storage]\naccess_key = x\ncredentials_file = %s\n", creds);
    expect_error(conf, ":3: storage.credentials_file and storage.access_key/secret_key are both");
    fd = open(creds, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    text = "[other]\naws_access_key_id = A\naws_secret_access_key = B\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(conf, sizeof(conf), "[storage]\ncredentials_file = %s\n", creds);
    expect_error(conf, ":2: storage.credentials_file ");
    unlink(creds);
    expect_error(conf, ":2: storage.credentials_file ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_redis_max_memory),
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_shipped_file),
        cmocka_unit_test(test_shipped_file_lists_every_key),
        cmocka_unit_test(test_errors_with_lines),
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_open_push_warnings),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_storage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
