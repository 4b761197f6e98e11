/* redis_fixture.h — a private redis-server for unit tests that need a real one:
 * a unix socket in a temporary directory, no persistence, killed by pid.
 *
 * A test that needs the server FAILS without it (REDIS_FIXTURE_REQUIRE), never
 * skips: cmocka counts a skip as a pass, so a machine without redis-server would
 * go green without running the Lua scripts. TH_TEST_REDIS_SERVER names another
 * program (or a path) to run instead of redis-server; pointing it at a name that
 * does not exist is how to check that these tests fail without a server. */
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

/* The program the fixture runs: $TH_TEST_REDIS_SERVER, or "redis-server". */
const char *redis_fixture_server(void);

/* Whether that program is on PATH (or, when it names a path, executable). */
bool redis_fixture_available(void);

/* Why the fixture has no server, for a failure message: "redis-server not found
 * on PATH: install redis-server; these tests need a real one". */
const char *redis_fixture_missing(void);

/* In a cmocka test: fails it, saying why, unless running is true (the group
 * setup started the server). */
#define REDIS_FIXTURE_REQUIRE(running)                                                             \
    do {                                                                                           \
        if (!(running))                                                                            \
            fail_msg("%s", redis_fixture_available()                                               \
                               ? "the private redis-server did not start (see its redis.log)"      \
                               : redis_fixture_missing());                                         \
    } while (0)

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
