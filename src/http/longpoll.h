/* longpoll.h — GET /v1/thumbnails/<id>?wait=N: holding a request until its job
 * ends. Every terminal transition publishes the job id on {prefix}:done inside
 * its script; each http child subscribes to that channel on a connection of
 * its own and finds the waiters of an id in a hash table (waiters.h). While
 * the subscription is down, waiters re-read the job every second instead. The
 * same connection subscribes to {prefix}:changed for the shared cache
 * (cached.h: cached_changed). */
#ifndef TH_HTTP_LONGPOLL_H
#define TH_HTTP_LONGPOLL_H

#include "exchange.h"
#include "rconn.h"

#include <stdbool.h>

/* The longest wait a request may ask for, in seconds. */
#define LONGPOLL_MAX_S 30

/* Starts the child's subscriber connection ({prefix}:done and
 * {prefix}:changed; c->sub_since_ms is set each time both are in place) and
 * waiter table. Returns 0, or -1 when out of memory. */
int longpoll_init(struct http_child *c, const struct rconn_target *t);

/* Ends every wait now (graceful stop): each waiter answers its current state. */
void longpoll_stop(struct http_child *c);

/* Closes the subscriber connection. Call before the connections close. */
void longpoll_close(struct http_child *c);

/* Frees the waiter table. Call after the connections closed (no waiter is left then). */
void longpoll_free(struct http_child *c);

/* Makes h a waiter on job h->match.id for up to seconds (> 0). check is the
 * route's read: check(h, false) reads the job and answers only when it has
 * ended (else calls longpoll_read_failed or leaves h waiting); check(h, true)
 * answers whatever the state is (h no longer waits then). The caller reads
 * once right after this call (the registration comes first, so a completion
 * published after that read is never missed). Returns 0, or -1 when h cannot
 * wait (out of memory): answer at once. */
int longpoll_begin(struct exchange *h, int seconds, void (*check)(struct exchange *h, bool final));

/* Stops h's wait (it is about to be answered); nothing when it does not wait. */
void longpoll_end(struct exchange *h);

/* The read of a waiting h failed (Redis down): it reads again within a second. */
void longpoll_read_failed(struct exchange *h);

/* A read of a waiting h ended without an answer: reads again when a
 * completion came meanwhile. Call when h has no Redis reply to come. */
void longpoll_read_done(struct exchange *h);

#endif
