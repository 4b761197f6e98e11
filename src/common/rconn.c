/* rconn.c — Redis addressing shared by the master, http children and workers. */
#include "rconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rconn_embedded_socket(const struct config *cfg, char *buf, size_t n) {
    snprintf(buf, n, "%s/redis.sock", cfg->runtime_dir);
}

int rconn_target(const struct config *cfg, struct redis_target *t) {
    memset(t, 0, sizeof(*t));
    snprintf(t->password, sizeof(t->password), "%s", cfg->redis_password);
    if (cfg->redis_mode == REDIS_EMBEDDED) {
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

redisContext *rconn_connect(const struct redis_target *t, long timeout_ms, char *err, size_t n) {
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

void rconn_handshake_args(const struct redis_target *t,
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
