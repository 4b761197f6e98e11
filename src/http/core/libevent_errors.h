/* libevent_errors.h — our JSON answer for the errors libevent 2.1 sends by
 * itself (body over http.max_body, unparsable request). */
#ifndef TH_HTTP_LIBEVENT_ERRORS_H
#define TH_HTTP_LIBEVENT_ERRORS_H

#include "http.h"

#include <stdbool.h>

/* Routes libevent's own error answers of this process to c (JSON documents,
 * lingering close). Returns whether the override is in effect: false means
 * libevent still calls its own evhttp_send_error (HTML pages), e.g. when it
 * was linked statically or with -Bsymbolic. */
bool libevent_errors_attach(struct http_child *c);

#endif
