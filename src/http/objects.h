/* objects.h — an http child's requests to the object store (storage.backend
 * = s3, store.h): an exchange's GET of a result or PUT of an upload, run on
 * the child's event loop (curlev.h), and whether the store answers, for
 * /readyz (a HEAD of the bucket every OBJECTS_PROBE_MS). */
#ifndef TH_HTTP_OBJECTS_H
#define TH_HTTP_OBJECTS_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>

struct http_child;
struct exchange;

/* How often the store is probed, and how long without an answer to a probe
 * (or after a failed request) it counts as down. */
#define OBJECTS_PROBE_MS  2000
#define OBJECTS_WINDOW_MS 5000

/* How an exchange's request ended. With STORE_OK, body holds what a GET
 * brought (len bytes, the callee's to free()); else NULL and err says why.
 * Called from the loop, while the exchange is still counted as waiting (as
 * for a Redis reply): the callee checks h->conn, answers or not, and the
 * caller settles the exchange afterwards. */
typedef void (*objects_done_fn)(struct exchange *h, enum store_rc rc, const struct store_error *err,
                                char *body, size_t len);

/* Sets the store's side of the child up (nothing without storage.backend =
 * s3). Returns 0, -1 (logged). */
int objects_start(struct http_child *c);

/* Drops the requests in flight (their exchanges' done never comes: the
 * child is exiting) and frees everything. */
void objects_stop(struct http_child *c);

/* GET of the object at key (at most max bytes) for h. Returns 0: done comes
 * later; -1: it could not start (answer 503). */
int objects_get(struct exchange *h, const char *key, size_t max, objects_done_fn done);

/* PUT of len bytes (copied) of type mime at key for h. Returns 0 or -1, as
 * objects_get. */
int objects_put(struct exchange *h, const char *key, const void *data, size_t len, const char *mime,
                objects_done_fn done);

/* Whether the store answered a probe within OBJECTS_WINDOW_MS and no request
 * has failed since (rtt_ms: the last probe's round trip); when it does not,
 * why says what happened last. */
bool objects_answering(struct http_child *c, long *rtt_ms, char *why, size_t n);

#endif
