/* exchange.c — per-request state: a pool of them, and the hand-over rules with
 * the connection layer (conn.h), so that a Redis reply that comes late never
 * touches a connection that has gone or moved on to its next request: the
 * connection calls back when the answer is written (done) or when it closes
 * first (gone), and from then on h->conn is NULL. */
#include "exchange.h"
#include "handlers.h"

#include "counters.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(ROUTE_COUNT <= SHM_ROUTES_MAX, "every route has its counters in the segment");

static void release(struct exchange *h) {
    struct http_child *c = h->child;
    h->in_use = false;
    if (h->doc) {
        json_decref(h->doc);
        h->doc = NULL;
    }
    job_record_free(&h->rec);
    evbuffer_drain(h->body, evbuffer_get_length(h->body));
    h->next_free = c->free_exchanges;
    c->free_exchanges = h;
    c->active--;
}

void exchange_settle(struct exchange *h) {
    if (h->in_use && h->redis_pending == 0 && h->done && !h->held)
        release(h);
}

/* The answer has been written completely. */
static void on_done(struct conn *k, void *user) {
    (void)k;
    struct exchange *h = user;
    h->conn = NULL;
    h->done = true;
    exchange_settle(h);
}

/* The connection closed before the answer was written. */
static void on_gone(struct conn *k, void *user) {
    (void)k;
    struct exchange *h = user;
    h->conn = NULL;
    h->done = true;
    if (!h->replied)
        h->op.cancelled = true;
    if (h->held && h->on_gone)
        h->on_gone(h); /* the route holding it (a long-poll) stops holding it */
    exchange_settle(h);
}

static void on_flushed(struct conn *k, void *user) {
    (void)k;
    struct exchange *h = user;
    if (h->stream_flushed)
        h->stream_flushed(h);
}

/* The client shut its side: a long-poll has nobody to answer (as nginx's
 * ngx_http_test_reading decides); any other request is answered first. */
static bool on_peer_closed(struct conn *k, void *user) {
    (void)k;
    const struct exchange *h = user;
    return h->held;
}

static void on_request(struct conn *k, void *arg) {
    routes_dispatch(arg, k);
}

const struct conn_callbacks exchange_conn_callbacks = {
    .request = on_request,
    .done = on_done,
    .flushed = on_flushed,
    .gone = on_gone,
    .peer_closed = on_peer_closed,
};

void exchange_request_id(struct http_child *c, char out[EXCHANGE_RID_LEN + 1]) {
    conn_server_request_id(c->server, out);
}

struct exchange *exchange_begin(struct http_child *c, struct conn *k) {
    struct exchange *h = c->free_exchanges;
    if (h) {
        c->free_exchanges = h->next_free;
    } else {
        if ((h = calloc(1, sizeof(*h))) == NULL)
            return NULL;
        if ((h->body = evbuffer_new()) == NULL) {
            free(h);
            return NULL;
        }
    }
    /* Reset only what a request relies on; the big buffers are written before use. */
    h->child = c;
    h->conn = k;
    h->method = conn_request(k)->method;
    h->query = NULL;
    h->match.route = ROUTE_NONE;
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
    h->read_ms = 0;
    h->cache_stale = NULL;
    h->stream_off = h->stream_total = 0;
    h->res_line = 0;
    h->res_offset = 0;
    h->res_len = -1;
    h->res_vary = false;
    h->stream_flushed = NULL;
    h->id[0] = h->res_mime[0] = h->res_etag[0] = h->src_obj[0] = '\0';
    h->object_then = NULL;
    memset(&h->waiter, 0, sizeof(h->waiter));
    h->held = h->wait_recheck = h->wait_retry = false;
    h->wait_timer = NULL;
    h->wait_check = NULL;
    h->on_gone = NULL;
    exchange_request_id(c, h->rid);
    h->owner[0] = '\0';
    h->client[0] = '\0';
    h->client_name[0] = '\0';
    c->active++;
    conn_set_user(k, h);
    return h;
}

const char *exchange_header(const struct exchange *h, const char *name) {
    size_t len;
    return h->conn ? parse_header_get(conn_request(h->conn), name, &len) : NULL;
}

const char *exchange_query(const struct exchange *h) {
    return h->conn ? h->query : NULL;
}

const unsigned char *exchange_body_in(const struct exchange *h, size_t *len) {
    const struct parse_request *r = h->conn ? conn_request(h->conn) : NULL;
    if (r == NULL || r->body_len == 0) {
        *len = 0;
        return (const unsigned char *)"";
    }
    *len = r->body_len;
    return r->body;
}

void exchange_set_header(struct exchange *h, const char *name, const char *value) {
    if (h->conn && !h->replied)
        conn_header(h->conn, name, value);
}

struct evbuffer *exchange_body_out(struct exchange *h) {
    return h->body;
}

/* The part of every answer that is ours: h is replied from now on, with
 * X-Request-Id, and counted by route and status (once: an exchange is
 * replied to at most once). Returns the connection, or NULL when there is none. */
static struct conn *begin_reply(struct exchange *h, int status) {
    struct conn *k = h->conn;
    if (k == NULL || h->replied)
        return NULL;
    conn_header(k, "X-Request-Id", h->rid);
    h->replied = true;
    if (h->child->shm)
        shm_counters_http(&h->child->shm->hdr->counters, (int)h->match.route, status);
    return k;
}

void exchange_send(struct exchange *h, int status) {
    struct conn *k = begin_reply(h, status);
    if (k)
        conn_send(k, status, h->body, h->method == HTTP_HEAD ? CONN_HEAD_ONLY : 0);
}

void exchange_stream_start(struct exchange *h, int status) {
    struct conn *k = begin_reply(h, status);
    if (k)
        conn_send(k, status, h->body, CONN_STREAM);
}

int exchange_stream_chunk(struct exchange *h, const void *data, size_t len,
                          void (*flushed)(struct exchange *h)) {
    if (h->conn == NULL)
        return -1;
    h->stream_flushed = flushed;
    return conn_stream_add(h->conn, data, len);
}

void exchange_stream_end(struct exchange *h) {
    h->stream_flushed = NULL;
    if (h->conn)
        conn_stream_end(h->conn); /* on_done follows once it is written */
}

void exchange_stream_abort(struct exchange *h) {
    h->stream_flushed = NULL;
    if (h->conn)
        conn_abort(h->conn); /* on_gone follows */
}

void exchange_redis_sent(struct exchange *h) {
    h->redis_pending++;
}

bool exchange_redis_received(struct exchange *h) {
    h->redis_pending--;
    return h->conn != NULL && !h->replied;
}

void exchange_pool_free(struct http_child *c) {
    struct exchange *h;
    while ((h = c->free_exchanges) != NULL) {
        c->free_exchanges = h->next_free;
        evbuffer_free(h->body);
        free(h);
    }
}
