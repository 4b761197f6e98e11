/* queue.c — the Lua scripts of the job life cycle. Time comes from Redis TIME so
 * every node agrees on it. */
#include "queue.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_MS                                                                                     \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"

static const char *const sources[QS_COUNT] = {
    [QS_ENQUEUE] = "local depth = redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])\n"
                   "if depth >= tonumber(ARGV[2]) then return {'full', depth} end\n" NOW_MS
                   "redis.call('HSET', KEYS[1], 'state', 'queued', 'created', now, 'attempts', 0,\n"
                   "           unpack(ARGV, 5))\n"
                   "if ARGV[4] == '1' then redis.call('SET', KEYS[4], ARGV[3]) end\n"
                   "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
                   "return {'ok', now}\n",
    [QS_START] =
        "local state = redis.call('HGET', KEYS[1], 'state')\n"
        "if state ~= 'queued' then\n"
        "  redis.call('LREM', KEYS[2], 0, ARGV[1])\n"
        "  return false\n"
        "end\n" NOW_MS "redis.call('HSET', KEYS[1], 'state', 'processing', 'started', now,\n"
        "           'token', ARGV[2])\n"
        "redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
        "return redis.call('HGETALL', KEYS[1])\n",
    [QS_COMPLETE] = "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then\n"
                    "  redis.call('LREM', KEYS[3], 0, ARGV[1])\n"
                    "  return 0\n"
                    "end\n" NOW_MS "redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])\n"
                    "redis.call('HSET', KEYS[1], 'state', 'done', 'finished', now,\n"
                    "           unpack(ARGV, 5))\n"
                    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                    "redis.call('LREM', KEYS[3], 0, ARGV[1])\n"
                    "redis.call('DEL', KEYS[4])\n"
                    "return 1\n",
    [QS_FAIL] = "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then\n"
                "  redis.call('LREM', KEYS[2], 0, ARGV[1])\n"
                "  return 0\n"
                "end\n" NOW_MS "redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', now,\n"
                "           'err_code', ARGV[4], 'err_msg', ARGV[5], unpack(ARGV, 6))\n"
                "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                "redis.call('LREM', KEYS[2], 0, ARGV[1])\n"
                "redis.call('DEL', KEYS[3])\n"
                "return 1\n",
    [QS_RELEASE] =
        "local ids = redis.call('LRANGE', KEYS[1], 0, -1)\n" NOW_MS "local n = 0\n"
        "for i = #ids, 1, -1 do\n"
        "  local id = ids[i]\n"
        "  local job = '{' .. ARGV[1] .. '}:job:' .. id\n"
        "  local state = redis.call('HGET', job, 'state')\n"
        "  if state == 'queued' or (state == 'processing' and ARGV[2] == 'requeue') then\n"
        "    redis.call('HSET', job, 'state', 'queued')\n"
        "    redis.call('HDEL', job, 'token')\n"
        "    redis.call('LPUSH', KEYS[2], id)\n"
        "    n = n + 1\n"
        "  elseif state == 'processing' then\n"
        "    redis.call('HSET', job, 'state', 'failed', 'finished', now, 'err_code', ARGV[3],\n"
        "               'err_msg', ARGV[4])\n"
        "    redis.call('HDEL', job, 'token')\n"
        "    redis.call('PEXPIRE', job, ARGV[5])\n"
        "    redis.call('DEL', '{' .. ARGV[1] .. '}:src:' .. id)\n"
        "    n = n + 1\n"
        "  end\n"
        "end\n"
        "redis.call('DEL', KEYS[1])\n"
        "redis.call('SREM', KEYS[3], ARGV[6])\n"
        "return n\n",
    [QS_DELETE] = "local state = redis.call('HGET', KEYS[1], 'state')\n"
                  "if not state then return 0 end\n"
                  "if state == 'queued' or state == 'processing' then\n" NOW_MS
                  "  redis.call('HSET', KEYS[1], 'state', 'canceled', 'finished', now)\n"
                  "  redis.call('HDEL', KEYS[1], 'token')\n"
                  "  redis.call('LREM', KEYS[4], 0, ARGV[1])\n"
                  "  redis.call('DEL', KEYS[3])\n"
                  "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                  "else\n"
                  "  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])\n"
                  "end\n"
                  "return 1\n",
};

static char shas[QS_COUNT][41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_shas(void) {
    for (int s = 0; s < QS_COUNT; s++) {
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
