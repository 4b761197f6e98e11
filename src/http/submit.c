/* submit.c — POST /v1/thumbnails: read the JSON request or the uploaded image,
 * validate, then store the job with the enqueue script; 202 only once stored. */
#include "guard.h"
#include "objects.h"
#include "handlers.h"
#include "request.h"
#include "respond.h"

#include "hostlist.h"
#include "id.h"
#include "log.h"
#include "queue.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_SCAN_MAX (256 * 1024) /* bytes libmagic looks at: image signatures are early */

static void refuse(struct exchange *h, const struct job_param_error *err) {
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
    const char *ctype = exchange_header(h, "Content-Type");
    const char *query = exchange_query(h);
    struct job_param_error err;
    switch (request_body_kind(ctype)) {
    case REQUEST_BODY_OTHER:
        respond_error(h, "unsupported_media_type", NULL, 0,
                      "Content-Type '%.100s' is not accepted: send application/json, or the "
                      "image itself as image/* or application/octet-stream",
                      ctype);
        return -1;
    case REQUEST_BODY_JSON:
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
            job_params_finish(p, false, &c->limits, &err) < 0) {
            refuse(h, &err);
            return -1;
        }
        return 0;
    case REQUEST_BODY_UPLOAD:
        break;
    }
    *upload = true;
    if (len == 0) {
        respond_error(h, "unsupported_type", NULL, 0, "the upload is empty");
        return -1;
    }
    const char *mime = magic_buffer(c->magic, body, len < MAGIC_SCAN_MAX ? len : MAGIC_SCAN_MAX);
    if (mime)
        mime = config_mime_canonical(mime); /* as the worker names it */
    if (mime == NULL || !config_list_contains(c->cfg->image_allowed_types, mime)) {
        respond_error(h, "unsupported_type", NULL, 0,
                      "the upload is %.100s, not one of the accepted types: %.300s",
                      mime ? mime : "of an unknown type", c->cfg->image_allowed_types);
        return -1;
    }
    if (request_params_from_query(p, query, &c->limits, &err) < 0 ||
        job_params_finish(p, true, &c->limits, &err) < 0) {
        refuse(h, &err);
        return -1;
    }
    return 0;
}

/* A callback needs a signing secret and an e-mail an SMTP server: without
 * them the job is refused now rather than its delivery failing later. So is
 * a callback to a host (and port) not on callback.allow_hosts, or an e-mail
 * to a domain not on smtp.allow_recipients, when those are set.
 * Answers and returns -1 when refused. */
static int check_deliveries(struct exchange *h, const struct job_params *p) {
    const struct config *cfg = h->child->cfg;
    if (p->callback_url && cfg->callback_secret[0] == '\0') {
        respond_error(h, "invalid_param", "callback_url", 0,
                      "callbacks are not enabled on this server (callback.secret is empty)");
        return -1;
    }
    if (p->callback_url && cfg->callback_allow_hosts[0] != '\0' &&
        !hostlist_match_url(cfg->callback_allow_hosts, p->callback_url)) {
        respond_error(h, "invalid_param", "callback_url", 0,
                      "callbacks to this host and port are not allowed on this server "
                      "(callback.allow_hosts)");
        return -1;
    }
    if (p->email && cfg->smtp_url[0] == '\0') {
        respond_error(h, "invalid_param", "email", 0,
                      "e-mail is not enabled on this server (smtp.url is empty)");
        return -1;
    }
    if (p->email && cfg->smtp_allow_recipients[0] != '\0' &&
        !job_email_domain_listed(cfg->smtp_allow_recipients, p->email)) {
        respond_error(h, "invalid_param", "email", 0,
                      "e-mail to this domain is not allowed on this server "
                      "(smtp.allow_recipients)");
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

/* WAIT's answer: how many replicas have every write of this connection so
 * far, the job among them. */
static void on_replicated(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!exchange_redis_received(h))
        goto out;
    long long want = h->child->cfg->redis_min_replicas_ack;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= want) {
        h->submit_answer(h, h->id, h->wait_created, &h->rec);
    } else {
        log_warn("job %s: %lld of redis.min_replicas_ack = %lld replicas confirmed it within "
                 "redis.connect_timeout: answering 503",
                 h->id, reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1LL, want);
        respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                      "the job is stored but fewer than %lld replicas confirmed it in time; send "
                      "the request again (it finds the same job)",
                      want);
    }
out:
    exchange_settle(h);
}

/* The job (new, or found by dedup) is in Redis: answer, or first, with
 * redis.min_replicas_ack, make sure that many replicas have it (WAIT on the
 * connection that wrote it, so that its last write is the job's). rec is
 * taken over (moved into h->rec). */
static void stored(struct exchange *h, struct rasync *redis, const char *id, bool created,
                   struct job_record *rec) {
    const struct config *cfg = h->child->cfg;
    if (rec != &h->rec) {
        job_record_free(&h->rec);
        h->rec = *rec;
        memset(rec, 0, sizeof(*rec));
    }
    if (id != h->id)
        snprintf(h->id, sizeof(h->id), "%s", id);
    if (cfg->redis_min_replicas_ack <= 0) {
        h->submit_answer(h, h->id, created, &h->rec);
        return;
    }
    char n[24], ms[24];
    snprintf(n, sizeof(n), "%lld", (long long)cfg->redis_min_replicas_ack);
    snprintf(ms, sizeof(ms), "%lld", (long long)cfg->redis_connect_timeout);
    const char *argv[] = {"WAIT", n, ms};
    h->wait_created = created;
    h->wait_op = (struct rasync_op){.cb = on_replicated, .arg = h};
    if (redis == NULL || rasync_command(redis, &h->wait_op, 3, argv, NULL) < 0) {
        respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
}

static void on_enqueued(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!exchange_redis_received(h))
        goto out;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        reply_failed(h, reply, "enqueue");
        goto out;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        reply_failed(h, reply, "enqueue");
        goto out;
    }
    const char *verdict = reply->element[0]->str;
    if (strcmp(verdict, "dup") == 0 && reply->element[1]->type == REDIS_REPLY_STRING) {
        /* The same request (or Idempotency-Key) while its job lives: that job. */
        struct job_record rec = {0};
        if (queue_reply_record(&rec, reply, 2) == 0)
            stored(h, h->wait_redis, reply->element[1]->str, false, &rec);
        else
            respond_error(h, "internal", NULL, 0, "out of memory (request id %s)", h->rid);
        job_record_free(&rec);
        goto out;
    }
    long long n = reply_number(reply->element[1]);
    if (strcmp(verdict, "client_full") == 0) {
        guard_count(h, GUARD_TOO_MANY_QUEUED);
        respond_error(h, "too_many_queued", NULL, RESPOND_RETRY_AFTER_FULL,
                      "this client already has %lld jobs waiting to start "
                      "(http.max_queued_per_client); try again once some have started",
                      n);
        goto out;
    }
    if (strcmp(verdict, "full") == 0) {
        respond_error(h, "queue_full", NULL, RESPOND_RETRY_AFTER_FULL,
                      "the queue is full (%lld jobs waiting); try again later", n);
        goto out;
    }
    if (strcmp(verdict, "ok") != 0) {
        reply_failed(h, reply, "enqueue");
        goto out;
    }
    char created[24];
    snprintf(created, sizeof(created), "%lld", n);
    if (job_record_set(&h->rec, "state", "queued") < 0 ||
        job_record_set(&h->rec, "created", created) < 0 ||
        job_record_set(&h->rec, "attempts", "0") < 0) {
        respond_error(h, "internal", NULL, 0, "out of memory (request id %s)", h->rid);
        goto out;
    }
    log_debug("job %s queued for %s", h->id, h->client_name[0] ? h->client_name : "-");
    guard_count(h, GUARD_SUBMIT);
    stored(h, h->wait_redis, h->id, true, &h->rec);
out:
    exchange_settle(h);
}

/* Writes "{prefix}:<key_kind>:<hex SHA-256 of kind, then the data>" into key. */
static int hashed_key(struct http_child *c, char key[QUEUE_KEY_MAX], const char *key_kind,
                      const char *kind, const void *data, size_t len, const struct job_record *rec,
                      const void *body, size_t body_len) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, kind, strlen(kind) + 1) && EVP_DigestUpdate(ctx, data, len);
    for (size_t i = 0; ok && rec && i < rec->count; i++)
        ok = EVP_DigestUpdate(ctx, rec->names[i], strlen(rec->names[i]) + 1) &&
             EVP_DigestUpdate(ctx, rec->values[i], strlen(rec->values[i]) + 1);
    if (ok && body_len)
        ok = EVP_DigestUpdate(ctx, body, body_len);
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    queue_key(key, QUEUE_KEY_MAX, c->cfg->redis_key_prefix, key_kind, hex);
    return 0;
}

/* Builds the script's arguments in h: KEYS job ready delayed src idem req
 * client; ARGV id max_queue bytes has_bytes dedup_ttl prefix max_client
 * fields... The request's own key covers its parameters and, for an upload,
 * its bytes; the client's key is its owner (with API keys) or a hash of its
 * address. */
static int build_enqueue(struct exchange *h, const unsigned char *body, size_t len, bool upload,
                         const char *idem) {
    struct http_child *c = h->child;
    const char *prefix = c->cfg->redis_key_prefix;
    queue_key(h->key_job, sizeof(h->key_job), prefix, "job", h->id);
    queue_key(h->key_src, sizeof(h->key_src), prefix, "src", h->id);
    h->key_idem[0] = '\0';
    /* The key's owner is part of both keys: a client never finds another's job. */
    char scoped[EXCHANGE_OWNER_LEN + 256 + 2];
    int sn = !idem         ? 0
             : h->owner[0] ? snprintf(scoped, sizeof(scoped), "%s:%s", h->owner, idem)
                           : snprintf(scoped, sizeof(scoped), "%s", idem);
    if (idem && hashed_key(c, h->key_idem, "idem", "key", scoped, (size_t)sn, NULL, NULL, 0) < 0)
        return -1;
    if (hashed_key(c, h->key_req, "idem", "request", "", 0, &h->rec, body, upload ? len : 0) < 0)
        return -1;
    snprintf(h->dedup_ttl, sizeof(h->dedup_ttl), "%lld", (long long)c->cfg->redis_result_ttl);
    h->key_client[0] = '\0';
    if (c->cfg->http_max_queued_per_client > 0 && h->owner[0])
        queue_key(h->key_client, sizeof(h->key_client), prefix, "client", h->owner);
    else if (c->cfg->http_max_queued_per_client > 0 &&
             hashed_key(c, h->key_client, "client", "client", h->client, strlen(h->client), NULL,
                        NULL, 0) < 0)
        return -1;
    size_t max = sizeof(h->argv) / sizeof(h->argv[0]);
    if (16 + 2 * h->rec.count > max)
        return -1;
    /* An upload already in the object store: only its key goes to Redis. */
    bool in_store = h->src_obj[0] != '\0';
    if (in_store)
        upload = false;
    int n = 0;
    h->argv[n++] = h->key_job;
    h->argv[n++] = c->key_ready;
    h->argv[n++] = c->key_delayed;
    h->argv[n++] = h->key_src;
    h->argv[n++] = h->key_idem;
    h->argv[n++] = h->key_req;
    h->argv[n++] = h->key_client;
    h->argv[n++] = h->id;
    h->argv[n++] = c->max_queue;
    int bytes_at = n;
    h->argv[n++] = upload ? (const char *)body : "";
    h->argv[n++] = upload ? "1" : "0";
    h->argv[n++] = h->dedup_ttl;
    h->argv[n++] = prefix;
    h->argv[n++] = c->max_client;
    for (size_t i = 0; i < h->rec.count; i++) {
        h->argv[n++] = h->rec.names[i];
        h->argv[n++] = h->rec.values[i];
    }
    if (in_store) { /* after the request's key: the same upload again is a repeat */
        h->argv[n++] = "src_obj";
        h->argv[n++] = h->src_obj;
    }
    for (int i = 0; i < n; i++)
        h->lens[i] = i == bytes_at ? (upload ? len : 0) : strlen(h->argv[i]);
    h->op = (struct rasync_op){.cb = on_enqueued,
                               .arg = h,
                               .script = QUEUE_SCRIPT_ENQUEUE,
                               .nkeys = 7,
                               .nargs = n - 7,
                               .argv = h->argv,
                               .lens = h->lens};
    return 0;
}

/* POST /v1/thumbnails' answer: 202 with the new job's document, or 200 with
 * the live job a repeat names; Location either way. */
static void answer_v1(struct exchange *h, const char *id, bool created,
                      const struct job_record *rec) {
    char location[64];
    snprintf(location, sizeof(location), "/v1/thumbnails/%.40s", id);
    exchange_set_header(h, "Location", location);
    json_t *doc = job_document(id, rec);
    respond_json(h, created ? 202 : 200, doc);
    json_decref(doc);
}

/* The upload is in the object store (or not): now the job. */
static void on_uploaded(struct exchange *h, enum store_rc rc, const struct store_error *err,
                        char *body, size_t len) {
    (void)len;
    free(body);
    if (rc != STORE_OK) {
        if (h->conn)
            respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                          "the upload could not be stored (%s); try again shortly", err->code);
        return;
    }
    /* Even for a client gone: its request was whole, as when Redis has it. */
    if (!rasync_connected(h->wait_redis) || rasync_script(h->wait_redis, &h->op) < 0) {
        log_warn("submit %s: the upload is stored at %s but Redis is unavailable: the object "
                 "is left to storage.upload_prefix's lifecycle rule",
                 h->id, h->src_obj);
        if (h->conn)
            respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
}

void submit_enqueue(struct exchange *h, const struct job_params *p, const unsigned char *body,
                    size_t len, bool upload, const char *idem, submit_answer_fn answer) {
    struct http_child *c = h->child;
    h->submit_answer = answer;
    /* An upload's bytes go on the bulk connection, apart from the small requests. */
    struct rasync *redis = upload && len > HTTP_BULK_BYTES ? http_redis_bulk(c) : c->redis;
    if (!rasync_connected(redis)) {
        respond_unavailable(h);
        return;
    }
    bool to_store = upload && c->cfg->storage_backend == CONFIG_STORAGE_S3;
    if (id_generate(h->id) < 0 || job_record_from_params(&h->rec, p) < 0 ||
        (h->owner[0] && job_record_set(&h->rec, "owner", h->owner) < 0) ||
        (to_store && store_upload_key(c->cfg, h->id, h->src_obj) < 0) ||
        build_enqueue(h, body, len, upload, idem) < 0) {
        respond_error(h, "internal", NULL, 0, "internal error (request id %s)", h->rid);
        return;
    }
    h->wait_redis = redis;
    if (to_store) {
        /* The bytes to the store first; the job names them once they are there. */
        if (objects_put(h, h->src_obj, body, len, "application/octet-stream", on_uploaded) < 0)
            respond_unavailable(h);
        return;
    }
    if (rasync_script(redis, &h->op) < 0) {
        respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
}

void submit_handle(struct exchange *h) {
    struct http_child *c = h->child;
    size_t len;
    const unsigned char *body = exchange_body_in(h, &len);
    struct job_params p;
    job_params_init(&p, &c->limits);
    bool upload = false;
    if (read_params(h, &p, body, len, &upload) < 0 || check_deliveries(h, &p) < 0)
        goto out;
    const char *idem = exchange_header(h, "Idempotency-Key");
    if (idem && !request_idempotency_key_ok(idem)) {
        respond_error(h, "invalid_param", "Idempotency-Key", 0,
                      "Idempotency-Key must be 1 to 255 printable ASCII characters");
        goto out;
    }
    submit_enqueue(h, &p, body, len, upload, idem, answer_v1);
out:
    job_params_free(&p);
    exchange_settle(h);
}
