/* http.h — an http child: the connection layer (conn.h) on the inherited
 * listen socket, with asynchronous Redis connections on the same event loop;
 * its context (the only state it has) is passed explicitly to every part of
 * src/http. */
#ifndef TH_HTTP_H
#define TH_HTTP_H

#include "child.h"
#include "conn.h"
#include "cidr.h"
#include "config.h"
#include "job.h"
#include "queue.h"
#include "segment.h"
#include "waiters.h"

#include <event2/event.h>
#include <magic.h>
#include <stdbool.h>
#include <stdint.h>

struct conn_server;
struct guard_key;
struct exchange;
struct rasync;
struct objects;

struct http_child {
    const struct config *cfg;
    const char *node_id; /* this node's id ("<hostname>:<master pid>") */
    struct event_base *base;
    struct conn_server *server;  /* the connections (conn.h) */
    bool accepting;              /* the listen socket is being served */
    int listen_fd;               /* inherited from the master */
    struct event *accept_anyway; /* accept even though Redis has not answered yet */
    bool accept_failed;          /* the listen socket could not be served: exit 1 */
    struct rasync *redis;
    struct rasync *redis_bulk; /* uploads and results going in and out (http_redis_bulk) */
    struct rasync *redis_sub;  /* subscribed to {prefix}:done for long-polls and
                                * {prefix}:changed for the cache (longpoll.c) */
    struct waiters waiters;    /* long-poll waiters by job id */
    struct objects *objects;   /* the object store's client (objects.h), or NULL */
    /* When the subscription now in place was confirmed (CLOCK_MONOTONIC ms;
     * meaningless while rasync_subscribed is false): a finished job's cache
     * entry read from Redis after it is one whose changes we would have heard
     * of (cached.c). */
    int64_t sub_since_ms;
    magic_t magic;
    struct job_param_limits limits;
    struct shm_segment *shm;    /* the scoreboard, or NULL */
    struct shm_cache *cache;    /* the shared job cache, or NULL */
    struct guard_key *api_keys; /* NULL: no authentication (guard.c) */
    size_t napi_keys;
    struct guard_key *admin_keys; /* NULL: the admin API is loopback-only (guard.c) */
    size_t nadmin_keys;
    struct cidr_list trusted_proxies; /* http.trusted_proxies (guard.c) */
    struct cidr_list metrics_allow;   /* http.metrics_allow; empty: anyone */
    struct shm_slot *slot;            /* our scoreboard line, or NULL */
    struct conn_stats published;      /* the layer's counters as last added to the segment */

    /* Keys that do not depend on the job, made once. */
    char key_ready[QUEUE_KEY_MAX];
    char key_delayed[QUEUE_KEY_MAX];
    char key_dead[QUEUE_KEY_MAX];
    char max_queue[24];
    char max_client[24]; /* http.max_queued_per_client */

    struct exchange *free_exchanges; /* released exchanges, reused */
    unsigned active;                 /* exchanges handed out and not yet released */
    bool stopping;

    struct event *sig_term, *sig_quit, *sig_int, *sig_usr1, *sig_hup;
    struct event *heartbeat;
    struct event *stop_poll;
    struct event *stop_deadline;
};

/* A request moving more than this many bytes through Redis (an upload, a
 * result) uses the bulk connection. */
#define HTTP_BULK_BYTES (64 * 1024)

/* The connection for bulk transfers: c->redis_bulk while it is connected, else
 * c->redis. A big transfer on it never holds up the small requests of the
 * child, which use c->redis. */
struct rasync *http_redis_bulk(struct http_child *c);

/* Serves until SIGQUIT/SIGTERM (finishing in-flight requests). Called after
 * fork. Returns the process exit status (0 clean, 1 error, 2 fatal). */
int http_main(const struct child_args *args);

#endif
