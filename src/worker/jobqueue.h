/* jobqueue.h — the worker's side of the Redis queue (docs/ARCHITECTURE.md §3, §5):
 * one blocking connection (rconn.h), and the take / start /
 * complete / fail steps of a job. */
#ifndef TH_JOBQUEUE_H
#define TH_JOBQUEUE_H

#include "config.h"
#include "job.h"
#include "queue.h"
#include "rconn.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#define JOBQUEUE_ID_MAX     64
#define JOBQUEUE_TOKEN_LEN  32 /* hex digits of a fencing token */
#define JOBQUEUE_FIELDS_MAX 20 /* name/value pairs one complete or fail may write */

struct jobqueue {
    const struct config *cfg;
    struct rconn redis;
    char wid[QUEUE_WID_MAX];
    char k_ready[QUEUE_KEY_MAX];
    char k_proc[QUEUE_KEY_MAX];
    char k_workers[QUEUE_KEY_MAX];
    /* The token of the job last started, so a start whose reply was lost can
     * be picked up. */
    char resume_token[JOBQUEUE_TOKEN_LEN + 1];
    /* Whether a job of this worker may be in its proc list: from a take until
     * that job's outcome is stored. Only then does a take look there first. */
    bool unsettled;
};

/* Prepares q for worker wid ("<node_id>:<pid>") without connecting. Returns 0,
 * or -1 when cfg's Redis address cannot be used (logged). */
int jobqueue_init(struct jobqueue *q, const struct config *cfg, const char *node_id,
                  const char *wid);

/* Closes the connection. */
void jobqueue_close(struct jobqueue *q);

/* Makes sure q is connected and the worker registered in {p}:workers:<node>,
 * waiting out rconn's backoff between attempts. Returns 0 when connected, -1
 * as soon as *stop is set. */
int jobqueue_connect(struct jobqueue *q, volatile sig_atomic_t *stop);

/* The next job, started with a new fencing token: the one left in this
 * worker's proc list by an earlier Redis error (picked up as it was when its
 * start's reply was lost), else the head of ready, moved and started in one
 * round trip (take.lua), else what BLMOVE brings within 1 s (then start.lua).
 * Canceled or deleted jobs are passed over. Returns 1 with id, token and rec
 * (the job's hash; free it with job_record_free), 0 when none came, -1 on a
 * Redis error (the connection is dropped). */
int jobqueue_take(struct jobqueue *q, char id[JOBQUEUE_ID_MAX], char token[JOBQUEUE_TOKEN_LEN + 1],
                  struct job_record *rec);

/* The uploaded bytes of job id into *bytes (a STRING reply; free it with
 * freeReplyObject). Returns 1, 0 when the key is missing, -1 on a Redis error. */
int jobqueue_source(struct jobqueue *q, const char *id, redisReply **bytes);

/* What an attempt cost, counted in the per-minute figures of the admin
 * overview ({p}:stats:<minute>): its run time, and the source bytes it
 * fetched (0 for none: an upload, or a fetch that failed). */
struct jobqueue_attempt {
    long long ms;
    long long fetched;
};

/* Stores the result (QUEUE_SCRIPT_COMPLETE): len bytes, then nfields (at most
 * JOBQUEUE_FIELDS_MAX) name/value pairs for the job hash; a counts the
 * attempt. Returns 1 when stored, 0 when the token no longer matches (the job
 * was reaped), -1 on a Redis error (the job stays in the proc list). With now,
 * when stored: the job's hash as the script left it into now (empty when
 * unreadable; free with job_record_free) and its milliseconds left into
 * *ttl_ms, as jobqueue_read would read them, without another round trip. */
int jobqueue_complete(struct jobqueue *q, const char *id, const char *token, const void *bytes,
                      size_t len, const struct jobqueue_attempt *a, const char *const *fields,
                      size_t nfields, struct job_record *now, long long *ttl_ms);

/* Records a failure (QUEUE_SCRIPT_FAIL) with code, message and nfields name/value pairs:
 * a transient one is retried later while attempts remain (worker.max_attempts,
 * backoff from worker.retry_delay), else the job fails (a transient one into
 * the dead set); a counts the attempt. Returns 1 failed, 2 retry scheduled, 3
 * dead, 0 stale (the token no longer matches), -1 on a Redis error (the job
 * stays in the proc list). */
int jobqueue_fail(struct jobqueue *q, const char *id, const char *token, const char *code,
                  const char *message, bool transient, const struct jobqueue_attempt *a,
                  const char *const *fields, size_t nfields);

/* Reads job id back: its hash into rec (free with job_record_free) and the
 * milliseconds it has left (-1 without expiry). Returns 1, 0 when it is gone,
 * -1 on a Redis error. */
int jobqueue_read(struct jobqueue *q, const char *id, struct job_record *rec, long long *ttl_ms);

/* storage.backend = s3: at most limit objects of {p}:drop that are due, each
 * leased for lease_ms (QUEUE_SCRIPT_STORE_SWEEP), into *keys (*n of them;
 * free each and the array). Returns 0, -1 on a Redis error. */
int jobqueue_sweep(struct jobqueue *q, long lease_ms, const char *limit, char ***keys, size_t *n);

/* Takes the n objects deleted off {p}:drop (best effort: one left there is
 * deleted again once its lease ends). */
void jobqueue_swept(struct jobqueue *q, const char *const *keys, size_t n);

/* Removes this worker from {p}:workers:<node> (clean exit; best effort). */
void jobqueue_unregister(struct jobqueue *q);

#endif
