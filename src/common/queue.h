/* queue.h — Redis key names and the Lua scripts that make every job state change
 * atomic (DESIGN.md §2). Scripts run by EVALSHA; their SHA1 is computed here,
 * so a NOSCRIPT reply is answered by sending the source once with EVAL. */
#ifndef TH_QUEUE_H
#define TH_QUEUE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

enum queue_script {
    QS_ENQUEUE,  /* KEYS job ready delayed src; ARGV id max_queue bytes has_bytes fields...
                    -> {"ok", created_ms} | {"full", depth} */
    QS_START,    /* KEYS job proc; ARGV id token -> HGETALL of the job | nil (skip it) */
    QS_COMPLETE, /* KEYS job res proc src; ARGV id token ttl_ms bytes fields... -> 1 | 0 (stale) */
    QS_FAIL,     /* KEYS job proc src; ARGV id token ttl_ms code message fields... -> 1 | 0 */
    QS_DELETE,   /* KEYS job res src ready; ARGV id ttl_ms -> 1 | 0 (no such job): a queued
                    or processing job becomes canceled (its token cleared, so a worker's
                    late completion changes nothing); a terminal one is deleted */
    QS_RELEASE,  /* KEYS proc ready workers; ARGV prefix mode code message ttl_ms wid -> jobs
                    released: the jobs a gone worker held go back to the front of ready
                    (mode "requeue") or fail with code (mode "fail"); a job it took but
                    had not started is always requeued */
    QS_COUNT
};

/* The source text and the lowercase hex SHA1 of a script. */
const char *queue_script_source(enum queue_script s);
const char *queue_script_sha(enum queue_script s);

/* Writes "{prefix}:kind" or "{prefix}:kind:id" (id may be NULL) into buf.
 * Returns buf. */
char *queue_key(char *buf, size_t n, const char *prefix, const char *kind, const char *id);

#define QUEUE_KEY_MAX 256

/* Runs a script on a blocking connection: EVALSHA, then EVAL on NOSCRIPT. argv
 * holds the keys then the other arguments, lens their lengths (NULL: strlen).
 * Returns the reply (caller frees with freeReplyObject) or NULL when the
 * connection failed (c->errstr says why). */
redisReply *queue_eval(redisContext *c, enum queue_script s, int nkeys, int nargs,
                       const char **argv, const size_t *lens);

#endif
