/* exchange.c — per-request state: a pool of them, and the hand-over rules with
 * libevent so a reply that comes late never touches a freed request.
 *
 * libevent 2.1.12, checked in its http.c: while we hold a request (after the
 * gencb, before our reply) its connection has reading and writing disabled, so
 * a client that goes away is only noticed when we write. The connection can
 * still be freed under us (evhttp_free at exit; a read/write error or timeout
 * if a later libevent watches it). evhttp_connection_free first calls the
 * connection's close callback, then frees every request still queued on it. A
 * request that failed with EOF/timeout before we replied is instead unlinked
 * (its evcon set to NULL) and left for us to finish. So in the close callback:
 * attached request -> it is about to be freed, forget it; detached -> we still
 * own it, and evhttp_send_reply will free it. */
#include "exchange.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

static void release(struct exchange *h) {
    struct http_child *c = h->child;
    h->in_use = false;
    if (h->doc) {
        json_decref(h->doc);
        h->doc = NULL;
    }
    job_record_free(&h->rec);
    h->next_free = c->free_exchanges;
    c->free_exchanges = h;
    c->active--;
}

void exchange_settle(struct exchange *h) {
    if (h->in_use && h->redis_pending == 0 && h->done && !h->held)
        release(h);
}

/* The connection is being freed by libevent. */
static void on_close(struct evhttp_connection *evcon, void *arg) {
    struct exchange *h = arg;
    (void)evcon;
    if (h->replied) {
        /* The response was being written when the client went away; libevent
         * frees the request right after this. */
        h->req = NULL;
        h->done = true;
    } else if (h->req && evhttp_request_get_connection(h->req) == h->evcon) {
        h->req = NULL; /* freed right after this: drop our reply */
        h->done = true;
        h->op.cancelled = true;
    }
    /* else: detached; exchange_send will hand it back to libevent to free. */
    h->evcon = NULL;
    if (h->held && h->on_gone)
        h->on_gone(h); /* the route holding it (a long-poll) stops holding it */
    exchange_settle(h);
}

/* The response has been written completely (evhttp_send_done). */
static void on_complete(struct evhttp_request *req, void *arg) {
    struct exchange *h = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    h->req = NULL;
    h->evcon = NULL;
    h->done = true;
    exchange_settle(h);
}

void exchange_request_id(struct http_child *c, char out[EXCHANGE_RID_LEN + 1]) {
    /* splitmix64, seeded from getrandom at start */
    uint64_t z = (c->rid_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    static const char hex[] = "0123456789abcdef";
    for (int i = EXCHANGE_RID_LEN - 1; i >= 0; i--) {
        out[i] = hex[z & 15];
        z >>= 4;
    }
    out[EXCHANGE_RID_LEN] = '\0';
}

struct exchange *exchange_begin(struct http_child *c, struct evhttp_request *req) {
    struct exchange *h = c->free_exchanges;
    if (h) {
        c->free_exchanges = h->next_free;
    } else if ((h = malloc(sizeof(*h))) == NULL) {
        return NULL;
    }
    /* Reset only what a request relies on; the big buffers are written before use. */
    h->child = c;
    h->req = req;
    h->evcon = evhttp_request_get_connection(req);
    h->method = evhttp_request_get_command(req);
    h->redis_pending = 0;
    h->replied = false;
    h->done = false;
    h->in_use = true;
    h->next_free = NULL;
    memset(&h->op, 0, sizeof(h->op));
    memset(&h->rec, 0, sizeof(h->rec));
    h->doc = NULL;
    h->step = 0;
    h->not_modified = false;
    h->res_ttl_ms = -2;
    h->stream_off = h->stream_total = 0;
    h->stream_flushed = NULL;
    h->id[0] = h->res_mime[0] = h->res_etag[0] = '\0';
    memset(&h->waiter, 0, sizeof(h->waiter));
    h->held = h->wait_recheck = h->wait_retry = false;
    h->wait_timer = h->wait_watch = NULL;
    h->wait_check = NULL;
    h->on_gone = NULL;
    exchange_request_id(c, h->rid);
    h->owner[0] = '\0';
    h->client[0] = '\0';
    h->client_name[0] = '\0';
    c->active++;
    if (h->evcon)
        evhttp_connection_set_closecb(h->evcon, on_close, h);
    return h;
}

const char *exchange_header(const struct exchange *h, const char *name) {
    return h->req ? evhttp_find_header(evhttp_request_get_input_headers(h->req), name) : NULL;
}

const char *exchange_query(const struct exchange *h) {
    const struct evhttp_uri *uri = h->req ? evhttp_request_get_evhttp_uri(h->req) : NULL;
    return uri ? evhttp_uri_get_query(uri) : NULL;
}

struct evbuffer *exchange_body_in(struct exchange *h) {
    return evhttp_request_get_input_buffer(h->req);
}

void exchange_set_header(struct exchange *h, const char *name, const char *value) {
    if (h->req)
        evhttp_add_header(evhttp_request_get_output_headers(h->req), name, value);
}

struct evbuffer *exchange_body_out(struct exchange *h) {
    return evhttp_request_get_output_buffer(h->req);
}

/* The part of every response's start that is ours: h is replied from now on,
 * with X-Request-Id and, while stopping, Connection: close. Returns the
 * request, or NULL when there is none to answer. */
static struct evhttp_request *begin_reply(struct exchange *h) {
    struct evhttp_request *req = h->req;
    if (req == NULL || h->replied)
        return NULL;
    h->replied = true;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "X-Request-Id", h->rid);
    if (h->child->stopping)
        evhttp_add_header(out, "Connection", "close");
    return req;
}

/* Whether the connection is gone and libevent left req to us: then h lets go
 * of it (the caller's evhttp_send_reply frees it). */
static bool orphaned(struct exchange *h, struct evhttp_request *req) {
    if (h->evcon != NULL && evhttp_request_get_connection(req) != NULL)
        return false;
    h->req = NULL;
    h->done = true;
    return true;
}

void exchange_send(struct exchange *h, int status) {
    struct evhttp_request *req = begin_reply(h);
    if (req == NULL)
        return;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (h->method == EVHTTP_REQ_HEAD) {
        struct evbuffer *body = evhttp_request_get_output_buffer(req);
        size_t len = evbuffer_get_length(body);
        if (evhttp_find_header(out, "Content-Length") == NULL && status != 304) {
            char num[24];
            snprintf(num, sizeof(num), "%zu", len);
            evhttp_add_header(out, "Content-Length", num);
        }
        evbuffer_drain(body, len); /* libevent would send it */
    }
    if (!orphaned(h, req))
        evhttp_request_set_on_complete_cb(req, on_complete, h);
    evhttp_send_reply(req, status, NULL, NULL); /* frees req when orphaned */
}

void exchange_stream_start(struct exchange *h, int status) {
    struct evhttp_request *req = begin_reply(h);
    if (req == NULL)
        return;
    if (orphaned(h, req)) {
        evhttp_send_reply(req, 503, NULL, NULL); /* frees req: nobody to stream to */
        return;
    }
    evhttp_request_set_on_complete_cb(req, on_complete, h);
    evhttp_send_reply_start(req, status, NULL);
}

static void stream_written(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    struct exchange *h = arg;
    if (h->req && h->stream_flushed)
        h->stream_flushed(h);
}

int exchange_stream_chunk(struct exchange *h, const void *data, size_t len,
                          void (*flushed)(struct exchange *h)) {
    if (h->req == NULL || evhttp_request_get_connection(h->req) == NULL)
        return -1;
    struct evbuffer *piece = evbuffer_new();
    if (piece == NULL || evbuffer_add(piece, data, len) < 0) {
        if (piece)
            evbuffer_free(piece);
        exchange_stream_abort(h);
        return -1;
    }
    h->stream_flushed = flushed;
    evhttp_send_reply_chunk_with_cb(h->req, piece, stream_written, h);
    evbuffer_free(piece);
    return 0;
}

void exchange_stream_end(struct exchange *h) {
    h->stream_flushed = NULL;
    if (h->req)
        evhttp_send_reply_end(h->req); /* on_complete follows once it is written */
}

void exchange_stream_abort(struct exchange *h) {
    h->stream_flushed = NULL;
    struct evhttp_connection *evcon = h->req ? evhttp_request_get_connection(h->req) : NULL;
    if (evcon)
        evhttp_connection_free(evcon); /* on_close: the request goes with it */
}

void exchange_redis_sent(struct exchange *h) {
    h->redis_pending++;
}

bool exchange_redis_received(struct exchange *h) {
    h->redis_pending--;
    return h->req != NULL && !h->replied;
}

void exchange_pool_free(struct http_child *c) {
    struct exchange *h;
    while ((h = c->free_exchanges) != NULL) {
        c->free_exchanges = h->next_free;
        free(h);
    }
}
