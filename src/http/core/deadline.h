/* deadline.h — a deadline for receiving a whole request. libevent 2.1's
 * timeout restarts on every byte, so a client trickling its headers (a
 * slow-loris) would hold its connection forever. Each connection's bytes are
 * watched through its input buffer; one that has not delivered a request
 * within http.timeout, while sending slower than 1 KB/s, is shut down. */
#ifndef TH_HTTP_DEADLINE_H
#define TH_HTTP_DEADLINE_H

#include "http.h"

#include <event2/bufferevent.h>
#include <event2/http.h>

/* Watches the input of a new connection's bufferevent (from the bevcb). */
void deadline_watch(struct http_child *c, struct bufferevent *bev);

/* A whole request arrived on its connection: its clock stops. */
void deadline_request_done(struct http_child *c, struct evhttp_request *req);

/* Shuts down the connections past their deadline, and pauses accepting while
 * http.max_connections connections (that have sent something) are open; the
 * 1 s timer. */
void deadline_sweep(struct http_child *c);

void deadline_free(struct http_child *c);

#endif
