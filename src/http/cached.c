/* cached.c — reads served from the shared-memory cache, and the cache's
 * change notices. The copy callbacks run under a shard lock: they only copy
 * into the response's buffers. */
#include "cached.h"
#include "handlers.h"
#include "request.h"

#include "jobcache.h"
#include "rasync.h"
#include "segment.h"
#include "units.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct copy {
    struct evbuffer *out;
    bool body;           /* copy the image (GET), not only its length (HEAD) */
    bool terminal_only;  /* job: only an entry of a job that has ended */
    const char *inm;     /* If-None-Match, or NULL */
    int64_t trust_after; /* jobcache_confirmed's bound */
    bool usable;         /* the entry answers this request */
    bool unconfirmed;    /* it would, but the subscription cannot vouch for it */
    bool not_modified;
    int64_t expires_ms;
    struct jobcache_head head;
    /* image: what the request asks for, and the encoding chosen */
    const char *name;
    const char *format;
    const char *accept;
    struct image_choice choice;
};

static void copy_doc(const struct jobcache_head *head, const char *doc, const void *body,
                     int64_t expires_ms, void *arg) {
    (void)body;
    struct copy *cp = arg;
    if (cp->terminal_only && !head->terminal)
        return;
    if (!jobcache_confirmed(head, cp->trust_after)) {
        cp->unconfirmed = true;
        return;
    }
    cp->head = *head;
    cp->expires_ms = expires_ms;
    if (cp->body)
        evbuffer_add(cp->out, doc, head->doc_len);
    cp->usable = true;
}

static void copy_image(const struct jobcache_head *head, const char *doc, const void *body,
                       int64_t expires_ms, void *arg) {
    struct copy *cp = arg;
    if (!head->done || head->etag[0] == '\0')
        return; /* not the image: Redis decides (409, 404 or the bytes) */
    if (!jobcache_confirmed(head, cp->trust_after)) {
        cp->unconfirmed = true;
        return;
    }
    /* Which encoding: computed from the entry's index, no I/O. An error
     * (no such rendition or format) is Redis' to answer, and so are the
     * first encoding's bytes when the entry has none (a result read from
     * the store for another encoding). */
    if (image_choose(jobcache_index(head, doc), head->index_len, head->mime, cp->name, cp->format,
                     cp->accept, &cp->choice) != IMAGE_CHOSEN ||
        (cp->choice.line == 0 && body == NULL))
        return;
    cp->head = *head;
    cp->expires_ms = expires_ms;
    cp->usable = true;
    if (cp->choice.line > 0) { /* another entry holds its bytes */
        snprintf(cp->head.mime, sizeof(cp->head.mime), "%s", cp->choice.e.mime);
        snprintf(cp->head.etag, sizeof(cp->head.etag), "%s", cp->choice.e.etag);
        cp->head.body_len = (uint32_t)cp->choice.e.bytes;
    }
    cp->not_modified = cp->inm && request_etag_matches(cp->inm, cp->head.etag);
    if (cp->body && !cp->not_modified && cp->choice.line == 0)
        evbuffer_add(cp->out, body, head->body_len);
}

/* An encoding's own entry: its bytes, when they are the ones the job's index names. */
static void copy_encoding(const struct jobcache_head *head, const char *doc, const void *body,
                          int64_t expires_ms, void *arg) {
    (void)doc;
    (void)expires_ms;
    struct copy *cp = arg;
    if (body == NULL || strcmp(head->etag, cp->head.etag) != 0 ||
        head->body_len != cp->head.body_len)
        return;
    evbuffer_add(cp->out, body, head->body_len);
    cp->usable = true;
}

int64_t cached_trust_after(const struct http_child *c) {
    return rasync_subscribed(c->redis_sub) ? c->sub_since_ms : INT64_MAX;
}

bool cached_passed_over(struct exchange *h, bool (*stale)(struct exchange *h)) {
    struct http_child *c = h->child;
    if (c->shm)
        atomic_fetch_add(&c->shm->hdr->cache_unconfirmed, 1);
    /* Redis away: it cannot tell us better, and no change can be made in it
     * meanwhile (short of a partition that only cuts this node off). */
    if (!rasync_connected(c->redis))
        return stale(h);
    h->cache_stale = stale;
    return false;
}

/* The job document from the cache; with trust_all, also an entry the
 * subscription cannot vouch for (the fallback of cached_passed_over). */
static bool job_from_cache(struct exchange *h, bool terminal_only, bool trust_all);

static bool stale_job(struct exchange *h) {
    return job_from_cache(h, false, true);
}

static bool job_from_cache(struct exchange *h, bool terminal_only, bool trust_all) {
    struct http_child *c = h->child;
    if (c->cache == NULL)
        return false;
    struct copy cp = {.out = exchange_body_out(h),
                      .body = true,
                      .terminal_only = terminal_only,
                      .trust_after = trust_all ? INT64_MIN : cached_trust_after(c)};
    if (!jobcache_get(c->cache, h->match.id, h->owner, units_mono_ms(), copy_doc, &cp) ||
        !cp.usable)
        return cp.unconfirmed && cached_passed_over(h, stale_job);
    exchange_set_header(h, "Content-Type", "application/json");
    exchange_set_header(h, "X-Cache", "hit");
    exchange_send(h, 200);
    return true;
}

bool cached_job(struct exchange *h) {
    return job_from_cache(h, false, false);
}

bool cached_job_terminal(struct exchange *h) {
    return job_from_cache(h, true, false);
}

static bool image_from_cache(struct exchange *h, bool trust_all);

static bool stale_image(struct exchange *h) {
    return image_from_cache(h, true);
}

static bool image_from_cache(struct exchange *h, bool trust_all) {
    struct http_child *c = h->child;
    if (c->cache == NULL)
        return false;
    char format[16];
    if (request_query_value(exchange_query(h), "format", format, sizeof(format)) != 1)
        format[0] = '\0';
    struct copy cp = {.out = exchange_body_out(h),
                      .body = h->method != HTTP_HEAD,
                      .inm = exchange_header(h, "If-None-Match"),
                      .trust_after = trust_all ? INT64_MIN : cached_trust_after(c),
                      .name = h->match.route == ROUTE_IMAGE_RENDITION ? h->match.name : NULL,
                      .format = format,
                      .accept = exchange_header(h, "Accept")};
    int64_t now = units_mono_ms();
    if (!jobcache_get(c->cache, h->match.id, h->owner, now, copy_image, &cp) || !cp.usable)
        return cp.unconfirmed && cached_passed_over(h, stale_image);
    if (cp.choice.line > 0 && cp.body && !cp.not_modified) {
        char key[SHM_CACHE_KEY_MAX + 1];
        jobcache_encoding_key(key, h->match.id, cp.choice.line);
        cp.usable = false;
        if (!jobcache_get(c->cache, key, h->owner, now, copy_encoding, &cp) || !cp.usable)
            return false; /* not cached on this node: Redis */
    }
    if (cp.choice.vary)
        exchange_set_header(h, "Vary", "Accept");
    char buf[96];
    snprintf(buf, sizeof(buf), "\"%s\"", cp.head.etag);
    exchange_set_header(h, "ETag", buf);
    long long left = cp.expires_ms > now ? (cp.expires_ms - now) / 1000
                                         : (long long)c->cfg->redis_result_ttl / 1000;
    snprintf(buf, sizeof(buf), "private, max-age=%lld", left);
    exchange_set_header(h, "Cache-Control", buf);
    exchange_set_header(h, "X-Cache", "hit");
    if (cp.not_modified) {
        exchange_send(h, 304);
        return true;
    }
    exchange_set_header(h, "Content-Type",
                        cp.head.mime[0] ? cp.head.mime : "application/octet-stream");
    if (!cp.body) {
        snprintf(buf, sizeof(buf), "%u", cp.head.body_len);
        exchange_set_header(h, "Content-Length", buf);
    }
    exchange_send(h, 200);
    return true;
}

bool cached_image(struct exchange *h) {
    return image_from_cache(h, false);
}

void cached_store(struct http_child *c, const char *id, const struct job_record *rec,
                  long long ttl_ms, const void *body, size_t len, int64_t read_ms) {
    const char *state = job_record_get(rec, "state");
    if (c->cache == NULL || state == NULL)
        return;
    int64_t now = units_mono_ms();
    int64_t expires;
    if (job_state_is_terminal(state) && !job_deliveries_pending(rec)) {
        expires = ttl_ms > 0 ? now + ttl_ms : 0;
    } else if (job_state_is_terminal(state)) {
        /* A delivery's status is still to change: briefly, like a pending job. */
        if (c->cfg->cache_pending_ttl <= 0)
            return;
        expires = now + c->cfg->cache_pending_ttl;
    } else {
        if (c->cfg->cache_pending_ttl <= 0)
            return;
        expires = now + c->cfg->cache_pending_ttl;
        body = NULL;
    }
    size_t doc_len;
    char *doc = job_document_text(id, rec, &doc_len);
    if (doc)
        jobcache_put(c->cache, id, job_record_get(rec, "owner"), state, doc, doc_len,
                     job_record_get(rec, "res_rend"), job_record_get(rec, "res_mime"),
                     job_record_get(rec, "res_etag"), body, len, expires, read_ms);
    free(doc);
}

/* Whether a job's entry answers for its encodings here: its read is one this
 * child's subscription vouches for. */
static void vouched(const struct jobcache_head *head, const char *doc, const void *body,
                    int64_t expires_ms, void *arg) {
    (void)doc, (void)body, (void)expires_ms;
    struct copy *cp = arg;
    cp->usable = jobcache_confirmed(head, cp->trust_after);
}

void cached_store_encoding(struct http_child *c, const char *id, const struct job_record *rec,
                           int line, long long ttl_ms, const void *body, size_t len,
                           int64_t read_ms) {
    struct job_encoding enc[JOB_RENDITIONS_MAX * JOB_FORMATS_MAX];
    int n = job_encodings_parse(job_record_get(rec, "res_rend"), enc,
                                JOB_RENDITIONS_MAX * JOB_FORMATS_MAX);
    if (c->cache == NULL || line <= 0 || line >= n || (long long)len != enc[line].bytes)
        return;
    char key[SHM_CACHE_KEY_MAX + 1];
    jobcache_encoding_key(key, id, line);
    int64_t expires = ttl_ms > 0 ? units_mono_ms() + ttl_ms : 0;
    jobcache_put(c->cache, key, job_record_get(rec, "owner"), "done", "", 0, NULL, enc[line].mime,
                 enc[line].etag, body, len, expires, read_ms);
    /* It is answered only beside the job's entry: when there is none this
     * child can vouch for (an object read from the store for this encoding
     * alone), one of this read, without the first encoding's bytes. */
    struct copy cp = {.trust_after = cached_trust_after(c)};
    if (!jobcache_get(c->cache, id, NULL, units_mono_ms(), vouched, &cp) || !cp.usable)
        cached_store(c, id, rec, ttl_ms, NULL, 0, read_ms);
}

void cached_changed(struct http_child *c, const char *id, size_t len) {
    char key[SHM_CACHE_KEY_MAX + 1];
    if (c->cache == NULL || len == 0 || len > SHM_CACHE_KEY_MAX)
        return;
    memcpy(key, id, len);
    key[len] = '\0';
    shm_cache_invalidate(c->cache, key, units_mono_ms());
}

void cached_mark_miss(struct exchange *h) {
    if (h->conn)
        exchange_set_header(h, "X-Cache", "miss");
}
