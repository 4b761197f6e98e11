/* jobs.c — the master's Redis work: the jobs of a worker that is gone, the
 * promotion of due retries, the node heartbeat, and the reaper that takes back
 * the jobs of a node whose heartbeat stopped (DESIGN.md §2). One blocking
 * connection with short timeouts: Redis is local or near, and every call here
 * is one small script. */
#include "jobs.h"
#include "log.h"
#include "queue.h"
#include "rconn.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define HEARTBEAT_EVERY  5     /* ticks (s) */
#define HEARTBEAT_TTL_MS 15000 /* a node silent this long is dead */
#define REAP_EVERY       5     /* ticks (s) */
#define PROMOTE_BATCH    "1000"

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
        if (!m->redis_down)
            log_error("master: Redis unreachable: %s (retrying every second)", err);
        m->redis_down = true;
        return NULL;
    }
    if (m->redis_down)
        log_info("master: Redis reachable again");
    m->redis_down = false;
    /* Commands are tiny scripts: a stalled server must not hold the master long. */
    struct timeval tv = {2, 0};
    redisSetTimeout(m->redis, tv);
    return m->redis;
}

/* Runs a command or script reply check: the reply, or NULL (logged once per
 * outage; the connection is dropped so the next call reconnects). */
static redisReply *checked(struct master *m, redisReply *r, const char *what) {
    if (r && r->type != REDIS_REPLY_ERROR)
        return r;
    if (r) {
        log_error("master: %s: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    if (!m->redis_down)
        log_error("master: %s: %s", what, m->redis ? m->redis->errstr : "not connected");
    m->redis_down = true;
    jobs_close(m);
    return NULL;
}

/* Releases the jobs listed in worker wid's proc list (of node). */
static int release(struct master *m, const char *node, const char *wid, const char *code,
                   const char *message) {
    redisContext *c = connection(m);
    if (c == NULL)
        return -1;
    const char *prefix = m->cfg.redis_key_prefix;
    char proc[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX], workers[QUEUE_KEY_MAX];
    char delayed[QUEUE_KEY_MAX], dead[QUEUE_KEY_MAX];
    queue_key(proc, sizeof(proc), prefix, "proc", wid);
    queue_key(ready, sizeof(ready), prefix, "ready", NULL);
    queue_key(workers, sizeof(workers), prefix, "workers", node);
    queue_key(delayed, sizeof(delayed), prefix, "delayed", NULL);
    queue_key(dead, sizeof(dead), prefix, "dead", NULL);
    struct queue_policy pol;
    queue_policy_args(&m->cfg, &pol);
    const char *argv[16] = {proc,
                            ready,
                            workers,
                            delayed,
                            dead,
                            code ? "fail" : "requeue",
                            code ? code : "",
                            message ? message : "",
                            wid};
    int n = 9;
    for (int i = 0; i < 7; i++)
        argv[n++] = pol.argv[i];
    redisReply *r = checked(m, queue_eval(c, QS_RELEASE, 5, n - 5, argv, NULL), "release script");
    if (r == NULL)
        return -1;
    int jobs = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
    freeReplyObject(r);
    if (jobs > 0)
        log_warn("worker %s: %d job(s) %s", wid, jobs,
                 code ? "failed (retried while attempts remain)" : "handed back to the queue");
    return jobs;
}

int jobs_release_worker(struct master *m, pid_t pid, const char *code, const char *message) {
    char wid[400];
    snprintf(wid, sizeof(wid), "%s:%d", m->node_id, (int)pid);
    return release(m, m->node_id, wid, code, message);
}

static void promote(struct master *m, redisContext *c) {
    char delayed[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX];
    queue_key(delayed, sizeof(delayed), m->cfg.redis_key_prefix, "delayed", NULL);
    queue_key(ready, sizeof(ready), m->cfg.redis_key_prefix, "ready", NULL);
    const char *argv[] = {delayed, ready, m->cfg.redis_key_prefix, PROMOTE_BATCH};
    freeReplyObject(checked(m, queue_eval(c, QS_PROMOTE, 2, 2, argv, NULL), "promote script"));
}

static void heartbeat(struct master *m, redisContext *c) {
    char hb[QUEUE_KEY_MAX], nodes[QUEUE_KEY_MAX];
    queue_key(hb, sizeof(hb), m->cfg.redis_key_prefix, "hb", m->node_id);
    queue_key(nodes, sizeof(nodes), m->cfg.redis_key_prefix, "nodes", NULL);
    freeReplyObject(
        checked(m, redisCommand(c, "SET %s 1 PX %d", hb, HEARTBEAT_TTL_MS), "heartbeat"));
    if (m->redis)
        freeReplyObject(checked(m, redisCommand(c, "SADD %s %s", nodes, m->node_id), "SADD"));
}

/* Takes back the jobs of every node whose heartbeat is gone: each of its
 * workers' jobs counts as a transient failure (worker_lost). One master at a
 * time does it, under a SET NX PX lock. */
static void reap_nodes(struct master *m, redisContext *c) {
    const char *prefix = m->cfg.redis_key_prefix;
    char lock[QUEUE_KEY_MAX], nodes[QUEUE_KEY_MAX];
    queue_key(lock, sizeof(lock), prefix, "reaper", NULL);
    queue_key(nodes, sizeof(nodes), prefix, "nodes", NULL);
    redisReply *r =
        checked(m, redisCommand(c, "SET %s %s NX PX 10000", lock, m->node_id), "reaper lock");
    bool mine = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!mine)
        return;
    redisReply *all = checked(m, redisCommand(m->redis, "SMEMBERS %s", nodes), "SMEMBERS");
    for (size_t i = 0; all && i < all->elements && m->redis; i++) {
        const char *node = all->element[i]->str;
        char hb[QUEUE_KEY_MAX], workers[QUEUE_KEY_MAX];
        queue_key(hb, sizeof(hb), prefix, "hb", node);
        redisReply *alive = checked(m, redisCommand(m->redis, "EXISTS %s", hb), "EXISTS");
        bool dead = alive && alive->type == REDIS_REPLY_INTEGER && alive->integer == 0;
        freeReplyObject(alive);
        if (!dead || strcmp(node, m->node_id) == 0 || m->redis == NULL)
            continue;
        log_warn("node %s stopped its heartbeat: taking back its jobs", node);
        queue_key(workers, sizeof(workers), prefix, "workers", node);
        redisReply *wids = checked(m, redisCommand(m->redis, "SMEMBERS %s", workers), "SMEMBERS");
        for (size_t k = 0; wids && k < wids->elements; k++)
            release(m, node, wids->element[k]->str, "worker_lost",
                    "the node running the job stopped answering");
        freeReplyObject(wids);
        if (m->redis) {
            freeReplyObject(redisCommand(m->redis, "DEL %s", workers));
            freeReplyObject(redisCommand(m->redis, "SREM %s %s", nodes, node));
        }
    }
    freeReplyObject(all);
}

void jobs_tick(struct master *m) {
    redisContext *c = connection(m);
    if (c == NULL)
        return;
    m->ticks++;
    promote(m, c);
    if (m->redis && m->ticks % HEARTBEAT_EVERY == 1)
        heartbeat(m, m->redis);
    if (m->redis && m->ticks % REAP_EVERY == 3)
        reap_nodes(m, m->redis);
}

void jobs_leave(struct master *m) {
    redisContext *c = connection(m);
    if (c == NULL)
        return;
    char hb[QUEUE_KEY_MAX], nodes[QUEUE_KEY_MAX];
    queue_key(hb, sizeof(hb), m->cfg.redis_key_prefix, "hb", m->node_id);
    queue_key(nodes, sizeof(nodes), m->cfg.redis_key_prefix, "nodes", NULL);
    freeReplyObject(redisCommand(c, "DEL %s", hb));
    freeReplyObject(redisCommand(c, "SREM %s %s", nodes, m->node_id));
}

void jobs_close(struct master *m) {
    if (m->redis) {
        redisFree(m->redis);
        m->redis = NULL;
    }
}
