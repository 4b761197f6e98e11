/* jobs.c — the master's Redis connection and the release of a gone worker's jobs. */
#include "jobs.h"
#include "log.h"
#include "queue.h"
#include "rconn.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

static redisContext *connection(struct master *m) {
    if (m->redis && m->redis->err == 0)
        return m->redis;
    jobs_close(m);
    struct redis_target t;
    char err[256];
    if (rconn_target(&m->cfg, &t) < 0) {
        log_error("redis.url cannot be used");
        return NULL;
    }
    m->redis = rconn_connect(&t, (long)m->cfg.redis_connect_timeout, err, sizeof(err));
    if (m->redis == NULL) {
        log_error("master: cannot reach Redis: %s", err);
        return NULL;
    }
    /* Commands are tiny scripts: a stalled server must not hold the master long. */
    struct timeval tv = {2, 0};
    redisSetTimeout(m->redis, tv);
    return m->redis;
}

int jobs_release_worker(struct master *m, pid_t pid, const char *code, const char *message) {
    redisContext *c = connection(m);
    if (c == NULL)
        return -1;
    const char *prefix = m->cfg.redis_key_prefix;
    char wid[400], proc[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX], workers[QUEUE_KEY_MAX], ttl[24];
    snprintf(wid, sizeof(wid), "%s:%d", m->node_id, (int)pid);
    queue_key(proc, sizeof(proc), prefix, "proc", wid);
    queue_key(ready, sizeof(ready), prefix, "ready", NULL);
    queue_key(workers, sizeof(workers), prefix, "workers", m->node_id);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)m->cfg.redis_failure_ttl);
    const char *argv[] = {proc,
                          ready,
                          workers,
                          prefix,
                          code ? "fail" : "requeue",
                          code ? code : "",
                          message ? message : "",
                          ttl,
                          wid};
    redisReply *r = queue_eval(c, QS_RELEASE, 3, 6, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        log_error("master: cannot release the jobs of worker %d: %s", (int)pid,
                  r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
        freeReplyObject(r);
        if (r == NULL)
            jobs_close(m);
        return -1;
    }
    int n = (int)r->integer;
    freeReplyObject(r);
    if (n > 0)
        log_warn("worker %d: %d job(s) %s", (int)pid, n,
                 code ? "failed" : "handed back to the queue");
    return n;
}

void jobs_close(struct master *m) {
    if (m->redis) {
        redisFree(m->redis);
        m->redis = NULL;
    }
}
