/* routes.c — the dispatcher: every request gets an exchange, then its route's
 * handler, a 404 or a 405 with Allow. /healthz and /readyz are answered here. */
#include "guard.h"
#include "handlers.h"
#include "objects.h"
#include "rasync.h"
#include "respond.h"
#include "segment.h"
#include "units.h"
#include "version.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

static void healthz(struct exchange *h) {
    struct evbuffer *body = exchange_body_out(h);
    evbuffer_add(body, "{\"status\":\"ok\"}\n", 16);
    exchange_set_header(h, "Content-Type", "application/json");
    exchange_send(h, 200);
}

/* A worker counts as alive while its slot has a pid and it showed a sign of
 * life this recently, or is busy on a job (a long job does not beat). */
#define WORKER_ALIVE_MS 5000

/* The workers of this node that are alive (per the scoreboard). */
static int live_workers(struct http_child *c) {
    int workers = 0;
    int64_t now = units_mono_ms();
    for (int i = 0; c->shm && i < SHM_MAX_SLOTS; i++) {
        struct shm_slot *s = shm_segment_slot(c->shm, i);
        if (s == NULL || atomic_load(&s->kind) != SHM_SLOT_WORKER || atomic_load(&s->pid) <= 0)
            continue;
        if (atomic_load(&s->state) == SHM_SLOT_BUSY ||
            now - atomic_load(&s->heartbeat_ms) <= WORKER_ALIVE_MS)
            workers++;
    }
    return workers;
}

/* Ready: Redis answers this child's PING (a round trip within the last
 * RPROBE_WINDOW_MS) and accepts writes, and at least one worker is alive. */
static void readyz(struct exchange *h) {
    struct http_child *c = h->child;
    int workers = live_workers(c);
    long rtt = -1, silent = -1;
    bool redis = rasync_answering(c->redis, &rtt, &silent);
    enum rconn_reason reason = RCONN_REASON_NONE;
    bool refusing = c->shm && rconn_health_refusing(&c->shm->hdr->redis, &reason);
    bool s3 = c->cfg->storage_backend == CONFIG_STORAGE_S3;
    long store_rtt = -1;
    char store_why[300] = "";
    bool store = !s3 || objects_answering(c, &store_rtt, store_why, sizeof(store_why));
    if (!redis || refusing || workers == 0 || !store) {
        char why[96] = "", quiet[64] = "", objects[340] = "";
        if (refusing)
            snprintf(why, sizeof(why), " Redis refuses writes (%s);", rconn_reason_name(reason));
        if (!redis && rasync_connected(c->redis) && silent >= 0)
            snprintf(quiet, sizeof(quiet), " (no reply to PING for %ld ms)", silent);
        else if (!redis)
            snprintf(quiet, sizeof(quiet), " (not connected)");
        if (!store)
            snprintf(objects, sizeof(objects), " the object store does not answer (%s);",
                     store_why);
        respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                      "not ready:%s%s%s%s%s%s", redis ? "" : " Redis does not answer", quiet,
                      redis ? "" : ";", why, workers ? "" : " no worker is alive;", objects);
        return;
    }
    char peer[320];
    rasync_peer(c->redis, peer, sizeof(peer));
    json_t *doc = json_pack("{s:s, s:i, s:s, s:s, s:I}", "status", "ready", "workers", workers,
                            "node", c->node_id, "redis", peer, "redis_rtt_ms", (json_int_t)rtt);
    if (doc && s3) {
        char where[STORE_URL_MAX];
        if (store_object_url(c->cfg, "", NULL, where, sizeof(where)) < 0)
            where[0] = '\0';
        json_object_set_new(doc, "store", json_string(where));
        json_object_set_new(doc, "store_rtt_ms", json_integer(store_rtt));
    }
    respond_json(h, 200, doc);
    json_decref(doc);
}

/* GET / : where a person goes from here. */
static void root(struct exchange *h) {
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "service", "thumbnailed", "version",
                            THUMBNAILED_VERSION, "docs", "/docs", "openapi", "/openapi.json",
                            "dashboard", "/dashboard", "api", "/v1/thumbnails");
    respond_json(h, 200, doc);
    json_decref(doc);
}

/* The longest path a route can have; longer ones are no resource (404). */
#define PATH_MAX_LEN 255

void routes_dispatch(struct http_child *c, struct conn *k) {
    struct exchange *h = exchange_begin(c, k);
    if (h == NULL) {
        conn_send(k, 500, NULL, 0);
        return;
    }
    guard_identify(h);
    const struct parse_request *r = conn_request(k);
    char path[PATH_MAX_LEN + 1] = "";
    if (r->path_len <= PATH_MAX_LEN) {
        memcpy(path, r->head, r->path_len);
        path[r->path_len] = '\0';
    }
    h->query = r->query_off ? r->head + r->query_off : NULL;
    route_match(h->method, path, &h->match);
    if (h->match.route == ROUTE_NONE) {
        respond_error(h, "not_found", NULL, 0, "no such resource");
    } else if (!h->match.method_ok) {
        exchange_set_header(h, "Allow", h->match.allow);
        respond_error(h, "method_not_allowed", NULL, 0, "this resource allows %s", h->match.allow);
    } else {
        bool api = h->match.route == ROUTE_SUBMIT || h->match.route == ROUTE_JOB ||
                   h->match.route == ROUTE_IMAGE || h->match.route == ROUTE_IMAGE_RENDITION ||
                   h->match.route == ROUTE_COMPAT_SUBMIT || h->match.route == ROUTE_COMPAT_THUMB;
        if (api && !guard_check(h)) {
            exchange_settle(h);
            return;
        }
        switch (h->match.route) {
        case ROUTE_HEALTHZ:
            healthz(h);
            break;
        case ROUTE_READYZ:
            readyz(h);
            break;
        case ROUTE_METRICS:
            if (!guard_metrics(h))
                break;
            metrics_handle(h);
            return;
        case ROUTE_SUBMIT:
            submit_handle(h);
            return; /* settles itself */
        case ROUTE_JOB:
            if (h->method == HTTP_DELETE)
                job_delete_handle(h);
            else
                job_get_handle(h);
            return;
        case ROUTE_IMAGE:
        case ROUTE_IMAGE_RENDITION:
            image_handle(h);
            return;
        case ROUTE_COMPAT_HEALTH:
            compat_health_handle(h);
            break;
        case ROUTE_COMPAT_SUBMIT:
            compat_submit_handle(h);
            return;
        case ROUTE_COMPAT_THUMB:
            compat_thumb_handle(h);
            return;
        case ROUTE_ROOT:
            root(h);
            break;
        case ROUTE_OPENAPI:
        case ROUTE_DOCS:
        case ROUTE_DOCS_FILE:
            openapi_handle(h);
            return;
        case ROUTE_DASHBOARD:
        case ROUTE_DASHBOARD_FILE:
            if (!guard_admin(h, true))
                break;
            dashboard_handle(h);
            return;
        case ROUTE_ADMIN_OVERVIEW:
        case ROUTE_ADMIN_JOBS:
        case ROUTE_ADMIN_JOB:
        case ROUTE_ADMIN_JOB_IMAGE:
        case ROUTE_ADMIN_RETRY:
        case ROUTE_ADMIN_DEAD:
        case ROUTE_ADMIN_PAUSE:
        case ROUTE_ADMIN_RESUME:
            if (!guard_admin(h, false))
                break;
            admin_handle(h);
            return;
        case ROUTE_NONE:
        case ROUTE_COUNT:
            break;
        }
    }
    exchange_settle(h);
}
