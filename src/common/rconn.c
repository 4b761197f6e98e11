/* rconn.c — the one Redis client: addressing, opening connections, the error
 * classes and the blocking connection with backoff (rconn.h). */
#include "rconn.h"
#include "log.h"
#include "units.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <stdarg.h>
#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rconn_embedded_socket(const struct config *cfg, char *buf, size_t n) {
    snprintf(buf, n, "%s/redis.sock", cfg->runtime_dir);
}

/* Fills t's Sentinel list from cfg (checked by the configuration). */
static int resolve_sentinels(const struct config *cfg, struct rconn_target *t) {
    snprintf(t->master_name, sizeof(t->master_name), "%s", cfg->redis_master_name);
    snprintf(t->sentinel_password, sizeof(t->sentinel_password), "%s",
             cfg->redis_sentinel_password);
    t->sentinel_timeout_ms = cfg->redis_connect_timeout < RCONN_SENTINEL_TIMEOUT_MAX_MS
                                 ? (long)cfg->redis_connect_timeout
                                 : RCONN_SENTINEL_TIMEOUT_MAX_MS;
    const char *p = cfg->redis_sentinels;
    struct rconn_sentinel s;
    int rc;
    while ((rc = config_next_hostport(&p, s.host, sizeof(s.host), &s.port)) == 1) {
        if (t->nsentinels == CONFIG_SENTINELS_MAX)
            return -1;
        t->sentinels[t->nsentinels++] = s;
    }
    if (rc < 0)
        return -1;
    return t->nsentinels > 0 && t->master_name[0] ? 0 : -1;
}

int rconn_resolve(const struct config *cfg, struct rconn_target *t) {
    memset(t, 0, sizeof(*t));
    snprintf(t->password, sizeof(t->password), "%s", cfg->redis_password);
    if (cfg->redis_mode == CONFIG_REDIS_EMBEDDED) {
        rconn_embedded_socket(cfg, t->unix_path, sizeof(t->unix_path));
        return 0;
    }
    snprintf(t->username, sizeof(t->username), "%s", cfg->redis_username);
    if (cfg->redis_mode == CONFIG_REDIS_SENTINEL)
        return resolve_sentinels(cfg, t);
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
        /* [user]:password@ — a user here is an ACL user, unless
         * redis.username names one. */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(t->password, sizeof(t->password), "%.*s", (int)(at - pw), pw);
        if (colon && colon > p && t->username[0] == '\0')
            snprintf(t->username, sizeof(t->username), "%.*s", (int)(colon - p), p);
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

/* AUTH (with the ACL user when there is one) on a blocking connection.
 * Returns 0, or -1 with why in err. */
static int auth_blocking(redisContext *c, const char *user, const char *password, char *err,
                         size_t n) {
    if (password[0] == '\0')
        return 0;
    redisReply *r = user[0] ? redisCommand(c, "AUTH %s %s", user, password)
                            : redisCommand(c, "AUTH %s", password);
    int rc = 0;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, n, "AUTH failed: %s", r ? r->str : c->errstr);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

bool rconn_role_is_master(const redisReply *reply) {
    return reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
           reply->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(reply->element[0]->str, "master") == 0;
}

/* A blocking connection to the socket unix_path (when not "") or host:port,
 * its replies waited for timeout_ms too. NULL with why in err. */
static redisContext *connect_blocking(const char *unix_path, const char *host, int port,
                                      long timeout_ms, char *err, size_t n) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = unix_path[0] ? redisConnectUnixWithTimeout(unix_path, tv)
                                   : redisConnectWithTimeout(host, port, tv);
    if (c == NULL) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, n, "%s", c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* What one Sentinel says of the master: its address into host, port.
 * Returns 0, or -1 with why in err. */
static int ask_sentinel(const struct rconn_target *t, const struct rconn_sentinel *s, char *host,
                        size_t hostlen, int *port, char *err, size_t n) {
    char why[256];
    redisContext *c =
        connect_blocking("", s->host, s->port, t->sentinel_timeout_ms, why, sizeof(why));
    if (c == NULL || auth_blocking(c, "", t->sentinel_password, why, sizeof(why)) < 0) {
        snprintf(err, n, "Sentinel %s:%d: %s", s->host, s->port, why);
        if (c)
            redisFree(c);
        return -1;
    }
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", t->master_name);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        snprintf(host, hostlen, "%s", r->element[0]->str);
        *port = atoi(r->element[1]->str);
        rc = 0;
    } else if (r && r->type == REDIS_REPLY_NIL) {
        snprintf(err, n, "Sentinel %s:%d does not know a master called '%s'", s->host, s->port,
                 t->master_name);
    } else {
        snprintf(err, n, "Sentinel %s:%d: %s", s->host, s->port,
                 r && r->type == REDIS_REPLY_ERROR ? r->str
                 : c->errstr[0]                    ? c->errstr
                                                   : "no answer");
    }
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* Connects to host:port, authenticates and checks ROLE is master. Returns
 * the context, or NULL with why in err. */
static redisContext *open_master(const struct rconn_target *t, const char *host, int port,
                                 long timeout_ms, char *err, size_t n) {
    redisContext *c = connect_blocking("", host, port, timeout_ms, err, n);
    if (c == NULL)
        return NULL;
    if (auth_blocking(c, t->username, t->password, err, n) < 0) {
        redisFree(c);
        return NULL;
    }
    redisReply *r = redisCommand(c, "ROLE");
    bool master = rconn_role_is_master(r);
    if (!master)
        snprintf(err, n, "%s:%d, named master by the Sentinels, says it is %s", host, port,
                 r && r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->str
                     ? r->element[0]->str
                 : r && r->type == REDIS_REPLY_ERROR ? r->str
                                                     : "unreachable");
    freeReplyObject(r);
    if (!master) {
        redisFree(c);
        return NULL;
    }
    return c;
}

int rconn_discover(const struct rconn_target *t, char *host, size_t hostlen, int *port, char *err,
                   size_t n) {
    char all[1024] = "";
    size_t used = 0;
    for (int i = 0; i < t->nsentinels; i++) {
        char why[320];
        if (ask_sentinel(t, &t->sentinels[i], host, hostlen, port, why, sizeof(why)) == 0) {
            /* The Sentinel's answer may be stale (a failover under way): the
             * server itself must say it is the master. */
            redisContext *c = open_master(t, host, *port, t->sentinel_timeout_ms, why, sizeof(why));
            if (c) {
                redisFree(c);
                return 0;
            }
        }
        used += (size_t)snprintf(all + used, used < sizeof(all) ? sizeof(all) - used : 0, "%s%s",
                                 used ? "; " : "", why);
        if (used >= sizeof(all))
            used = sizeof(all) - 1;
    }
    snprintf(err, n, "no Sentinel named a working master '%s': %s", t->master_name, all);
    return -1;
}

/* The blocking handshake after connecting: AUTH, SELECT. */
static int handshake_blocking(redisContext *c, const struct rconn_target *t, char *err, size_t n) {
    if (auth_blocking(c, t->username, t->password, err, n) < 0)
        return -1;
    if (t->db) {
        redisReply *r = redisCommand(c, "SELECT %d", t->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, n, "SELECT failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

redisContext *rconn_open(const struct rconn_target *t, long timeout_ms, char *err, size_t n) {
    if (t->nsentinels > 0) {
        char host[256];
        int port;
        if (rconn_discover(t, host, sizeof(host), &port, err, n) < 0)
            return NULL;
        return open_master(t, host, port, timeout_ms, err, n); /* db 0: no URL */
    }
    redisContext *c = connect_blocking(t->unix_path, t->host, t->port, timeout_ms, err, n);
    if (c == NULL)
        return NULL;
    if (handshake_blocking(c, t, err, n) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

redisAsyncContext *rconn_open_async(const struct rconn_target *t, char *err, size_t n) {
    char host[256];
    int port = t->port;
    snprintf(host, sizeof(host), "%s", t->host);
    if (t->nsentinels > 0 && rconn_discover(t, host, sizeof(host), &port, err, n) < 0)
        return NULL;
    redisAsyncContext *ac =
        t->unix_path[0] ? redisAsyncConnectUnix(t->unix_path) : redisAsyncConnect(host, port);
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
    long base = prev_ms <= 0 ? RCONN_BACKOFF_MIN_MS : prev_ms * 2;
    if (base > RCONN_BACKOFF_MAX_MS)
        base = RCONN_BACKOFF_MAX_MS;
    unsigned int r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (unsigned int)units_mono_ms();
    long d = base * (800 + (long)(r % 401)) / 1000; /* 0.8 .. 1.2 */
    return d > RCONN_BACKOFF_MAX_MS ? RCONN_BACKOFF_MAX_MS : d;
}

static const struct {
    const char *prefix; /* of the error reply */
    enum rconn_reason reason;
} refusals[] = {
    {"OOM", RCONN_REASON_OOM},
    {"MISCONF", RCONN_REASON_MISCONF},
    {"READONLY", RCONN_REASON_READONLY},
    {"UNBLOCKED", RCONN_REASON_READONLY}, /* a blocked client's server became a replica */
    {"NOREPLICAS", RCONN_REASON_NOREPLICAS},
    {"BUSY", RCONN_REASON_BUSY},
    {"LOADING", RCONN_REASON_LOADING},
    {"MASTERDOWN", RCONN_REASON_MASTERDOWN},
    {"TRYAGAIN", RCONN_REASON_TRYAGAIN},
    {"CLUSTERDOWN", RCONN_REASON_TRYAGAIN},
};

static const char *const reason_names[RCONN_REASONS] = {
    [RCONN_REASON_NONE] = "none",
    [RCONN_REASON_LOST] = "lost",
    [RCONN_REASON_OOM] = "oom",
    [RCONN_REASON_MISCONF] = "misconf",
    [RCONN_REASON_READONLY] = "readonly",
    [RCONN_REASON_NOREPLICAS] = "noreplicas",
    [RCONN_REASON_BUSY] = "busy",
    [RCONN_REASON_LOADING] = "loading",
    [RCONN_REASON_MASTERDOWN] = "masterdown",
    [RCONN_REASON_TRYAGAIN] = "tryagain",
    [RCONN_REASON_ERROR] = "error",
};

enum rconn_reason rconn_reason_of(const redisReply *reply) {
    if (reply == NULL)
        return RCONN_REASON_LOST;
    if (reply->type != REDIS_REPLY_ERROR)
        return RCONN_REASON_NONE;
    for (size_t i = 0; reply->str && i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        size_t n = strlen(refusals[i].prefix);
        /* The word itself, not a longer one that starts the same. */
        if (strncmp(reply->str, refusals[i].prefix, n) == 0 &&
            (reply->str[n] == ' ' || reply->str[n] == '\0'))
            return refusals[i].reason;
    }
    return RCONN_REASON_ERROR;
}

enum rconn_fault rconn_fault_of(enum rconn_reason reason) {
    switch (reason) {
    case RCONN_REASON_NONE:
        return RCONN_OK;
    case RCONN_REASON_LOST:
        return RCONN_LOST;
    case RCONN_REASON_ERROR:
    case RCONN_REASONS:
        return RCONN_ERROR;
    default:
        return RCONN_REFUSED;
    }
}

enum rconn_fault rconn_classify(const redisReply *reply) {
    return rconn_fault_of(rconn_reason_of(reply));
}

const char *rconn_reason_name(enum rconn_reason reason) {
    return reason >= 0 && reason < RCONN_REASONS ? reason_names[reason] : "error";
}

bool rconn_reason_refuses_writes(enum rconn_reason reason) {
    return reason == RCONN_REASON_OOM || reason == RCONN_REASON_MISCONF ||
           reason == RCONN_REASON_READONLY || reason == RCONN_REASON_NOREPLICAS;
}

/* --- what the process's clients have seen ------------------------------------- */

static struct rconn_health *health; /* the process's record, in the shared segment */

void rconn_health_attach(struct rconn_health *h) {
    health = h;
}

void rconn_health_note(const redisReply *reply, bool script) {
    if (health == NULL)
        return;
    enum rconn_reason reason = rconn_reason_of(reply);
    if (reason != RCONN_REASON_NONE)
        atomic_fetch_add(&health->faults[reason], 1);
    if (reason == RCONN_REASON_NONE && script) {
        atomic_store(&health->write_ok_ms, units_mono_ms());
    } else if (rconn_fault_of(reason) == RCONN_REFUSED) {
        atomic_store(&health->write_refused_reason, (int32_t)reason);
        atomic_store(&health->write_refused_ms, units_mono_ms());
    }
}

bool rconn_health_refusing(const struct rconn_health *h, enum rconn_reason *reason) {
    if (h == NULL)
        return false;
    int64_t refused = atomic_load(&h->write_refused_ms);
    if (refused == 0 || refused < atomic_load(&h->write_ok_ms))
        return false;
    if (reason)
        *reason = (enum rconn_reason)atomic_load(&h->write_refused_reason);
    return true;
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

/* The policy for a failure: log (the first of an outage as a warning, the
 * rest at debug level; an error reply is a bug, not an outage, and worth every
 * line), drop the connection, and schedule the next attempt (rconn.h). */
static void failed(struct rconn *r, enum rconn_reason reason, const char *what, const char *why) {
    enum rconn_fault f = rconn_fault_of(reason);
    if (f == RCONN_ERROR) {
        log_error("%s: redis %s: %s", r->who, what, why);
    } else if (!r->down) {
        log_warn("%s: redis %s %s: %s; retrying with backoff", r->who, what,
                 f == RCONN_REFUSED ? "refused" : "failed", why);
        r->down = true;
        r->down_since_ms = units_mono_ms();
        r->down_reason = reason;
        r->down_failures = 0;
    } else {
        log_debug("%s: redis %s failed again: %s", r->who, what, why);
    }
    if (r->down)
        r->down_failures++;
    rconn_close(r);
    r->backoff_ms = rconn_backoff_next(r->backoff_ms);
    r->next_try_ms = units_mono_ms() + r->backoff_ms;
}

static void succeeded(struct rconn *r) {
    if (r->down) {
        long long ms = (long long)(units_mono_ms() - r->down_since_ms);
        if (rconn_fault_of(r->down_reason) == RCONN_REFUSED)
            log_info("%s: redis accepts commands again after %lld ms (%s, %llu refusals)", r->who,
                     ms, rconn_reason_name(r->down_reason), (unsigned long long)r->down_failures);
        else
            log_info("%s: redis reachable again after %lld ms", r->who, ms);
    }
    r->down = false;
    r->backoff_ms = 0;
}

/* reply when it is good; otherwise NULL after the policy (reply freed). */
static redisReply *settle(struct rconn *r, redisReply *reply, const char *what, bool script) {
    rconn_health_note(reply, script);
    enum rconn_reason reason = rconn_reason_of(reply);
    if (reason == RCONN_REASON_NONE) {
        succeeded(r);
        return reply;
    }
    char why[256];
    snprintf(why, sizeof(why), "%s",
             reply ? reply->str : (r->c && r->c->errstr[0] ? r->c->errstr : "no reply"));
    freeReplyObject(reply);
    failed(r, reason, what, why);
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
        rconn_health_note(NULL, false);
        failed(r, RCONN_REASON_LOST, "connect", err);
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
    return settle(r, redisCommandArgv(r->c, argc, argv, lens), what, false);
}

redisReply *rconn_commandf(struct rconn *r, const char *what, const char *fmt, ...) {
    if (!rconn_ready(r))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    return settle(r, reply, what, false);
}

redisReply *rconn_script(struct rconn *r, const char *what, enum queue_script s, int nkeys,
                         int nargs, const char **argv, const size_t *lens) {
    if (!rconn_ready(r))
        return NULL;
    return settle(r, queue_eval(r->c, s, nkeys, nargs, argv, lens), what, true);
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
        else
            rconn_health_note(replies[i], false);
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
    settle(r, culprit, what, false);
    return -1;
}

void rconn_handshake_args(const struct rconn_target *t,
                          void (*send)(int argc, const char **argv, void *arg), void *arg) {
    if (t->password[0] && t->username[0]) {
        const char *av[] = {"AUTH", t->username, t->password};
        send(3, av, arg);
    } else if (t->password[0]) {
        const char *av[] = {"AUTH", t->password};
        send(2, av, arg);
    }
    if (t->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", t->db);
        const char *av[] = {"SELECT", db};
        send(2, av, arg);
    }
    if (t->nsentinels > 0) {
        const char *av[] = {"ROLE"}; /* the Sentinels' answer may be stale */
        send(1, av, arg);
    }
}
