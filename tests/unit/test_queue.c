/* test_queue.c — every job transition of the queue's Lua scripts, against a redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "jobstats.h"
#include "queue.h"
#include "redis_fixture.h"

#define PREFIX     "tq"
#define NODE       "tqnode:1"
#define W1         NODE ":101"
#define W2         NODE ":102"
#define DEDUP_TTL  60000
#define RESULT_TTL 5000
#define FAIL_TTL   7000

/* The failure policy as queue_policy_args lays it out: prefix ttl max base cap
 * jitter deadmax. */
enum { P_PREFIX, P_TTL, P_MAX, P_BASE, P_CAP, P_JITTER, P_DEADMAX, P_COUNT };
static const char *const policy_default[P_COUNT] = {PREFIX, "7000", "3",  "1000",
                                                    "5000", "0.5",  "100"};

static struct {
    struct redis_fixture redis;
    redisContext *c;
} fx;

/* ---- fixture: a private redis-server on a unix socket ---- */

static int group_setup(void **state) {
    (void)state;
    if (!redis_fixture_available()) {
        /* Not a skip: every test that needs the server fails, saying why. */
        fprintf(stderr, "test_queue: %s\n", redis_fixture_missing());
        return 0;
    }
    if (redis_fixture_start(&fx.redis, "queue") < 0 ||
        (fx.c = redis_fixture_connect(&fx.redis)) == NULL)
        return -1;
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (fx.c)
        redisFree(fx.c);
    return redis_fixture_remove(&fx.redis);
}

/* Each test starts on an empty server. */
static int flush(void **state) {
    (void)state;
    if (fx.c == NULL)
        return 0;
    redisReply *r = redisCommand(fx.c, "FLUSHALL");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Fails (never skips) the test when there is no server. */
#define NEED_REDIS() REDIS_FIXTURE_REQUIRE(fx.c != NULL)

/* ---- Redis helpers ---- */

static redisReply *cmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx.c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        fail_msg("redis: %s", fx.c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s (for %s)", r->str, fmt);
    return r;
}

static long long cmd_int(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx.c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        fail_msg("redis: %s", fx.c->errstr);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: reply type %d, not an integer", fmt, r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* "{tq}:kind[:id]" in one of a ring of buffers, so several fit in one call. */
static const char *k(const char *kind, const char *id) {
    static char ring[32][QUEUE_KEY_MAX];
    static unsigned next;
    char *buf = ring[next++ % 32];
    return queue_key(buf, QUEUE_KEY_MAX, PREFIX, kind, id);
}

static long long redis_time_ms(void) {
    redisReply *r = cmd("TIME");
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

static bool exists(const char *key) {
    return cmd_int("EXISTS %s", key) == 1;
}

/* The key's remaining time to live is in (0, max] ms. */
static void expect_ttl(const char *key, long long max) {
    long long t = cmd_int("PTTL %s", key);
    if (t <= 0 || t > max)
        fail_msg("PTTL %s = %lld, want (0, %lld]", key, t, max);
}

/* The string value of key, which must exist, equals want (len bytes). */
static void expect_get(const char *key, const void *want, size_t len) {
    redisReply *r = cmd("GET %s", key);
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("GET %s: no string", key);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->str, want, len);
    freeReplyObject(r);
}

static char *join(const redisReply *r) {
    static char buf[1024];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->elements && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? " " : "", r->element[i]->str);
    return buf;
}

/* The members of a list (LRANGE) or zset (ZRANGE, by score) in order. */
static void expect_members(const char *what, const char *key, const char *const *want) {
    redisReply *r = cmd("%s %s 0 -1", what, key);
    size_t n = 0;
    while (want[n])
        n++;
    bool same = r->elements == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(r->element[i]->str, want[i]) == 0;
    if (!same)
        fail_msg("%s %s = [%s], want %zu other member(s)", what, key, join(r), n);
    freeReplyObject(r);
}

#define EXPECT_LIST(key, ...)                                                                      \
    expect_members("LRANGE", key, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_ZSET(key, ...)                                                                      \
    expect_members("ZRANGE", key, (const char *const[]){__VA_ARGS__, NULL})

/* ZSCORE as an integer, -1 when not a member. */
static long long zscore(const char *key, const char *id) {
    redisReply *r = cmd("ZSCORE %s %s", key, id);
    long long v = r->type == REDIS_REPLY_STRING ? (long long)strtod(r->str, NULL) : -1;
    freeReplyObject(r);
    return v;
}

static redisReply *job(const char *id) {
    return cmd("HGETALL %s", k("job", id));
}

/* The value of name among the field/value pairs of r from index from, or NULL. */
static const char *field_at(const redisReply *r, size_t from, const char *name) {
    for (size_t i = from; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->str;
    return NULL;
}

static const char *field(const redisReply *r, const char *name) {
    return field_at(r, 0, name);
}

static long long field_int(const redisReply *r, const char *name) {
    const char *v = field(r, name);
    if (v == NULL)
        fail_msg("field %s absent", name);
    return atoll(v);
}

/* want NULL: the field must be absent. */
static void expect_field(const redisReply *r, const char *name, const char *want) {
    const char *got = field(r, name);
    if (want == NULL && got != NULL)
        fail_msg("field %s = '%s', want it absent", name, got);
    if (want != NULL && got == NULL)
        fail_msg("field %s absent, want '%s'", name, want);
    if (want != NULL)
        assert_string_equal(got, want);
}

static void expect_job_field(const char *id, const char *name, const char *want) {
    redisReply *h = job(id);
    expect_field(h, name, want);
    freeReplyObject(h);
}

/* The field/value pairs of a (from index from) are those of the hash b. */
static void expect_same_fields(const redisReply *a, size_t from, const redisReply *b) {
    assert_int_equal(a->elements - from, b->elements);
    for (size_t i = 0; i + 1 < b->elements; i += 2) {
        const char *v = field_at(a, from, b->element[i]->str);
        if (v == NULL)
            fail_msg("field %s missing from the reply", b->element[i]->str);
        assert_string_equal(v, b->element[i + 1]->str);
    }
}

static void expect_between(const char *what, long long v, long long lo, long long hi) {
    if (v < lo || v > hi)
        fail_msg("%s = %lld, want [%lld, %lld]", what, v, lo, hi);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints r's elements (pairs of them when step is 2) sorted, one a line. */
static void dump_sorted(FILE *f, const redisReply *r, size_t step) {
    size_t n = r->elements / step;
    char **s = calloc(n ? n : 1, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        const redisReply *a = r->element[i * step];
        const redisReply *b = step == 2 ? r->element[i * step + 1] : NULL;
        size_t len = a->len + (b ? b->len : 0) + 2;
        s[i] = malloc(len);
        snprintf(s[i], len, "%s%s%s", a->str, b ? "=" : "", b ? b->str : "");
    }
    qsort(s, n, sizeof(*s), cmp_str);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "  %s\n", s[i]);
        free(s[i]);
    }
    free(s);
}

/* The whole database as text: keys sorted, each with its type, whether it has
 * a time to live, and its content. Equal dumps = nothing written. */
static char *db_dump(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    redisReply *keys = cmd("KEYS *");
    char **names = calloc(keys->elements ? keys->elements : 1, sizeof(*names));
    for (size_t i = 0; i < keys->elements; i++)
        names[i] = keys->element[i]->str;
    qsort(names, keys->elements, sizeof(*names), cmp_str);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *t = cmd("TYPE %s", names[i]);
        long long ttl = cmd_int("PTTL %s", names[i]);
        fprintf(f, "%s %s%s\n", names[i], t->str, ttl >= 0 ? " (ttl)" : "");
        redisReply *v = NULL;
        if (strcmp(t->str, "string") == 0) {
            v = cmd("GET %s", names[i]);
            fprintf(f, "  %zu bytes: ", v->len);
            fwrite(v->str, 1, v->len, f);
            fputc('\n', f);
        } else if (strcmp(t->str, "list") == 0) {
            v = cmd("LRANGE %s 0 -1", names[i]);
            fprintf(f, "  [%s]\n", join(v));
        } else if (strcmp(t->str, "zset") == 0) {
            v = cmd("ZRANGE %s 0 -1 WITHSCORES", names[i]);
            fprintf(f, "  [%s]\n", join(v));
        } else if (strcmp(t->str, "set") == 0) {
            v = cmd("SMEMBERS %s", names[i]);
            dump_sorted(f, v, 1);
        } else if (strcmp(t->str, "hash") == 0) {
            v = cmd("HGETALL %s", names[i]);
            dump_sorted(f, v, 2);
        }
        freeReplyObject(v);
        freeReplyObject(t);
    }
    free(names);
    freeReplyObject(keys);
    fclose(f);
    return buf;
}

static void expect_dump(char *before) {
    char *after = db_dump();
    assert_string_equal(after, before);
    free(after);
    free(before);
}

/* ---- the scripts ---- */

static redisReply *eval(enum queue_script s, int nkeys, int nargs, const char **argv,
                        const size_t *lens) {
    redisReply *r = queue_eval(fx.c, s, nkeys, nargs, argv, lens);
    if (r == NULL)
        fail_msg("queue_eval: %s", fx.c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("script %d: %s", (int)s, r->str);
    return r;
}

static long long eval_int(enum queue_script s, int nkeys, int nargs, const char **argv,
                          const size_t *lens) {
    redisReply *r = eval(s, nkeys, nargs, argv, lens);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("script %d: reply type %d, not an integer", (int)s, r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

struct enq {
    const char *idem, *req; /* dedup key names under "idem", NULL: unused */
    const char *max_queue;  /* NULL: 100 */
    const char *client;     /* the submitter's waiting set under "client", NULL: no bound */
    const char *max_client; /* NULL: 0 */
    const void *bytes;      /* the upload, stored when has_bytes */
    size_t len;
    bool has_bytes;
};

#define REQ_URL "http://img.example/a.png"

/* KEYS job ready delayed src idem req client; ARGV id max_queue bytes
 * has_bytes dedup_ttl prefix max_client fields... */
static redisReply *enqueue_ex(const char *id, const struct enq *o) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", DEDUP_TTL);
    const char *argv[] = {k("job", id),
                          k("ready", NULL),
                          k("delayed", NULL),
                          k("src", id),
                          o->idem ? k("idem", o->idem) : "",
                          o->req ? k("idem", o->req) : "",
                          o->client ? k("client", o->client) : "",
                          id,
                          o->max_queue ? o->max_queue : "100",
                          o->bytes ? o->bytes : "",
                          o->has_bytes ? "1" : "0",
                          ttl,
                          PREFIX,
                          o->max_client ? o->max_client : "0",
                          "src",
                          "url",
                          "url",
                          REQ_URL,
                          "width",
                          "64",
                          "format",
                          "jpeg"};
    size_t n = sizeof(argv) / sizeof(argv[0]), lens[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < n; i++)
        lens[i] = i == 9 ? (o->bytes ? o->len : 0) : strlen(argv[i]);
    return eval(QUEUE_SCRIPT_ENQUEUE, 7, (int)n - 7, argv, lens);
}

static void expect_ok(redisReply *r) {
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "ok");
    freeReplyObject(r);
}

static void enqueue(const char *id) {
    expect_ok(enqueue_ex(id, &(struct enq){0}));
}

static void enqueue_upload(const char *id) {
    expect_ok(enqueue_ex(id, &(struct enq){.bytes = "img\0bytes", .len = 9, .has_bytes = true}));
}

/* {'dup', id, fields...} with the fields of job id as they are now. */
static void expect_dup(redisReply *r, const char *id) {
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(r->elements >= 2);
    assert_string_equal(r->element[0]->str, "dup");
    assert_string_equal(r->element[1]->str, id);
    redisReply *h = job(id);
    expect_same_fields(r, 2, h);
    freeReplyObject(h);
    freeReplyObject(r);
}

/* What the worker's BLMOVE does: the head of ready, which must be want, into
 * wid's proc list. */
static void take(const char *wid, const char *want) {
    redisReply *r = cmd("LMOVE %s %s LEFT RIGHT", k("ready", NULL), k("proc", wid));
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("ready is empty, want %s at its head", want);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

/* KEYS job proc; ARGV id token */
static redisReply *start(const char *wid, const char *id, const char *token) {
    const char *argv[] = {k("job", id), k("proc", wid), id, token};
    return eval(QUEUE_SCRIPT_START, 2, 2, argv, NULL);
}

/* take and start: id becomes processing under token. */
static void run(const char *wid, const char *id, const char *token) {
    take(wid, id);
    redisReply *r = start(wid, id, token);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

/* The attempt's run time and fetched bytes that complete and fail_job pass
 * ("" unknown); a test sets them. */
static const char *attempt_ms = "", *attempt_bytes = "";

/* Where complete says the result is ("redis", "s3", "s3-lifecycle"); a test
 * sets it. */
static const char *complete_store = "redis";

/* KEYS job res proc src; ARGV id token ttl_ms bytes prefix ms src_bytes store
 * fields... (fields: NULL-ended pairs) */
static long long complete(const char *wid, const char *id, const char *token, const void *bytes,
                          size_t len, const char *const *fields) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", RESULT_TTL);
    const char *argv[20] = {k("job", id),  k("res", id),  k("proc", wid), k("src", id), id,
                            token,         ttl,           bytes,          PREFIX,       attempt_ms,
                            attempt_bytes, complete_store};
    size_t lens[20], n = 12;
    for (size_t i = 0; fields && fields[i] && n < 20; i++)
        argv[n++] = fields[i];
    for (size_t i = 0; i < n; i++)
        lens[i] = i == 7 ? len : strlen(argv[i]);
    redisReply *r = eval(QUEUE_SCRIPT_COMPLETE, 4, (int)n - 4, argv, lens);
    long long v;
    if (r->type == REDIS_REPLY_ARRAY) {
        /* Stored: {1, pttl, the job's fields}, the fields as HGETALL has them. */
        assert_true(r->elements >= 2);
        assert_int_equal(r->element[0]->type, REDIS_REPLY_INTEGER);
        v = r->element[0]->integer;
        assert_int_equal(v, 1);
        assert_int_equal(r->element[1]->type, REDIS_REPLY_INTEGER);
        assert_true(r->element[1]->integer > 0 && r->element[1]->integer <= RESULT_TTL);
        redisReply *h = job(id);
        expect_same_fields(r, 2, h);
        expect_field(h, "state", "done");
        freeReplyObject(h);
    } else {
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        v = r->integer;
        assert_true(v == 0 || v == -1);
    }
    freeReplyObject(r);
    return v;
}

/* KEYS job proc delayed dead; ARGV id token code message transient, the policy, fields... */
static long long fail_job(const char *wid, const char *id, const char *token, const char *code,
                          bool transient, const char *const *pol, const char *const *fields) {
    char msg[64];
    snprintf(msg, sizeof(msg), "message for %s", code);
    const char *argv[24] = {
        k("job", id), k("proc", wid),       k("delayed", NULL), k("dead", NULL), id, token, code,
        msg,          transient ? "1" : "0"};
    size_t n = 9;
    for (int i = 0; i < P_COUNT; i++)
        argv[n++] = pol[i];
    argv[n++] = attempt_ms;
    argv[n++] = attempt_bytes;
    for (size_t i = 0; fields && fields[i] && n < 24; i++)
        argv[n++] = fields[i];
    return eval_int(QUEUE_SCRIPT_FAIL, 4, (int)n - 4, argv, NULL);
}

/* KEYS proc ready workers delayed dead; ARGV mode code message wid, the policy */
static long long release(const char *wid, const char *code, const char *const *pol) {
    const char *argv[16] = {k("proc", wid),
                            k("ready", NULL),
                            k("workers", NODE),
                            k("delayed", NULL),
                            k("dead", NULL),
                            code ? "fail" : "requeue",
                            code ? code : "",
                            code ? "the worker is gone" : "",
                            wid};
    size_t n = 9;
    for (int i = 0; i < P_COUNT; i++)
        argv[n++] = pol[i];
    return eval_int(QUEUE_SCRIPT_RELEASE, 5, (int)n - 5, argv, NULL);
}

/* KEYS delayed ready; ARGV prefix limit */
static long long promote(const char *limit) {
    const char *argv[] = {k("delayed", NULL), k("ready", NULL), PREFIX, limit};
    return eval_int(QUEUE_SCRIPT_PROMOTE, 2, 2, argv, NULL);
}

/* KEYS job res src ready delayed; ARGV id ttl_ms prefix */
static long long del(const char *id) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", FAIL_TTL);
    const char *argv[] = {k("job", id),       k("res", id), k("src", id), k("ready", NULL),
                          k("delayed", NULL), id,           ttl,          PREFIX};
    return eval_int(QUEUE_SCRIPT_DELETE, 5, 3, argv, NULL);
}

/* A scheduled retry of id made due now and promoted: id at the back of ready. */
static void retry_now(const char *id) {
    long long now = redis_time_ms();
    assert_int_equal(cmd_int("ZADD %s XX CH %lld %s", k("delayed", NULL), now - 1, id), 1);
    assert_int_equal(promote("100"), 1);
}

/* Puts a job that is in ready into delayed with score due instead. */
static void delay(const char *id, long long due) {
    assert_int_equal(cmd_int("LREM %s 0 %s", k("ready", NULL), id), 1);
    assert_int_equal(cmd_int("ZADD %s %lld %s", k("delayed", NULL), due, id), 1);
}

/* ---- enqueue ---- */

static void test_enqueue_ok(void **state) {
    (void)state;
    NEED_REDIS();
    const char bytes[] = {'\x89', 'P', 'N', 'G', '\0', '\r', '\n'};
    long long t0 = redis_time_ms();
    redisReply *r = enqueue_ex("j1", &(struct enq){.idem = "key-1",
                                                   .req = "req-1",
                                                   .bytes = bytes,
                                                   .len = sizeof(bytes),
                                                   .has_bytes = true});
    long long t1 = redis_time_ms();
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "ok");
    char created[32];
    snprintf(created, sizeof(created), "%s", r->element[1]->str);
    expect_between("created", atoll(created), t0, t1);
    freeReplyObject(r);

    redisReply *h = job("j1");
    expect_field(h, "state", "queued");
    expect_field(h, "created", created);
    expect_field(h, "attempts", "0");
    expect_field(h, "src", "url");
    expect_field(h, "url", REQ_URL);
    expect_field(h, "width", "64");
    expect_field(h, "format", "jpeg");
    expect_field(h, "idem_key", k("idem", "key-1"));
    expect_field(h, "req_key", k("idem", "req-1"));
    expect_field(h, "token", NULL);
    assert_int_equal(h->elements, 2 * 9);
    freeReplyObject(h);
    EXPECT_LIST(k("ready", NULL), "j1");
    expect_get(k("src", "j1"), bytes, sizeof(bytes));
    assert_int_equal(cmd_int("PTTL %s", k("src", "j1")), -1);
    expect_get(k("idem", "key-1"), "j1", 2);
    expect_get(k("idem", "req-1"), "j1", 2);
    expect_ttl(k("idem", "key-1"), DEDUP_TTL);
    expect_ttl(k("idem", "req-1"), DEDUP_TTL);
    assert_true(cmd_int("PTTL %s", k("idem", "req-1")) > DEDUP_TTL - 1000);
    assert_int_equal(cmd_int("PTTL %s", k("job", "j1")), -1);

    /* has_bytes=0: no upload stored even with bytes given; no dedup keys. */
    expect_ok(enqueue_ex("j2", &(struct enq){.bytes = bytes, .len = sizeof(bytes)}));
    assert_false(exists(k("src", "j2")));
    expect_job_field("j2", "idem_key", "");
    expect_job_field("j2", "req_key", "");
    EXPECT_LIST(k("ready", NULL), "j1", "j2");
    /* job:j1 src:j1 idem:key-1 idem:req-1 ready job:j2 */
    assert_int_equal(cmd_int("DBSIZE"), 6);
}

/* http.max_queued_per_client: a client's jobs waiting to start are bounded;
 * starting or canceling one makes room; another client is not affected. */
static void test_enqueue_client_bound(void **state) {
    (void)state;
    NEED_REDIS();
    struct enq a = {.client = "alice", .max_client = "2"};
    expect_ok(enqueue_ex("j1", &a));
    expect_ok(enqueue_ex("j2", &a));
    char *before = db_dump();
    redisReply *r = enqueue_ex("j3", &a);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "client_full");
    assert_int_equal(r->element[1]->integer, 2);
    freeReplyObject(r);
    expect_dump(before); /* nothing written for a refused submit */
    expect_ok(enqueue_ex("b1", &(struct enq){.client = "bob", .max_client = "2"}));
    run(W1, "j1", "t1"); /* started: no longer waiting */
    expect_ok(enqueue_ex("j3", &a));
    assert_int_equal(del("j2"), 1); /* canceled: no longer waiting */
    expect_ok(enqueue_ex("j4", &a));
    r = enqueue_ex("j5", &a);
    assert_string_equal(r->element[0]->str, "client_full");
    freeReplyObject(r);
    redisReply *z = cmd("ZCARD %s", k("client", "alice"));
    assert_int_equal(z->integer, 2);
    freeReplyObject(z);
}

static void test_enqueue_full(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue("j1");
    enqueue("j2");
    delay("j2", redis_time_ms() + 60000); /* a retry waiting counts too */
    char *before = db_dump();
    redisReply *r = enqueue_ex("j3", &(struct enq){.idem = "key-3",
                                                   .req = "req-3",
                                                   .max_queue = "2",
                                                   .bytes = "x",
                                                   .len = 1,
                                                   .has_bytes = true});
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "full");
    assert_int_equal(r->element[1]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->element[1]->integer, 2);
    freeReplyObject(r);
    expect_dump(before);

    expect_ok(enqueue_ex("j3", &(struct enq){.max_queue = "3"}));
    EXPECT_LIST(k("ready", NULL), "j1", "j3");
}

static void test_enqueue_dedup_live(void **state) {
    (void)state;
    NEED_REDIS();
    expect_ok(enqueue_ex("j1", &(struct enq){.idem = "key-1", .req = "req-1"}));
    const struct enq same_req = {.req = "req-1", .bytes = "b", .len = 1, .has_bytes = true};
    const struct enq same_idem = {.idem = "key-1", .req = "req-2"};
    const struct enq same_req_new_idem = {.idem = "key-2", .req = "req-1"};

    for (int phase = 0; phase < 3; phase++) {
        if (phase == 1)
            run(W1, "j1", "tok-1");
        if (phase == 2)
            assert_int_equal(complete(W1, "j1", "tok-1", "res", 3, NULL), 1);
        static const char *const states[] = {"queued", "processing", "done"};
        expect_job_field("j1", "state", states[phase]);
        char *before = db_dump();
        expect_dup(enqueue_ex("j2", &same_req), "j1");
        expect_dup(enqueue_ex("j2", &same_idem), "j1");
        expect_dup(enqueue_ex("j2", &same_req_new_idem), "j1");
        expect_dup(enqueue_ex("j2", &(struct enq){.req = "req-1", .max_queue = "0"}), "j1");
        expect_dup(enqueue_ex("j1", &same_req), "j1");
        expect_dump(before);
    }
}

static void test_enqueue_dedup_after_end(void **state) {
    (void)state;
    NEED_REDIS();
    const struct enq o = {.idem = "key-1", .req = "req-1"};
    /* failed */
    expect_ok(enqueue_ex("j1", &o));
    run(W1, "j1", "tok-1");
    assert_int_equal(fail_job(W1, "j1", "tok-1", "bad_input", false, policy_default, NULL), 1);
    expect_ok(enqueue_ex("j2", &o));
    expect_get(k("idem", "key-1"), "j2", 2);
    expect_get(k("idem", "req-1"), "j2", 2);
    expect_ttl(k("idem", "key-1"), DEDUP_TTL);
    expect_ttl(k("idem", "req-1"), DEDUP_TTL);
    expect_job_field("j2", "state", "queued");
    EXPECT_LIST(k("ready", NULL), "j2");

    /* canceled */
    assert_int_equal(del("j2"), 1);
    expect_ok(enqueue_ex("j3", &(struct enq){.idem = "key-1"}));
    expect_get(k("idem", "key-1"), "j3", 2);
    expect_ok(enqueue_ex("j4", &(struct enq){.req = "req-1"}));
    expect_get(k("idem", "req-1"), "j4", 2);

    /* deleted */
    assert_int_equal(cmd_int("DEL %s", k("job", "j3")), 1);
    expect_ok(enqueue_ex("j5", &(struct enq){.idem = "key-1"}));
    expect_get(k("idem", "key-1"), "j5", 2);

    /* expired */
    assert_int_equal(cmd_int("PEXPIRE %s 1", k("job", "j5")), 1);
    redis_fixture_sleep_ms(10);
    expect_ok(enqueue_ex("j6", &(struct enq){.idem = "key-1"}));
    expect_get(k("idem", "key-1"), "j6", 2);
    expect_ttl(k("idem", "key-1"), DEDUP_TTL);
    EXPECT_LIST(k("ready", NULL), "j3", "j4", "j5", "j6");
}

/* ---- start ---- */

static void test_start(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    take(W1, "j1");
    long long t0 = redis_time_ms();
    redisReply *r = start(W1, "j1", "tok-1");
    long long t1 = redis_time_ms();
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    expect_field(r, "state", "processing");
    expect_field(r, "attempts", "1");
    expect_field(r, "token", "tok-1");
    expect_field(r, "url", REQ_URL);
    expect_between("started", field_int(r, "started"), t0, t1);
    redisReply *h = job("j1");
    expect_same_fields(r, 0, h);
    freeReplyObject(h);
    freeReplyObject(r);
    EXPECT_LIST(k("proc", W1), "j1");
    EXPECT_LIST(k("ready", NULL), NULL);
    assert_true(exists(k("src", "j1")));
}

static void test_start_skips(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue("j1");
    enqueue("j2");
    take(W1, "j1");
    take(W1, "j2");
    assert_int_equal(del("j1"), 1);
    assert_int_equal(cmd_int("RPUSH %s ghost", k("proc", W1)), 3);

    redisReply *r = start(W1, "j1", "tok-1"); /* canceled */
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    expect_job_field("j1", "state", "canceled");
    expect_job_field("j1", "token", NULL);
    EXPECT_LIST(k("proc", W1), "j2", "ghost");

    r = start(W1, "ghost", "tok-g"); /* no such job */
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    assert_false(exists(k("job", "ghost")));
    EXPECT_LIST(k("proc", W1), "j2");

    r = start(W1, "j2", "tok-2");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    EXPECT_LIST(k("proc", W1), "j2");
}

/* KEYS ready proc workers; ARGV token wid prefix */
static redisReply *take_script(const char *wid, const char *token) {
    const char *argv[] = {
        k("ready", NULL), k("proc", wid), k("workers", "node-1"), token, wid, PREFIX};
    return eval(QUEUE_SCRIPT_TAKE, 3, 3, argv, NULL);
}

/* take.lua: the head of ready moved to proc and started, as start.lua starts
 * it; canceled and gone jobs are answered by id alone and leave proc; nil
 * when nothing is ready. */
static void test_take(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    enqueue("j2");
    enqueue("j3");
    /* Ready as a release can leave it: a deleted job's id back in the list
     * (j2), and an id without a job (ghost). */
    assert_int_equal(del("j2"), 1);
    assert_int_equal(cmd_int("RPUSH %s ghost j2", k("ready", NULL)), 4);

    long long t0 = redis_time_ms();
    redisReply *r = take_script(W1, "tok-1");
    long long t1 = redis_time_ms();
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "j1");
    assert_string_equal(field_at(r, 1, "state"), "processing");
    assert_string_equal(field_at(r, 1, "attempts"), "1");
    assert_string_equal(field_at(r, 1, "token"), "tok-1");
    assert_string_equal(field_at(r, 1, "url"), REQ_URL);
    expect_between("started", atoll(field_at(r, 1, "started")), t0, t1);
    redisReply *h = job("j1");
    expect_same_fields(r, 1, h);
    freeReplyObject(h);
    freeReplyObject(r);
    EXPECT_LIST(k("proc", W1), "j1");
    assert_int_equal(cmd_int("SISMEMBER %s %s", k("workers", "node-1"), W1), 1);

    r = take_script(W2, "tok-3");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "j3");
    assert_string_equal(field_at(r, 1, "token"), "tok-3");
    freeReplyObject(r);
    EXPECT_LIST(k("proc", W2), "j3");

    const char *skipped[] = {"ghost", "j2"}; /* no such job; canceled */
    for (int i = 0; i < 2; i++) {
        r = take_script(W1, "tok-x");
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 1);
        assert_string_equal(r->element[0]->str, skipped[i]);
        freeReplyObject(r);
        EXPECT_LIST(k("proc", W1), "j1");
    }
    assert_false(exists(k("job", "ghost")));
    expect_job_field("j2", "state", "canceled");
    expect_job_field("j2", "token", NULL);

    r = take_script(W2, "tok-5"); /* nothing ready */
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    EXPECT_LIST(k("ready", NULL), NULL);
    EXPECT_LIST(k("proc", W2), "j3");
}

/* ---- complete ---- */

static void test_complete(void **state) {
    (void)state;
    NEED_REDIS();
    expect_ok(enqueue_ex(
        "j1", &(struct enq){
                  .idem = "key-1", .req = "req-1", .bytes = "src", .len = 3, .has_bytes = true}));
    /* A first attempt that failed leaves err_code, err_msg and retry_at. */
    run(W1, "j1", "tok-1");
    assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, policy_default, NULL), 2);
    retry_now("j1");
    run(W1, "j1", "tok-2");
    expect_job_field("j1", "err_code", "fetch_timeout");

    const char res[] = {'R', '\0', 'E', 'S'};
    const char *const fields[] = {"res_mime", "image/jpeg", "res_width", "64", NULL};
    long long t0 = redis_time_ms();
    assert_int_equal(complete(W1, "j1", "tok-2", res, sizeof(res), fields), 1);
    long long t1 = redis_time_ms();

    redisReply *h = job("j1");
    expect_field(h, "state", "done");
    expect_between("finished", field_int(h, "finished"), t0, t1);
    expect_field(h, "res_mime", "image/jpeg");
    expect_field(h, "res_width", "64");
    expect_field(h, "attempts", "2");
    expect_field(h, "url", REQ_URL);
    expect_field(h, "token", NULL);
    expect_field(h, "err_code", NULL);
    expect_field(h, "err_msg", NULL);
    expect_field(h, "retry_at", NULL);
    freeReplyObject(h);
    expect_ttl(k("job", "j1"), RESULT_TTL);
    expect_get(k("res", "j1"), res, sizeof(res));
    expect_ttl(k("res", "j1"), RESULT_TTL);
    /* The dedup keys (set for DEDUP_TTL) now live as long as the result. */
    expect_get(k("idem", "key-1"), "j1", 2);
    expect_ttl(k("idem", "key-1"), RESULT_TTL);
    expect_ttl(k("idem", "req-1"), RESULT_TTL);
    assert_false(exists(k("proc", W1)));
    assert_false(exists(k("src", "j1")));
    EXPECT_LIST(k("ready", NULL), NULL);
    EXPECT_ZSET(k("delayed", NULL), NULL);
}

static void test_complete_stale(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    run(W1, "j1", "tok-1");
    assert_int_equal(release(W1, NULL, policy_default), 1);
    run(W2, "j1", "tok-2");
    expect_job_field("j1", "token", "tok-2");

    char *before = db_dump();
    assert_int_equal(complete(W1, "j1", "tok-1", "old", 3, NULL), 0);
    expect_dump(before);
    assert_false(exists(k("res", "j1")));

    assert_int_equal(complete(W2, "j1", "tok-2", "new", 3, NULL), 1);
    before = db_dump();
    assert_int_equal(complete(W2, "j1", "tok-2", "again", 5, NULL), 0);
    assert_int_equal(complete(W1, "j1", "tok-1", "old", 3, NULL), 0);
    expect_dump(before);
    expect_get(k("res", "j1"), "new", 3);
}

/* ---- fail ---- */

static void test_fail_permanent(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    run(W1, "j1", "tok-1");
    const char *const extra[] = {"src_mime", "text/plain", "src_bytes", "21", NULL};
    long long t0 = redis_time_ms();
    assert_int_equal(fail_job(W1, "j1", "tok-1", "unsupported_type", false, policy_default, extra),
                     1);
    long long t1 = redis_time_ms();
    redisReply *h = job("j1");
    expect_field(h, "state", "failed");
    expect_field(h, "err_code", "unsupported_type");
    expect_field(h, "err_msg", "message for unsupported_type");
    expect_field(h, "src_mime", "text/plain");
    expect_field(h, "src_bytes", "21");
    expect_field(h, "attempts", "1");
    expect_field(h, "token", NULL);
    expect_field(h, "retry_at", NULL);
    expect_between("finished", field_int(h, "finished"), t0, t1);
    freeReplyObject(h);
    expect_ttl(k("job", "j1"), FAIL_TTL);
    assert_false(exists(k("src", "j1")));
    assert_false(exists(k("proc", W1)));
    EXPECT_LIST(k("ready", NULL), NULL);
    EXPECT_ZSET(k("delayed", NULL), NULL);
    EXPECT_ZSET(k("dead", NULL), NULL);
}

static void test_fail_retry_then_dead(void **state) {
    (void)state;
    NEED_REDIS();
    const char *pol[P_COUNT];
    memcpy(pol, policy_default, sizeof(pol));
    pol[P_MAX] = "5";
    static const char *const jitter[] = {"0", "0.5", "0.9999", "0.25"};
    static const long long backoff[] = {1000, 2000, 4000, 5000}; /* base 1000, cap 5000 */
    enqueue_upload("j1");
    for (int a = 1; a <= 4; a++) {
        char tok[16], attempts[8];
        snprintf(tok, sizeof(tok), "tok-%d", a);
        snprintf(attempts, sizeof(attempts), "%d", a);
        run(W1, "j1", tok);
        pol[P_JITTER] = jitter[a - 1];
        long long t0 = redis_time_ms();
        assert_int_equal(fail_job(W1, "j1", tok, "fetch_timeout", true, pol, NULL), 2);
        long long t1 = redis_time_ms();

        redisReply *h = job("j1");
        expect_field(h, "state", "queued");
        expect_field(h, "err_code", "fetch_timeout");
        expect_field(h, "err_msg", "message for fetch_timeout");
        expect_field(h, "attempts", attempts);
        expect_field(h, "token", NULL);
        long long due = field_int(h, "retry_at");
        freeReplyObject(h);
        assert_int_equal(zscore(k("delayed", NULL), "j1"), due);
        /* The script's own arithmetic: floor(d * (0.5 + jitter / 2)). */
        long long want =
            (long long)((double)backoff[a - 1] * (0.5 + strtod(jitter[a - 1], NULL) / 2));
        expect_between("delay", want, backoff[a - 1] / 2, backoff[a - 1] - 1);
        expect_between("retry_at - delay", due - want, t0, t1);
        EXPECT_ZSET(k("delayed", NULL), "j1");
        EXPECT_LIST(k("ready", NULL), NULL);
        assert_false(exists(k("proc", W1)));
        assert_true(exists(k("src", "j1"))); /* kept for the next attempt */
        assert_int_equal(cmd_int("PTTL %s", k("job", "j1")), -1);
        retry_now("j1");
    }
    run(W1, "j1", "tok-5");
    long long t0 = redis_time_ms();
    assert_int_equal(fail_job(W1, "j1", "tok-5", "fetch_timeout", true, pol, NULL), 3);
    long long t1 = redis_time_ms();
    redisReply *h = job("j1");
    expect_field(h, "state", "failed");
    expect_field(h, "attempts", "5");
    expect_field(h, "err_code", "fetch_timeout");
    expect_field(h, "token", NULL);
    expect_between("finished", field_int(h, "finished"), t0, t1);
    freeReplyObject(h);
    EXPECT_ZSET(k("dead", NULL), "j1");
    expect_between("dead score", zscore(k("dead", NULL), "j1"), t0, t1);
    EXPECT_ZSET(k("delayed", NULL), NULL);
    EXPECT_LIST(k("ready", NULL), NULL);
    expect_ttl(k("job", "j1"), FAIL_TTL);
    assert_false(exists(k("src", "j1")));
}

static void test_fail_dead_trimmed(void **state) {
    (void)state;
    NEED_REDIS();
    const char *pol[P_COUNT];
    memcpy(pol, policy_default, sizeof(pol));
    pol[P_MAX] = "1";
    pol[P_DEADMAX] = "2";
    assert_int_equal(cmd_int("ZADD %s 1 old-1 2 old-2", k("dead", NULL)), 2);
    /* After each job dies: the oldest beyond deadmax are gone. */
    static const char *const ids[] = {"d1", "d2", "d3"};
    static const char *const want[][3] = {
        {"old-2", "d1", NULL}, {"d1", "d2", NULL}, {"d2", "d3", NULL}};
    for (int i = 0; i < 3; i++) {
        enqueue(ids[i]);
        run(W1, ids[i], "tok");
        assert_int_equal(fail_job(W1, ids[i], "tok", "worker_crashed", true, pol, NULL), 3);
        expect_members("ZRANGE", k("dead", NULL), want[i]);
    }
    expect_job_field("d1", "state", "failed"); /* trimmed from dead, not deleted */
}

static void test_fail_stale(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    run(W1, "j1", "tok-1");
    assert_int_equal(release(W1, NULL, policy_default), 1);
    run(W2, "j1", "tok-2");
    const char *const extra[] = {"src_mime", "image/png", NULL};
    char *before = db_dump();
    assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, policy_default, extra), 0);
    assert_int_equal(fail_job(W1, "j1", "tok-1", "bad_input", false, policy_default, extra), 0);
    expect_dump(before);
    expect_job_field("j1", "state", "processing");
    expect_job_field("j1", "src_mime", NULL);
}

/* ---- release ---- */

static void test_release_requeue(void **state) {
    (void)state;
    NEED_REDIS();
    static const char *const ids[] = {"a", "b", "c", "d", "r0"};
    for (int i = 0; i < 5; i++)
        enqueue(ids[i]);
    run(W1, "a", "tok-a");
    run(W1, "b", "tok-b");
    take(W1, "c"); /* taken, not started */
    take(W1, "d"); /* canceled while held */
    assert_int_equal(del("d"), 1);
    EXPECT_LIST(k("proc", W1), "a", "b", "c", "d");
    assert_int_equal(cmd_int("SADD %s %s %s", k("workers", NODE), W1, W2), 2);

    assert_int_equal(release(W1, NULL, policy_default), 3);
    EXPECT_LIST(k("ready", NULL), "a", "b", "c", "r0");
    assert_false(exists(k("proc", W1)));
    redisReply *r = cmd("SMEMBERS %s", k("workers", NODE));
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, W2);
    freeReplyObject(r);
    for (int i = 0; i < 3; i++) {
        redisReply *h = job(ids[i]);
        expect_field(h, "state", "queued");
        expect_field(h, "token", NULL);
        expect_field(h, "attempts", i < 2 ? "1" : "0");
        freeReplyObject(h);
    }
    expect_job_field("d", "state", "canceled");
    EXPECT_ZSET(k("delayed", NULL), NULL);
    EXPECT_ZSET(k("dead", NULL), NULL);

    /* The released worker finishing late changes nothing. */
    char *before = db_dump();
    assert_int_equal(complete(W1, "a", "tok-a", "late", 4, NULL), 0);
    expect_dump(before);

    /* Nothing held: still unregistered. */
    assert_int_equal(release(W2, NULL, policy_default), 0);
    assert_int_equal(cmd_int("EXISTS %s", k("workers", NODE)), 0);
}

static void test_release_fail(void **state) {
    (void)state;
    NEED_REDIS();
    const char *pol[P_COUNT];
    memcpy(pol, policy_default, sizeof(pol));
    pol[P_MAX] = "2";
    pol[P_JITTER] = "0";
    enqueue("b");
    enqueue_upload("a");
    enqueue("c");
    enqueue("r0");
    /* b's first attempt ended with a clean stop of its worker. */
    run(W2, "b", "tok-b1");
    assert_int_equal(release(W2, NULL, pol), 1);
    run(W1, "b", "tok-b2"); /* last attempt */
    run(W1, "a", "tok-a1");
    take(W1, "c");
    EXPECT_LIST(k("proc", W1), "b", "a", "c");
    assert_int_equal(cmd_int("SADD %s %s", k("workers", NODE), W1), 1);

    long long t0 = redis_time_ms();
    assert_int_equal(release(W1, "worker_lost", pol), 3);
    long long t1 = redis_time_ms();

    redisReply *h = job("b"); /* out of attempts: dead */
    expect_field(h, "state", "failed");
    expect_field(h, "err_code", "worker_lost");
    expect_field(h, "err_msg", "the worker is gone");
    expect_field(h, "token", NULL);
    expect_between("finished", field_int(h, "finished"), t0, t1);
    freeReplyObject(h);
    EXPECT_ZSET(k("dead", NULL), "b");
    expect_ttl(k("job", "b"), FAIL_TTL);

    h = job("a"); /* retried after base * 0.5 (jitter 0) */
    expect_field(h, "state", "queued");
    expect_field(h, "err_code", "worker_lost");
    expect_field(h, "attempts", "1");
    expect_field(h, "token", NULL);
    long long due = field_int(h, "retry_at");
    freeReplyObject(h);
    EXPECT_ZSET(k("delayed", NULL), "a");
    assert_int_equal(zscore(k("delayed", NULL), "a"), due);
    expect_between("retry_at - 500", due - 500, t0, t1);
    assert_true(exists(k("src", "a")));

    EXPECT_LIST(k("ready", NULL), "c", "r0"); /* not started: requeued at the front */
    h = job("c");
    expect_field(h, "state", "queued");
    expect_field(h, "attempts", "0");
    expect_field(h, "err_code", NULL);
    freeReplyObject(h);
    assert_false(exists(k("proc", W1)));
    assert_int_equal(cmd_int("SISMEMBER %s %s", k("workers", NODE), W1), 0);

    char *before = db_dump();
    assert_int_equal(complete(W1, "a", "tok-a1", "late", 4, NULL), 0);
    assert_int_equal(fail_job(W1, "a", "tok-a1", "bad_input", false, pol, NULL), 0);
    assert_int_equal(complete(W1, "b", "tok-b2", "late", 4, NULL), 0);
    expect_dump(before);
}

/* A job killed at worker.job_timeout is retried once: the second kill fails it
 * for good, whatever attempts are left. Only job_timeout kills count, whether
 * or not other failures came between them. */
static void test_release_second_job_timeout_is_permanent(void **state) {
    (void)state;
    NEED_REDIS();
    const char *pol[P_COUNT];
    memcpy(pol, policy_default, sizeof(pol));
    pol[P_MAX] = "5";
    pol[P_JITTER] = "0";
    enqueue_upload("t1");
    run(W1, "t1", "tok-1");
    assert_int_equal(release(W1, "job_timeout", pol), 1);
    redisReply *h = job("t1"); /* the first: a retry like any transient failure */
    expect_field(h, "state", "queued");
    expect_field(h, "err_code", "job_timeout");
    expect_field(h, "err_msg", "the worker is gone");
    expect_field(h, "timeouts", "1");
    expect_field(h, "attempts", "1");
    freeReplyObject(h);
    EXPECT_ZSET(k("delayed", NULL), "t1");
    assert_true(exists(k("src", "t1")));

    /* A clean stop and a crash in between count no timeout. */
    retry_now("t1");
    run(W1, "t1", "tok-2");
    assert_int_equal(release(W1, NULL, pol), 1);
    take(W1, "t1");
    freeReplyObject(start(W1, "t1", "tok-3"));
    assert_int_equal(release(W1, "worker_crashed", pol), 1);
    expect_job_field("t1", "timeouts", "1");
    expect_job_field("t1", "state", "queued");

    retry_now("t1");
    run(W1, "t1", "tok-4");
    long long t0 = redis_time_ms();
    assert_int_equal(release(W1, "job_timeout", pol), 1);
    long long t1 = redis_time_ms();
    h = job("t1"); /* the second: failed, though attempts are left */
    expect_field(h, "state", "failed");
    expect_field(h, "err_code", "job_timeout");
    expect_field(h, "err_msg", "the worker is gone (2 times: not retried)");
    expect_field(h, "timeouts", "2");
    expect_field(h, "attempts", "4");
    expect_field(h, "token", NULL);
    expect_between("finished", field_int(h, "finished"), t0, t1);
    freeReplyObject(h);
    EXPECT_ZSET(k("delayed", NULL), NULL);
    EXPECT_ZSET(k("dead", NULL), NULL); /* permanent: not out of attempts */
    EXPECT_LIST(k("ready", NULL), NULL);
    expect_ttl(k("job", "t1"), FAIL_TTL);
    assert_false(exists(k("src", "t1")));
    assert_false(exists(k("proc", W1)));

    /* With one attempt left the first job_timeout already ends the job, as any
     * transient failure out of attempts: on the dead set. */
    pol[P_MAX] = "1";
    enqueue("t2");
    run(W2, "t2", "tok-1");
    assert_int_equal(release(W2, "job_timeout", pol), 1);
    expect_job_field("t2", "state", "failed");
    expect_job_field("t2", "timeouts", "1");
    EXPECT_ZSET(k("dead", NULL), "t2");
}

/* ---- promote ---- */

static void test_promote(void **state) {
    (void)state;
    NEED_REDIS();
    static const char *const ids[] = {"r0", "p1", "p2", "f1", "x1"};
    for (int i = 0; i < 5; i++)
        enqueue(ids[i]);
    long long now = redis_time_ms();
    delay("p2", now - 500);
    delay("p1", now - 1000);
    delay("f1", now + 60000);
    assert_int_equal(del("x1"), 1); /* canceled after it was scheduled */
    assert_int_equal(
        cmd_int("ZADD %s %lld x1 %lld ghost", k("delayed", NULL), now - 800, now - 700), 2);
    EXPECT_ZSET(k("delayed", NULL), "p1", "x1", "ghost", "p2", "f1");

    assert_int_equal(promote("100"), 2);
    EXPECT_LIST(k("ready", NULL), "r0", "p1", "p2");
    EXPECT_ZSET(k("delayed", NULL), "f1");
    assert_int_equal(zscore(k("delayed", NULL), "f1"), now + 60000);
    expect_job_field("x1", "state", "canceled");
    assert_false(exists(k("job", "ghost")));

    char *before = db_dump();
    assert_int_equal(promote("100"), 0);
    expect_dump(before);
}

static void test_promote_limit(void **state) {
    (void)state;
    NEED_REDIS();
    static const char *const ids[] = {"q1", "q2", "q3", "f1"};
    for (int i = 0; i < 4; i++)
        enqueue(ids[i]);
    long long now = redis_time_ms();
    delay("q1", now - 300);
    delay("q2", now - 200);
    delay("q3", now - 100);
    delay("f1", now + 60000);
    assert_int_equal(promote("2"), 2);
    EXPECT_LIST(k("ready", NULL), "q1", "q2");
    EXPECT_ZSET(k("delayed", NULL), "q3", "f1");
    assert_int_equal(promote("2"), 1);
    EXPECT_LIST(k("ready", NULL), "q1", "q2", "q3");
    EXPECT_ZSET(k("delayed", NULL), "f1");
}

/* ---- delete ---- */

static void test_delete_queued(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    enqueue("j2");
    long long t0 = redis_time_ms();
    assert_int_equal(del("j1"), 1);
    long long t1 = redis_time_ms();
    redisReply *h = job("j1");
    expect_field(h, "state", "canceled");
    expect_field(h, "token", NULL);
    expect_between("finished", field_int(h, "finished"), t0, t1);
    freeReplyObject(h);
    EXPECT_LIST(k("ready", NULL), "j2");
    assert_false(exists(k("src", "j1")));
    expect_ttl(k("job", "j1"), FAIL_TTL);

    /* Waiting for a retry: leaves delayed. */
    run(W1, "j2", "tok-2");
    assert_int_equal(fail_job(W1, "j2", "tok-2", "fetch_timeout", true, policy_default, NULL), 2);
    EXPECT_ZSET(k("delayed", NULL), "j2");
    assert_int_equal(del("j2"), 1);
    expect_job_field("j2", "state", "canceled");
    EXPECT_ZSET(k("delayed", NULL), NULL);
    EXPECT_LIST(k("ready", NULL), NULL);
    expect_ttl(k("job", "j2"), FAIL_TTL);
    assert_int_equal(promote("100"), 0);
    EXPECT_LIST(k("ready", NULL), NULL);
}

static void test_delete_processing(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    run(W1, "j1", "tok-1");
    assert_int_equal(del("j1"), 1);
    redisReply *h = job("j1");
    expect_field(h, "state", "canceled");
    expect_field(h, "token", NULL);
    freeReplyObject(h);
    assert_false(exists(k("src", "j1")));
    expect_ttl(k("job", "j1"), FAIL_TTL);

    assert_int_equal(complete(W1, "j1", "tok-1", "late", 4, NULL), 0);
    expect_job_field("j1", "state", "canceled");
    assert_false(exists(k("res", "j1")));
    assert_false(exists(k("proc", W1))); /* the worker let go of it */
    expect_ttl(k("job", "j1"), FAIL_TTL);
    assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, policy_default, NULL), 0);
    expect_job_field("j1", "state", "canceled");
    EXPECT_ZSET(k("delayed", NULL), NULL);
}

static void test_delete_finished(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue_upload("j1");
    run(W1, "j1", "tok-1");
    assert_int_equal(complete(W1, "j1", "tok-1", "res", 3, NULL), 1);
    /* A leftover upload goes too. */
    freeReplyObject(cmd("SET %s leftover", k("src", "j1")));
    assert_int_equal(del("j1"), 1);
    assert_false(exists(k("job", "j1")));
    assert_false(exists(k("res", "j1")));
    assert_false(exists(k("src", "j1")));
    assert_int_equal(del("j1"), 0);

    enqueue("j2");
    run(W1, "j2", "tok-2");
    assert_int_equal(fail_job(W1, "j2", "tok-2", "bad_input", false, policy_default, NULL), 1);
    assert_int_equal(del("j2"), 1);
    assert_false(exists(k("job", "j2")));

    enqueue("j3"); /* something for the dump to hold */
    char *before = db_dump();
    assert_int_equal(del("unknown"), 0);
    expect_dump(before);
}

/* ---- EVALSHA, NOSCRIPT, keys, policy ---- */

/* The calls counted for cmd in INFO commandstats. */
static long long calls(const char *name) {
    redisReply *r = cmd("INFO commandstats");
    char pat[64];
    snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", name);
    const char *p = strstr(r->str, pat);
    long long n = p ? atoll(p + strlen(pat)) : 0;
    freeReplyObject(r);
    return n;
}

/* ---- the admin API's figures and scripts ---- */

/* HGET of the stats hash of the current minute, as an integer (0 when absent). */
static long long stat(const char *name) {
    char minute[24];
    snprintf(minute, sizeof(minute), "%lld", redis_time_ms() / 60000);
    redisReply *r = cmd("HGET %s %s", k("stats", minute), name);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

static long long field_int_of(const char *id, const char *name) {
    redisReply *h = job(id);
    long long v = field_int(h, name);
    freeReplyObject(h);
    return v;
}

static void test_admin_figures(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue("j1");
    enqueue("j2");
    enqueue("j3");
    attempt_ms = "30";
    attempt_bytes = "1000";
    run(W1, "j1", "tok-1");
    assert_int_equal(complete(W1, "j1", "tok-1", "res", 3, NULL), 1);
    attempt_ms = "5";
    attempt_bytes = "0";
    run(W1, "j2", "tok-2");
    assert_int_equal(fail_job(W1, "j2", "tok-2", "fetch_timeout", true, policy_default, NULL), 2);
    attempt_ms = "70000";
    attempt_bytes = "20";
    run(W1, "j3", "tok-3");
    assert_int_equal(fail_job(W1, "j3", "tok-3", "decode_failed", false, policy_default, NULL), 1);
    attempt_ms = attempt_bytes = "";

    /* A minute may have turned in between: then the sums are spread over two. */
    if (stat("done") + stat("retried") + stat("failed") == 3) {
        assert_int_equal(stat("done"), 1);
        assert_int_equal(stat("retried"), 1);
        assert_int_equal(stat("failed"), 1);
        assert_int_equal(stat("bytes"), 1020);
        assert_int_equal(stat("d0"), 1);  /* 5 ms <= 10 */
        assert_int_equal(stat("d2"), 1);  /* 30 ms: (25, 50] */
        assert_int_equal(stat("d12"), 1); /* 70 s: over the last bound */
    }
    EXPECT_ZSET(k("recent", "done"), "j1");
    EXPECT_ZSET(k("recent", "failed"), "j3");
    assert_int_equal(zscore(k("recent", "done"), "j1"), field_int_of("j1", "finished"));
    /* A deleted job leaves the indices. */
    assert_int_equal(del("j1"), 1);
    assert_int_equal(del("j3"), 1);
    EXPECT_ZSET(k("recent", "done"), NULL);
    EXPECT_ZSET(k("recent", "failed"), NULL);

    /* The buckets' bounds in Lua are those of jobstats.h. */
    static const int bounds[] = JOBSTATS_BOUNDS_MS;
    char want[256] = "local DURATION_BOUNDS_MS = {";
    for (int i = 0; i < JOBSTATS_NBOUNDS; i++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%d", i ? ", " : "",
                 bounds[i]);
    strcat(want, "}");
    assert_non_null(strstr(queue_script_source(QUEUE_SCRIPT_COMPLETE), want));
}

static void test_admin_overview(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue("j1");
    enqueue("j2");
    attempt_ms = "30";
    run(W1, "j1", "tok-1");
    assert_int_equal(complete(W1, "j1", "tok-1", "res", 3, NULL), 1);
    attempt_ms = "";
    take(W1, "j2");
    assert_int_equal(cmd_int("SADD %s %s", k("nodes", NULL), NODE), 1);
    assert_int_equal(cmd_int("SADD %s %s", k("workers", NODE), W1), 1);
    freeReplyObject(cmd("SET %s %s", k("hb", NODE),
                        "{\"id\":\"" NODE "\",\"heartbeat_ms\":1,\"paused\":true,"
                        "\"children\":[{\"kind\":\"worker\",\"pid\":101,\"state\":\"paused\"},"
                        "{\"kind\":\"http\",\"pid\":100,\"restarts\":2}]}"));
    const char *argv[] = {
        k("ready", NULL), k("delayed", NULL), k("dead", NULL), PREFIX, "5000", "7000", "60"};
    redisReply *r = eval(QUEUE_SCRIPT_ADMIN_OVERVIEW, 3, 4, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_error_t err;
    json_t *doc = json_loads(r->str, 0, &err);
    freeReplyObject(r);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "jobs"), "done")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "jobs"), "processing")), 1);
    json_t *node = json_array_get(json_object_get(doc, "nodes"), 0);
    assert_true(json_is_true(json_object_get(node, "paused")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(node, "workers"), 0), "state")),
                        "paused");
    assert_int_equal(json_array_size(json_object_get(node, "http")), 1);
    json_t *series = json_object_get(doc, "series");
    assert_int_equal(json_array_size(json_object_get(series, "minute_ms")), 60);
    assert_int_equal(json_array_size(json_object_get(series, "buckets")), 60);
    assert_int_equal(json_array_size(json_array_get(json_object_get(series, "buckets"), 59)),
                     JOBSTATS_NBOUNDS + 1);
    json_decref(doc);
}

/* KEYS index; ARGV prefix state limit cursor_a cursor_b: the ids of the page
 * into ids (space-separated) and the next cursor into next. */
static void list_page(const char *state, const char *key, const char *limit, const char *a,
                      const char *b, char *ids, size_t n, char *next, size_t nn) {
    const char *argv[] = {key, PREFIX, state, limit, a, b};
    redisReply *r = eval(QUEUE_SCRIPT_ADMIN_LIST, 1, 5, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    snprintf(next, nn, "%s", r->element[0]->str);
    ids[0] = '\0';
    for (size_t i = 1; i < r->elements; i++)
        snprintf(ids + strlen(ids), n - strlen(ids), "%s%s", i > 1 ? " " : "",
                 r->element[i]->element[0]->str);
    freeReplyObject(r);
}

static void test_admin_list_pages(void **state) {
    (void)state;
    NEED_REDIS();
    /* Five done jobs, three of them finished in the same millisecond, and one
     * whose hash has expired. */
    const char *ids[] = {"a", "b", "c", "d", "e", "gone"};
    const long long at[] = {1000, 2000, 2000, 2000, 3000, 2500};
    for (int i = 0; i < 6; i++) {
        if (strcmp(ids[i], "gone") != 0)
            assert_int_equal(cmd_int("HSET %s state done", k("job", ids[i])), 1);
        assert_int_equal(cmd_int("ZADD %s %lld %s", k("recent", "done"), at[i], ids[i]), 1);
    }
    char got[256], next[64], a[64] = "", *colon;
    list_page("done", k("recent", "done"), "2", "", "", got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "e d"); /* the expired one is skipped */
    assert_string_equal(next, "2000:1");
    EXPECT_ZSET(k("recent", "done"), "a", "b", "c", "d", "e");
    snprintf(a, sizeof(a), "%s", next);
    colon = strchr(a, ':');
    *colon = '\0';
    list_page("done", k("recent", "done"), "2", a, colon + 1, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "c b");
    assert_string_equal(next, "2000:3");
    snprintf(a, sizeof(a), "%s", next);
    colon = strchr(a, ':');
    *colon = '\0';
    list_page("done", k("recent", "done"), "2", a, colon + 1, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "a");
    assert_string_equal(next, "");

    /* queued: ready from its newest end, then the retries. */
    enqueue("q1");
    enqueue("q2");
    enqueue("q3");
    delay("q1", 5000);
    list_page("queued", k("ready", NULL), "2", "", "", got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "q3 q2");
    assert_string_equal(next, "0:2");
    list_page("queued", k("ready", NULL), "2", "0", "2", got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "q1");
    assert_string_equal(next, "");
}

static void test_admin_retry_and_purge(void **state) {
    (void)state;
    NEED_REDIS();
    const char *pol[P_COUNT];
    memcpy(pol, policy_default, sizeof(pol));
    pol[P_MAX] = "1";
    enqueue("j1");
    enqueue("j2");
    run(W1, "j1", "tok-1");
    assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, pol, NULL), 3);
    run(W1, "j2", "tok-2");
    assert_int_equal(fail_job(W1, "j2", "tok-2", "fetch_timeout", true, pol, NULL), 3);
    EXPECT_ZSET(k("dead", NULL), "j1", "j2");

    const char *argv[] = {k("job", "j1"), k("ready", NULL), k("dead", NULL), "j1", PREFIX};
    redisReply *r = eval(QUEUE_SCRIPT_ADMIN_RETRY, 3, 2, argv, NULL);
    assert_string_equal(r->element[0]->str, "ok");
    freeReplyObject(r);
    redisReply *h = job("j1");
    expect_field(h, "state", "queued");
    expect_field(h, "attempts", "0");
    expect_field(h, "err_code", NULL);
    expect_field(h, "finished", NULL);
    freeReplyObject(h);
    assert_int_equal(cmd_int("PTTL %s", k("job", "j1")), -1);
    EXPECT_LIST(k("ready", NULL), "j1");
    EXPECT_ZSET(k("dead", NULL), "j2");
    EXPECT_ZSET(k("recent", "failed"), "j2");
    /* Not failed (any more): refused with its state. */
    r = eval(QUEUE_SCRIPT_ADMIN_RETRY, 3, 2, argv, NULL);
    assert_string_equal(r->element[0]->str, "state");
    assert_string_equal(r->element[1]->str, "queued");
    freeReplyObject(r);

    const char *pargv[] = {k("dead", NULL), PREFIX, "10000"};
    assert_int_equal(eval_int(QUEUE_SCRIPT_ADMIN_PURGE, 1, 2, pargv, NULL), 1);
    assert_false(exists(k("job", "j2")));
    EXPECT_ZSET(k("dead", NULL), NULL);
    EXPECT_ZSET(k("recent", "failed"), NULL);
    expect_job_field("j1", "state", "queued");
}

static void test_noscript_fallback(void **state) {
    (void)state;
    NEED_REDIS();
    for (int s = 0; s < QUEUE_SCRIPT_COUNT; s++) {
        redisReply *r = cmd("SCRIPT LOAD %s", queue_script_source((enum queue_script)s));
        assert_string_equal(r->str, queue_script_sha((enum queue_script)s));
        freeReplyObject(r);
    }
    freeReplyObject(cmd("SCRIPT FLUSH"));
    freeReplyObject(cmd("CONFIG RESETSTAT"));
    enqueue("j1"); /* EVALSHA -> NOSCRIPT -> EVAL */
    assert_int_equal(calls("evalsha"), 1);
    assert_int_equal(calls("eval"), 1);
    enqueue("j2"); /* cached by the EVAL */
    assert_int_equal(calls("evalsha"), 2);
    assert_int_equal(calls("eval"), 1);
    EXPECT_LIST(k("ready", NULL), "j1", "j2");

    freeReplyObject(cmd("SCRIPT FLUSH"));
    run(W1, "j1", "tok-1");
    freeReplyObject(cmd("SCRIPT FLUSH"));
    assert_int_equal(complete(W1, "j1", "tok-1", "res", 3, NULL), 1);
    expect_job_field("j1", "state", "done");
}

static void test_keys_and_policy(void **state) {
    (void)state;
    char buf[QUEUE_KEY_MAX];
    assert_string_equal(queue_key(buf, sizeof(buf), "p", "job", "abc"), "{p}:job:abc");
    assert_string_equal(queue_key(buf, sizeof(buf), "p", "ready", NULL), "{p}:ready");

    struct config cfg;
    config_defaults(&cfg);
    free(cfg.redis_key_prefix);
    cfg.redis_key_prefix = strdup(PREFIX);
    cfg.redis_failure_ttl = FAIL_TTL;
    cfg.worker_max_attempts = 4;
    cfg.worker_retry_delay = 250;
    cfg.worker_retry_max_delay = 9000;
    struct queue_policy p;
    queue_policy_args(&cfg, &p);
    assert_string_equal(p.argv[P_PREFIX], PREFIX);
    assert_string_equal(p.argv[P_TTL], "7000");
    assert_string_equal(p.argv[P_MAX], "4");
    assert_string_equal(p.argv[P_BASE], "250");
    assert_string_equal(p.argv[P_CAP], "9000");
    assert_string_equal(p.argv[P_DEADMAX], "10000");
    double j = strtod(p.argv[P_JITTER], NULL);
    assert_true(j >= 0.0 && j < 1.0);

    if (fx.c != NULL) { /* a retry under it: within [0.5, 1) of the base */
        enqueue("j1");
        run(W1, "j1", "tok-1");
        long long t0 = redis_time_ms();
        assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, p.argv, NULL), 2);
        long long t1 = redis_time_ms();
        long long due = zscore(k("delayed", NULL), "j1");
        /* The script ran between t0 and t1, so due - t0 >= delay >= 125 and due - t1
         * <= delay < 250, however long the round trip took. */
        assert_true(due - t0 >= 125 && due - t1 < 250);
    }
    config_free(&cfg);
}

/* --- deliveries (docs/ARCHITECTURE.md §6) ------------------------------------------------ */

/* KEYS d proc delayed dead job; ARGV did outcome last_status last_error delay ttl deadmax prefix */
static long long deliver(const char *wid, const char *did, const char *job_id, const char *outcome,
                         const char *status, const char *delay) {
    const char *argv[] = {k("wh:d", did),
                          k("wh:proc", wid),
                          k("wh:delayed", NULL),
                          k("wh:dead", NULL),
                          k("job", job_id),
                          did,
                          outcome,
                          status,
                          "the message",
                          delay,
                          "9000",
                          "100",
                          PREFIX};
    return eval_int(QUEUE_SCRIPT_DELIVER, 5, 8, argv, NULL);
}

static void take_delivery(const char *wid, const char *want) {
    redisReply *r = cmd("LMOVE %s %s LEFT RIGHT", k("wh:ready", NULL), k("wh:proc", wid));
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("wh:ready is empty, want %s at its head", want);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

/* Job id done with a callback_url; its callback taken by W1. */
static void callback_taken(const char *id) {
    enqueue(id);
    cmd_int("HSET %s callback_url http://cb.example/h", k("job", id));
    run(W1, id, "tok-1");
    assert_int_equal(complete(W1, id, "tok-1", "R", 1, NULL), 1);
    char did[64];
    snprintf(did, sizeof(did), "cb:%s", id);
    take_delivery(W1, did);
}

/* A job that asked for a callback and an e-mail queues both when it is done,
 * once, and publishes its end. */
static void test_deliveries_queued_on_done(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue("j1");
    cmd_int("HSET %s callback_url http://cb.example/h email a@b.example", k("job", "j1"));
    run(W1, "j1", "tok-1");
    assert_int_equal(complete(W1, "j1", "tok-1", "R", 1, NULL), 1);
    EXPECT_LIST(k("wh:ready", NULL), "cb:j1", "mail:j1");
    expect_job_field("j1", "cb_status", "pending");
    expect_job_field("j1", "mail_status", "pending");
    redisReply *d = cmd("HGETALL %s", k("wh:d", "cb:j1"));
    expect_field(d, "job", "j1");
    expect_field(d, "kind", "cb");
    expect_field(d, "to", "http://cb.example/h");
    expect_field(d, "attempts", "0");
    expect_field(d, "status", "pending");
    freeReplyObject(d);
    /* A stale second completion queues nothing more. */
    assert_int_equal(complete(W1, "j1", "tok-1", "R", 1, NULL), 0);
    EXPECT_LIST(k("wh:ready", NULL), "cb:j1", "mail:j1");
}

/* A failed job gets its callback, not an e-mail; a retried one neither (yet). */
static void test_deliveries_on_failure(void **state) {
    (void)state;
    NEED_REDIS();
    enqueue("j1");
    cmd_int("HSET %s callback_url http://cb.example/h email a@b.example", k("job", "j1"));
    run(W1, "j1", "tok-1");
    assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, policy_default, NULL), 2);
    assert_int_equal(cmd_int("LLEN %s", k("wh:ready", NULL)), 0);
    retry_now("j1");
    run(W1, "j1", "tok-2");
    assert_int_equal(fail_job(W1, "j1", "tok-2", "fetch_http_404", false, policy_default, NULL), 1);
    EXPECT_LIST(k("wh:ready", NULL), "cb:j1");
    expect_job_field("j1", "mail_status", NULL);
}

/* Each attempt is counted and mirrored on the job; a retry waits on the
 * delayed set until promoted; the last outcome is kept with a TTL. */
static void test_delivery_attempts(void **state) {
    (void)state;
    NEED_REDIS();
    callback_taken("j1");
    long long t0 = redis_time_ms();
    assert_int_equal(deliver(W1, "cb:j1", "j1", "retry", "500", "60000"), 1);
    assert_int_equal(cmd_int("LLEN %s", k("wh:proc", W1)), 0);
    expect_between("due", zscore(k("wh:delayed", NULL), "cb:j1"), t0 + 60000,
                   redis_time_ms() + 60000);
    expect_job_field("j1", "cb_status", "pending");
    expect_job_field("j1", "cb_attempts", "1");
    expect_job_field("j1", "cb_last_status", "500");
    /* Not due: nothing promoted. Made due: back on ready. */
    const char *pargv[] = {k("wh:delayed", NULL), k("wh:ready", NULL), "100"};
    assert_int_equal(eval_int(QUEUE_SCRIPT_DELIVER_PROMOTE, 2, 1, pargv, NULL), 0);
    cmd_int("ZADD %s XX CH %lld cb:j1", k("wh:delayed", NULL), redis_time_ms() - 1);
    assert_int_equal(eval_int(QUEUE_SCRIPT_DELIVER_PROMOTE, 2, 1, pargv, NULL), 1);
    take_delivery(W1, "cb:j1");
    assert_int_equal(deliver(W1, "cb:j1", "j1", "delivered", "200", "0"), 1);
    expect_job_field("j1", "cb_status", "delivered");
    expect_job_field("j1", "cb_attempts", "2");
    expect_ttl(k("wh:d", "cb:j1"), 9000);
    assert_int_equal(cmd_int("ZCARD %s", k("wh:dead", NULL)), 0);
}

/* Given up: on the dead set; a delivery that is gone records nothing. */
static void test_delivery_failed_and_gone(void **state) {
    (void)state;
    NEED_REDIS();
    callback_taken("j1");
    assert_int_equal(deliver(W1, "cb:j1", "j1", "failed", "503", "0"), 1);
    EXPECT_ZSET(k("wh:dead", NULL), "cb:j1");
    expect_job_field("j1", "cb_status", "failed");
    assert_int_equal(deliver(W1, "cb:nope", "nope", "delivered", "200", "0"), 0);
    assert_false(exists(k("wh:d", "cb:nope")));
}

/* A gone delivery child's deliveries go back to the front of wh:ready,
 * without an attempt counted. */
static void test_release_hands_back_deliveries(void **state) {
    (void)state;
    NEED_REDIS();
    cmd_int("RPUSH %s cb:a mail:b", k("wh:ready", NULL));
    take_delivery(W2, "cb:a");
    take_delivery(W2, "mail:b");
    cmd_int("RPUSH %s cb:c", k("wh:ready", NULL));
    cmd_int("SADD %s %s", k("workers", NODE), W2);
    assert_int_equal(release(W2, "worker_crashed", policy_default), 2);
    EXPECT_LIST(k("wh:ready", NULL), "cb:a", "mail:b", "cb:c");
    assert_false(exists(k("wh:proc", W2)));
}

/* --- change notices: {p}:done and {p}:changed (docs/ARCHITECTURE.md §4.3) -------------- */

/* A connection subscribed to {tq}:done and {tq}:changed. */
static redisContext *subscriber(void) {
    redisContext *s = redis_fixture_connect(&fx.redis);
    assert_non_null(s);
    struct timeval tv = {5, 0};
    redisSetTimeout(s, tv);
    redisReply *r = redisCommand(s, "SUBSCRIBE %s %s", k("done", NULL), k("changed", NULL));
    assert_non_null(r);
    freeReplyObject(r);
    void *more = NULL;
    assert_int_equal(redisGetReply(s, &more), REDIS_OK); /* the second confirmation */
    freeReplyObject(more);
    return s;
}

/* What was published on the two channels since the last call, in order, as
 * "done:<id> changed:<id> ..." (a marker published last says where to stop). */
static const char *published(redisContext *s) {
    static char out[512];
    out[0] = '\0';
    cmd_int("PUBLISH %s --mark--", k("changed", NULL));
    for (;;) {
        void *v = NULL;
        if (redisGetReply(s, &v) != REDIS_OK)
            fail_msg("no message (the marker) within 5 s: %s", s->errstr);
        redisReply *r = v;
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        assert_string_equal(r->element[0]->str, "message");
        bool done = strcmp(r->element[1]->str, k("done", NULL)) == 0;
        bool mark = !done && strcmp(r->element[2]->str, "--mark--") == 0;
        if (!mark)
            snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s:%s", out[0] ? " " : "",
                     done ? "done" : "changed", r->element[2]->str);
        freeReplyObject(r);
        if (mark)
            return out;
    }
}

/* Every change a node's cache must hear of is published on {p}:changed in the
 * script that makes it: a retry, a requeue of a running job, a delete, a
 * cancel, a delivery's outcome. Ends are published on {p}:done; a start and a
 * requeue of a job not yet started change nothing a reader could have cached
 * for longer than cache.pending_ttl, and publish nothing. */
static void test_changes_published(void **state) {
    (void)state;
    NEED_REDIS();
    redisContext *s = subscriber();

    enqueue("j1");
    run(W1, "j1", "tok-1");
    assert_string_equal(published(s), "");
    assert_int_equal(fail_job(W1, "j1", "tok-1", "fetch_timeout", true, policy_default, NULL), 2);
    assert_string_equal(published(s), "changed:j1"); /* a retry: queued, with the error */
    retry_now("j1");
    run(W1, "j1", "tok-2");
    assert_int_equal(complete(W1, "j1", "tok-2", "R", 1, NULL), 1);
    assert_string_equal(published(s), "done:j1");
    assert_int_equal(complete(W1, "j1", "tok-2", "R", 1, NULL), 0); /* stale: nothing */
    assert_int_equal(del("j1"), 1);
    assert_string_equal(published(s), "changed:j1"); /* a finished job deleted */
    assert_int_equal(del("j1"), 0);
    assert_string_equal(published(s), "");

    enqueue("j2");
    run(W1, "j2", "tok-1");
    assert_int_equal(del("j2"), 1);
    assert_string_equal(published(s), "done:j2 changed:j2"); /* a cancel */

    enqueue("j3");
    enqueue("j4");
    run(W2, "j3", "tok-1");
    take(W2, "j4"); /* taken, not started */
    assert_int_equal(release(W2, NULL, policy_default), 2);
    assert_string_equal(published(s), "changed:j3"); /* processing -> queued */
    run(W2, "j3", "tok-2");                          /* requeued to the front */
    assert_int_equal(release(W2, "worker_crashed", policy_default), 1);
    assert_string_equal(published(s), "changed:j3"); /* a retry */
    assert_int_equal(del("j4"), 1);                  /* a queued job canceled: out of ready */
    assert_string_equal(published(s), "done:j4 changed:j4");

    enqueue("j5");
    run(W1, "j5", "tok-1");
    assert_int_equal(fail_job(W1, "j5", "tok-1", "fetch_http_404", false, policy_default, NULL), 1);
    assert_string_equal(published(s), "done:j5"); /* failed for good */

    callback_taken("j6");
    assert_string_equal(published(s), "done:j6");
    assert_int_equal(deliver(W1, "cb:j6", "j6", "retry", "500", "60000"), 1);
    assert_string_equal(published(s), "changed:j6"); /* attempts, last status */
    cmd_int("DEL %s", k("job", "j6"));               /* expired meanwhile: no document to change */
    assert_int_equal(deliver(W1, "cb:j6", "j6", "delivered", "200", "0"), 1);
    assert_string_equal(published(s), "");
    redisFree(s);
}

/* ---- the object store (storage.backend = s3): {p}:drop ---- */

static double drop_score(const char *key) {
    redisReply *r = cmd("ZSCORE %s %s", k("drop", NULL), key);
    double v = r->type == REDIS_REPLY_STRING ? atof(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* complete with the result in the store: nothing in res, the result due at
 * its ttl (s3) or left to lifecycle rules, the upload due now and forgotten. */
static void test_complete_in_store(void **state) {
    (void)state;
    NEED_REDIS();
    complete_store = "s3";
    expect_ok(enqueue_ex("j1", &(struct enq){.req = "req-1"}));
    cmd_int("HSET %s src_obj uploads/j1", k("job", "j1"));
    run(W1, "j1", "tok-1");
    const char *const fields[] = {"res_mime",   "image/jpeg", "res_obj", "results/j1/default.jpg",
                                  "res_bucket", "thumbs",     NULL};
    long long t0 = redis_time_ms();
    assert_int_equal(complete(W1, "j1", "tok-1", "", 0, fields), 1);
    assert_false(exists(k("res", "j1")));
    expect_job_field("j1", "res_obj", "results/j1/default.jpg");
    expect_job_field("j1", "src_obj", NULL);
    assert_true(drop_score("uploads/j1") >= (double)t0);
    assert_true(drop_score("uploads/j1") <= (double)redis_time_ms());
    assert_true(drop_score("results/j1/default.jpg") >= (double)(t0 + RESULT_TTL));

    /* Lifecycle: the result is not put on the drop set. */
    complete_store = "s3-lifecycle";
    expect_ok(enqueue_ex("j2", &(struct enq){.req = "req-2"}));
    run(W1, "j2", "tok-2");
    const char *const f2[] = {"res_obj", "results/j2/default.jpg", NULL};
    assert_int_equal(complete(W1, "j2", "tok-2", "", 0, f2), 1);
    assert_true(drop_score("results/j2/default.jpg") < 0);

    /* DELETE drops it now either way. */
    long long t1 = redis_time_ms();
    assert_int_equal(del("j2"), 1);
    assert_true(drop_score("results/j2/default.jpg") >= (double)t1);
    assert_true(drop_score("results/j2/default.jpg") <= (double)redis_time_ms());
    complete_store = "redis";
}

/* A stale worker's object is dropped, unless it is the job's own result. */
static void test_complete_in_store_stale(void **state) {
    (void)state;
    NEED_REDIS();
    complete_store = "s3";
    expect_ok(enqueue_ex("j1", &(struct enq){.req = "req-1"}));
    run(W1, "j1", "tok-1");
    assert_int_equal(release(W1, NULL, policy_default), 1);
    run(W2, "j1", "tok-2");
    const char *const fields[] = {"res_obj", "results/j1/default.jpg", NULL};
    assert_int_equal(complete(W2, "j1", "tok-2", "", 0, fields), 1);
    double due = drop_score("results/j1/default.jpg");
    assert_int_equal(complete(W1, "j1", "tok-1", "", 0, fields), 0);
    assert_true(drop_score("results/j1/default.jpg") == due); /* kept: it is the result */
    const char *const other[] = {"res_obj", "results/j1/default.png", NULL};
    assert_int_equal(complete(W1, "j1", "tok-1", "", 0, other), 0);
    assert_true(drop_score("results/j1/default.png") >= 0); /* a key the job does not name */
    complete_store = "redis";
}

/* A refused or repeated submit drops the upload it already stored. */
static void test_enqueue_drops_a_refused_upload(void **state) {
    (void)state;
    NEED_REDIS();
    expect_ok(enqueue_ex("j1", &(struct enq){.req = "req-1"}));
    /* The same request again (a repeat) with its own upload object. */
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", DEDUP_TTL);
    const char *argv[] = {k("job", "j2"),
                          k("ready", NULL),
                          k("delayed", NULL),
                          k("src", "j2"),
                          "",
                          k("idem", "req-1"),
                          "",
                          "j2",
                          "100",
                          "",
                          "0",
                          ttl,
                          PREFIX,
                          "0",
                          "src_obj",
                          "uploads/j2"};
    redisReply *r = eval(QUEUE_SCRIPT_ENQUEUE, 7, 9, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "dup");
    freeReplyObject(r);
    assert_true(drop_score("uploads/j2") >= 0);
    assert_false(exists(k("job", "j2")));
}

/* store_sweep hands out due objects once, leased; those not deleted come back. */
static void test_store_sweep(void **state) {
    (void)state;
    NEED_REDIS();
    long long now = redis_time_ms();
    cmd_int("ZADD %s %lld a %lld b %lld later", k("drop", NULL), now - 10, now - 5, now + 600000);
    const char *argv[] = {k("drop", NULL), "60000", "100"};
    redisReply *r = eval(QUEUE_SCRIPT_STORE_SWEEP, 1, 2, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "a");
    assert_string_equal(r->element[1]->str, "b");
    freeReplyObject(r);
    assert_true(drop_score("a") >= (double)(now + 60000 - 10));
    r = eval(QUEUE_SCRIPT_STORE_SWEEP, 1, 2, argv, NULL);
    assert_int_equal(r->elements, 0); /* leased: not handed out twice */
    freeReplyObject(r);
    const char *limit[] = {k("drop", NULL), "0", "1"};
    cmd_int("ZADD %s %lld a", k("drop", NULL), now - 1); /* its lease ran out */
    r = eval(QUEUE_SCRIPT_STORE_SWEEP, 1, 2, limit, NULL);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "a");
    freeReplyObject(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_enqueue_ok, flush),
        cmocka_unit_test_setup(test_enqueue_full, flush),
        cmocka_unit_test_setup(test_enqueue_client_bound, flush),
        cmocka_unit_test_setup(test_enqueue_dedup_live, flush),
        cmocka_unit_test_setup(test_enqueue_dedup_after_end, flush),
        cmocka_unit_test_setup(test_start, flush),
        cmocka_unit_test_setup(test_start_skips, flush),
        cmocka_unit_test_setup(test_take, flush),
        cmocka_unit_test_setup(test_complete, flush),
        cmocka_unit_test_setup(test_complete_stale, flush),
        cmocka_unit_test_setup(test_fail_permanent, flush),
        cmocka_unit_test_setup(test_fail_retry_then_dead, flush),
        cmocka_unit_test_setup(test_fail_dead_trimmed, flush),
        cmocka_unit_test_setup(test_fail_stale, flush),
        cmocka_unit_test_setup(test_release_requeue, flush),
        cmocka_unit_test_setup(test_release_fail, flush),
        cmocka_unit_test_setup(test_release_second_job_timeout_is_permanent, flush),
        cmocka_unit_test_setup(test_promote, flush),
        cmocka_unit_test_setup(test_promote_limit, flush),
        cmocka_unit_test_setup(test_delete_queued, flush),
        cmocka_unit_test_setup(test_delete_processing, flush),
        cmocka_unit_test_setup(test_delete_finished, flush),
        cmocka_unit_test_setup(test_admin_figures, flush),
        cmocka_unit_test_setup(test_admin_list_pages, flush),
        cmocka_unit_test_setup(test_admin_overview, flush),
        cmocka_unit_test_setup(test_admin_retry_and_purge, flush),
        cmocka_unit_test_setup(test_noscript_fallback, flush),
        cmocka_unit_test_setup(test_keys_and_policy, flush),
        cmocka_unit_test_setup(test_deliveries_queued_on_done, flush),
        cmocka_unit_test_setup(test_deliveries_on_failure, flush),
        cmocka_unit_test_setup(test_delivery_attempts, flush),
        cmocka_unit_test_setup(test_delivery_failed_and_gone, flush),
        cmocka_unit_test_setup(test_release_hands_back_deliveries, flush),
        cmocka_unit_test_setup(test_changes_published, flush),
        cmocka_unit_test_setup(test_complete_in_store, flush),
        cmocka_unit_test_setup(test_complete_in_store_stale, flush),
        cmocka_unit_test_setup(test_enqueue_drops_a_refused_upload, flush),
        cmocka_unit_test_setup(test_store_sweep, flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
