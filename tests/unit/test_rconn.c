/* test_rconn.c — the one Redis client: addressing, the error classes, the
 * backoff schedule, and the blocking connection's policy against a real
 * redis-server (connect on demand, an error reply drops the connection and
 * waits out the backoff, an outage and its recovery, the on_connect hook). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "rconn.h"
#include "redis_fixture.h"
#include "units.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct config cfg;
static bool cfg_set;

/* The defaults, with redis.url set when url is not NULL. */
static struct config *config_for(const char *url) {
    if (cfg_set)
        config_free(&cfg);
    cfg_set = true;
    config_defaults(&cfg);
    free(cfg.runtime_dir);
    cfg.runtime_dir = strdup("/run/th-test");
    if (url) {
        cfg.redis_mode = CONFIG_REDIS_EXTERNAL;
        free(cfg.redis_url);
        cfg.redis_url = strdup(url);
    }
    return &cfg;
}

static void test_resolve(void **state) {
    (void)state;
    struct rconn_target t;
    assert_int_equal(rconn_resolve(config_for(NULL), &t), 0);
    assert_string_equal(t.unix_path, "/run/th-test/redis.sock");

    assert_int_equal(rconn_resolve(config_for("redis://:s3cret@db.example:6380/4"), &t), 0);
    assert_string_equal(t.unix_path, "");
    assert_string_equal(t.host, "db.example");
    assert_int_equal(t.port, 6380);
    assert_int_equal(t.db, 4);
    assert_string_equal(t.password, "s3cret");

    assert_int_equal(rconn_resolve(config_for("redis://10.0.0.7"), &t), 0);
    assert_string_equal(t.host, "10.0.0.7");
    assert_int_equal(t.port, 6379);
    assert_int_equal(t.db, 0);

    assert_int_equal(rconn_resolve(config_for("unix:/var/run/redis.sock"), &t), 0);
    assert_string_equal(t.unix_path, "/var/run/redis.sock");

    const char *bad[] = {"http://host",     "redis://",    "redis://h:0",
                         "redis://h:70000", "redis://h/x", "redis://h/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rconn_resolve(config_for(bad[i]), &t) != -1)
            fail_msg("%s was accepted", bad[i]);
    }
}

/* The defaults in sentinel mode with list and name. */
static struct config *sentinel_config(const char *list, const char *name) {
    struct config *c = config_for(NULL);
    c->redis_mode = CONFIG_REDIS_SENTINEL;
    free(c->redis_sentinels);
    c->redis_sentinels = strdup(list);
    free(c->redis_master_name);
    c->redis_master_name = strdup(name);
    return c;
}

/* Sentinel mode: the list read, the per-Sentinel timeout kept short, a
 * ROLE reply told apart, and no Sentinel answering is one clear error that
 * names each. */
static void test_sentinels(void **state) {
    (void)state;
    struct rconn_target t;
    struct config *c = sentinel_config(" 10.0.0.1:26379\t[::1]:26380 s3.example:1 ", "mymaster");
    assert_int_equal(rconn_resolve(c, &t), 0);
    assert_int_equal(t.nsentinels, 3);
    assert_string_equal(t.sentinels[0].host, "10.0.0.1");
    assert_int_equal(t.sentinels[0].port, 26379);
    assert_string_equal(t.sentinels[1].host, "::1");
    assert_int_equal(t.sentinels[1].port, 26380);
    assert_string_equal(t.sentinels[2].host, "s3.example");
    assert_string_equal(t.master_name, "mymaster");
    assert_int_equal(t.sentinel_timeout_ms, RCONN_SENTINEL_TIMEOUT_MAX_MS);
    c->redis_connect_timeout = 100;
    assert_int_equal(rconn_resolve(c, &t), 0);
    assert_int_equal(t.sentinel_timeout_ms, 100);
    assert_int_equal(rconn_resolve(sentinel_config("10.0.0.1:26379", ""), &t), -1);

    redisReply name = {.type = REDIS_REPLY_STRING, .str = "master", .len = 6};
    redisReply *one[] = {&name};
    redisReply role = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = one};
    assert_true(rconn_role_is_master(&role));
    name.str = "slave";
    assert_false(rconn_role_is_master(&role));
    assert_false(rconn_role_is_master(NULL));

    /* Nothing listens on ports 1 and 2 of loopback: refused at once. */
    assert_int_equal(rconn_resolve(sentinel_config("127.0.0.1:1 127.0.0.1:2", "mymaster"), &t), 0);
    char host[256], err[1024];
    int port = 0;
    assert_int_equal(rconn_discover(&t, host, sizeof(host), &port, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'mymaster'"));
    assert_non_null(strstr(err, "Sentinel 127.0.0.1:1"));
    assert_non_null(strstr(err, "Sentinel 127.0.0.1:2"));
    assert_null(rconn_open(&t, 100, err, sizeof(err)));
    assert_null(rconn_open_async(&t, err, sizeof(err)));
}

static void test_classify(void **state) {
    (void)state;
    assert_int_equal(rconn_classify(NULL), RCONN_LOST);
    static const struct {
        int type;
        const char *str;
        enum rconn_fault want;
    } cases[] = {
        {REDIS_REPLY_STATUS, "OK", RCONN_OK},
        {REDIS_REPLY_STRING, "OOM", RCONN_OK}, /* a value, not an error */
        {REDIS_REPLY_ERROR, "OOM command not allowed when used memory > 'maxmemory'.",
         RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "MISCONF Errors writing to the AOF file: No space left on device",
         RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "READONLY You can't write against a read only replica.", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "NOREPLICAS Not enough good replicas to write.", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "BUSY Redis is busy running a script.", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "LOADING Redis is loading the dataset in memory", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "MASTERDOWN Link with MASTER is down", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "TRYAGAIN Multiple keys request during rehashing", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "CLUSTERDOWN The cluster is down", RCONN_REFUSED},
        {REDIS_REPLY_ERROR, "ERR unknown command 'FOO'", RCONN_ERROR},
        {REDIS_REPLY_ERROR, "NOSCRIPT No matching script.", RCONN_ERROR},
        {REDIS_REPLY_ERROR, "WRONGTYPE Operation against a key holding the wrong kind of value",
         RCONN_ERROR},
        {REDIS_REPLY_ERROR, "ERR Error running script: user_script:3: bad", RCONN_ERROR},
        {REDIS_REPLY_ERROR, "BUSYKEY Target key name already exists.", RCONN_ERROR},
        {REDIS_REPLY_ERROR, "OOMX not a refusal", RCONN_ERROR},
        {REDIS_REPLY_ERROR, "", RCONN_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redisReply r = {
            .type = cases[i].type, .str = (char *)cases[i].str, .len = strlen(cases[i].str)};
        if (rconn_classify(&r) != cases[i].want)
            fail_msg("\"%s\" (type %d): class %d, want %d", cases[i].str, cases[i].type,
                     rconn_classify(&r), cases[i].want);
    }
}

/* Each refusal has its reason (counted in /metrics, told to clients), and the
 * health record says "refusing" from a refused write until an accepted one. */
static void test_reasons_and_health(void **state) {
    (void)state;
    static const struct {
        const char *str;
        enum rconn_reason want;
        const char *name;
        bool writes_only;
    } cases[] = {
        {"OOM command not allowed", RCONN_REASON_OOM, "oom", true},
        {"MISCONF Errors writing to the AOF file", RCONN_REASON_MISCONF, "misconf", true},
        {"READONLY You can't write against a read only replica.", RCONN_REASON_READONLY, "readonly",
         true},
        {"NOREPLICAS Not enough good replicas to write.", RCONN_REASON_NOREPLICAS, "noreplicas",
         true},
        {"BUSY Redis is busy", RCONN_REASON_BUSY, "busy", false},
        {"LOADING Redis is loading the dataset in memory", RCONN_REASON_LOADING, "loading", false},
        {"MASTERDOWN Link with MASTER is down", RCONN_REASON_MASTERDOWN, "masterdown", false},
        {"TRYAGAIN", RCONN_REASON_TRYAGAIN, "tryagain", false},
        {"ERR syntax error", RCONN_REASON_ERROR, "error", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redisReply r = {
            .type = REDIS_REPLY_ERROR, .str = (char *)cases[i].str, .len = strlen(cases[i].str)};
        assert_int_equal(rconn_reason_of(&r), cases[i].want);
        assert_string_equal(rconn_reason_name(cases[i].want), cases[i].name);
        assert_int_equal(rconn_reason_refuses_writes(cases[i].want), cases[i].writes_only);
    }
    assert_int_equal(rconn_reason_of(NULL), RCONN_REASON_LOST);
    assert_string_equal(rconn_reason_name(RCONN_REASON_LOST), "lost");

    static struct rconn_health h;
    memset(&h, 0, sizeof(h));
    enum rconn_reason why = RCONN_REASON_NONE;
    assert_false(rconn_health_refusing(&h, &why));
    rconn_health_attach(&h);
    redisReply ok = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply oom = {.type = REDIS_REPLY_ERROR, .str = "OOM command not allowed", .len = 23};
    rconn_health_note(&ok, true);
    assert_false(rconn_health_refusing(&h, &why));
    rconn_health_note(&oom, true);
    assert_true(rconn_health_refusing(&h, &why));
    assert_int_equal(why, RCONN_REASON_OOM);
    rconn_health_note(&ok, false); /* a read succeeding says nothing about writes */
    assert_true(rconn_health_refusing(&h, NULL));
    rconn_health_note(NULL, false);
    assert_int_equal(atomic_load(&h.faults[RCONN_REASON_OOM]), 1);
    assert_int_equal(atomic_load(&h.faults[RCONN_REASON_LOST]), 1);
    redis_fixture_sleep_ms(2); /* the acceptance comes later on the clock */
    rconn_health_note(&ok, true);
    assert_false(rconn_health_refusing(&h, NULL));
    rconn_health_attach(NULL);
}

/* 50 ms doubling to 1 s, each step jittered by +-20 %, never above the cap. */
static void test_backoff(void **state) {
    (void)state;
    for (int run = 0; run < 200; run++) {
        long d = rconn_backoff_next(0);
        assert_in_range(d, RCONN_BACKOFF_MIN_MS * 8 / 10, RCONN_BACKOFF_MIN_MS * 12 / 10);
        for (int i = 0; i < 12; i++) {
            long next = rconn_backoff_next(d);
            long base = 2 * d > RCONN_BACKOFF_MAX_MS ? RCONN_BACKOFF_MAX_MS : 2 * d;
            assert_in_range(next, base * 8 / 10, RCONN_BACKOFF_MAX_MS);
            assert_true(next <= base * 12 / 10);
            d = next;
        }
        assert_in_range(d, RCONN_BACKOFF_MAX_MS * 8 / 10, RCONN_BACKOFF_MAX_MS);
    }
}

/* --- the blocking connection against a real server ---------------------------- */

static struct redis_fixture fx;

static int setup_server(void **state) {
    (void)state;
    if (!redis_fixture_available()) {
        fprintf(stderr, "test_rconn: %s\n", redis_fixture_missing());
        return -1; /* cmocka fails the group: never a silent skip */
    }
    return redis_fixture_start(&fx, "rconn");
}

static int teardown_server(void **state) {
    (void)state;
    return redis_fixture_remove(&fx);
}

static int connects;
static void count_connects(struct rconn *r, void *arg) {
    (void)arg;
    connects++;
    redisReply *rep = rconn_commandf(r, "hook", "INCR rconn:connects");
    assert_non_null(rep);
    freeReplyObject(rep);
}

static struct rconn *client(void) {
    static struct rconn r;
    char url[400];
    snprintf(url, sizeof(url), "unix:%s", fx.sock);
    assert_int_equal(rconn_init(&r, config_for(url), "test", 2000), 0);
    connects = 0;
    rconn_set_on_connect(&r, count_connects, NULL);
    return &r;
}

static void wait_until_ready(struct rconn *r) {
    long long until = redis_fixture_now_ms() + 5000;
    while (!rconn_ready(r) && redis_fixture_now_ms() < until)
        redis_fixture_sleep_ms(10);
    assert_true(rconn_connected(r));
}

static void test_connects_on_demand(void **state) {
    (void)state;
    redisContext *admin = redis_fixture_connect(&fx);
    assert_non_null(admin);
    freeReplyObject(redisCommand(admin, "FLUSHALL"));
    struct rconn *r = client();
    assert_false(rconn_connected(r));
    const char *av[] = {"SET", "k", "v"};
    redisReply *rep = rconn_command(r, "SET", 3, av, NULL);
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_true(rconn_connected(r));
    assert_int_equal(connects, 1);

    const char *get[] = {"GET", "k"}, *strlen_[] = {"STRLEN", "k"};
    struct rconn_cmd cmds[] = {{2, get, NULL}, {2, strlen_, NULL}};
    redisReply *replies[2];
    assert_int_equal(rconn_pipeline(r, "read", 2, cmds, replies), 0);
    assert_string_equal(replies[0]->str, "v");
    assert_int_equal(replies[1]->integer, 1);
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
    rconn_close(r);
    redisFree(admin);
}

/* An error reply (a bug, not an outage) still drops the connection and waits
 * out the backoff: a loop that retries it cannot spin. */
static void test_error_reply_backs_off(void **state) {
    (void)state;
    struct rconn *r = client();
    const char *bogus[] = {"NOSUCHCOMMAND"};
    assert_null(rconn_command(r, "bogus", 1, bogus, NULL));
    assert_false(rconn_connected(r));
    assert_true(r->backoff_ms >= RCONN_BACKOFF_MIN_MS * 8 / 10);
    /* Within the backoff nothing is attempted. */
    assert_true(units_mono_ms() < r->next_try_ms);
    const char *ping[] = {"PING"};
    assert_null(rconn_command(r, "PING", 1, ping, NULL));
    assert_int_equal(connects, 1);

    /* A pipeline with one bad command: nothing is returned, the same policy. */
    wait_until_ready(r);
    assert_int_equal(connects, 2);
    const char *incr[] = {"INCR", "rconn:connects"};
    struct rconn_cmd cmds[] = {{1, ping, NULL}, {1, bogus, NULL}, {2, incr, NULL}};
    redisReply *replies[3];
    assert_int_equal(rconn_pipeline(r, "mixed", 3, cmds, replies), -1);
    assert_null(replies[0]);
    assert_null(replies[1]);
    assert_null(replies[2]);
    assert_false(rconn_connected(r));
    rconn_close(r);
}

/* The server goes away and comes back: commands fail while it is gone, the
 * outage is one (down stays set), and the next connect after it runs the
 * hook again. */
static void test_outage_and_recovery(void **state) {
    (void)state;
    struct rconn *r = client();
    wait_until_ready(r);
    assert_int_equal(connects, 1);
    redis_fixture_stop(&fx);
    const char *ping[] = {"PING"};
    assert_null(rconn_command(r, "PING", 1, ping, NULL));
    assert_true(r->down);
    long first = r->backoff_ms;
    redis_fixture_sleep_ms(first + 5);
    assert_false(rconn_ready(r)); /* still gone: the next delay is longer */
    assert_true(r->down);
    assert_true(r->backoff_ms > first);

    assert_int_equal(redis_fixture_spawn(&fx), 0);
    redisContext *admin = redis_fixture_connect(&fx);
    assert_non_null(admin);
    volatile sig_atomic_t stop = 0;
    assert_int_equal(rconn_wait(r, &stop), 0);
    assert_int_equal(connects, 2);
    redisReply *rep = rconn_command(r, "PING", 1, ping, NULL);
    assert_non_null(rep);
    freeReplyObject(rep);
    assert_false(r->down);
    assert_int_equal(r->backoff_ms, 0);
    redisFree(admin);
    rconn_close(r);
}

static void test_wait_returns_on_stop(void **state) {
    (void)state;
    struct rconn *r = client();
    volatile sig_atomic_t stop = 1;
    assert_int_equal(rconn_wait(r, &stop), -1);
    assert_false(rconn_connected(r));
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as in the daemon: a write to a stopped server fails, not kills */
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_sentinels),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_reasons_and_health),
    };
    const struct CMUnitTest server[] = {
        cmocka_unit_test(test_connects_on_demand),
        cmocka_unit_test(test_error_reply_backs_off),
        cmocka_unit_test(test_outage_and_recovery),
        cmocka_unit_test(test_wait_returns_on_stop),
    };
    int failed = cmocka_run_group_tests_name("rconn", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("rconn_server", server, setup_server, teardown_server);
    if (cfg_set)
        config_free(&cfg);
    return failed;
}
