/* curlev.h — libcurl's multi interface on an http child's libevent loop
 * (multi_socket: one event per socket curl asks about, one timer for curl's
 * timeout), so that the child fetches (from the S3 store) without blocking
 * its loop. The caller makes and owns each easy handle; curlev runs it and
 * says once, from the loop, how it ended. */
#ifndef TH_HTTP_CURLEV_H
#define TH_HTTP_CURLEV_H

#include <curl/curl.h>
#include <event2/event.h>

/* One per event loop: a curl multi handle, its sockets' events and its timer. */
struct curlev;

/* How a transfer ended: result is its CURLcode (CURLE_OK included: for HTTP
 * that means a response came, whatever its status; see CURLINFO_RESPONSE_CODE).
 * By then easy is out of the multi handle and the caller's again: done may
 * read it (curl_easy_getinfo), reuse it (curlev_add) or curl_easy_cleanup it.
 * done may also curlev_add and curlev_cancel other handles, and curlev_free
 * the curlev (the transfers still in flight are then dropped as curlev_free
 * says; the curlev is gone when done returns). done must not run the event
 * loop (event_base_loop) itself. */
typedef void (*curlev_done_fn)(CURL *easy, CURLcode result, void *arg);

/* A curlev on base, which must outlive it. The process has called
 * curl_global_init before (once, at start-up, like any libcurl user) and calls
 * curl_global_cleanup, if at all, after the last curlev_free and
 * curl_easy_cleanup. Returns NULL on failure (logged). */
struct curlev *curlev_new(struct event_base *base);

/* Drops every transfer still in flight: each is removed from the multi
 * handle and its done is never called; the easy handles stay the caller's,
 * who calls curl_easy_cleanup on them after curlev_free, never before. Then
 * closes curl's connections and frees m. NULL is fine. Not from inside a
 * libcurl callback (a write function...) of one of m's transfers. */
void curlev_free(struct curlev *m);

/* Starts easy (its options set by the caller; CURLOPT_PRIVATE stays the
 * caller's too). Returns 0: done(easy, result, arg) will be called exactly
 * once, later, from the event loop — never from inside curlev_add — unless
 * the transfer is canceled or m freed first; or -1 (logged): not added, done
 * never called. easy is the caller's before and after; it must not be
 * curl_easy_cleanup'd, added to another multi handle or have its options
 * changed while in flight. Not from inside a libcurl callback of one of m's
 * transfers (it returns -1 there). */
int curlev_add(struct curlev *m, CURL *easy, curlev_done_fn done, void *arg);

/* Stops easy's transfer: it leaves the multi handle at once and its done is
 * never called; easy is the caller's again on return. A no-op for a handle
 * not in flight on m (never added, already done, already canceled). Not from
 * inside a libcurl callback of one of m's transfers (libcurl refuses: the
 * transfer goes on, logged, and its done still comes); to stop a transfer
 * from its own write function, return CURL_WRITEFUNC_ERROR there (done then
 * gets CURLE_WRITE_ERROR). */
void curlev_cancel(struct curlev *m, CURL *easy);

/* The transfers in flight: added, and neither done nor canceled (0 for a
 * NULL m). */
unsigned curlev_running(const struct curlev *m);

#endif
