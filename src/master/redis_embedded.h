/* redis_embedded.h — the redis-server child of redis.mode = embedded: a unix
 * socket in daemon.runtime_dir, AOF on, data in redis.data_dir. */
#ifndef TH_REDIS_EMBEDDED_H
#define TH_REDIS_EMBEDDED_H

#include "child.h"
#include "config.h"

#include <stdbool.h>
#include <sys/types.h>

/* The redis-server child's entry point: replaces the calling (forked) process
 * with redis-server, logging where the daemon logs (stderr in the foreground).
 * Returns only on failure (logged): exit status 2, fatal. */
int redis_embedded_main(const struct child_args *args);

/* The embedded server's maxmemory in bytes: redis.max_memory, or for auto a
 * quarter of the machine's physical memory; 0 = no limit. */
long long redis_embedded_max_memory(const struct config *cfg);

/* Waits until the server answers PING on its socket. Returns 0, or -1 when
 * pid exits first or timeout_ms passes. */
int redis_embedded_wait(const struct config *cfg, pid_t pid, long timeout_ms);

#endif
