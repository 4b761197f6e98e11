/* job_get.c — GET /v1/thumbnails/<id>: the job document, from the shared cache
 * when it has it, else from the job hash (HGETALL and PTTL, pipelined), which
 * is then cached. With ?wait=N (long-poll, longpoll.c) the request is held
 * until the job ends: a terminal cache entry answers at once; otherwise the
 * request registers as a waiter first, then reads Redis, and reads again on
 * each completion of the job (never a pending cache entry, which may be
 * stale), until the job has ended or the time is up. */
#include "cached.h"
#include "guard.h"
#include "handlers.h"
#include "longpoll.h"
#include "request.h"
#include "respond.h"

#include "id.h"
#include "units.h"

#include <event2/http.h>

enum step { STEP_FIELDS, STEP_TTL };

static void on_reply(redisReply *reply, void *arg);

/* Reads the job from Redis. A waiting h that cannot send stays waiting (and
 * reads again soon); any other answers 503. */
static void read_job(struct exchange *h) {
    struct http_child *c = h->child;
    const char *hgetall[] = {"HGETALL", h->key_job};
    const char *pttl[] = {"PTTL", h->key_job};
    job_record_free(&h->rec);
    h->step = STEP_FIELDS;
    h->op = (struct rasync_op){.cb = on_reply, .arg = h};
    h->read_ms = units_mono_ms();
    if (rasync_command(c->redis, &h->op, 2, hgetall, NULL) < 0) {
        if (h->held)
            longpoll_read_failed(h);
        else
            respond_unavailable(h);
        return;
    }
    exchange_redis_sent(h);
    if (rasync_command(c->redis, &h->op, 2, pttl, NULL) == 0)
        exchange_redis_sent(h);
}

/* The answer without waiting: the cache, else Redis. */
static void answer_now(struct exchange *h) {
    if (!cached_job(h))
        read_job(h);
}

static void answer_record(struct exchange *h) {
    json_t *doc = job_document(h->match.id, &h->rec);
    cached_mark_miss(h);
    respond_json(h, 200, doc);
    json_decref(doc);
}

/* Whether the job's fields in reply (an HGETALL) are those of a job that has
 * not ended; keeps them in h->rec. */
static bool still_pending(struct exchange *h, const redisReply *reply) {
    if (reply->elements == 0 || queue_reply_record(&h->rec, reply, 0) < 0)
        return false;
    const char *state = job_record_get(&h->rec, "state");
    return state && !job_state_is_terminal(state);
}

/* A read is over (no reply to come) and did not answer. */
static void read_finished(struct exchange *h) {
    if (h->conn == NULL || h->replied)
        return;
    if (h->held)
        longpoll_read_done(h);
    else if (h->rec.count) /* the wait ended during the read: its state is current */
        answer_record(h);
    else
        answer_now(h);
}

static void on_reply(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    enum step step = (enum step)h->step++;
    bool live = exchange_redis_received(h);
    if (step == STEP_TTL) {
        /* Answered from the first reply; the TTL only decides how long to cache. */
        if (reply && reply->type == REDIS_REPLY_INTEGER && h->rec.count)
            cached_store(h->child, h->match.id, &h->rec, reply->integer, NULL, 0, h->read_ms);
        goto out;
    }
    if (!live)
        goto out;
    bool array = reply && reply->type == REDIS_REPLY_ARRAY;
    if (h->held) {
        if (!array && rconn_classify(reply) != RCONN_ERROR) {
            longpoll_read_failed(h); /* Redis is away: keep waiting, read again soon */
            goto out;
        }
        if (array && guard_allows_reply(h, reply) && still_pending(h, reply))
            goto out;
        longpoll_end(h); /* ended, unknown, or a real error: answer now */
    }
    if (!array) {
        reply_failed(h, reply, "job read");
        goto out;
    }
    if (reply->elements == 0 || !guard_allows_reply(h, reply)) {
        respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
        goto out;
    }
    if (h->rec.count == 0 && queue_reply_record(&h->rec, reply, 0) < 0) {
        respond_json(h, 200, NULL);
        goto out;
    }
    answer_record(h);
out:
    if (h->redis_pending == 0)
        read_finished(h);
    exchange_settle(h);
}

/* longpoll.c's call: read again (final false; only with no read in flight), or
 * answer the current state (final true; h no longer waits). */
static void wait_check(struct exchange *h, bool final) {
    if (h->conn == NULL || h->replied || h->redis_pending > 0)
        return; /* the read in flight answers when it ends (read_finished) */
    if (final)
        answer_now(h);
    else
        read_job(h);
}

void job_get_handle(struct exchange *h) {
    struct http_child *c = h->child;
    const char *query = exchange_query(h);
    int wait;
    if (request_wait_seconds(query, LONGPOLL_MAX_S, &wait) < 0) {
        respond_error(h, "invalid_param", "wait", 0,
                      "wait must be a whole number of seconds from 0 to %d", LONGPOLL_MAX_S);
        goto out;
    }
    if (!id_is_valid(h->match.id)) {
        respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
        goto out;
    }
    queue_key(h->key_job, sizeof(h->key_job), c->cfg->redis_key_prefix, "job", h->match.id);
    if (wait > 0 && !c->stopping) {
        if (cached_job_terminal(h))
            goto out;
        if (longpoll_begin(h, wait, wait_check) == 0) {
            read_job(h); /* after registering: a completion from now on is not missed */
            goto out;
        }
    }
    answer_now(h);
out:
    exchange_settle(h);
}
