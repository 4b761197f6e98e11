/* test_worker.c — worker_main against a private redis-server: jobs put on the
 * queue with the real scripts come out done or failed with the documented
 * fields; the scoreboard moves; a Redis restart is survived; SIGTERM stops it.
 * Fails (does not skip) when redis-server is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "config.h"
#include "id.h"
#include "job.h"
#include "queue.h"
#include "segment.h"
#include "thumb.h"
#include "redis_fixture.h"
#include "worker.h"
#include "units.h"

#define PREFIX "tw"
#define NODE   "testnode:1"
#define SLOT   3

static struct {
    struct redis_fixture redis;
    int64_t started_ms;
    pid_t worker;
    struct config cfg;
    struct shm_segment shm;
    redisContext *c;
} fx;

#define now_ms   redis_fixture_now_ms
#define sleep_ms redis_fixture_sleep_ms

static int setup(void **state) {
    (void)state;
    if (!redis_fixture_available()) {
        /* Not a skip: every test fails, saying why. */
        fprintf(stderr, "test_worker: %s\n", redis_fixture_missing());
        return 0;
    }
    fx.started_ms = units_mono_ms();
    if (redis_fixture_start(&fx.redis, "worker") < 0 ||
        (fx.c = redis_fixture_connect(&fx.redis)) == NULL)
        return -1;

    config_defaults(&fx.cfg);
    fx.cfg.redis_mode = CONFIG_REDIS_EXTERNAL;
    free(fx.cfg.redis_url);
    fx.cfg.redis_url = malloc(strlen(fx.redis.sock) + 6);
    sprintf(fx.cfg.redis_url, "unix:%s", fx.redis.sock);
    free(fx.cfg.redis_key_prefix);
    fx.cfg.redis_key_prefix = strdup(PREFIX);

    char pidfile[300];
    snprintf(pidfile, sizeof(pidfile), "%s/pid", fx.redis.dir);
    if (shm_segment_create(&fx.shm, pidfile, 1 << 20) < 0)
        return -1;

    /* Fork the worker before this process touches libvips. */
    fx.worker = fork();
    if (fx.worker == 0) {
        struct child_args a = {
            .cfg = &fx.cfg, .node_id = NODE, .listen_fd = -1, .shm = &fx.shm, .slot = SLOT};
        _exit(worker_main(&a));
    }
    return thumb_init();
}

static int teardown(void **state) {
    (void)state;
    if (fx.redis.dir[0] == '\0')
        return 0;
    if (fx.worker > 0) {
        kill(fx.worker, SIGKILL);
        waitpid(fx.worker, NULL, 0);
    }
    if (fx.c)
        redisFree(fx.c);
    shm_segment_destroy(&fx.shm);
    config_free(&fx.cfg);
    if (redis_fixture_remove(&fx.redis) < 0)
        return -1;
    thumb_shutdown();
    return 0;
}

/* Fails (never skips) the test when there is no server. */
#define NEED_REDIS() REDIS_FIXTURE_REQUIRE(fx.redis.dir[0] != '\0')

static redisReply *cmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx.c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        fail_msg("redis: %s", fx.c->errstr);
    return r;
}

static char *key(char *buf, const char *kind, const char *id) {
    return queue_key(buf, QUEUE_KEY_MAX, PREFIX, kind, id);
}

/* Enqueues a job with the real script onto the list ready (NULL: the real
 * ready list); bytes NULL = no upload stored. */
static void enqueue_on(const char *ready, char id[ID_LEN + 1], const char *url, int width,
                       const char *format, const void *bytes, size_t len, bool upload) {
    struct job_param_limits lim = {.max_dimension = 4096, .default_quality = 80};
    struct job_params p;
    job_params_init(&p, &lim);
    p.out[0].width = width;
    p.url = url ? strdup(url) : NULL;
    job_format_parse(format, &p.out[0].formats[0]);
    struct job_param_error perr;
    assert_int_equal(job_params_finish(&p, upload, &lim, &perr), 0);
    struct job_record rec = {0};
    assert_int_equal(job_record_from_params(&rec, &p), 0);
    assert_int_equal(id_generate(id), 0);

    char kj[QUEUE_KEY_MAX], kr[QUEUE_KEY_MAX], kd[QUEUE_KEY_MAX], ks[QUEUE_KEY_MAX];
    /* KEYS job ready delayed src idem req client; ARGV id max bytes has_bytes ttl prefix
     * max_client fields */
    size_t n = 14 + 2 * rec.count;
    const char **argv = calloc(n, sizeof(*argv));
    size_t *lens = calloc(n, sizeof(*lens));
    const char *fixed[] = {key(kj, "job", id),
                           key(kr, ready ? ready : "ready", NULL),
                           key(kd, "delayed", NULL),
                           key(ks, "src", id),
                           "",
                           "",
                           "",
                           id,
                           "1000",
                           bytes ? bytes : "",
                           bytes ? "1" : "0",
                           "60000",
                           PREFIX,
                           "0"};
    for (size_t i = 0; i < 14; i++) {
        argv[i] = fixed[i];
        lens[i] = i == 9 ? (bytes ? len : 0) : strlen(fixed[i]);
    }
    for (size_t i = 0; i < rec.count; i++) {
        argv[14 + 2 * i] = rec.names[i];
        argv[15 + 2 * i] = rec.values[i];
        lens[14 + 2 * i] = strlen(rec.names[i]);
        lens[15 + 2 * i] = strlen(rec.values[i]);
    }
    redisReply *r = queue_eval(fx.c, QUEUE_SCRIPT_ENQUEUE, 7, (int)n - 7, argv, lens);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    free(argv);
    free(lens);
    job_record_free(&rec);
    job_params_free(&p);
}

static void enqueue(char id[ID_LEN + 1], const char *url, int width, const char *format,
                    const void *bytes, size_t len, bool upload) {
    enqueue_on(NULL, id, url, width, format, bytes, len, upload);
}

/* Waits until job id is terminal; returns its hash (job_record_free). */
static struct job_record wait_job(const char *id) {
    char kj[QUEUE_KEY_MAX];
    long long deadline = now_ms() + 30000;
    for (;;) {
        redisReply *r = cmd("HGETALL %s", key(kj, "job", id));
        struct job_record rec = {0};
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            job_record_set(&rec, r->element[i]->str, r->element[i + 1]->str);
        freeReplyObject(r);
        if (job_state_is_terminal(job_record_get(&rec, "state")))
            return rec;
        job_record_free(&rec);
        if (now_ms() > deadline)
            fail_msg("job %s did not finish", id);
        sleep_ms(20);
    }
}

static void expect_failed(const char *id, const char *code) {
    struct job_record rec = wait_job(id);
    assert_string_equal(job_record_get(&rec, "state"), "failed");
    assert_string_equal(job_record_get(&rec, "err_code"), code);
    assert_true(strlen(job_record_get(&rec, "err_msg")) > 0);
    job_record_free(&rec);
}

static struct blob {
    void *data;
    size_t len;
} png(int w, int h) {
    VipsImage *x, *y;
    assert_int_equal(vips_black(&x, w, h, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear1(x, &y, 1.0, 90.0, "uchar", TRUE, NULL), 0);
    struct blob b;
    assert_int_equal(vips_pngsave_buffer(y, &b.data, &b.len, NULL), 0);
    g_object_unref(x);
    g_object_unref(y);
    return b;
}

static void test_upload_done(void **state) {
    (void)state;
    NEED_REDIS();
    struct blob b = png(300, 200);
    char id[ID_LEN + 1];
    enqueue(id, NULL, 60, "webp", b.data, b.len, true);
    struct job_record rec = wait_job(id);
    assert_string_equal(job_record_get(&rec, "state"), "done");
    assert_string_equal(job_record_get(&rec, "src_mime"), "image/png");
    assert_int_equal(job_record_get_int(&rec, "src_bytes", -1), (long long)b.len);
    assert_int_equal(job_record_get_int(&rec, "src_width", -1), 300);
    assert_int_equal(job_record_get_int(&rec, "src_height", -1), 200);
    assert_string_equal(job_record_get(&rec, "res_mime"), "image/webp");
    assert_int_equal(job_record_get_int(&rec, "res_width", -1), 60);
    assert_int_equal(job_record_get_int(&rec, "res_height", -1), 40);
    assert_int_equal(job_record_get_int(&rec, "attempts", -1), 1);
    assert_int_equal(strlen(job_record_get(&rec, "res_etag")), 32);
    assert_non_null(job_record_get(&rec, "finished"));

    char k[QUEUE_KEY_MAX];
    redisReply *r = cmd("GET %s", key(k, "res", id));
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal((long long)r->len, job_record_get_int(&rec, "res_bytes", -1));
    VipsImage *im = vips_image_new_from_buffer(r->str, r->len, "", NULL);
    assert_non_null(im);
    assert_int_equal(vips_image_get_width(im), 60);
    g_object_unref(im);
    freeReplyObject(r);
    r = cmd("PTTL %s", key(k, "res", id));
    assert_true(r->integer > 0 && r->integer <= fx.cfg.redis_result_ttl);
    freeReplyObject(r);
    r = cmd("EXISTS %s", key(k, "src", id));
    assert_int_equal(r->integer, 0); /* the upload is gone once done */
    freeReplyObject(r);
    job_record_free(&rec);
    g_free(b.data);
}

static void test_failures(void **state) {
    (void)state;
    NEED_REDIS();
    char id[ID_LEN + 1];
    const char *text = "this is not an image\n";
    enqueue(id, NULL, 60, "jpeg", text, strlen(text), true);
    expect_failed(id, "unsupported_type");
    struct job_record rec = wait_job(id);
    assert_string_equal(job_record_get(&rec, "src_mime"), "text/plain");
    char k[QUEUE_KEY_MAX];
    redisReply *r = cmd("PTTL %s", key(k, "job", id));
    assert_true(r->integer > 0 && r->integer <= fx.cfg.redis_failure_ttl);
    freeReplyObject(r);
    job_record_free(&rec);

    enqueue(id, NULL, 60, "jpeg", NULL, 0, true);
    expect_failed(id, "source_missing");

    enqueue(id, "http://127.0.0.1:1/a.png", 60, "jpeg", NULL, 0, false);
    expect_failed(id, "fetch_blocked_address");
    enqueue(id, "http://[::ffff:169.254.169.254]/latest", 60, "jpeg", NULL, 0, false);
    expect_failed(id, "fetch_blocked_address");
}

static void test_canceled_is_skipped(void **state) {
    (void)state;
    NEED_REDIS();
    char id[ID_LEN + 1], kj[QUEUE_KEY_MAX], kr[QUEUE_KEY_MAX];
    id_generate(id);
    freeReplyObject(cmd("HSET %s state canceled src url url http://x.example/ width 10 height 10 "
                        "fit inside crop centre format jpeg quality 80",
                        key(kj, "job", id)));
    freeReplyObject(cmd("RPUSH %s %s", key(kr, "ready", NULL), id));
    /* A job behind it finishing means the canceled one was seen first. */
    struct blob b = png(20, 20);
    char next[ID_LEN + 1];
    enqueue(next, NULL, 10, "png", b.data, b.len, true);
    struct job_record rec = wait_job(next);
    assert_string_equal(job_record_get(&rec, "state"), "done");
    job_record_free(&rec);
    redisReply *r = cmd("HGET %s state", kj);
    assert_string_equal(r->str, "canceled");
    freeReplyObject(r);
    char kp[QUEUE_KEY_MAX], wid[64];
    snprintf(wid, sizeof(wid), "%s:%d", NODE, (int)fx.worker);
    r = cmd("LLEN %s", key(kp, "proc", wid));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    g_free(b.data);
}

static void test_registered_and_scoreboard(void **state) {
    (void)state;
    NEED_REDIS();
    char kw[QUEUE_KEY_MAX], wid[64];
    snprintf(wid, sizeof(wid), "%s:%d", NODE, (int)fx.worker);
    redisReply *r = cmd("SISMEMBER %s %s", key(kw, "workers", NODE), wid);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    struct shm_slot *s = shm_segment_slot(&fx.shm, SLOT);
    assert_true(atomic_load(&s->jobs_done) >= 3);
    /* The worker marks itself idle just after its last job is stored. */
    for (long long until = now_ms() + 5000;
         atomic_load(&s->state) != SHM_SLOT_IDLE && now_ms() < until;)
        sleep_ms(10);
    assert_int_equal(atomic_load(&s->state), SHM_SLOT_IDLE);
    assert_true(atomic_load(&s->heartbeat_ms) >= fx.started_ms); /* the worker heartbeats */
}

/* An id found in the worker's own proc list is picked up (left by a Redis error). */
static void test_leftover_in_proc(void **state) {
    (void)state;
    NEED_REDIS();
    struct blob b = png(30, 30);
    char id[ID_LEN + 1], kr[QUEUE_KEY_MAX], kp[QUEUE_KEY_MAX], wid[64];
    /* Queued on a list the worker does not watch, then put in its proc list
     * and the worker's connection cut, as when BLMOVE's reply is lost: after
     * the reconnect the worker looks in its proc list first. */
    enqueue_on("held", id, NULL, 10, "png", b.data, b.len, true);
    snprintf(wid, sizeof(wid), "%s:%d", NODE, (int)fx.worker);
    freeReplyObject(cmd("DEL %s", key(kr, "held", NULL)));
    freeReplyObject(cmd("RPUSH %s %s", key(kp, "proc", wid), id));
    freeReplyObject(cmd("CLIENT KILL TYPE normal SKIPME yes"));
    struct job_record rec = wait_job(id);
    assert_string_equal(job_record_get(&rec, "state"), "done");
    job_record_free(&rec);
    g_free(b.data);
}

static void test_redis_restart(void **state) {
    (void)state;
    NEED_REDIS();
    redisFree(fx.c);
    fx.c = NULL;
    redis_fixture_stop(&fx.redis);
    sleep_ms(1500); /* the worker notices and backs off */
    assert_int_equal(redis_fixture_spawn(&fx.redis), 0);
    assert_non_null(fx.c = redis_fixture_connect(&fx.redis));
    struct blob b = png(40, 40);
    char id[ID_LEN + 1];
    enqueue(id, NULL, 20, "jpeg", b.data, b.len, true);
    struct job_record rec = wait_job(id);
    assert_string_equal(job_record_get(&rec, "state"), "done");
    job_record_free(&rec);
    /* Registered again on the empty server. */
    char kw[QUEUE_KEY_MAX], wid[64];
    snprintf(wid, sizeof(wid), "%s:%d", NODE, (int)fx.worker);
    redisReply *r = cmd("SISMEMBER %s %s", key(kw, "workers", NODE), wid);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    g_free(b.data);
}

static void test_sigterm_stops(void **state) {
    (void)state;
    NEED_REDIS();
    kill(fx.worker, SIGTERM);
    int status = 0;
    long long deadline = now_ms() + 30000; /* a bound on a hang, not a timing */
    pid_t got;
    while ((got = waitpid(fx.worker, &status, WNOHANG)) == 0 && now_ms() < deadline)
        sleep_ms(20);
    assert_int_equal(got, fx.worker);
    char wid[64];
    snprintf(wid, sizeof(wid), "%s:%d", NODE, (int)fx.worker);
    fx.worker = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char kw[QUEUE_KEY_MAX];
    redisReply *r = cmd("SISMEMBER %s %s", key(kw, "workers", NODE), wid);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_done),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_canceled_is_skipped),
        cmocka_unit_test(test_registered_and_scoreboard),
        cmocka_unit_test(test_leftover_in_proc),
        cmocka_unit_test(test_redis_restart),
        cmocka_unit_test(test_sigterm_stops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
