/* redis_fixture.c — the unit tests' own redis-server. */
#include "redis_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *redis_fixture_server(void) {
    const char *s = getenv("TH_TEST_REDIS_SERVER");
    return s && *s ? s : "redis-server";
}

bool redis_fixture_available(void) {
    const char *name = redis_fixture_server();
    if (strchr(name, '/'))
        return access(name, X_OK) == 0;
    const char *path = getenv("PATH");
    if (path == NULL)
        return false;
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char file[4096];
        /* An empty entry is the current directory, as for execlp. */
        int len = n ? snprintf(file, sizeof(file), "%.*s/%s", (int)n, p, name)
                    : snprintf(file, sizeof(file), "./%s", name);
        if (len > 0 && len < (int)sizeof(file) && access(file, X_OK) == 0)
            return true;
        if (end == NULL)
            return false;
        p = end;
    }
}

const char *redis_fixture_missing(void) {
    static char msg[512];
    snprintf(msg, sizeof(msg),
             "%s not found on PATH: install redis-server; these tests need a real one",
             redis_fixture_server());
    return msg;
}

long long redis_fixture_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void redis_fixture_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int redis_fixture_spawn(struct redis_fixture *f) {
    f->pid = fork();
    if (f->pid == 0) {
        execlp(redis_fixture_server(), "redis-server", "--port", "0", "--unixsocket", f->sock,
               "--save", "", "--appendonly", "no", "--dir", f->dir, "--logfile", "redis.log",
               (char *)NULL);
        _exit(127);
    }
    return f->pid > 0 ? 0 : -1;
}

int redis_fixture_start(struct redis_fixture *f, const char *name) {
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->dir, sizeof(f->dir), "%s/th-%s-XXXXXX", tmp, name);
    if (mkdtemp(f->dir) == NULL) {
        f->dir[0] = '\0';
        return -1;
    }
    snprintf(f->sock, sizeof(f->sock), "%s/redis.sock", f->dir);
    return redis_fixture_spawn(f);
}

redisContext *redis_fixture_connect(const struct redis_fixture *f) {
    long long deadline = redis_fixture_now_ms() + 5000;
    while (redis_fixture_now_ms() < deadline) {
        redisContext *c = redisConnectUnix(f->sock);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (ok)
                return c;
        }
        if (c)
            redisFree(c);
        redis_fixture_sleep_ms(50);
    }
    return NULL;
}

void redis_fixture_stop(struct redis_fixture *f) {
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

int redis_fixture_remove(struct redis_fixture *f) {
    redis_fixture_stop(f);
    if (f->dir[0] == '\0')
        return 0;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    return system(cmd) == 0 ? 0 : -1;
}
