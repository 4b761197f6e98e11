/* server.h — an http child: evhttp on the inherited listen socket, with an
 * asynchronous Redis connection on the same event loop. */
#ifndef TH_HTTP_SERVER_H
#define TH_HTTP_SERVER_H

#include "config.h"
#include "segment.h"

struct http_args {
    const struct config *cfg;
    int listen_fd; /* bound, listening, O_NONBLOCK; inherited from the master */
    struct shm_segment *shm;
    int slot;
};

/* Serves until SIGQUIT/SIGTERM (finishing in-flight requests). Called after
 * fork. Returns the process exit status (0 clean, 1 error, 2 fatal). */
int http_main(const struct http_args *args);

#endif
