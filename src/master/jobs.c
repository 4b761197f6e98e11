/* jobs.c — the master's Redis work: the jobs of a worker that is gone, the
 * promotion of due retries, the node heartbeat, and the reaper that takes back
 * the jobs of a node whose heartbeat stopped (docs/ARCHITECTURE.md §3, §7). One
 * blocking connection (rconn.h) with short timeouts: Redis is local or near,
 * and every call here is one small script. */
#include "jobs.h"
#include "log.h"
#include "queue.h"
#include "rconn.h"

#include "segment.h"
#include "units.h"
#include "version.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEARTBEAT_EVERY  2     /* ticks (s): the admin overview's fleet view stays fresh */
#define HEARTBEAT_TTL_MS 15000 /* a node silent this long is dead */
#define REAP_EVERY       5     /* ticks (s) */
#define PROMOTE_BATCH    "1000"
/* Commands are tiny scripts: a stalled server must not hold the master long. */
#define MASTER_COMMAND_TIMEOUT_MS 2000

/* The master's connection, set up on first use. */
static struct rconn *redis(struct master *m) {
    if (!m->redis_init) {
        if (rconn_init(&m->redis, &m->cfg, "master", MASTER_COMMAND_TIMEOUT_MS) < 0)
            return NULL;
        m->redis_init = true;
    }
    return &m->redis;
}

/* Releases the jobs listed in worker wid's proc list (of node). */
static int release(struct master *m, const char *node, const char *wid, const char *code,
                   const char *message) {
    struct rconn *c = redis(m);
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
    redisReply *r = rconn_script(c, "release script", QUEUE_SCRIPT_RELEASE, 5, n - 5, argv, NULL);
    if (r == NULL)
        return -1;
    int jobs = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
    freeReplyObject(r);
    if (jobs > 0)
        log_warn("worker %s: %d job(s) %s%s", wid, jobs,
                 code ? "failed (retried while attempts remain)" : "handed back to the queue",
                 code && strcmp(code, "job_timeout") == 0 ? "; a job's second job_timeout is not"
                                                          : "");
    return jobs;
}

/* A release Redis has not taken yet. */
struct jobs_release {
    char wid[QUEUE_WID_MAX];
    const char *code, *message; /* static */
};

int jobs_release_worker(struct master *m, pid_t pid, const char *code, const char *message) {
    char wid[QUEUE_WID_MAX];
    queue_worker_id(wid, sizeof(wid), m->node_id, pid);
    int n = release(m, m->node_id, wid, code, message);
    if (n >= 0)
        return n;
    struct jobs_release *grown =
        realloc(m->releases, (size_t)(m->nreleases + 1) * sizeof(*m->releases));
    if (grown == NULL) {
        log_error("worker %s: its jobs cannot be kept for a later release (out of memory); the "
                  "reaper takes them back if this node stops",
                  wid);
        return -1;
    }
    m->releases = grown;
    struct jobs_release *r = &m->releases[m->nreleases++];
    snprintf(r->wid, sizeof(r->wid), "%s", wid);
    r->code = code;
    r->message = message;
    log_warn("worker %s: its jobs will be released once Redis takes it", wid);
    return -1;
}

/* Tries the pending releases in order; stops at the first Redis refuses. */
static void retry_releases(struct master *m) {
    int done = 0;
    while (done < m->nreleases) {
        struct jobs_release *r = &m->releases[done];
        if (release(m, m->node_id, r->wid, r->code, r->message) < 0)
            break;
        log_info("worker %s: its jobs were released after Redis came back", r->wid);
        done++;
    }
    if (done > 0) {
        memmove(m->releases, m->releases + done,
                (size_t)(m->nreleases - done) * sizeof(*m->releases));
        m->nreleases -= done;
    }
}

void jobs_free(struct master *m) {
    free(m->releases);
    m->releases = NULL;
    m->nreleases = 0;
}

static void promote(struct master *m, struct rconn *c) {
    char delayed[QUEUE_KEY_MAX], ready[QUEUE_KEY_MAX];
    queue_key(delayed, sizeof(delayed), m->cfg.redis_key_prefix, "delayed", NULL);
    queue_key(ready, sizeof(ready), m->cfg.redis_key_prefix, "ready", NULL);
    const char *argv[] = {delayed, ready, m->cfg.redis_key_prefix, PROMOTE_BATCH};
    freeReplyObject(rconn_script(c, "promote script", QUEUE_SCRIPT_PROMOTE, 2, 2, argv, NULL));
}

/* The Redis server c is connected to, as "host:port" or the socket's path. */
static void redis_peer(const struct rconn *c, char *buf, size_t n) {
    const redisContext *rc = c->c;
    buf[0] = '\0';
    if (rc && rc->connection_type == REDIS_CONN_UNIX && rc->unix_sock.path)
        snprintf(buf, n, "%s", rc->unix_sock.path);
    else if (rc && rc->tcp.host)
        snprintf(buf, n, "%s:%d", rc->tcp.host, rc->tcp.port);
}

/* What the fleet view shows of this node (docs/ARCHITECTURE.md §7): a JSON
 * object, the value of its heartbeat key. NULL when out of memory. */
static char *node_info(struct master *m, struct rconn *c) {
    static const char *const kinds[] = {
        [SHM_SLOT_HTTP] = "http", [SHM_SLOT_WORKER] = "worker", [SHM_SLOT_DELIVERY] = "delivery"};
    char redis[320];
    redis_peer(c, redis, sizeof(redis));
    json_t *children = json_array();
    long long now = units_mono_ms();
    for (int i = 0; m->shm.hdr && i < SHM_MAX_SLOTS; i++) {
        struct shm_slot *s = shm_segment_slot(&m->shm, i);
        int kind = s ? atomic_load(&s->kind) : SHM_SLOT_FREE;
        if (kind != SHM_SLOT_HTTP && kind != SHM_SLOT_WORKER && kind != SHM_SLOT_DELIVERY)
            continue;
        json_t *ch =
            json_pack("{s:s, s:i, s:I, s:I}", "kind", kinds[kind], "pid", (int)atomic_load(&s->pid),
                      "restarts", (json_int_t)atomic_load(&s->restarts), "jobs_done",
                      (json_int_t)atomic_load(&s->jobs_done));
        if (ch && kind == SHM_SLOT_WORKER) {
            int state = atomic_load(&s->state);
            bool busy = state == SHM_SLOT_BUSY;
            long long since = atomic_load(&s->job_started_ms);
            json_object_set_new(ch, "state",
                                json_string(busy                       ? "busy"
                                            : state == SHM_SLOT_PAUSED ? "paused"
                                                                       : "idle"));
            if (busy && since > 0) {
                char job[sizeof(s->job_id) + 1];
                memcpy(job, s->job_id, sizeof(s->job_id));
                job[sizeof(s->job_id)] = '\0';
                json_object_set_new(ch, "job", json_string(job));
                json_object_set_new(ch, "job_ms", json_integer(now - since));
            }
        }
        if (ch)
            json_array_append_new(children, ch);
    }
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "id", m->node_id, "version",
                            THUMBNAILED_VERSION, "listen", m->cfg.http_listen, "started_at_ms",
                            (json_int_t)m->started_at_ms, "redis", redis, "children", children);
    if (doc == NULL)
        return NULL;
    json_object_set_new(doc, "paused",
                        json_boolean(m->shm.hdr && atomic_load(&m->shm.hdr->paused) != 0));
    json_object_set_new(doc, "heartbeat_ms", json_integer((json_int_t)units_wall_ms()));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void heartbeat(struct master *m, struct rconn *c) {
    char hb[QUEUE_KEY_MAX], nodes[QUEUE_KEY_MAX];
    queue_key(hb, sizeof(hb), m->cfg.redis_key_prefix, "hb", m->node_id);
    queue_key(nodes, sizeof(nodes), m->cfg.redis_key_prefix, "nodes", NULL);
    if (!rconn_ready(c))
        return;
    char *info = node_info(m, c);
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", HEARTBEAT_TTL_MS);
    const char *set[] = {"SET", hb, info ? info : "{}", "PX", ttl};
    freeReplyObject(rconn_command(c, "heartbeat", 5, set, NULL));
    free(info);
    if (rconn_connected(c))
        freeReplyObject(rconn_commandf(c, "SADD nodes", "SADD %s %s", nodes, m->node_id));
}

/* Copies {p}:paused (set by POST /v1/admin/pause) into the segment's header,
 * where the workers look before each take; left as it was when Redis does not
 * answer. */
static void read_paused(struct master *m, struct rconn *c) {
    char key[QUEUE_KEY_MAX];
    queue_key(key, sizeof(key), m->cfg.redis_key_prefix, "paused", NULL);
    redisReply *r = rconn_commandf(c, "GET paused", "GET %s", key);
    if (r == NULL || m->shm.hdr == NULL || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return;
    }
    int32_t on = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (atomic_exchange(&m->shm.hdr->paused, on) != on)
        log_info("the workers %s (%s)", on ? "take no more jobs" : "take jobs again",
                 on ? "paused through the admin API" : "resumed");
}

/* Takes back the jobs of every node whose heartbeat is gone: each of its
 * workers' jobs counts as a transient failure (worker_lost). One master at a
 * time does it, under a SET NX PX lock. */
static void reap_nodes(struct master *m, struct rconn *c) {
    const char *prefix = m->cfg.redis_key_prefix;
    char lock[QUEUE_KEY_MAX], nodes[QUEUE_KEY_MAX];
    queue_key(lock, sizeof(lock), prefix, "reaper", NULL);
    queue_key(nodes, sizeof(nodes), prefix, "nodes", NULL);
    redisReply *r = rconn_commandf(c, "reaper lock", "SET %s %s NX PX 10000", lock, m->node_id);
    bool mine = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!mine)
        return;
    redisReply *all = rconn_commandf(c, "SMEMBERS nodes", "SMEMBERS %s", nodes);
    for (size_t i = 0; all && i < all->elements && rconn_connected(c); i++) {
        const char *node = all->element[i]->str;
        char hb[QUEUE_KEY_MAX], workers[QUEUE_KEY_MAX];
        queue_key(hb, sizeof(hb), prefix, "hb", node);
        redisReply *alive = rconn_commandf(c, "EXISTS hb", "EXISTS %s", hb);
        bool dead = alive && alive->type == REDIS_REPLY_INTEGER && alive->integer == 0;
        freeReplyObject(alive);
        if (!dead || strcmp(node, m->node_id) == 0 || !rconn_connected(c))
            continue;
        log_warn("node %s stopped its heartbeat: taking back its jobs", node);
        queue_key(workers, sizeof(workers), prefix, "workers", node);
        redisReply *wids = rconn_commandf(c, "SMEMBERS workers", "SMEMBERS %s", workers);
        for (size_t k = 0; wids && k < wids->elements; k++)
            release(m, node, wids->element[k]->str, "worker_lost",
                    "the node running the job stopped answering");
        freeReplyObject(wids);
        if (rconn_connected(c)) {
            freeReplyObject(rconn_commandf(c, "DEL workers", "DEL %s", workers));
            freeReplyObject(rconn_commandf(c, "SREM nodes", "SREM %s %s", nodes, node));
        }
    }
    freeReplyObject(all);
}

void jobs_tick(struct master *m) {
    struct rconn *c = redis(m);
    if (c == NULL || !rconn_ready(c))
        return;
    m->ticks++;
    if (m->nreleases > 0)
        retry_releases(m);
    promote(m, c);
    if (rconn_connected(c))
        read_paused(m, c);
    if (rconn_connected(c) && m->ticks % HEARTBEAT_EVERY == 1)
        heartbeat(m, c);
    if (rconn_connected(c) && m->ticks % REAP_EVERY == 3)
        reap_nodes(m, c);
}

void jobs_leave(struct master *m) {
    struct rconn *c = redis(m);
    if (c == NULL)
        return;
    if (m->nreleases > 0)
        retry_releases(m);
    if (m->nreleases > 0) {
        log_warn("stop: %d worker(s)' jobs could not be released (Redis refuses): this node stays "
                 "listed, so the reaper of a live node takes them back once its heartbeat expires",
                 m->nreleases);
        return;
    }
    char hb[QUEUE_KEY_MAX], nodes[QUEUE_KEY_MAX];
    queue_key(hb, sizeof(hb), m->cfg.redis_key_prefix, "hb", m->node_id);
    queue_key(nodes, sizeof(nodes), m->cfg.redis_key_prefix, "nodes", NULL);
    freeReplyObject(rconn_commandf(c, "DEL hb", "DEL %s", hb));
    freeReplyObject(rconn_commandf(c, "SREM nodes", "SREM %s %s", nodes, m->node_id));
}

void jobs_close(struct master *m) {
    if (m->redis_init)
        rconn_close(&m->redis);
}
