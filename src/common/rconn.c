/* rconn.c — the one Redis client: addressing, opening connections, the error
 * classes and the blocking connection with backoff (rconn.h). */
#include "rconn.h"
#include "log.h"
#include "units.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rconn_embedded_socket(const struct config *cfg, char *buf, size_t n) {
    snprintf(buf, n, "%s/redis.sock", cfg->runtime_dir);
}

int rconn_resolve(const struct config *cfg, struct rconn_target *t) {
    memset(t, 0, sizeof(*t));
    snprintf(t->password, sizeof(t->password), "%s", cfg->redis_password);
    if (cfg->redis_mode == CONFIG_REDIS_EMBEDDED) {
        rconn_embedded_socket(cfg, t->unix_path, sizeof(t->unix_path));
        return 0;
    }
    const char *url = cfg->redis_url;
    if (strncmp(url, "unix:", 5) == 0) {
        snprintf(t->unix_path, sizeof(t->unix_path), "%s", url + 5);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        /* [user]:password@ — Redis 6 ACL users are not used; take the password. */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(t->password, sizeof(t->password), "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hostlen = strcspn(p, ":/");
    if (hostlen == 0 || hostlen >= sizeof(t->host))
        return -1;
    snprintf(t->host, sizeof(t->host), "%.*s", (int)hostlen, p);
    p += hostlen;
    t->port = 6379;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (port < 1 || port > 65535)
            return -1;
        t->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (db < 0 || db > 10000 || *end != '\0')
            return -1;
        t->db = (int)db;
    }
    return 0;
}

redisContext *rconn_open(const struct rconn_target *t, long timeout_ms, char *err, size_t n) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = t->unix_path[0] ? redisConnectUnixWithTimeout(t->unix_path, tv)
                                      : redisConnectWithTimeout(t->host, t->port, tv);
    if (c == NULL) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, n, "%s", c->errstr);
        redisFree(c);
        return NULL;
    }
    redisReply *r;
    if (t->password[0]) {
        r = redisCommand(c, "AUTH %s", t->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, n, "AUTH failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (t->db) {
        r = redisCommand(c, "SELECT %d", t->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, n, "SELECT failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

redisAsyncContext *rconn_open_async(const struct rconn_target *t, char *err, size_t n) {
    redisAsyncContext *ac =
        t->unix_path[0] ? redisAsyncConnectUnix(t->unix_path) : redisAsyncConnect(t->host, t->port);
    if (ac == NULL) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(err, n, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

long rconn_backoff_next(long prev_ms) {
    if (prev_ms <= 0)
        return RCONN_BACKOFF_MIN_MS;
    return prev_ms * 2 > RCONN_BACKOFF_MAX_MS ? RCONN_BACKOFF_MAX_MS : prev_ms * 2;
}

enum rconn_fault rconn_classify(const redisReply *reply) {
    static const char *const refusals[] = {"OOM",        "LOADING",  "BUSY",    "READONLY",
                                           "MASTERDOWN", "TRYAGAIN", "MISCONF", "CLUSTERDOWN",
                                           "NOREPLICAS", NULL};
    if (reply == NULL)
        return RCONN_LOST;
    if (reply->type != REDIS_REPLY_ERROR)
        return RCONN_OK;
    for (int i = 0; reply->str && refusals[i]; i++)
        if (strncmp(reply->str, refusals[i], strlen(refusals[i])) == 0)
            return RCONN_REFUSED;
    return RCONN_ERROR;
}

/* --- the blocking connection ---------------------------------------------------- */

int rconn_init(struct rconn *r, const struct config *cfg, const char *who,
               long command_timeout_ms) {
    memset(r, 0, sizeof(*r));
    snprintf(r->who, sizeof(r->who), "%s", who);
    r->connect_timeout_ms = (long)cfg->redis_connect_timeout;
    r->command_timeout_ms = command_timeout_ms;
    if (rconn_resolve(cfg, &r->target) < 0) {
        log_error("%s: cannot use the Redis address in redis.url", who);
        return -1;
    }
    return 0;
}

void rconn_set_on_connect(struct rconn *r, void (*fn)(struct rconn *r, void *arg), void *arg) {
    r->on_connect = fn;
    r->on_connect_arg = arg;
}

void rconn_close(struct rconn *r) {
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

bool rconn_connected(const struct rconn *r) {
    return r->c != NULL;
}

/* The policy for a failure of class f: log (once per outage; an error reply
 * is a bug, not an outage, and worth every line), drop the connection and
 * schedule the next attempt. */
static void failed(struct rconn *r, enum rconn_fault f, const char *what, const char *why) {
    if (f == RCONN_ERROR) {
        log_error("%s: redis %s: %s", r->who, what, why);
    } else if (!r->down) {
        log_warn("%s: redis %s failed: %s; retrying with backoff", r->who, what, why);
    } else {
        log_debug("%s: redis %s failed again: %s", r->who, what, why);
    }
    if (f != RCONN_ERROR && !r->down) {
        r->down = true;
        r->down_since_ms = units_mono_ms();
    }
    rconn_close(r);
    r->backoff_ms = rconn_backoff_next(r->backoff_ms);
    r->next_try_ms = units_mono_ms() + r->backoff_ms;
}

static void succeeded(struct rconn *r) {
    if (r->down)
        log_info("%s: redis reachable again after %lld ms", r->who,
                 (long long)(units_mono_ms() - r->down_since_ms));
    r->down = false;
    r->backoff_ms = 0;
}

/* reply when it is good; otherwise NULL after the policy (reply freed). */
static redisReply *settle(struct rconn *r, redisReply *reply, const char *what) {
    enum rconn_fault f = rconn_classify(reply);
    if (f == RCONN_OK) {
        succeeded(r);
        return reply;
    }
    char why[256];
    snprintf(why, sizeof(why), "%s",
             reply ? reply->str : (r->c && r->c->errstr[0] ? r->c->errstr : "no reply"));
    freeReplyObject(reply);
    failed(r, f, what, why);
    return NULL;
}

bool rconn_ready(struct rconn *r) {
    if (r->c)
        return true;
    if (units_mono_ms() < r->next_try_ms)
        return false;
    char err[256];
    r->c = rconn_open(&r->target, r->connect_timeout_ms, err, sizeof(err));
    if (r->c == NULL) {
        failed(r, RCONN_LOST, "connect", err);
        return false;
    }
    long ms = r->command_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    redisSetTimeout(r->c, tv);
    if (r->on_connect)
        r->on_connect(r, r->on_connect_arg);
    return r->c != NULL;
}

int rconn_wait(struct rconn *r, volatile sig_atomic_t *stop) {
    while (!*stop) {
        if (rconn_ready(r))
            return 0;
        int64_t ms = r->next_try_ms - units_mono_ms();
        if (ms <= 0)
            continue;
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (!*stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    return -1;
}

redisReply *rconn_command(struct rconn *r, const char *what, int argc, const char **argv,
                          const size_t *lens) {
    if (!rconn_ready(r))
        return NULL;
    return settle(r, redisCommandArgv(r->c, argc, argv, lens), what);
}

redisReply *rconn_commandf(struct rconn *r, const char *what, const char *fmt, ...) {
    if (!rconn_ready(r))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    return settle(r, reply, what);
}

redisReply *rconn_script(struct rconn *r, const char *what, enum queue_script s, int nkeys,
                         int nargs, const char **argv, const size_t *lens) {
    if (!rconn_ready(r))
        return NULL;
    return settle(r, queue_eval(r->c, s, nkeys, nargs, argv, lens), what);
}

int rconn_pipeline(struct rconn *r, const char *what, int n, const struct rconn_cmd *cmds,
                   redisReply **replies) {
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    if (!rconn_ready(r))
        return -1;
    for (int i = 0; i < n; i++)
        redisAppendCommandArgv(r->c, cmds[i].argc, cmds[i].argv, cmds[i].lens);
    int bad = -1;
    for (int i = 0; i < n; i++) {
        if (redisGetReply(r->c, (void **)&replies[i]) != REDIS_OK) {
            replies[i] = NULL;
            bad = i;
            break;
        }
        if (bad < 0 && rconn_classify(replies[i]) != RCONN_OK)
            bad = i;
    }
    if (bad < 0) {
        succeeded(r);
        return 0;
    }
    redisReply *culprit = replies[bad];
    replies[bad] = NULL;
    for (int i = 0; i < n; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    settle(r, culprit, what);
    return -1;
}

void rconn_handshake_args(const struct rconn_target *t,
                          void (*send)(int argc, const char **argv, void *arg), void *arg) {
    if (t->password[0]) {
        const char *av[] = {"AUTH", t->password};
        send(2, av, arg);
    }
    if (t->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", t->db);
        const char *av[] = {"SELECT", db};
        send(2, av, arg);
    }
}
