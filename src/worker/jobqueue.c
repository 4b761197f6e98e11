/* jobqueue.c — Redis commands of the worker loop, on the one Redis client
 * (rconn.h), whose policy turns a failure into "disconnected, back off, log once". */
#include "jobqueue.h"
#include "id.h"
#include "log.h"
#include "segment.h"
#include "units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK_SECS       "1"  /* BLMOVE timeout: how often the stop flag is looked at */
#define COMMAND_SLACK_MS 4000 /* socket timeout beyond the block */
#define TAKE_SKIPS_MAX   64   /* canceled jobs passed over in one take */

/* After every (re)connect: the worker is listed under its node again. */
static void registered(struct rconn *r, void *arg) {
    struct jobqueue *q = arg;
    const char *av[] = {"SADD", q->k_workers, q->wid};
    freeReplyObject(rconn_command(r, "SADD workers", 3, av, NULL));
}

int jobqueue_init(struct jobqueue *q, const struct config *cfg, const char *node_id,
                  const char *wid) {
    memset(q, 0, sizeof(*q));
    q->cfg = cfg;
    q->unsettled = true; /* a job of an earlier worker of this wid? LINDEX first */
    long timeout = (long)cfg->redis_connect_timeout + COMMAND_SLACK_MS + 1000;
    if (rconn_init(&q->redis, cfg, "worker", timeout) < 0)
        return -1;
    rconn_set_on_connect(&q->redis, registered, q);
    snprintf(q->wid, sizeof(q->wid), "%s", wid);
    const char *p = cfg->redis_key_prefix;
    queue_key(q->k_ready, sizeof(q->k_ready), p, "ready", NULL);
    queue_key(q->k_proc, sizeof(q->k_proc), p, "proc", wid);
    queue_key(q->k_workers, sizeof(q->k_workers), p, "workers", node_id);
    return 0;
}

void jobqueue_close(struct jobqueue *q) {
    rconn_close(&q->redis);
}

int jobqueue_connect(struct jobqueue *q, volatile sig_atomic_t *stop) {
    return rconn_wait(&q->redis, stop);
}

/* Copies a job id reply into id; refuses what cannot be an id. */
static int copy_id(struct jobqueue *q, const redisReply *r, char id[JOBQUEUE_ID_MAX]) {
    if (r->type != REDIS_REPLY_STRING)
        return 0;
    if (r->len == 0 || r->len >= JOBQUEUE_ID_MAX || memchr(r->str, '\0', r->len)) {
        log_warn("worker: dropping a malformed entry of %zu bytes from %s", r->len, q->k_proc);
        const char *av[] = {"LREM", q->k_proc, "0", r->str};
        size_t lens[] = {4, strlen(q->k_proc), 1, r->len};
        freeReplyObject(rconn_command(&q->redis, "LREM", 4, av, lens));
        return 0;
    }
    memcpy(id, r->str, r->len);
    id[r->len] = '\0';
    return 1;
}

static void job_key(struct jobqueue *q, char *buf, const char *kind, const char *id) {
    queue_key(buf, QUEUE_KEY_MAX, q->cfg->redis_key_prefix, kind, id);
}

/* A fresh fencing token, kept until the outcome so that a start whose reply
 * is lost can be picked up (resume). */
static int new_token(struct jobqueue *q, char token[JOBQUEUE_TOKEN_LEN + 1]) {
    if (id_random_hex(token, JOBQUEUE_TOKEN_LEN / 2) < 0) {
        log_error("worker: no randomness for a fencing token");
        return -1;
    }
    memcpy(q->resume_token, token, sizeof(q->resume_token));
    return 0;
}

/* A start reply (start.lua from element first, take.lua from 1): 1 with rec
 * filled, 0 when the job was skipped (and left proc), -1 when unreadable. */
static int started(struct jobqueue *q, const redisReply *r, size_t first, struct job_record *rec) {
    if (r->type == REDIS_REPLY_ARRAY && r->elements > first) {
        if (queue_reply_record(rec, r, first) == 0)
            return 1;
        job_record_free(rec);
        return -1;
    }
    q->resume_token[0] = '\0'; /* skipped: start_job took it off proc */
    q->unsettled = false;
    return 0;
}

/* The job this worker started before a lost reply: still ours when its token is. */
static int resume(struct jobqueue *q, const char *id, char token[JOBQUEUE_TOKEN_LEN + 1],
                  struct job_record *rec) {
    char k[QUEUE_KEY_MAX];
    job_key(q, k, "job", id);
    const char *av[] = {"HGETALL", k};
    redisReply *r = rconn_command(&q->redis, "HGETALL", 2, av, NULL);
    if (r == NULL)
        return -1;
    struct job_record cur = {0};
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY && queue_reply_record(&cur, r, 0) == 0) {
        const char *state = job_record_get(&cur, "state");
        const char *tok = job_record_get(&cur, "token");
        if (state && tok && strcmp(state, "processing") == 0 && strcmp(tok, q->resume_token) == 0) {
            memcpy(token, q->resume_token, sizeof(q->resume_token));
            *rec = cur;
            memset(&cur, 0, sizeof(cur));
            rc = 1;
        }
    }
    job_record_free(&cur);
    freeReplyObject(r);
    return rc;
}

/* Starts job id, in proc after BLMOVE or left there by an earlier error:
 * start.lua with a new fencing token, or the job this worker already started
 * when that reply was lost. 1 with token and rec, 0 skipped, -1 Redis error. */
static int start(struct jobqueue *q, const char *id, char token[JOBQUEUE_TOKEN_LEN + 1],
                 struct job_record *rec) {
    if (q->resume_token[0]) {
        int rc = resume(q, id, token, rec);
        if (rc != 0)
            return rc;
    }
    if (new_token(q, token) < 0)
        return -1;
    char k_job[QUEUE_KEY_MAX];
    job_key(q, k_job, "job", id);
    const char *argv[] = {k_job, q->k_proc, q->k_workers, id, token, q->wid};
    redisReply *r = rconn_script(&q->redis, "start script", QUEUE_SCRIPT_START, 3, 3, argv, NULL);
    if (r == NULL)
        return -1;
    int rc = started(q, r, 0, rec);
    freeReplyObject(r);
    return rc;
}

/* The head of ready, moved to proc and started in one round trip (take.lua):
 * 1 with id, token and rec, 0 skipped, 2 nothing ready, -1 Redis error. */
static int take_ready(struct jobqueue *q, char id[JOBQUEUE_ID_MAX],
                      char token[JOBQUEUE_TOKEN_LEN + 1], struct job_record *rec) {
    if (new_token(q, token) < 0)
        return -1;
    const char *argv[] = {q->k_ready, q->k_proc, q->k_workers,
                          token,      q->wid,    q->cfg->redis_key_prefix};
    q->unsettled = true; /* from here until an outcome, a job of ours may be in proc */
    redisReply *r = rconn_script(&q->redis, "take script", QUEUE_SCRIPT_TAKE, 3, 3, argv, NULL);
    if (r == NULL)
        return -1;
    int rc = 2;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        rc = copy_id(q, r->element[0], id) ? started(q, r, 1, rec) : 0;
    } else {
        q->resume_token[0] = '\0';
        q->unsettled = false;
    }
    freeReplyObject(r);
    return rc;
}

/* Nothing ready: BLMOVE for up to BLOCK_SECS, then start.lua on what came. */
static int block(struct jobqueue *q, char id[JOBQUEUE_ID_MAX], char token[JOBQUEUE_TOKEN_LEN + 1],
                 struct job_record *rec) {
    const char *blmove[] = {"BLMOVE", q->k_ready, q->k_proc, "LEFT", "RIGHT", BLOCK_SECS};
    q->unsettled = true;
    redisReply *r = rconn_command(&q->redis, "BLMOVE", 6, blmove, NULL);
    if (r == NULL)
        return -1;
    int got = copy_id(q, r, id);
    if (r->type == REDIS_REPLY_NIL)
        q->unsettled = false;
    freeReplyObject(r);
    return got ? start(q, id, token, rec) : 0;
}

int jobqueue_take(struct jobqueue *q, char id[JOBQUEUE_ID_MAX], char token[JOBQUEUE_TOKEN_LEN + 1],
                  struct job_record *rec) {
    memset(rec, 0, sizeof(*rec));
    if (q->unsettled) {
        const char *lindex[] = {"LINDEX", q->k_proc, "0"};
        redisReply *r = rconn_command(&q->redis, "LINDEX proc", 3, lindex, NULL);
        if (r == NULL)
            return -1;
        int got = copy_id(q, r, id);
        bool empty = r->type == REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (got) {
            log_info("worker: picking up job %s left in %s", id, q->k_proc);
            return start(q, id, token, rec);
        }
        if (!empty) /* a malformed entry, dropped: look again */
            return 0;
        q->unsettled = false;
        q->resume_token[0] = '\0';
    }
    for (int i = 0; i < TAKE_SKIPS_MAX; i++) {
        int rc = take_ready(q, id, token, rec);
        if (rc != 0)
            return rc == 2 ? block(q, id, token, rec) : rc;
    }
    return 0;
}

int jobqueue_source(struct jobqueue *q, const char *id, redisReply **bytes) {
    *bytes = NULL;
    char k[QUEUE_KEY_MAX];
    job_key(q, k, "src", id);
    const char *av[] = {"GET", k};
    redisReply *r = rconn_command(&q->redis, "GET source", 2, av, NULL);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return 0;
    }
    *bytes = r;
    return 1;
}

/* Runs a finishing script whose arguments are ready; 1 / 0 / -1 as documented.
 * complete.lua's {1, pttl, fields...} fills now and *ttl_ms when given. */
static int finish(struct jobqueue *q, enum queue_script s, int nkeys, int nargs, const char **argv,
                  const size_t *lens, const char *what, struct job_record *now, long long *ttl_ms) {
    redisReply *r = rconn_script(&q->redis, what, s, nkeys, nargs, argv, lens);
    if (r == NULL)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_INTEGER) {
        rc = (int)r->integer;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
               r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[1]->type == REDIS_REPLY_INTEGER) {
        rc = (int)r->element[0]->integer;
        if (now && queue_reply_record(now, r, 2) == 0)
            *ttl_ms = r->element[1]->integer;
        else if (now)
            job_record_free(now);
    }
    freeReplyObject(r);
    q->resume_token[0] = '\0';
    if (rc >= 0) /* every outcome but a missing staged result took the job off proc */
        q->unsettled = false;
    return rc;
}

/* The attempt's figures as script arguments. */
struct attempt_args {
    char ms[24], fetched[24];
};

static void attempt_args(const struct jobqueue_attempt *a, struct attempt_args *out) {
    snprintf(out->ms, sizeof(out->ms), "%lld", a ? a->ms : -1);
    snprintf(out->fetched, sizeof(out->fetched), "%lld", a ? a->fetched : 0);
}

int jobqueue_complete(struct jobqueue *q, const char *id, const char *token, const void *bytes,
                      size_t len, const struct jobqueue_attempt *a, const char *const *fields,
                      size_t nfields, struct job_record *now, long long *ttl_ms) {
    if (now) {
        memset(now, 0, sizeof(*now));
        *ttl_ms = -1;
    }
    if (nfields > JOBQUEUE_FIELDS_MAX)
        return -1;
    char k_job[QUEUE_KEY_MAX], k_res[QUEUE_KEY_MAX], k_src[QUEUE_KEY_MAX], ttl[24];
    struct attempt_args aa;
    attempt_args(a, &aa);
    job_key(q, k_job, "job", id);
    job_key(q, k_res, "res", id);
    job_key(q, k_src, "src", id);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)q->cfg->redis_result_ttl);
    /* Where the result is (complete.lua): in Redis, or already in the store. */
    bool s3 = q->cfg->storage_backend == CONFIG_STORAGE_S3;
    const char *where = !s3                                              ? "redis"
                        : q->cfg->storage_expiry == CONFIG_EXPIRY_DELETE ? "s3"
                                                                         : "s3-lifecycle";
    if (s3) {
        bytes = "";
        len = 0;
    }
    const char *argv[12 + 2 * JOBQUEUE_FIELDS_MAX] = {
        k_job, k_res,      q->k_proc, k_src, id, token, ttl, bytes, q->cfg->redis_key_prefix,
        aa.ms, aa.fetched, where};
    size_t lens[12 + 2 * JOBQUEUE_FIELDS_MAX];
    size_t n = 12 + 2 * nfields;
    for (size_t i = 12; i < n; i++)
        argv[i] = fields[i - 12];
    for (size_t i = 0; i < n; i++)
        lens[i] = i == 7 ? len : strlen(argv[i]);
    long long want = q->cfg->redis_min_replicas_ack;
    if (want > 0 && !s3) {
        /* The job says done only once want replicas have its result: the
         * bytes first, WAIT, then the script without them. */
        const char *set[] = {"SET", k_res, bytes, "PX", ttl};
        size_t set_lens[] = {3, strlen(k_res), len, 2, strlen(ttl)};
        redisReply *r = rconn_command(&q->redis, "SET result", 5, set, set_lens);
        if (r == NULL)
            return -1;
        freeReplyObject(r);
        r = rconn_commandf(&q->redis, "WAIT", "WAIT %lld %lld", want,
                           (long long)q->cfg->redis_connect_timeout);
        if (r == NULL)
            return -1;
        long long got = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (got < want) {
            log_warn("job %s: %lld of redis.min_replicas_ack = %lld replicas have its result; "
                     "not done until they do",
                     id, got, want);
            return -1;
        }
        argv[7] = "";
        lens[7] = 0;
    }
    return finish(q, QUEUE_SCRIPT_COMPLETE, 4, (int)n - 4, argv, lens, "complete script", now,
                  ttl_ms);
}

int jobqueue_fail(struct jobqueue *q, const char *id, const char *token, const char *code,
                  const char *message, bool transient, const struct jobqueue_attempt *a,
                  const char *const *fields, size_t nfields) {
    if (nfields > JOBQUEUE_FIELDS_MAX)
        return -1;
    struct attempt_args aa;
    attempt_args(a, &aa);
    char k_job[QUEUE_KEY_MAX], k_delayed[QUEUE_KEY_MAX], k_dead[QUEUE_KEY_MAX];
    job_key(q, k_job, "job", id);
    queue_key(k_delayed, sizeof(k_delayed), q->cfg->redis_key_prefix, "delayed", NULL);
    queue_key(k_dead, sizeof(k_dead), q->cfg->redis_key_prefix, "dead", NULL);
    struct queue_policy pol;
    queue_policy_args(q->cfg, &pol);
    const char *argv[18 + 2 * JOBQUEUE_FIELDS_MAX] = {
        k_job, q->k_proc, k_delayed, k_dead, id, token, code, message, transient ? "1" : "0"};
    size_t n = 9;
    for (int i = 0; i < 7; i++)
        argv[n++] = pol.argv[i];
    argv[n++] = aa.ms;
    argv[n++] = aa.fetched;
    for (size_t i = 0; i < 2 * nfields; i++)
        argv[n++] = fields[i];
    return finish(q, QUEUE_SCRIPT_FAIL, 4, (int)n - 4, argv, NULL, "fail script", NULL, NULL);
}

int jobqueue_read(struct jobqueue *q, const char *id, struct job_record *rec, long long *ttl_ms) {
    memset(rec, 0, sizeof(*rec));
    char k_job[QUEUE_KEY_MAX];
    job_key(q, k_job, "job", id);
    const char *hgetall[] = {"HGETALL", k_job};
    const char *pttl[] = {"PTTL", k_job};
    const struct rconn_cmd cmds[] = {{2, hgetall, NULL}, {2, pttl, NULL}};
    redisReply *replies[2];
    if (rconn_pipeline(&q->redis, "read job", 2, cmds, replies) < 0)
        return -1;
    redisReply *fields = replies[0], *ttl = replies[1];
    int rc = 0;
    if (fields->type == REDIS_REPLY_ARRAY && fields->elements > 0 &&
        ttl->type == REDIS_REPLY_INTEGER) {
        rc = queue_reply_record(rec, fields, 0) == 0 ? 1 : -1;
        *ttl_ms = ttl->integer;
    }
    freeReplyObject(fields);
    freeReplyObject(ttl);
    return rc;
}

int jobqueue_sweep(struct jobqueue *q, long lease_ms, const char *limit, char ***keys, size_t *n) {
    *keys = NULL;
    *n = 0;
    char k_drop[QUEUE_KEY_MAX], lease[24];
    queue_key(k_drop, sizeof(k_drop), q->cfg->redis_key_prefix, "drop", NULL);
    snprintf(lease, sizeof(lease), "%ld", lease_ms);
    const char *argv[] = {k_drop, lease, limit};
    redisReply *r =
        rconn_script(&q->redis, "store_sweep script", QUEUE_SCRIPT_STORE_SWEEP, 1, 2, argv, NULL);
    if (r == NULL)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        *keys = calloc(r->elements, sizeof(**keys));
        for (size_t i = 0; *keys && i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && e->len > 0 && !memchr(e->str, '\0', e->len) &&
                ((*keys)[*n] = strndup(e->str, e->len)) != NULL)
                (*n)++;
        }
        if (*keys == NULL)
            rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

void jobqueue_swept(struct jobqueue *q, const char *const *keys, size_t n) {
    char k_drop[QUEUE_KEY_MAX];
    queue_key(k_drop, sizeof(k_drop), q->cfg->redis_key_prefix, "drop", NULL);
    const char **argv = calloc(n + 2, sizeof(*argv));
    if (argv == NULL)
        return;
    argv[0] = "ZREM";
    argv[1] = k_drop;
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = keys[i];
    freeReplyObject(rconn_command(&q->redis, "ZREM drop", (int)n + 2, argv, NULL));
    free(argv);
}

void jobqueue_unregister(struct jobqueue *q) {
    if (!rconn_connected(&q->redis))
        return;
    const char *av[] = {"SREM", q->k_workers, q->wid};
    freeReplyObject(rconn_command(&q->redis, "SREM workers", 3, av, NULL));
}
