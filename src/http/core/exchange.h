/* exchange.h — one request/response in flight: the handlers' view of a
 * request on a connection (conn.h), and the bookkeeping that keeps a late
 * Redis reply from touching a connection that has moved on or gone. */
#ifndef TH_HTTP_EXCHANGE_H
#define TH_HTTP_EXCHANGE_H

#include "conn.h"
#include "http.h"
#include "id.h"
#include "job.h"
#include "rasync.h"
#include "route.h"
#include "store.h"
#include "waiters.h"

#include <event2/buffer.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#define EXCHANGE_RID_LEN   CONN_RID_LEN
#define EXCHANGE_OWNER_LEN 32

struct exchange;

/* What a fetch of a result from the object store gave (image_fetch_object):
 * with STORE_OK, len bytes of it (borrowed for the call); else err says why.
 * Called with the exchange unanswered, or its client gone (h->conn NULL). */
typedef void (*image_object_fn)(struct exchange *h, enum store_rc rc, const struct store_error *err,
                                const char *body, size_t len);

/* What a submit route answers once its job is stored (created) or found (a
 * repeat of a live job): id is the job's, rec its fields (borrowed). */
typedef void (*submit_answer_fn)(struct exchange *h, const char *id, bool created,
                                 const struct job_record *rec);

struct exchange {
    struct http_child *child;
    /* The connection, while it waits for this exchange's answer: NULL once
     * the answer is written or the client is gone (then drop the reply). */
    struct conn *conn;
    enum http_method method;
    const char *query;     /* the target's query (NUL-terminated in the request), or NULL */
    struct evbuffer *body; /* the answer's body being made; kept across reuse */
    struct route_match match;
    char rid[EXCHANGE_RID_LEN + 1]; /* X-Request-Id */
    /* Who asks (guard.c): the owner of the jobs it makes and may see (hex of
     * 128 bits of its API key's SHA-256; "" without API keys), and its name
     * in logs (the key's name, or the client's address). */
    char owner[EXCHANGE_OWNER_LEN + 1];
    char client_name[80];
    /* Who sent it (guard_identify): the peer, or behind a trusted proxy the
     * address X-Forwarded-For names; what logs, the rate limit and
     * http.metrics_allow go by. */
    char client[CIDR_ADDR_TEXT_MAX];
    unsigned char client_addr[16]; /* as cidr.h holds addresses, when client_is_ip */
    bool client_is_ip;             /* false for a unix-socket peer */
    int redis_pending;             /* Redis replies still to come */
    bool replied;                  /* an answer was handed to the connection */
    bool done;                     /* the connection is finished with this exchange */
    bool in_use;                   /* between exchange_begin and its release */
    struct exchange *next_free;

    /* Per-route state, reset on acquire. A field means the same on every
     * route that uses it. */
    struct rasync_op op;
    char id[ID_LEN + 1];            /* submit: the new job's id */
    char key_job[QUEUE_KEY_MAX];    /* {p}:job:<id> */
    char key_res[QUEUE_KEY_MAX];    /* {p}:res:<id>, the result (image, compat, delete) */
    char key_src[QUEUE_KEY_MAX];    /* {p}:src:<id>, the uploaded source (submit, delete) */
    char key_req[QUEUE_KEY_MAX];    /* submit: the request's own dedup key */
    char key_idem[QUEUE_KEY_MAX];   /* submit: the Idempotency-Key's key, or "" */
    char key_client[QUEUE_KEY_MAX]; /* submit: the submitter's waiting jobs, or "" */
    char dedup_ttl[24];             /* submit: how long a repeat finds the job */
    char failure_ttl[24];           /* delete: how long a canceled job is kept */
    struct job_record rec;          /* the job's fields: stored (submit) or read */
    const char *argv[64];           /* the route's script arguments (submit, delete) */
    size_t lens[64];
    submit_answer_fn submit_answer;     /* submit routes: what to answer once stored */
    struct rasync_op wait_op;           /* submit: WAIT for redis.min_replicas_ack */
    bool wait_created;                  /* submit: the job WAITed for is new */
    struct rasync *wait_redis;          /* submit: the connection the job went on */
    long long res_ttl_ms;               /* image, compat: PTTL of the result (or job) */
    json_t *doc;                        /* image: the job document when it is not ready */
    int step;                           /* which pipelined reply comes next */
    bool not_modified;                  /* image: If-None-Match matched */
    char res_mime[128];                 /* image: the result's type */
    char res_etag[128];                 /* image: the result's ETag */
    long long stream_off, stream_total; /* image: body bytes sent, and all of them */
    /* image: the encoding served (handlers.h, image_choose): its line in
     * res_rend (0: the job's first, res_mime's), where its bytes begin in
     * {p}:res:<id>, their length, and whether the output has others (Vary). */
    int res_line;
    long long res_offset, res_len;
    bool res_vary;
    void (*stream_flushed)(struct exchange *h); /* exchange_stream_chunk's callback */
    int64_t read_ms; /* job, image, compat: when the Redis read was sent (CLOCK_MONOTONIC) */
    image_object_fn object_then;   /* image, compat: a result fetched from the store */
    char src_obj[STORE_KEY_MAX];   /* submit: an upload's object key (storage.backend = s3) */
    char admin_key[QUEUE_KEY_MAX]; /* admin: the listing's index, or {p}:paused */
    char admin_arg[4][24];         /* admin: the short arguments of its script */
    char admin_value[256];         /* admin: the value of {p}:paused set by a pause */
    /* job, image, compat: answers from a finished job's cache entry that the
     * subscription could not vouch for (cached.c), or returns false; set when
     * the route passed over one to ask Redis, called if Redis cannot answer. */
    bool (*cache_stale)(struct exchange *h);

    /* Held by a route beyond its Redis replies (a long-poll wait): not
     * released while held; on_gone is called when the client goes away. */
    bool held;
    void (*on_gone)(struct exchange *h);

    /* Long-poll (longpoll.c): registered in the child's waiters while held. */
    struct waiter waiter;
    bool wait_recheck;        /* a completion came while a read was in flight: read again */
    bool wait_retry;          /* the last read failed: read again within a second */
    long long wait_until_ms;  /* CLOCK_MONOTONIC */
    struct event *wait_timer; /* the deadline, or the next re-read */
    void (*wait_check)(struct exchange *h, bool final); /* the route's read */
};

/* Starts an exchange for the request in hand on k. Returns it, or NULL when
 * out of memory (the caller then answers 500 without one). */
struct exchange *exchange_begin(struct http_child *c, struct conn *k);

/* The connection layer's callbacks for exchanges (conn.h). */
extern const struct conn_callbacks exchange_conn_callbacks;

/* Hands the answer (status, the headers set, the body) to the connection,
 * with X-Request-Id. With HEAD the body is dropped and its length sent as
 * Content-Length, unless the caller set one. Nothing happens when the client
 * is gone. */
void exchange_send(struct exchange *h, int status);

/* The request h answers: the value of its first header called name (any
 * case) or NULL; its query string, or NULL; its body (*len bytes; "" when
 * none). The handlers see the request only through these (and h->match,
 * h->method). */
const char *exchange_header(const struct exchange *h, const char *name);
const char *exchange_query(const struct exchange *h);
const unsigned char *exchange_body_in(const struct exchange *h, size_t *len);

/* The response being made: a header added; its body (until it is sent). */
void exchange_set_header(struct exchange *h, const char *name, const char *value);
struct evbuffer *exchange_body_out(struct exchange *h);

/* Starts a response whose body comes in pieces (a result too big to hold
 * whole): status and the headers set so far, Content-Length among them, go
 * out now; h is then replied, and the body follows with exchange_stream_chunk
 * and exchange_stream_end. HEAD is never streamed. */
void exchange_stream_start(struct exchange *h, int status);

/* Appends len bytes (copied) to a streamed body; flushed(h) is called once
 * everything given so far has been written to the client, and never once the
 * client is gone. Returns 0, or -1 when the client is gone. */
int exchange_stream_chunk(struct exchange *h, const void *data, size_t len,
                          void (*flushed)(struct exchange *h));

/* Ends a streamed body (the request completes once it is written). */
void exchange_stream_end(struct exchange *h);

/* Gives up a streamed body half-way (its source failed): the connection is
 * closed, so the client sees a short body, never a wrong one. */
void exchange_stream_abort(struct exchange *h);

/* Counts a Redis command sent on behalf of h (its reply will come). */
void exchange_redis_sent(struct exchange *h);

/* Counts a Redis reply received for h. Returns true when h still has a
 * request to answer, false when the client is gone (then do nothing but
 * exchange_settle). */
bool exchange_redis_received(struct exchange *h);

/* Releases h if nothing refers to it any more (no Redis reply to come, no
 * long-poll wait, and the connection done with it). Call at the end of every
 * Redis callback. */
void exchange_settle(struct exchange *h);

/* Frees the pool of released exchanges (at exit). */
void exchange_pool_free(struct http_child *c);

/* Writes 16 random lowercase hex digits and a NUL into out, from the child's
 * generator (no system call). */
void exchange_request_id(struct http_child *c, char out[EXCHANGE_RID_LEN + 1]);

#endif
