/* queue.c — the Lua scripts of the job life cycle. Time comes from Redis TIME so
 * every node agrees on it. */
#include "queue.h"
#include "job.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The scripts, from src/common/lua (see embed_lua.cmake). */
extern const char queue_lua_enqueue[], queue_lua_start[], queue_lua_take[], queue_lua_complete[],
    queue_lua_fail[], queue_lua_release[], queue_lua_delete[], queue_lua_promote[],
    queue_lua_deliver[], queue_lua_deliver_promote[], queue_lua_admin_overview[],
    queue_lua_admin_list[], queue_lua_admin_retry[], queue_lua_admin_purge[],
    queue_lua_store_sweep[];

static const char *const sources[QUEUE_SCRIPT_COUNT] = {
    [QUEUE_SCRIPT_ENQUEUE] = queue_lua_enqueue,
    [QUEUE_SCRIPT_START] = queue_lua_start,
    [QUEUE_SCRIPT_TAKE] = queue_lua_take,
    [QUEUE_SCRIPT_COMPLETE] = queue_lua_complete,
    [QUEUE_SCRIPT_FAIL] = queue_lua_fail,
    [QUEUE_SCRIPT_RELEASE] = queue_lua_release,
    [QUEUE_SCRIPT_DELETE] = queue_lua_delete,
    [QUEUE_SCRIPT_PROMOTE] = queue_lua_promote,
    [QUEUE_SCRIPT_DELIVER] = queue_lua_deliver,
    [QUEUE_SCRIPT_DELIVER_PROMOTE] = queue_lua_deliver_promote,
    [QUEUE_SCRIPT_ADMIN_OVERVIEW] = queue_lua_admin_overview,
    [QUEUE_SCRIPT_ADMIN_LIST] = queue_lua_admin_list,
    [QUEUE_SCRIPT_ADMIN_RETRY] = queue_lua_admin_retry,
    [QUEUE_SCRIPT_ADMIN_PURGE] = queue_lua_admin_purge,
    [QUEUE_SCRIPT_STORE_SWEEP] = queue_lua_store_sweep,
};

static char shas[QUEUE_SCRIPT_COUNT][41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_shas(void) {
    for (int s = 0; s < QUEUE_SCRIPT_COUNT; s++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)sources[s], strlen(sources[s]), md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            sprintf(&shas[s][2 * i], "%02x", md[i]);
    }
}

const char *queue_script_source(enum queue_script s) {
    return sources[s];
}

const char *queue_script_sha(enum queue_script s) {
    pthread_once(&sha_once, compute_shas);
    return shas[s];
}

void queue_policy_args(const struct config *cfg, struct queue_policy *p) {
    unsigned int r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (unsigned int)rand();
    snprintf(p->ttl, sizeof(p->ttl), "%lld", (long long)cfg->redis_failure_ttl);
    snprintf(p->max, sizeof(p->max), "%lld", (long long)cfg->worker_max_attempts);
    snprintf(p->base, sizeof(p->base), "%lld", (long long)cfg->worker_retry_delay);
    snprintf(p->cap, sizeof(p->cap), "%lld", (long long)cfg->worker_retry_max_delay);
    snprintf(p->jitter, sizeof(p->jitter), "%.4f", (r % 10000) / 10000.0);
    snprintf(p->deadmax, sizeof(p->deadmax), "%d", QUEUE_DEAD_MAX);
    p->argv[0] = cfg->redis_key_prefix;
    p->argv[1] = p->ttl;
    p->argv[2] = p->max;
    p->argv[3] = p->base;
    p->argv[4] = p->cap;
    p->argv[5] = p->jitter;
    p->argv[6] = p->deadmax;
}

char *queue_worker_id(char *buf, size_t n, const char *node, pid_t pid) {
    snprintf(buf, n, "%s:%d", node, (int)pid);
    return buf;
}

char *queue_key(char *buf, size_t n, const char *prefix, const char *kind, const char *id) {
    if (id)
        snprintf(buf, n, "{%s}:%s:%s", prefix, kind, id);
    else
        snprintf(buf, n, "{%s}:%s", prefix, kind);
    return buf;
}

redisReply *queue_eval(redisContext *c, enum queue_script s, int nkeys, int nargs,
                       const char **argv, const size_t *lens) {
    int total = nkeys + nargs;
    const char **av = malloc((size_t)(total + 3) * sizeof(char *));
    size_t *al = malloc((size_t)(total + 3) * sizeof(size_t));
    if (av == NULL || al == NULL) {
        free(av);
        free(al);
        return NULL;
    }
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = "EVALSHA";
    av[1] = queue_script_sha(s);
    av[2] = nk;
    for (int i = 0; i < total; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
    for (int i = 0; i < 3; i++)
        al[i] = strlen(av[i]);
    redisReply *r = redisCommandArgv(c, total + 3, av, al);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        av[0] = "EVAL";
        av[1] = sources[s];
        al[0] = 4;
        al[1] = strlen(sources[s]);
        r = redisCommandArgv(c, total + 3, av, al);
    }
    free(av);
    free(al);
    return r;
}

int queue_reply_record(struct job_record *rec, const redisReply *reply, size_t first) {
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = first; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (job_record_set(rec, k->str, v->str) < 0)
            return -1;
    }
    return 0;
}
