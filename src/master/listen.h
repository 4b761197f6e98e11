/* listen.h — the listening socket, bound by the master before any fork. */
#ifndef TH_LISTEN_H
#define TH_LISTEN_H

#include <stddef.h>

/* Binds and listens on spec ("host:port", "[v6]:port" or "unix:/path"), non-
 * blocking and close-on-exec. Returns the fd, or -1 with a reason in err. */
int listen_open(const char *spec, char *err, size_t n);

#endif
