/* rconn.h — where Redis is (embedded socket or redis.url) and blocking connects. */
#ifndef TH_RCONN_H
#define TH_RCONN_H

#include "config.h"

#include <hiredis/hiredis.h>

struct redis_target {
    char unix_path[512]; /* non-empty for a unix socket */
    char host[256];
    int port;
    int db;
    char password[256];
};

/* Resolves the target: the embedded server's socket in daemon.runtime_dir, or
 * redis.url (redis://[:password@]host[:port][/db] or unix:/path) with
 * redis.password. Returns 0, or -1 when the URL cannot be used. */
int rconn_target(const struct config *cfg, struct redis_target *t);

/* The embedded server's socket path for cfg into buf. */
void rconn_embedded_socket(const struct config *cfg, char *buf, size_t n);

/* Connects with a timeout, authenticates and selects the database. Returns a
 * context, or NULL with a reason in err. */
redisContext *rconn_connect(const struct redis_target *t, long timeout_ms, char *err, size_t n);

/* Sends AUTH and SELECT when t needs them, on any connection type, through
 * send(cmd, argc, argv, arg). Used by the asynchronous client. */
void rconn_handshake_args(const struct redis_target *t,
                          void (*send)(int argc, const char **argv, void *arg), void *arg);

#endif
