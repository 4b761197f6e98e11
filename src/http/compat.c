/* compat.c — the original service's API, for its clients (docs/API.md,
 * "Compatibility API"): GET /api/health; POST /api/thumb {email, image_url}, a
 * 100x100 centre-cropped square queued like any other job (submit_enqueue);
 * GET /api/thumb/<id>, the status and the image as a data URL, from the
 * shared cache when it holds them, else from Redis (HGETALL and PTTL of the
 * job, GET of the result, pipelined), which is then cached. */
#include "cached.h"
#include "compat_doc.h"
#include "guard.h"
#include "handlers.h"
#include "respond.h"

#include "id.h"
#include "jobcache.h"
#include "units.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

enum step { STEP_JOB, STEP_TTL, STEP_BYTES };

/* Sends {"detail": detail} with status, as FastAPI words its errors. */
static void send_detail(struct exchange *h, int status, const char *detail) {
    json_t *doc = json_pack("{s:s}", "detail", detail);
    respond_json(h, status, doc);
    json_decref(doc);
}

static void not_found(struct exchange *h) {
    send_detail(h, 404, "Thumb request not found");
}

void compat_health_handle(struct exchange *h) {
    json_t *doc = json_pack("{s:s, s:s}", "status", "OK", "message", "Server is up !");
    respond_json(h, 200, doc);
    json_decref(doc);
}

/* POST /api/thumb's answer once the job is stored (or found, for a repeat):
 * 201 {"req_id"} either way, as the original service answered. */
static void answer_compat(struct exchange *h, const char *id, bool created,
                          const struct job_record *rec) {
    (void)created;
    (void)rec;
    json_t *doc = json_pack("{s:s}", "req_id", id);
    respond_json(h, 201, doc);
    json_decref(doc);
}

void compat_submit_handle(struct exchange *h) {
    struct http_child *c = h->child;
    size_t len;
    const char *body = (const char *)exchange_body_in(h, &len);
    struct job_params p;
    job_params_init(&p, &c->limits);
    json_t *detail = NULL;
    bool email = c->cfg->smtp_url && c->cfg->smtp_url[0];
    if (compat_doc_params(&p, body, len, email, c->cfg->smtp_allow_recipients, &detail) < 0) {
        respond_json(h, 422, detail); /* NULL (out of memory) answers 500 */
        json_decref(detail);
    } else {
        submit_enqueue(h, &p, NULL, 0, false, NULL, answer_compat);
    }
    job_params_free(&p);
    exchange_settle(h);
}

/* Sends the status document; bytes (the image, len bytes of type mime) only
 * for a finished job. */
static void send_thumb(struct exchange *h, const char *state, const char *mime, const void *bytes,
                       size_t len) {
    const char *status = compat_doc_status(state);
    char *url = NULL;
    if (status && strcmp(status, "finished") == 0 &&
        (url = compat_doc_data_url(mime, bytes, len)) == NULL)
        status = NULL;
    json_t *doc = status ? compat_doc_thumb(status, url) : NULL;
    respond_json(h, 200, doc); /* NULL: 500 */
    json_decref(doc);
    free(url);
}

struct copy {
    struct jobcache_head head;
    char *doc;           /* the job document, malloc'd */
    void *body;          /* the image, malloc'd, or NULL */
    int64_t trust_after; /* jobcache_confirmed's bound */
    bool usable;
    bool unconfirmed; /* a finished job the subscription cannot vouch for */
};

/* Runs under the shard lock: copies only. */
static void copy_entry(const struct jobcache_head *head, const char *doc, const void *body,
                       int64_t expires_ms, void *arg) {
    (void)expires_ms;
    struct copy *cp = arg;
    if (head->done && (body == NULL || head->body_len == 0))
        return; /* done without its image: Redis has it */
    if (!jobcache_confirmed(head, cp->trust_after)) {
        cp->unconfirmed = true;
        return;
    }
    cp->head = *head;
    if ((cp->doc = malloc(head->doc_len + 1)) == NULL)
        return;
    memcpy(cp->doc, doc, head->doc_len);
    cp->doc[head->doc_len] = '\0';
    if (head->done && (cp->body = malloc(head->body_len)) == NULL)
        return;
    if (head->done)
        memcpy(cp->body, body, head->body_len);
    cp->usable = true;
}

static bool from_cache(struct exchange *h, bool trust_all);

static bool stale_entry(struct exchange *h) {
    return from_cache(h, true);
}

/* Answers from the shared cache (with trust_all, also from an entry the
 * subscription cannot vouch for: cached_passed_over's fallback). Returns true
 * when answered. */
static bool from_cache(struct exchange *h, bool trust_all) {
    struct http_child *c = h->child;
    if (c->cache == NULL)
        return false;
    struct copy cp = {.trust_after = trust_all ? INT64_MIN : cached_trust_after(c)};
    bool hit = jobcache_get(c->cache, h->match.id, h->owner, units_mono_ms(), copy_entry, &cp) &&
               cp.usable;
    if (!hit && cp.unconfirmed)
        return cached_passed_over(h, stale_entry);
    json_t *doc = hit ? json_loads(cp.doc, 0, NULL) : NULL;
    const char *state = json_string_value(json_object_get(doc, "status"));
    if (state) {
        exchange_set_header(h, "X-Cache", "hit");
        send_thumb(h, state, cp.head.mime, cp.body, cp.head.body_len);
    }
    json_decref(doc);
    free(cp.doc);
    free(cp.body);
    return state != NULL;
}

/* The job hash: 404, or the answer when the job has no image to wait for. */
static void on_job(struct exchange *h, const redisReply *reply) {
    if (reply->type != REDIS_REPLY_ARRAY) {
        reply_failed(h, reply, "compat job");
        return;
    }
    if (reply->elements == 0 || !guard_allows_reply(h, reply)) {
        not_found(h);
        return;
    }
    if (queue_reply_record(&h->rec, reply, 0) < 0) {
        reply_failed(h, NULL, "compat job");
        return;
    }
    const char *state = job_record_get(&h->rec, "state");
    if (state == NULL || strcmp(state, "done") != 0) {
        cached_mark_miss(h);
        send_thumb(h, state ? state : "queued", NULL, NULL, 0);
    }
}

/* A finished job's image, fetched from the object store. */
static void on_object(struct exchange *h, enum store_rc rc, const struct store_error *err,
                      const char *body, size_t len) {
    if (h->conn == NULL)
        return;
    if (rc == STORE_NOT_FOUND)
        not_found(h);
    else if (rc != STORE_OK)
        respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                      "the image is in the object store, which does not answer now (%s); try "
                      "again shortly",
                      err->code);
    else {
        cached_mark_miss(h);
        send_thumb(h, "done", job_record_get(&h->rec, "res_mime"), body, len);
    }
}

static void on_reply(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    enum step step = (enum step)h->step++;
    bool live = exchange_redis_received(h);
    const char *state = job_record_get(&h->rec, "state");
    bool done = state && strcmp(state, "done") == 0;
    /* Keep what was read, even for a client that is gone. */
    if (step == STEP_TTL && reply && reply->type == REDIS_REPLY_INTEGER && h->rec.count) {
        h->res_ttl_ms = reply->integer;
        if (!done)
            cached_store(h->child, h->match.id, &h->rec, reply->integer, NULL, 0, h->read_ms);
    }
    if (step == STEP_BYTES && done && reply && reply->type == REDIS_REPLY_STRING &&
        h->res_ttl_ms > 0)
        cached_store(h->child, h->match.id, &h->rec, h->res_ttl_ms, reply->str,
                     image_first_len(h, reply->len), h->read_ms);
    if (!live)
        goto out;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        reply_failed(h, reply, "compat thumb");
        goto out;
    }
    if (step == STEP_JOB) {
        on_job(h, reply);
    } else if (step == STEP_BYTES) {
        /* Only a finished job is still unanswered here. */
        if (image_object_key(h)) {
            if (image_fetch_object(h, on_object) < 0)
                respond_unavailable(h);
        } else if (reply->type == REDIS_REPLY_NIL) {
            not_found(h); /* the result is gone (expired or deleted) */
        } else if (reply->type != REDIS_REPLY_STRING) {
            reply_failed(h, reply, "compat image");
        } else {
            cached_mark_miss(h);
            send_thumb(h, state, job_record_get(&h->rec, "res_mime"), reply->str,
                       image_first_len(h, reply->len));
        }
    }
out:
    exchange_settle(h);
}

void compat_thumb_handle(struct exchange *h) {
    if (!id_is_valid(h->match.id)) {
        not_found(h);
        goto out;
    }
    if (from_cache(h, false))
        goto out;
    image_read_job(h, on_reply, true, IMAGE_READ_WHOLE);
out:
    exchange_settle(h);
}
