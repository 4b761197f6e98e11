/* admin.c — the admin API, /v1/admin/... (docs/API.md §13): the fleet's
 * overview, the jobs of a state page by page, any owner's job and image, the
 * retry of a failed job, the purge of the dead set, pause and resume. Each
 * route is one script (or command) on the child's command connection,
 * answered from its reply; access was checked before (guard_admin). */
#include "admin_doc.h"
#include "handlers.h"
#include "request.h"
#include "respond.h"

#include "cache.h"
#include "id.h"
#include "log.h"
#include "units.h"

#include <stdio.h>
#include <string.h>

/* Whether reply, for h, is one to answer from: h still has a client and the
 * reply has type. Otherwise the failure is answered (reply_failed) or, the
 * client gone, nothing is. */
static bool usable(struct exchange *h, const redisReply *reply, int type, const char *what) {
    if (!exchange_redis_received(h))
        return false;
    if (reply == NULL || reply->type != type) {
        reply_failed(h, reply, what);
        return false;
    }
    return true;
}

/* Sends script s with h->argv (nkeys keys, nargs arguments); cb gets the
 * reply. Answers 503 when it cannot be sent. */
static void run_script(struct exchange *h, enum queue_script s, int nkeys, int nargs,
                       rasync_cb cb) {
    h->op = (struct rasync_op){.cb = cb,
                               .arg = h,
                               .script = s,
                               .nkeys = nkeys,
                               .nargs = nargs,
                               .argv = h->argv,
                               .lens = NULL};
    if (rasync_script(h->child->redis, &h->op) < 0) {
        respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
}

/* ---- GET /v1/admin/overview ---- */

static void on_overview(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!usable(h, reply, REDIS_REPLY_STRING, "admin overview"))
        goto out;
    json_error_t err;
    json_t *doc = json_loadb(reply->str, reply->len, 0, &err);
    if (doc == NULL || admin_overview_finish(doc) < 0) {
        log_error("admin overview: the script's document does not parse: %s", err.text);
        respond_error(h, "internal", NULL, 0, "internal error (request id %s)", h->rid);
    } else {
        json_object_set_new(doc, "node", json_string(h->child->node_id));
        respond_json(h, 200, doc);
    }
    json_decref(doc);
out:
    exchange_settle(h);
}

static void overview(struct exchange *h) {
    struct http_child *c = h->child;
    snprintf(h->admin_arg[0], sizeof(h->admin_arg[0]), "%lld", (long long)c->cfg->redis_result_ttl);
    snprintf(h->admin_arg[1], sizeof(h->admin_arg[1]), "%lld",
             (long long)c->cfg->redis_failure_ttl);
    snprintf(h->admin_arg[2], sizeof(h->admin_arg[2]), "%d", ADMIN_SERIES_MINUTES);
    const char *argv[] = {
        c->key_ready,    c->key_delayed,  c->key_dead,    c->cfg->redis_key_prefix,
        h->admin_arg[0], h->admin_arg[1], h->admin_arg[2]};
    memcpy(h->argv, argv, sizeof(argv));
    run_script(h, QUEUE_SCRIPT_ADMIN_OVERVIEW, 3, 4, on_overview);
}

/* ---- GET /v1/admin/jobs?state=&limit=&cursor= ---- */

static void on_list(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!usable(h, reply, REDIS_REPLY_ARRAY, "admin list"))
        goto out;
    const redisReply *next = reply->elements > 0 ? reply->element[0] : NULL;
    json_t *jobs = json_array();
    for (size_t i = 1; jobs && i < reply->elements; i++) {
        json_t *item = admin_list_item(reply->element[i]);
        if (item)
            json_array_append_new(jobs, item);
    }
    json_t *doc =
        json_pack("{s:s, s:o, s:o}", "state", h->admin_arg[0], "jobs", jobs, "next_cursor",
                  next && next->type == REDIS_REPLY_STRING && next->len > 0 ? json_string(next->str)
                                                                            : json_null());
    respond_json(h, 200, doc);
    json_decref(doc);
out:
    exchange_settle(h);
}

/* The query of a listing into h->admin_arg (state, limit, cursor a and b).
 * Returns 0, or -1 after answering 400. */
static int list_query(struct exchange *h) {
    const char *q = exchange_query(h);
    char state[16], limit[8], cursor[48];
    if (request_query_value(q, "state", state, sizeof(state)) != 1 ||
        !admin_state_is_valid(state)) {
        respond_error(h, "invalid_param", "state", 0,
                      "state must be one of queued, processing, done, failed, dead");
        return -1;
    }
    int n = ADMIN_LIMIT_DEFAULT;
    int rc = request_query_value(q, "limit", limit, sizeof(limit));
    if (rc < 0 || (rc == 1 && admin_limit_parse(limit, &n) < 0)) {
        respond_error(h, "invalid_param", "limit", 0, "limit must be a whole number from 1 to %d",
                      ADMIN_LIMIT_MAX);
        return -1;
    }
    long long a = 0, b = 0;
    rc = request_query_value(q, "cursor", cursor, sizeof(cursor));
    /* A list's cursor is <part>:<offset>: ready or delayed for queued, one part
     * for processing. */
    long long parts = strcmp(state, "queued") == 0 ? 1 : strcmp(state, "processing") == 0 ? 0 : -1;
    if (rc < 0 ||
        (rc == 1 && (admin_cursor_parse(cursor, &a, &b) < 0 || (parts >= 0 && a > parts)))) {
        respond_error(h, "invalid_param", "cursor", 0,
                      "cursor must be the next_cursor of a previous page of this state");
        return -1;
    }
    snprintf(h->admin_arg[0], sizeof(h->admin_arg[0]), "%s", state);
    snprintf(h->admin_arg[1], sizeof(h->admin_arg[1]), "%d", n);
    h->admin_arg[2][0] = h->admin_arg[3][0] = '\0';
    if (rc == 1) {
        snprintf(h->admin_arg[2], sizeof(h->admin_arg[2]), "%lld", a);
        snprintf(h->admin_arg[3], sizeof(h->admin_arg[3]), "%lld", b);
    }
    return 0;
}

static void list_jobs(struct exchange *h) {
    if (list_query(h) < 0)
        return;
    const char *prefix = h->child->cfg->redis_key_prefix;
    queue_key(h->admin_key, sizeof(h->admin_key), prefix, admin_state_index(h->admin_arg[0]), NULL);
    const char *argv[] = {h->admin_key,    prefix,          h->admin_arg[0],
                          h->admin_arg[1], h->admin_arg[2], h->admin_arg[3]};
    memcpy(h->argv, argv, sizeof(argv));
    run_script(h, QUEUE_SCRIPT_ADMIN_LIST, 1, 5, on_list);
}

/* ---- POST /v1/admin/jobs/<id>/retry ---- */

static void not_found(struct exchange *h) {
    respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
}

static void on_retry(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!usable(h, reply, REDIS_REPLY_ARRAY, "admin retry"))
        goto out;
    const char *what = reply->elements > 0 && reply->element[0]->type == REDIS_REPLY_STRING
                           ? reply->element[0]->str
                           : "";
    if (strcmp(what, "ok") == 0) {
        if (h->child->cache) /* this node at once; the others on {p}:changed */
            shm_cache_invalidate(h->child->cache, h->match.id, units_mono_ms());
        log_info("%s: job %s queued again (admin retry)", h->client, h->match.id);
        json_t *doc = json_pack("{s:s, s:s}", "id", h->match.id, "status", "queued");
        respond_json(h, 202, doc);
        json_decref(doc);
    } else if (strcmp(what, "missing") == 0) {
        not_found(h);
    } else if (strcmp(what, "state") == 0 && reply->elements > 1 &&
               reply->element[1]->type == REDIS_REPLY_STRING) {
        respond_error(h, "conflict", NULL, 0, "job %s is %s: only a failed job can be retried",
                      h->match.id, reply->element[1]->str);
    } else if (strcmp(what, "gone") == 0) {
        respond_error(h, "conflict", NULL, 0,
                      "the uploaded source of job %s is gone (deleted when it failed): submit "
                      "it again",
                      h->match.id);
    } else {
        reply_failed(h, NULL, "admin retry");
    }
out:
    exchange_settle(h);
}

static void retry(struct exchange *h) {
    struct http_child *c = h->child;
    if (!id_is_valid(h->match.id)) {
        not_found(h);
        return;
    }
    queue_key(h->key_job, sizeof(h->key_job), c->cfg->redis_key_prefix, "job", h->match.id);
    const char *argv[] = {h->key_job, c->key_ready, c->key_dead, h->match.id,
                          c->cfg->redis_key_prefix};
    memcpy(h->argv, argv, sizeof(argv));
    run_script(h, QUEUE_SCRIPT_ADMIN_RETRY, 3, 2, on_retry);
}

/* ---- DELETE /v1/admin/dead ---- */

static void on_purge(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!usable(h, reply, REDIS_REPLY_INTEGER, "admin purge"))
        goto out;
    log_info("%s: %lld dead job(s) purged (admin)", h->client, reply->integer);
    json_t *doc = json_pack("{s:I}", "purged", (json_int_t)reply->integer);
    respond_json(h, 200, doc);
    json_decref(doc);
out:
    exchange_settle(h);
}

static void purge(struct exchange *h) {
    struct http_child *c = h->child;
    snprintf(h->admin_arg[0], sizeof(h->admin_arg[0]), "%d", QUEUE_DEAD_MAX);
    const char *argv[] = {c->key_dead, c->cfg->redis_key_prefix, h->admin_arg[0]};
    memcpy(h->argv, argv, sizeof(argv));
    run_script(h, QUEUE_SCRIPT_ADMIN_PURGE, 1, 2, on_purge);
}

/* ---- POST /v1/admin/pause, /v1/admin/resume ---- */

static void on_paused(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    bool pause = h->match.route == ROUTE_ADMIN_PAUSE;
    if (!usable(h, reply, pause ? REDIS_REPLY_STATUS : REDIS_REPLY_INTEGER, "admin pause"))
        goto out;
    log_info("%s: the workers of every node %s (admin)", h->client,
             pause ? "are paused" : "resume");
    json_t *doc = json_pack("{s:b}", "paused", pause);
    respond_json(h, 200, doc);
    json_decref(doc);
out:
    exchange_settle(h);
}

/* SET {p}:paused {"by", "at_ms"} for a pause, DEL it for a resume. */
static void set_paused(struct exchange *h, bool pause) {
    queue_key(h->admin_key, sizeof(h->admin_key), h->child->cfg->redis_key_prefix, "paused", NULL);
    json_t *v = json_pack("{s:s, s:I}", "by", h->client_name[0] ? h->client_name : h->client,
                          "at_ms", (json_int_t)units_wall_ms());
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    snprintf(h->admin_value, sizeof(h->admin_value), "%s", text ? text : "{}");
    free(text);
    const char *set[] = {"SET", h->admin_key, h->admin_value};
    const char *del[] = {"DEL", h->admin_key};
    h->op = (struct rasync_op){.cb = on_paused, .arg = h};
    if (rasync_command(h->child->redis, &h->op, pause ? 3 : 2, pause ? set : del, NULL) < 0) {
        respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
}

void admin_handle(struct exchange *h) {
    switch (h->match.route) {
    case ROUTE_ADMIN_OVERVIEW:
        overview(h);
        break;
    case ROUTE_ADMIN_JOBS:
        list_jobs(h);
        break;
    case ROUTE_ADMIN_JOB:
        job_get_handle(h); /* h->owner is empty: every job is the operator's */
        return;
    case ROUTE_ADMIN_JOB_IMAGE:
        image_handle(h);
        return;
    case ROUTE_ADMIN_RETRY:
        retry(h);
        break;
    case ROUTE_ADMIN_DEAD:
        purge(h);
        break;
    case ROUTE_ADMIN_PAUSE:
    case ROUTE_ADMIN_RESUME:
        set_paused(h, h->match.route == ROUTE_ADMIN_PAUSE);
        break;
    default:
        not_found(h);
        break;
    }
    exchange_settle(h);
}
