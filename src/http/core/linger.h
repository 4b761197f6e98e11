/* linger.h — nginx-style lingering close: after an error answer on a connection
 * whose request body was not read, keep reading and discarding what the client
 * still sends for a short while, so closing does not reset the connection
 * before the client has read the answer. */
#ifndef TH_HTTP_LINGER_H
#define TH_HTTP_LINGER_H

#include "http.h"

#include <event2/http.h>

/* Arms a lingering close for the connection of req, whose response has just
 * been handed to libevent with Connection: close. When libevent frees the
 * connection, a duplicate of its socket is shut down for writing and drained
 * until the client closes, LINGER_IDLE_MS pass without data, or LINGER_MAX_MS
 * in all. Returns 0, or -1 when it cannot (the connection then just closes). */
int linger_arm(struct http_child *c, struct evhttp_request *req);

/* Closes every lingering connection (at exit). */
void linger_close_all(struct http_child *c);

#endif
