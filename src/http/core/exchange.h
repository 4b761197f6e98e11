/* exchange.h — one request/response in flight: our state beside libevent's
 * evhttp_request, and the bookkeeping that keeps a late Redis reply from
 * touching a request libevent has already freed. */
#ifndef TH_HTTP_EXCHANGE_H
#define TH_HTTP_EXCHANGE_H

#include "child.h"
#include "id.h"
#include "job.h"
#include "redis_async.h"
#include "route.h"
#include "waiters.h"

#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

#define EXCHANGE_RID_LEN 16

struct exchange {
    struct http_child *child;
    struct evhttp_request *req; /* NULL once libevent freed it: drop the reply */
    struct evhttp_connection *evcon;
    enum evhttp_cmd_type method;
    struct route_match match;
    char rid[EXCHANGE_RID_LEN + 1]; /* X-Request-Id */
    int redis_pending;              /* Redis replies still to come */
    bool replied;                   /* a response was handed to libevent */
    bool done;                      /* libevent is finished with req */
    bool in_use;                    /* between exchange_begin and its release */
    struct exchange *next_free;

    /* Per-route state, reset on acquire. */
    struct rasync_op op;
    char id[ID_LEN + 1];
    char key_job[QUEUE_KEY_MAX];
    char key_res[QUEUE_KEY_MAX];  /* image: the result; submit: the uploaded source */
    char key_src[QUEUE_KEY_MAX];  /* delete: the uploaded source; submit: the request's key */
    char key_idem[QUEUE_KEY_MAX]; /* submit: the Idempotency-Key's key, or "" */
    char ttl[24];                 /* delete: the failure ttl; submit: the dedup ttl */
    struct job_record rec;        /* the job's fields: stored (submit) or read */
    const char *argv[64];         /* submit: the script's arguments */
    size_t lens[64];
    long long res_ttl_ms; /* image: PTTL of the result */
    json_t *doc;          /* image: the job document when it is not ready */
    int step;             /* image: which pipelined reply comes next */
    bool not_modified;    /* image: If-None-Match matched */
    char res_mime[128];
    char res_etag[128];

    /* Long-poll (longpoll.c): registered in the child's waiters while waiting. */
    struct waiter waiter;
    bool waiting;             /* held until the job ends or wait_until_ms */
    bool wait_recheck;        /* a completion came while a read was in flight: read again */
    bool wait_retry;          /* the last read failed: read again within a second */
    long long wait_until_ms;  /* CLOCK_MONOTONIC */
    struct event *wait_timer; /* the deadline, or the next re-read */
    struct event *wait_watch; /* readable socket: the client may be gone */
    void (*wait_check)(struct exchange *h, bool final); /* the route's read */
};

/* Starts tracking req (from the gencb). Returns the exchange, or NULL when out
 * of memory (the caller then answers 500 without one). */
struct exchange *exchange_begin(struct http_child *c, struct evhttp_request *req);

/* Hands the response in req's output buffer and headers to libevent: status
 * code, X-Request-Id, and Connection: close while stopping. With HEAD the
 * body is dropped and its length sent as Content-Length, unless the caller set
 * one. After this call the exchange belongs to libevent's callbacks; if the
 * client is already gone the request is freed instead. */
void exchange_send(struct exchange *h, int status);

/* Counts a Redis command sent on behalf of h (its reply will come). */
void exchange_redis_sent(struct exchange *h);

/* Counts a Redis reply received for h. Returns true when h still has a
 * request to answer, false when the client is gone (then do nothing but
 * exchange_settle). */
bool exchange_redis_received(struct exchange *h);

/* Releases h if nothing refers to it any more (no Redis reply to come, no
 * long-poll wait, and libevent done with it). Call at the end of every Redis
 * callback. */
void exchange_settle(struct exchange *h);

/* Frees the pool of released exchanges (at exit). */
void exchange_pool_free(struct http_child *c);

/* Writes 16 random lowercase hex digits and a NUL into out, from the child's
 * generator (no system call). */
void exchange_request_id(struct http_child *c, char out[EXCHANGE_RID_LEN + 1]);

#endif
