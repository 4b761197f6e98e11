/* redis_fixture.h — a private redis-server for unit tests that need a real one:
 * a unix socket in a temporary directory, no persistence, killed by pid. */
#ifndef TH_TEST_REDIS_FIXTURE_H
#define TH_TEST_REDIS_FIXTURE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <sys/types.h>

struct redis_fixture {
    char dir[256]; /* "" until created */
    char sock[300];
    pid_t pid; /* 0 while not running */
};

/* Whether redis-server is on PATH (tests skip without it). */
bool redis_fixture_available(void);

/* Makes a temporary directory named after name and starts the server in it.
 * Returns 0, or -1. */
int redis_fixture_start(struct redis_fixture *f, const char *name);

/* Starts the server again in f's directory (after redis_fixture_stop). */
int redis_fixture_spawn(struct redis_fixture *f);

/* A connection once the server answers PING (waits up to 5 s), or NULL. */
redisContext *redis_fixture_connect(const struct redis_fixture *f);

/* Stops the server (SIGTERM, waits for it). */
void redis_fixture_stop(struct redis_fixture *f);

/* Stops the server and removes the directory. Returns 0 or -1. */
int redis_fixture_remove(struct redis_fixture *f);

/* Monotonic milliseconds, and a sleep, for bounded polling. */
long long redis_fixture_now_ms(void);
void redis_fixture_sleep_ms(long ms);

#endif
