/* metrics.c — GET /metrics in Prometheus text format: the shared cache per
 * shard, the children from the scoreboard, the node's counters from the
 * segment's header (monotonic while the master lives: counters.h), and the
 * queue depth from Redis (left out while Redis does not answer). */
#include "handlers.h"
#include "respond.h"

#include "cache.h"
#include "clients.h"
#include "counters.h"
#include "rconn.h"
#include "segment.h"
#include "units.h"
#include "version.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

/* The Redis counts, in the order they are asked for: the jobs' lists, then
 * the deliveries' (callbacks and e-mails). */
enum step { STEP_READY, STEP_DELAYED, STEP_DEAD, STEP_WH_READY, STEP_WH_DELAYED, STEP_WH_DEAD };
#define STEPS 6

static void counter(struct evbuffer *b, const char *name, const char *help, const char *type) {
    evbuffer_add_printf(b, "# HELP thumbnailed_%s %s\n# TYPE thumbnailed_%s %s\n", name, help, name,
                        type);
}

static void cache_metrics(struct http_child *c, struct evbuffer *b) {
    if (c->cache == NULL)
        return;
    static const struct {
        const char *name, *help, *type;
        size_t off;
    } fields[] = {
        {"cache_hits_total", "Reads answered from the shared cache.", "counter",
         offsetof(struct shm_cache_stats, hits)},
        {"cache_misses_total", "Reads the shared cache could not answer.", "counter",
         offsetof(struct shm_cache_stats, misses)},
        {"cache_inserts_total", "Entries stored.", "counter",
         offsetof(struct shm_cache_stats, inserts)},
        {"cache_evictions_total", "Entries evicted to make room.", "counter",
         offsetof(struct shm_cache_stats, evictions)},
        {"cache_expired_total", "Entries dropped when they expired.", "counter",
         offsetof(struct shm_cache_stats, expired)},
        {"cache_lock_recoveries_total", "Shards wiped after a process died holding the lock.",
         "counter", offsetof(struct shm_cache_stats, lock_recoveries)},
        {"cache_invalidations_total",
         "Entries dropped because Redis said their job changed or was deleted.", "counter",
         offsetof(struct shm_cache_stats, invalidations)},
        {"cache_stale_puts_total",
         "Entries not stored because their job changed after they were read.", "counter",
         offsetof(struct shm_cache_stats, stale_puts)},
        {"cache_items", "Entries held.", "gauge", offsetof(struct shm_cache_stats, items)},
        {"cache_bytes_used", "Bytes used by entries.", "gauge",
         offsetof(struct shm_cache_stats, bytes_used)},
        {"cache_bytes_capacity", "Bytes entries may use.", "gauge",
         offsetof(struct shm_cache_stats, capacity)},
    };
    int shards = shm_cache_shards(c->cache);
    struct shm_cache_stats st[256];
    if (shards > 256)
        shards = 256;
    for (int s = 0; s < shards; s++)
        shm_cache_stats(c->cache, s, &st[s]);
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        counter(b, fields[f].name, fields[f].help, fields[f].type);
        for (int s = 0; s < shards; s++) {
            uint64_t v;
            memcpy(&v, (const char *)&st[s] + fields[f].off, sizeof(v));
            evbuffer_add_printf(b, "thumbnailed_%s{shard=\"%d\"} %llu\n", fields[f].name, s,
                                (unsigned long long)v);
        }
    }
    if (c->shm == NULL)
        return;
    counter(b, "cache_unconfirmed_total",
            "Finished jobs found in the cache that the http child's subscription could not vouch "
            "for (down, or the entry read before it was in place): asked of Redis instead.",
            "counter");
    evbuffer_add_printf(b, "thumbnailed_cache_unconfirmed_total %llu\n",
                        (unsigned long long)atomic_load(&c->shm->hdr->cache_unconfirmed));
}

static void child_metrics(struct http_child *c, struct evbuffer *b) {
    counter(b, "node_info", "This node: its id and version (always 1).", "gauge");
    evbuffer_add_printf(b, "thumbnailed_node_info{node=\"%s\",version=\"%s\"} 1\n", c->node_id,
                        THUMBNAILED_VERSION);
    if (c->shm == NULL)
        return;
    static const char *const kinds[] = {
        [SHM_SLOT_HTTP] = "http", [SHM_SLOT_WORKER] = "worker", [SHM_SLOT_DELIVERY] = "delivery"};
    uint64_t running[SHM_CHILD_KINDS] = {0};
    for (int i = 0; i < SHM_MAX_SLOTS; i++) {
        struct shm_slot *s = shm_segment_slot(c->shm, i);
        int kind = atomic_load(&s->kind);
        if (kind == SHM_SLOT_HTTP || kind == SHM_SLOT_WORKER || kind == SHM_SLOT_DELIVERY)
            running[kind] += atomic_load(&s->pid) > 0;
    }
    struct shm_counters *n = &c->shm->hdr->counters;
    counter(b, "children", "Child processes running, by kind.", "gauge");
    for (int k = SHM_SLOT_HTTP; k <= SHM_SLOT_DELIVERY; k++)
        evbuffer_add_printf(b, "thumbnailed_children{kind=\"%s\"} %llu\n", kinds[k],
                            (unsigned long long)running[k]);
    counter(b, "child_restarts_total", "Children restarted after they died, by kind.", "counter");
    for (int k = SHM_SLOT_HTTP; k <= SHM_SLOT_DELIVERY; k++)
        evbuffer_add_printf(b, "thumbnailed_child_restarts_total{kind=\"%s\"} %llu\n", kinds[k],
                            (unsigned long long)atomic_load(&n->restarts[k]));
    counter(b, "worker_jobs_total",
            "Job attempts the workers finished, by outcome: done, failed (for good), retried "
            "(a retry scheduled), stale (canceled, deleted or taken over while it ran).",
            "counter");
    for (int o = 0; o < SHM_JOB_OUTCOMES; o++)
        evbuffer_add_printf(b, "thumbnailed_worker_jobs_total{outcome=\"%s\"} %llu\n",
                            shm_job_outcome_name((enum shm_job_outcome)o),
                            (unsigned long long)atomic_load(&n->jobs[o]));
    counter(b, "job_timeouts_total", "Workers killed for worker.job_timeout.", "counter");
    evbuffer_add_printf(b, "thumbnailed_job_timeouts_total %llu\n",
                        (unsigned long long)atomic_load(&c->shm->hdr->job_timeouts));
}

/* The run time of each job attempt (a Prometheus histogram in seconds over
 * jobstats.h's bounds) and the source bytes the workers got. */
static void job_metrics(struct http_child *c, struct evbuffer *b) {
    if (c->shm == NULL)
        return;
    struct shm_counters *n = &c->shm->hdr->counters;
    counter(b, "job_duration_seconds",
            "Run time of each job attempt a worker finished, from its start to its outcome stored.",
            "histogram");
    uint64_t cumulative = 0;
    for (int i = 0; i < SHM_JOB_BUCKETS; i++) {
        cumulative += atomic_load(&n->job_buckets[i]);
        int64_t le = shm_counters_bound_ms(i);
        if (le >= 0)
            evbuffer_add_printf(b, "thumbnailed_job_duration_seconds_bucket{le=\"%g\"} %llu\n",
                                (double)le / 1000.0, (unsigned long long)cumulative);
        else
            evbuffer_add_printf(b, "thumbnailed_job_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                                (unsigned long long)cumulative);
    }
    /* The count is the buckets' sum as read, so it always matches +Inf. */
    evbuffer_add_printf(b, "thumbnailed_job_duration_seconds_sum %.3f\n",
                        (double)atomic_load(&n->job_ms_sum) / 1000.0);
    evbuffer_add_printf(b, "thumbnailed_job_duration_seconds_count %llu\n",
                        (unsigned long long)cumulative);
    counter(b, "source_bytes_fetched_total",
            "Bytes of job sources the workers got, by source: url (fetched) or upload (read "
            "from Redis).",
            "counter");
    for (int s = 0; s < SHM_SOURCES; s++)
        evbuffer_add_printf(b, "thumbnailed_source_bytes_fetched_total{src=\"%s\"} %llu\n",
                            shm_source_name((enum shm_source)s),
                            (unsigned long long)atomic_load(&n->source_bytes[s]));
}

/* Answered requests by route and status; only the pairs seen so far. */
static void request_metrics(struct http_child *c, struct evbuffer *b) {
    if (c->shm == NULL)
        return;
    struct shm_counters *n = &c->shm->hdr->counters;
    counter(b, "http_requests_total",
            "Requests answered by the routes, by route and status (status=\"other\": one "
            "outside the counted set).",
            "counter");
    for (int r = 0; r < ROUTE_COUNT && r < SHM_ROUTES_MAX; r++) {
        for (int i = 0; i < SHM_STATUSES; i++) {
            uint64_t v = atomic_load(&n->http[r][i]);
            if (v == 0)
                continue;
            int code = shm_counters_status_code(i);
            char status[16] = "other";
            if (code)
                snprintf(status, sizeof(status), "%d", code);
            evbuffer_add_printf(
                b, "thumbnailed_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                route_name((enum route_id)r), status, (unsigned long long)v);
        }
    }
}

/* What every process's Redis clients saw (rconn.h), and the log lines lost. */
static void health_metrics(struct http_child *c, struct evbuffer *b) {
    if (c->shm == NULL)
        return;
    const struct rconn_health *rh = &c->shm->hdr->redis;
    counter(b, "redis_failures_total",
            "Redis commands that failed, by reason: lost (no reply), a refusal (oom, misconf, "
            "readonly, noreplicas, busy, loading, masterdown, tryagain) or error.",
            "counter");
    for (int r = RCONN_REASON_LOST; r < RCONN_REASONS; r++)
        evbuffer_add_printf(b, "thumbnailed_redis_failures_total{reason=\"%s\"} %llu\n",
                            rconn_reason_name((enum rconn_reason)r),
                            (unsigned long long)atomic_load(&rh->faults[r]));
    int64_t ok = atomic_load(&rh->write_ok_ms);
    counter(b, "redis_last_write_age_seconds",
            "Seconds since Redis last accepted a write (-1: none yet).", "gauge");
    evbuffer_add_printf(b, "thumbnailed_redis_last_write_age_seconds %.3f\n",
                        ok ? (double)(units_mono_ms() - ok) / 1000.0 : -1.0);
    counter(b, "redis_refusing_writes", "1 while Redis refuses writes (/readyz says why).",
            "gauge");
    evbuffer_add_printf(b, "thumbnailed_redis_refusing_writes %d\n",
                        rconn_health_refusing(rh, NULL) ? 1 : 0);
    uint64_t lost = atomic_load(&c->shm->hdr->log_lost);
    counter(b, "log_lines_lost_total",
            "Log lines the log target did not take (a full disk, say), all processes.", "counter");
    evbuffer_add_printf(b, "thumbnailed_log_lines_lost_total %llu\n", (unsigned long long)lost);
}

/* The http children's connection layers (conn.h): open connections now,
 * and what they refused or cut, summed over the node's children. */
static void conn_metrics(struct http_child *c, struct evbuffer *b) {
    if (c->shm == NULL)
        return;
    uint64_t open = 0;
    for (int i = 0; i < SHM_MAX_SLOTS; i++) {
        struct shm_slot *s = shm_segment_slot(c->shm, i);
        if (s && atomic_load(&s->kind) == SHM_SLOT_HTTP)
            open += atomic_load(&s->conns_open);
    }
    counter(b, "http_connections", "Connections the http children hold open (a second old).",
            "gauge");
    evbuffer_add_printf(b, "thumbnailed_http_connections %llu\n", (unsigned long long)open);
    static const struct {
        const char *name, *help;
        size_t off;
    } fields[] = {
        {"http_connections_accepted_total", "Connections accepted.",
         offsetof(struct shm_http_counters, accepted)},
        {"http_connections_refused_total",
         "Connections refused with 429 too_many_connections (http.max_connections_per_client).",
         offsetof(struct shm_http_counters, refused_per_client)},
        {"http_connections_reused_total",
         "Idle keep-alive connections closed to make room at http.max_connections.",
         offsetof(struct shm_http_counters, reused)},
        {"http_head_timeouts_total",
         "Requests whose line and headers did not come within http.timeout (408).",
         offsetof(struct shm_http_counters, head_timeouts)},
        {"http_body_too_slow_total", "Request bodies cut for coming under 1 KB/s over 10 s (408).",
         offsetof(struct shm_http_counters, body_too_slow)},
        {"http_write_timeouts_total",
         "Connections dropped because the client did not read its answer within http.timeout.",
         offsetof(struct shm_http_counters, write_timeouts)},
        {"http_requests_refused_total",
         "Requests refused by the HTTP layer itself (400, 413, 417, 501, 505, 408).",
         offsetof(struct shm_http_counters, refused)},
        {"http_accept_pauses_total",
         "Times accepting paused because accept failed (out of file descriptors).",
         offsetof(struct shm_http_counters, accept_pauses)},
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        _Atomic uint64_t *v = (_Atomic uint64_t *)((char *)&c->shm->hdr->http + fields[f].off);
        counter(b, fields[f].name, fields[f].help, "counter");
        evbuffer_add_printf(b, "thumbnailed_%s %llu\n", fields[f].name,
                            (unsigned long long)atomic_load(v));
    }
}

/* Per API key, by its name (guard_count); nothing without keys. */
static void client_metrics(struct http_child *c, struct evbuffer *b) {
    if (c->shm == NULL || c->api_keys == NULL)
        return;
    static const struct {
        const char *name, *help;
        size_t off;
    } fields[] = {
        {"client_submits_total", "Jobs created, by API key name.",
         offsetof(struct shm_client, submits)},
        {"client_rate_limited_total", "Requests refused with 429 rate_limited, by API key name.",
         offsetof(struct shm_client, rate_limited)},
        {"client_too_many_queued_total",
         "Submits refused with 429 too_many_queued, by API key name.",
         offsetof(struct shm_client, too_many_queued)},
    };
    struct shm_clients *t = &c->shm->hdr->clients;
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        counter(b, fields[f].name, fields[f].help, "counter");
        for (int i = 0; i < SHM_CLIENTS_MAX; i++) {
            struct shm_client *e = &t->e[i];
            if (atomic_load(&e->name_hash) == 0 || e->name[0] == '\0')
                continue;
            _Atomic uint64_t *v = (_Atomic uint64_t *)((char *)e + fields[f].off);
            evbuffer_add_printf(b, "thumbnailed_%s{client=\"%.*s\"} %llu\n", fields[f].name,
                                SHM_CLIENTS_NAME_MAX, e->name, (unsigned long long)atomic_load(v));
        }
    }
}

static void send_metrics(struct exchange *h) {
    struct evbuffer *b = exchange_body_out(h);
    cache_metrics(h->child, b);
    child_metrics(h->child, b);
    job_metrics(h->child, b);
    request_metrics(h->child, b);
    health_metrics(h->child, b);
    conn_metrics(h->child, b);
    client_metrics(h->child, b);
    exchange_set_header(h, "Content-Type", "text/plain; version=0.0.4");
    exchange_send(h, 200);
}

static void on_reply(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    enum step step = (enum step)h->step++;
    bool live = exchange_redis_received(h);
    if (live) {
        static const char *const names[] = {"ready", "delayed", "dead"};
        struct evbuffer *b = exchange_body_out(h);
        bool wh = step >= STEP_WH_READY;
        if (step == STEP_READY)
            counter(b, "queue_jobs", "Jobs in the queue, by list (from Redis).", "gauge");
        if (step == STEP_WH_READY)
            counter(b, "queue_deliveries",
                    "Callbacks and e-mails to send, by list (from Redis): ready, delayed "
                    "(a retry), dead (given up).",
                    "gauge");
        if (reply && reply->type == REDIS_REPLY_INTEGER)
            evbuffer_add_printf(b, "thumbnailed_queue_%s{list=\"%s\"} %lld\n",
                                wh ? "deliveries" : "jobs", names[step % 3], reply->integer);
        if (step == STEP_WH_DEAD)
            send_metrics(h);
    }
    exchange_settle(h);
}

void metrics_handle(struct exchange *h) {
    struct http_child *c = h->child;
    char keys[STEPS][QUEUE_KEY_MAX];
    const char *prefix = c->cfg->redis_key_prefix;
    const char *cmds[STEPS][2] = {
        {"LLEN", queue_key(keys[0], QUEUE_KEY_MAX, prefix, "ready", NULL)},
        {"ZCARD", queue_key(keys[1], QUEUE_KEY_MAX, prefix, "delayed", NULL)},
        {"ZCARD", queue_key(keys[2], QUEUE_KEY_MAX, prefix, "dead", NULL)},
        {"LLEN", queue_key(keys[3], QUEUE_KEY_MAX, prefix, "wh:ready", NULL)},
        {"ZCARD", queue_key(keys[4], QUEUE_KEY_MAX, prefix, "wh:delayed", NULL)},
        {"ZCARD", queue_key(keys[5], QUEUE_KEY_MAX, prefix, "wh:dead", NULL)}};
    h->op = (struct rasync_op){.cb = on_reply, .arg = h};
    int sent = 0;
    for (int i = 0; i < STEPS && rasync_connected(c->redis); i++) {
        if (rasync_command(c->redis, &h->op, 2, cmds[i], NULL) < 0)
            break;
        exchange_redis_sent(h);
        sent++;
    }
    if (sent == 0)
        send_metrics(h);
    /* Fewer than STEPS sent: the connection dropped; the replies that come (NULL) settle it. */
    exchange_settle(h);
}
