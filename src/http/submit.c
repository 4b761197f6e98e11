/* submit.c — POST /v1/thumbnails: read the JSON request or the uploaded image,
 * validate, then store the job with the enqueue script; 202 only once stored. */
#include "handlers.h"
#include "request.h"
#include "respond.h"

#include "id.h"
#include "log.h"
#include "queue.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_SCAN_MAX          (256 * 1024) /* bytes libmagic looks at: image signatures are early */
#define RETRY_AFTER_UNAVAILABLE 1
#define RETRY_AFTER_FULL        5

static void refuse(struct exchange *h, const struct param_error *err) {
    respond_error(h, err->code, err->field, 0, "%s", err->message);
}

/* The first parameter name of a query string, for the error's field. */
static void first_query_key(const char *query, char *out, size_t n) {
    size_t len = strcspn(query, "=&");
    if (len >= n)
        len = n - 1;
    memcpy(out, query, len);
    out[len] = '\0';
}

/* Fills p from the request; answers and returns -1 when it is refused. */
static int read_params(struct exchange *h, struct job_params *p, const unsigned char *body,
                       size_t len, bool *upload) {
    struct http_child *c = h->child;
    struct evhttp_request *req = h->req;
    const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct param_error err;
    switch (request_body_kind(ctype)) {
    case BODY_OTHER:
        respond_error(h, "unsupported_media_type", NULL, 0,
                      "Content-Type '%.100s' is not accepted: send application/json, or the "
                      "image itself as image/* or application/octet-stream",
                      ctype);
        return -1;
    case BODY_JSON:
        *upload = false;
        if (query && *query) {
            char key[64];
            first_query_key(query, key, sizeof(key));
            respond_error(h, "invalid_param", key, 0,
                          "with a JSON body the parameters go in the body; the query string is "
                          "only for uploads");
            return -1;
        }
        if (job_params_from_json(p, (const char *)body, len, &c->limits, &err) < 0 ||
            job_params_finish(p, false, &err) < 0) {
            refuse(h, &err);
            return -1;
        }
        return 0;
    case BODY_UPLOAD:
        break;
    }
    *upload = true;
    if (len == 0) {
        respond_error(h, "unsupported_type", NULL, 0, "the upload is empty");
        return -1;
    }
    const char *mime = magic_buffer(c->magic, body, len < MAGIC_SCAN_MAX ? len : MAGIC_SCAN_MAX);
    if (mime == NULL || !config_list_contains(c->cfg->image_allowed_types, mime)) {
        respond_error(h, "unsupported_type", NULL, 0,
                      "the upload is %.100s, not one of the accepted types: %.300s",
                      mime ? mime : "of an unknown type", c->cfg->image_allowed_types);
        return -1;
    }
    if (request_params_from_query(p, query, &c->limits, &err) < 0 ||
        job_params_finish(p, true, &err) < 0) {
        refuse(h, &err);
        return -1;
    }
    return 0;
}

static long long reply_number(const redisReply *r) {
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return -1;
}

static void on_enqueued(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!exchange_redis_received(h))
        goto out;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        reply_failed(h, reply, "enqueue");
        goto out;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        reply_failed(h, reply, "enqueue");
        goto out;
    }
    const char *verdict = reply->element[0]->str;
    long long n = reply_number(reply->element[1]);
    if (strcmp(verdict, "full") == 0) {
        respond_error(h, "queue_full", NULL, RETRY_AFTER_FULL,
                      "the queue is full (%lld jobs waiting); try again later", n);
        goto out;
    }
    if (strcmp(verdict, "ok") != 0) {
        reply_failed(h, reply, "enqueue");
        goto out;
    }
    char created[24];
    snprintf(created, sizeof(created), "%lld", n);
    json_t *doc = NULL;
    if (job_record_set(&h->rec, "state", "queued") == 0 &&
        job_record_set(&h->rec, "created", created) == 0 &&
        job_record_set(&h->rec, "attempts", "0") == 0)
        doc = job_document(h->id, &h->rec);
    char location[64];
    snprintf(location, sizeof(location), "/v1/thumbnails/%s", h->id);
    evhttp_add_header(evhttp_request_get_output_headers(h->req), "Location", location);
    log_debug("job %s queued", h->id);
    respond_json(h, 202, doc);
    json_decref(doc);
out:
    exchange_settle(h);
}

/* Builds the script's arguments in h: KEYS job ready delayed src; ARGV id
 * max_queue bytes has_bytes fields... */
static int build_enqueue(struct exchange *h, const unsigned char *body, size_t len, bool upload) {
    struct http_child *c = h->child;
    const char *prefix = c->cfg->redis_key_prefix;
    queue_key(h->key_job, sizeof(h->key_job), prefix, "job", h->id);
    queue_key(h->key_res, sizeof(h->key_res), prefix, "src", h->id);
    size_t max = sizeof(h->argv) / sizeof(h->argv[0]);
    if (8 + 2 * h->rec.count > max)
        return -1;
    int n = 0;
    h->argv[n++] = h->key_job;
    h->argv[n++] = c->key_ready;
    h->argv[n++] = c->key_delayed;
    h->argv[n++] = h->key_res;
    h->argv[n++] = h->id;
    h->argv[n++] = c->max_queue;
    h->argv[n++] = upload ? (const char *)body : "";
    h->argv[n++] = upload ? "1" : "0";
    for (size_t i = 0; i < h->rec.count; i++) {
        h->argv[n++] = h->rec.names[i];
        h->argv[n++] = h->rec.values[i];
    }
    for (int i = 0; i < n; i++)
        h->lens[i] = (i == 6) ? (upload ? len : 0) : strlen(h->argv[i]);
    h->op = (struct rasync_op){.cb = on_enqueued,
                               .arg = h,
                               .script = QS_ENQUEUE,
                               .nkeys = 4,
                               .nargs = n - 4,
                               .argv = h->argv,
                               .lens = h->lens};
    return 0;
}

void submit_handle(struct exchange *h) {
    struct http_child *c = h->child;
    struct evbuffer *in = evhttp_request_get_input_buffer(h->req);
    size_t len = evbuffer_get_length(in);
    const unsigned char *body = len ? evbuffer_pullup(in, -1) : (const unsigned char *)"";
    struct job_params p;
    job_params_init(&p, &c->limits);
    bool upload = false;
    if (body == NULL) {
        respond_error(h, "internal", NULL, 0, "out of memory");
        goto out;
    }
    if (read_params(h, &p, body, len, &upload) < 0)
        goto out;
    if (!rasync_connected(c->redis)) {
        respond_error(h, "unavailable", NULL, RETRY_AFTER_UNAVAILABLE,
                      "the job store is unavailable; try again shortly");
        goto out;
    }
    if (id_generate(h->id) < 0 || job_record_from_params(&h->rec, &p) < 0 ||
        build_enqueue(h, body, len, upload) < 0) {
        respond_error(h, "internal", NULL, 0, "internal error (request id %s)", h->rid);
        goto out;
    }
    if (rasync_script(c->redis, &h->op) < 0) {
        respond_error(h, "unavailable", NULL, RETRY_AFTER_UNAVAILABLE,
                      "the job store is unavailable; try again shortly");
        goto out;
    }
    exchange_redis_sent(h);
out:
    job_params_free(&p);
    exchange_settle(h);
}
