/* queue.h — Redis key names and the Lua scripts that make every job state change
 * atomic (docs/ARCHITECTURE.md §3). Scripts run by EVALSHA; their SHA1 is computed here,
 * so a NOSCRIPT reply is answered by sending the source once with EVAL. */
#ifndef TH_QUEUE_H
#define TH_QUEUE_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <sys/types.h>

/* Each script's KEYS and ARGV are documented at the top of its file in
 * src/common/lua/. */
enum queue_script {
    QUEUE_SCRIPT_ENQUEUE,  /* -> {"ok", created} | {"dup", id, fields...} | {"full", depth} */
    QUEUE_SCRIPT_START,    /* -> the job's fields | nil (skip it: canceled or gone) */
    QUEUE_SCRIPT_TAKE,     /* -> {id, fields...} | {id} skipped | nil (nothing ready) */
    QUEUE_SCRIPT_COMPLETE, /* -> {1, pttl, fields...} stored | 0 stale | -1 staged result gone */
    QUEUE_SCRIPT_FAIL,     /* -> 0 stale | 1 failed | 2 retry scheduled | 3 dead */
    QUEUE_SCRIPT_RELEASE,  /* the jobs of a gone worker -> how many */
    QUEUE_SCRIPT_DELETE,   /* -> 1 | 0 no such job */
    QUEUE_SCRIPT_PROMOTE,  /* due retries back to ready -> how many */
    QUEUE_SCRIPT_DELIVER,  /* the outcome of a delivery attempt -> 1 | 0 no such delivery */
    QUEUE_SCRIPT_DELIVER_PROMOTE, /* due delivery retries back to {p}:wh:ready -> how many */
    QUEUE_SCRIPT_ADMIN_OVERVIEW,  /* the fleet's figures -> one JSON string */
    QUEUE_SCRIPT_ADMIN_LIST,      /* one page of jobs -> {next_cursor, {id, fields...}...} */
    QUEUE_SCRIPT_ADMIN_RETRY,     /* a failed job queued again -> {'ok'} | {why not...} */
    QUEUE_SCRIPT_ADMIN_PURGE,     /* the dead set's jobs deleted -> how many */
    QUEUE_SCRIPT_STORE_SWEEP,     /* due objects of {p}:drop, leased -> their keys */
    QUEUE_SCRIPT_COUNT
};

/* Jobs kept in the dead set at most (the oldest are trimmed); as many are
 * kept in each of {p}:recent:done and {p}:recent:failed (common.lua). */
#define QUEUE_DEAD_MAX 10000

/* The failure policy arguments (prefix ttl max base cap jitter deadmax) that
 * fail.lua and release.lua take, from the configuration with a fresh random
 * jitter. argv points into the struct. */
struct queue_policy {
    char ttl[24], max[24], base[24], cap[24], jitter[16], deadmax[16];
    const char *argv[7];
};
void queue_policy_args(const struct config *cfg, struct queue_policy *p);

/* The source text and the lowercase hex SHA1 of a script. */
const char *queue_script_source(enum queue_script s);
const char *queue_script_sha(enum queue_script s);

/* Writes "{prefix}:kind" or "{prefix}:kind:id" (id may be NULL) into buf.
 * Returns buf. */
char *queue_key(char *buf, size_t n, const char *prefix, const char *kind, const char *id);

#define QUEUE_KEY_MAX 256

/* Longest worker id: "<node id>:<pid>". */
#define QUEUE_WID_MAX 192

/* Writes the id of the worker (or delivery child) pid of node into buf,
 * "<node>:<pid>": the name of its proc list and its entry in
 * {p}:workers:<node>. Returns buf. */
char *queue_worker_id(char *buf, size_t n, const char *node, pid_t pid);

struct job_record;

/* Adds the name/value pairs of a flat HGETALL-style array reply to rec, from
 * element first on (elements that are not strings are skipped). Returns 0, or
 * -1 when reply is not an array or memory runs out. */
int queue_reply_record(struct job_record *rec, const redisReply *reply, size_t first);

/* Runs a script on a blocking connection: EVALSHA, then EVAL on NOSCRIPT. argv
 * holds the keys then the other arguments, lens their lengths (NULL: strlen).
 * Returns the reply (caller frees with freeReplyObject) or NULL when the
 * connection failed (c->errstr says why). */
redisReply *queue_eval(redisContext *c, enum queue_script s, int nkeys, int nargs,
                       const char **argv, const size_t *lens);

#endif
