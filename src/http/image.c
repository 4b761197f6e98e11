/* image.c — GET|HEAD /v1/thumbnails/<id>/image: the thumbnail bytes with their
 * type, strong ETag and remaining lifetime; 304, 409 not_ready, 404. From the
 * shared cache when it holds the image; else one round trip: HGETALL of the
 * job, PTTL and the first IMAGE_CHUNK bytes (GETRANGE; STRLEN for HEAD) of the
 * result, pipelined; the answer goes out as soon as one reply decides it, and
 * a GET's job and bytes are then cached. A result longer than one chunk is
 * streamed: each further chunk is asked for once the one before has been
 * written to the client, so a big result is never held whole, let alone twice. */
#include "cached.h"
#include "guard.h"
#include "handlers.h"
#include "objects.h"
#include "request.h"
#include "respond.h"

#include "id.h"
#include "log.h"
#include "units.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum step { STEP_JOB, STEP_TTL, STEP_BYTES };

#define IMAGE_CHUNK (1024 * 1024)

static void not_found(struct exchange *h) {
    respond_error(h, "not_found", NULL, 0, "no image for this id (unknown or expired job)");
}

/* The job hash: 404, 409 with the job document, or remember what the image needs. */
static void on_job(struct exchange *h, const redisReply *reply) {
    if (reply->elements == 0 || !guard_allows_reply(h, reply)) {
        not_found(h);
        return;
    }
    if (queue_reply_record(&h->rec, reply, 0) < 0) {
        reply_failed(h, NULL, "image job");
        return;
    }
    const char *state = job_record_get(&h->rec, "state");
    if (state == NULL || strcmp(state, "done") != 0) {
        h->doc = job_document(h->match.id, &h->rec);
        bool final = job_state_is_terminal(state);
        cached_mark_miss(h);
        respond_error_with_job(h, "not_ready", h->doc, "the job is %s: %s",
                               state ? state : "queued",
                               final ? "it has no image" : "its image is not ready yet");
        return;
    }
    const char *mime = job_record_get(&h->rec, "res_mime");
    const char *etag = job_record_get(&h->rec, "res_etag");
    snprintf(h->res_mime, sizeof(h->res_mime), "%s", mime ? mime : "");
    snprintf(h->res_etag, sizeof(h->res_etag), "%s", etag ? etag : "");
    const char *inm = exchange_header(h, "If-None-Match");
    h->not_modified = h->res_etag[0] && inm && request_etag_matches(inm, h->res_etag);
}

static void add_cache_headers(struct exchange *h) {
    char buf[sizeof(h->res_etag) + 48];
    if (h->res_etag[0]) {
        snprintf(buf, sizeof(buf), "\"%s\"", h->res_etag);
        exchange_set_header(h, "ETag", buf);
    }
    long long ttl = h->res_ttl_ms >= 0 ? h->res_ttl_ms : h->child->cfg->redis_result_ttl;
    snprintf(buf, sizeof(buf), "private, max-age=%lld", ttl / 1000);
    exchange_set_header(h, "Cache-Control", buf);
}

/* The headers of an image answer read from Redis or the store: its type, its
 * validators and lifetime, and that the cache did not have it. */
static void image_headers(struct exchange *h) {
    exchange_set_header(h, "Content-Type",
                        h->res_mime[0] ? h->res_mime : "application/octet-stream");
    add_cache_headers(h);
    cached_mark_miss(h);
}

/* PTTL of the result: -2 gone, -1 no expiry, else milliseconds left. */
static void on_ttl(struct exchange *h, const redisReply *reply) {
    if (reply->type != REDIS_REPLY_INTEGER) {
        reply_failed(h, reply, "image ttl");
        return;
    }
    if (reply->integer == -2) {
        not_found(h);
        return;
    }
    h->res_ttl_ms = reply->integer; /* -1: no expiry, add_cache_headers uses result_ttl */
    if (h->not_modified) {
        add_cache_headers(h);
        cached_mark_miss(h);
        exchange_send(h, 304);
    }
}

static void stream_next(struct exchange *h);

/* A further chunk of a streamed result. */
static void on_piece(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    exchange_redis_received(h);
    if (h->conn == NULL)
        goto out; /* the client went away */
    if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len == 0) {
        log_warn("image %s: the result went away at byte %lld of %lld: closing the response",
                 h->match.id, h->stream_off, h->stream_total);
        exchange_stream_abort(h);
        goto out;
    }
    h->stream_off += (long long)reply->len;
    exchange_stream_chunk(h, reply->str, reply->len, stream_next);
out:
    exchange_settle(h);
}

/* Once what was sent is written: the next chunk, or the end. */
static void stream_next(struct exchange *h) {
    if (h->stream_off >= h->stream_total) {
        exchange_stream_end(h);
        return;
    }
    char from[24], to[24];
    snprintf(from, sizeof(from), "%lld", h->stream_off);
    snprintf(to, sizeof(to), "%lld", h->stream_off + IMAGE_CHUNK - 1);
    const char *argv[] = {"GETRANGE", h->key_res, from, to};
    h->op = (struct rasync_op){.cb = on_piece, .arg = h};
    if (rasync_command(http_redis_bulk(h->child), &h->op, 4, argv, NULL) < 0) {
        exchange_stream_abort(h);
        return;
    }
    exchange_redis_sent(h);
}

/* The result is longer than the first chunk: headers now, then chunk by chunk. */
static void stream_start(struct exchange *h, const redisReply *first, long long total) {
    char num[24];
    snprintf(num, sizeof(num), "%lld", total);
    exchange_set_header(h, "Content-Length", num);
    image_headers(h);
    h->stream_total = total;
    h->stream_off = (long long)first->len;
    exchange_stream_start(h, 200);
    exchange_stream_chunk(h, first->str, first->len, stream_next);
}

static void on_bytes(struct exchange *h, const redisReply *reply) {
    if (h->method == HTTP_HEAD) {
        if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
            if (reply->type == REDIS_REPLY_INTEGER)
                not_found(h);
            else
                reply_failed(h, reply, "image length");
            return;
        }
        char num[24];
        snprintf(num, sizeof(num), "%lld", reply->integer);
        exchange_set_header(h, "Content-Length", num);
    } else {
        if (reply->type == REDIS_REPLY_NIL || (reply->type == REDIS_REPLY_STRING && !reply->len)) {
            not_found(h); /* GETRANGE of a result that is gone is "" */
            return;
        }
        if (reply->type != REDIS_REPLY_STRING) {
            reply_failed(h, reply, "image read");
            return;
        }
        long long total = job_record_get_int(&h->rec, "res_bytes", 0);
        if (total > (long long)reply->len) {
            stream_start(h, reply, total);
            return;
        }
        evbuffer_add(exchange_body_out(h), reply->str, reply->len);
    }
    image_headers(h);
    exchange_send(h, 200);
}

const char *image_object_key(const struct exchange *h) {
    const char *list = job_record_get(&h->rec, "res_obj");
    return list && list[0] ? list : NULL;
}

/* The fetched object: into the cache (for a client gone too), then the route's answer. */
static void on_object(struct exchange *h, enum store_rc rc, const struct store_error *err,
                      char *body, size_t len) {
    /* Not the bytes of a result clients fetch at storage.public_url (the
     * image route redirects those, which only Redis' answer decides). */
    bool public_url = job_record_get(&h->rec, "res_url") != NULL;
    if (rc == STORE_OK && h->res_ttl_ms != 0)
        cached_store(h->child, h->match.id, &h->rec, h->res_ttl_ms, public_url ? NULL : body,
                     public_url ? 0 : len, h->read_ms);
    if (h->object_then)
        h->object_then(h, rc, err, body, len);
    free(body);
}

int image_fetch_object(struct exchange *h, image_object_fn then) {
    char key[STORE_KEY_MAX];
    const char *list = image_object_key(h);
    if (list == NULL || h->child->objects == NULL)
        return -1; /* an s3 result on a node without storage.backend = s3 */
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(list, " "), list);
    long long want = job_record_get_int(&h->rec, "res_bytes", 0);
    size_t max = want > 0 ? (size_t)want : (size_t)h->child->cfg->image_max_result_bytes;
    h->object_then = then;
    return objects_get(h, key, max, on_object);
}

/* 503 for a store that failed, with what it said. */
static void store_unavailable(struct exchange *h, const struct store_error *err) {
    respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                  "the image is in the object store, which does not answer now (%s); try again "
                  "shortly",
                  err ? err->code : "no object store is configured on this node");
}

static void object_answer(struct exchange *h, enum store_rc rc, const struct store_error *err,
                          const char *body, size_t len) {
    if (h->conn == NULL)
        return;
    if (rc == STORE_NOT_FOUND) {
        respond_error(h, "not_found", NULL, 0,
                      "no image for this id: its object is gone from the store (expired or "
                      "deleted)");
        return;
    }
    if (rc != STORE_OK) {
        store_unavailable(h, err);
        return;
    }
    evbuffer_add(exchange_body_out(h), body, len);
    image_headers(h);
    exchange_send(h, 200);
}

/* A done job whose result is in the object store: 302 to its public URL (the
 * job's res_url, from storage.public_url when it was stored), its length
 * (HEAD), or the object fetched. */
static void on_stored(struct exchange *h) {
    const char *url = job_record_get(&h->rec, "res_url"); /* storage.public_url's */
    if (url && url[0]) {
        exchange_set_header(h, "Location", url);
        add_cache_headers(h);
        cached_mark_miss(h);
        exchange_send(h, 302);
        return;
    }
    if (h->method == HTTP_HEAD) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", job_record_get_int(&h->rec, "res_bytes", 0));
        exchange_set_header(h, "Content-Length", num);
        image_headers(h);
        exchange_send(h, 200);
        return;
    }
    if (image_fetch_object(h, object_answer) < 0)
        store_unavailable(h, NULL);
}

static void on_reply(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    enum step step = (enum step)h->step++;
    bool live = exchange_redis_received(h);
    if (step == STEP_BYTES && reply && reply->type == REDIS_REPLY_STRING && h->rec.count &&
        h->res_ttl_ms != 0 && (long long)reply->len >= job_record_get_int(&h->rec, "res_bytes", 0))
        cached_store(h->child, h->match.id, &h->rec, h->res_ttl_ms, reply->str, reply->len,
                     h->read_ms);
    if (!live)
        goto out;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        reply_failed(h, reply, "image");
        goto out;
    }
    switch (step) {
    case STEP_JOB:
        if (reply->type != REDIS_REPLY_ARRAY)
            reply_failed(h, reply, "image job");
        else
            on_job(h, reply);
        break;
    case STEP_TTL:
        on_ttl(h, reply);
        break;
    case STEP_BYTES:
        if (image_object_key(h))
            on_stored(h);
        else
            on_bytes(h, reply);
        break;
    }
out:
    exchange_settle(h);
}

int image_read_job(struct exchange *h, rasync_cb cb, bool ttl_of_job, enum image_read what) {
    struct http_child *c = h->child;
    bool length_only = what == IMAGE_READ_LENGTH;
    /* A result's bytes go on the bulk connection, apart from the small requests. */
    struct rasync *redis = length_only ? c->redis : http_redis_bulk(c);
    if (!rasync_connected(redis)) {
        respond_unavailable(h);
        return -1;
    }
    const char *prefix = c->cfg->redis_key_prefix;
    queue_key(h->key_job, sizeof(h->key_job), prefix, "job", h->match.id);
    queue_key(h->key_res, sizeof(h->key_res), prefix, "res", h->match.id);
    h->op = (struct rasync_op){.cb = cb, .arg = h};
    const char *job[] = {"HGETALL", h->key_job};
    /* With the object store, the result has no key in Redis: the job's ttl is its. */
    if (c->cfg->storage_backend == CONFIG_STORAGE_S3)
        ttl_of_job = true;
    const char *ttl[] = {"PTTL", ttl_of_job ? h->key_job : h->key_res};
    char last[24];
    snprintf(last, sizeof(last), "%d", IMAGE_CHUNK - 1);
    const char *whole[] = {"GET", h->key_res};
    const char *len[] = {"STRLEN", h->key_res};
    const char *first[] = {"GETRANGE", h->key_res, "0", last};
    const char **bytes = what == IMAGE_READ_LENGTH ? len : what == IMAGE_READ_FIRST ? first : whole;
    int nbytes = what == IMAGE_READ_FIRST ? 4 : 2;
    const char **cmds[] = {job, ttl, bytes};
    h->read_ms = units_mono_ms();
    for (int i = 0; i < 3; i++) {
        if (rasync_command(redis, &h->op, i == 2 ? nbytes : 2, cmds[i], NULL) < 0) {
            /* Replies already asked for will still come (or NULL on disconnect). */
            respond_unavailable(h);
            return -1;
        }
        exchange_redis_sent(h);
    }
    return 0;
}

void image_handle(struct exchange *h) {
    if (!id_is_valid(h->match.id)) {
        not_found(h);
        goto out;
    }
    if (cached_image(h))
        goto out;
    image_read_job(h, on_reply, false,
                   h->method == HTTP_HEAD ? IMAGE_READ_LENGTH : IMAGE_READ_FIRST);
out:
    exchange_settle(h);
}
