/* image.c — GET|HEAD /v1/thumbnails/<id>/image: the thumbnail bytes with their
 * type, strong ETag and remaining lifetime; 304, 409 not_ready, 404. From the
 * shared cache when it holds the image; else one round trip: HGETALL of the
 * job, PTTL and the first IMAGE_CHUNK bytes (GETRANGE; STRLEN for HEAD) of the
 * result, pipelined; the answer goes out as soon as one reply decides it, and
 * a GET's job and bytes are then cached. A result longer than one chunk is
 * streamed: each further chunk is asked for once the one before has been
 * written to the client, so a big result is never held whole, let alone twice. */
#include "accept.h"
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

/* The lines of a res_rend (JOB_RENDITIONS_MAX x JOB_FORMATS_MAX at most). */
#define IMAGE_LINES_MAX (JOB_RENDITIONS_MAX * JOB_FORMATS_MAX)

enum image_choose_rc image_choose(const char *index, size_t index_len, const char *res_mime,
                                  const char *name, const char *format, const char *accept,
                                  struct image_choice *c) {
    memset(c, 0, sizeof(*c));
    char text[IMAGE_LINES_MAX * 200];
    struct job_encoding enc[IMAGE_LINES_MAX];
    int n = 0;
    if (index && index_len && index_len < sizeof(text)) {
        memcpy(text, index, index_len);
        text[index_len] = '\0';
        n = job_encodings_parse(text, enc, IMAGE_LINES_MAX);
    }
    enum job_format f = JOB_FORMAT_ORIGINAL;
    if (format && format[0] && job_format_parse(format, &f) < 0)
        f = JOB_FORMAT_ORIGINAL; /* image_request refused it already */
    if (n <= 0) {                /* one encoding, named default */
        if (name && name[0] && strcmp(name, "default") != 0) {
            snprintf(c->have, sizeof(c->have), "default");
            return IMAGE_NO_RENDITION;
        }
        if (format && format[0] && strcmp(job_format_mime(f), res_mime ? res_mime : "") != 0) {
            snprintf(c->have, sizeof(c->have), "%s", res_mime ? res_mime : "none");
            return IMAGE_NO_FORMAT;
        }
        return IMAGE_CHOSEN;
    }
    int out = enc[0].output;
    if (name && name[0]) {
        int i = 0;
        while (i < n && strcmp(enc[i].name, name) != 0)
            i++;
        if (i == n) {
            size_t len = 0;
            for (int j = 0; j < n && len < sizeof(c->have); j++)
                if (j == 0 || enc[j].output != enc[j - 1].output)
                    len += (size_t)snprintf(c->have + len, sizeof(c->have) - len, "%s%s",
                                            len ? ", " : "", enc[j].name);
            return IMAGE_NO_RENDITION;
        }
        out = enc[i].output;
    }
    /* The output's encodings in the order its formats were listed. */
    int lines[JOB_FORMATS_MAX];
    const char *mimes[JOB_FORMATS_MAX];
    int k = 0;
    for (int rank = 0; rank < JOB_FORMATS_MAX; rank++)
        for (int i = 0; i < n && k < JOB_FORMATS_MAX; i++)
            if (enc[i].output == out && enc[i].rank == rank) {
                lines[k] = i;
                mimes[k++] = enc[i].mime;
            }
    if (k == 0)
        return IMAGE_NO_RENDITION;
    int pick = -1;
    if (format && format[0]) {
        for (int j = 0; j < k && pick < 0; j++)
            if (enc[lines[j]].format == f)
                pick = j;
        if (pick < 0) {
            size_t len = 0;
            for (int j = 0; j < k && len < sizeof(c->have); j++)
                len += (size_t)snprintf(c->have + len, sizeof(c->have) - len, "%s%s",
                                        len ? ", " : "", job_format_name(enc[lines[j]].format));
            return IMAGE_NO_FORMAT;
        }
    } else {
        pick = k == 1 ? 0 : accept_pick(accept, mimes, k);
        c->vary = k > 1;
    }
    c->line = lines[pick];
    c->e = enc[c->line];
    return IMAGE_CHOSEN;
}

/* The request's rendition name (NULL for the route without one) and ?format=. */
static const char *wanted(struct exchange *h, char format[16]) {
    if (request_query_value(exchange_query(h), "format", format, 16) != 1)
        format[0] = '\0';
    return h->match.route == ROUTE_IMAGE_RENDITION ? h->match.name : NULL;
}

int image_request(struct exchange *h, const char **name, char format[16]) {
    format[0] = '\0';
    int r = request_query_value(exchange_query(h), "format", format, 16);
    enum job_format f;
    if (r < 0 || (r == 1 && job_format_parse(format, &f) < 0) ||
        (r == 1 && f == JOB_FORMAT_ORIGINAL)) {
        respond_error(h, "invalid_param", "format", 0,
                      "format must be given once, as one of jpeg, png, webp, avif, gif, jxl");
        return -1;
    }
    *name = h->match.route == ROUTE_IMAGE_RENDITION ? h->match.name : NULL;
    if (*name && (*name)[0] == '\0') {
        respond_error(h, "not_found", NULL, 0, "no such rendition: a name is 1..%d characters",
                      JOB_NAME_MAX);
        return -1;
    }
    return 0;
}

/* Chooses the encoding of the done job in h->rec: 0, or -1 after a 404. */
static int choose(struct exchange *h) {
    char format[16];
    const char *name = wanted(h, format);
    const char *index = job_record_get(&h->rec, "res_rend");
    const char *mime = job_record_get(&h->rec, "res_mime");
    struct image_choice ch;
    enum image_choose_rc rc = image_choose(index, index ? strlen(index) : 0, mime, name, format,
                                           exchange_header(h, "Accept"), &ch);
    if (rc == IMAGE_NO_RENDITION) {
        respond_error(h, "not_found", NULL, 0, "this job has no rendition named %s (it has %s)",
                      name, ch.have);
        return -1;
    }
    if (rc == IMAGE_NO_FORMAT) {
        respond_error(h, "not_found", NULL, 0,
                      "this rendition is not encoded as %s (it is encoded as %s)", format, ch.have);
        return -1;
    }
    h->res_line = ch.line;
    h->res_vary = ch.vary;
    if (index && ch.line >= 0 && index[0]) {
        snprintf(h->res_mime, sizeof(h->res_mime), "%s", ch.e.mime);
        snprintf(h->res_etag, sizeof(h->res_etag), "%s", ch.e.etag);
        h->res_offset = ch.e.offset;
        h->res_len = ch.e.bytes;
    } else {
        snprintf(h->res_mime, sizeof(h->res_mime), "%s", mime ? mime : "");
        const char *etag = job_record_get(&h->rec, "res_etag");
        snprintf(h->res_etag, sizeof(h->res_etag), "%s", etag ? etag : "");
        h->res_len = job_record_get_int(&h->rec, "res_bytes", 0);
    }
    return 0;
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
    if (choose(h) < 0)
        return;
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
    if (h->res_vary)
        exchange_set_header(h, "Vary", "Accept");
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
    long long end = h->res_offset + h->stream_total; /* this encoding's bytes end there */
    long long at = h->res_offset + h->stream_off;
    snprintf(from, sizeof(from), "%lld", at);
    snprintf(to, sizeof(to), "%lld", (at + IMAGE_CHUNK < end ? at + IMAGE_CHUNK : end) - 1);
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

/* The first chunk of an encoding that is not the job's first. */
static void on_range(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    exchange_redis_received(h);
    bool whole = reply && reply->type == REDIS_REPLY_STRING && h->res_len > 0 &&
                 (long long)reply->len >= h->res_len;
    if (whole && h->res_ttl_ms != 0)
        cached_store_encoding(h->child, h->match.id, &h->rec, h->res_line, h->res_ttl_ms,
                              reply->str, (size_t)h->res_len, h->read_ms);
    if (h->conn == NULL)
        goto out;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        reply_failed(h, reply, "image range");
    } else if (reply->type != REDIS_REPLY_STRING || reply->len == 0) {
        not_found(h);
    } else if (!whole) {
        stream_start(h, reply, h->res_len);
    } else {
        evbuffer_add(exchange_body_out(h), reply->str, (size_t)h->res_len);
        image_headers(h);
        exchange_send(h, 200);
    }
out:
    exchange_settle(h);
}

/* Asks for the first chunk of the chosen encoding, at its offset. */
static void read_range(struct exchange *h) {
    char from[24], to[24];
    long long n = h->res_len < IMAGE_CHUNK ? h->res_len : IMAGE_CHUNK;
    snprintf(from, sizeof(from), "%lld", h->res_offset);
    snprintf(to, sizeof(to), "%lld", h->res_offset + n - 1);
    const char *argv[] = {"GETRANGE", h->key_res, from, to};
    h->op = (struct rasync_op){.cb = on_range, .arg = h};
    if (n <= 0 || rasync_command(http_redis_bulk(h->child), &h->op, 4, argv, NULL) < 0) {
        respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
}

static void on_bytes(struct exchange *h, const redisReply *reply) {
    if (h->method != HTTP_HEAD && h->res_line != 0 && reply->type == REDIS_REPLY_STRING &&
        reply->len > 0) {
        read_range(h); /* the bytes read were the first encoding's */
        return;
    }
    if (h->method == HTTP_HEAD) {
        if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
            if (reply->type == REDIS_REPLY_INTEGER)
                not_found(h);
            else
                reply_failed(h, reply, "image length");
            return;
        }
        char num[24];
        snprintf(num, sizeof(num), "%lld", h->res_len >= 0 ? h->res_len : reply->integer);
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
        /* The bytes of the job's other encodings follow its first's. */
        evbuffer_add(exchange_body_out(h), reply->str, image_first_len(h, reply->len));
    }
    image_headers(h);
    exchange_send(h, 200);
}

size_t image_first_len(const struct exchange *h, size_t len) {
    long long first = job_record_get_int(&h->rec, "res_bytes", 0);
    return first > 0 && (size_t)first < len ? (size_t)first : len;
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
    if (rc == STORE_OK && h->res_ttl_ms != 0 && h->res_line == 0)
        cached_store(h->child, h->match.id, &h->rec, h->res_ttl_ms, public_url ? NULL : body,
                     public_url ? 0 : len, h->read_ms);
    else if (rc == STORE_OK && h->res_ttl_ms != 0 && !public_url)
        cached_store_encoding(h->child, h->match.id, &h->rec, h->res_line, h->res_ttl_ms, body, len,
                              h->read_ms);
    if (h->object_then)
        h->object_then(h, rc, err, body, len);
    free(body);
}

int image_fetch_object(struct exchange *h, image_object_fn then) {
    char key[STORE_KEY_MAX];
    const char *list = image_object_key(h);
    if (list == NULL || h->child->objects == NULL)
        return -1; /* an s3 result on a node without storage.backend = s3 */
    for (int i = 0; i < h->res_line && *list; i++) { /* the chosen encoding's: res_obj's order */
        list += strcspn(list, " ");
        list += *list == ' ';
    }
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(list, " "), list);
    long long want = h->res_len > 0 ? h->res_len : job_record_get_int(&h->rec, "res_bytes", 0);
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
    char other[STORE_URL_MAX + 64];
    if (url && url[0] && h->res_line > 0 &&
        job_public_url(&h->rec, h->res_line, other, sizeof(other)))
        url = other;
    if (url && url[0]) {
        exchange_set_header(h, "Location", url);
        add_cache_headers(h);
        cached_mark_miss(h);
        exchange_send(h, 302);
        return;
    }
    if (h->method == HTTP_HEAD) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", h->res_len);
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
        cached_store(h->child, h->match.id, &h->rec, h->res_ttl_ms, reply->str,
                     image_first_len(h, reply->len), h->read_ms);
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
    const char *name;
    char format[16];
    if (!id_is_valid(h->match.id)) {
        not_found(h);
        goto out;
    }
    if (image_request(h, &name, format) < 0)
        goto out;
    if (cached_image(h))
        goto out;
    image_read_job(h, on_reply, false,
                   h->method == HTTP_HEAD ? IMAGE_READ_LENGTH : IMAGE_READ_FIRST);
out:
    exchange_settle(h);
}
