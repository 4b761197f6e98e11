/* job_get.c — GET /v1/thumbnails/<id>: the job document, from the shared cache
 * when it has it, else from the job hash (HGETALL and PTTL, pipelined), which
 * is then cached. */
#include "cached.h"
#include "handlers.h"
#include "respond.h"

#include "id.h"

#define RETRY_AFTER_UNAVAILABLE 1

enum step { STEP_FIELDS, STEP_TTL };

static void on_reply(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    enum step step = (enum step)h->step++;
    bool live = exchange_redis_received(h);
    if (step == STEP_TTL) {
        /* Answered from the first reply; the TTL only decides how long to cache. */
        if (reply && reply->type == REDIS_REPLY_INTEGER && h->rec.count)
            cached_store(h->child, h->match.id, &h->rec, reply->integer, NULL, 0);
        goto out;
    }
    if (!live)
        goto out;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        reply_failed(h, reply, "job read");
        goto out;
    }
    if (reply->elements == 0) {
        respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
        goto out;
    }
    json_t *doc = NULL;
    if (reply_to_record(&h->rec, reply, 0) == 0)
        doc = job_document(h->match.id, &h->rec);
    cached_mark_miss(h);
    respond_json(h, 200, doc);
    json_decref(doc);
out:
    exchange_settle(h);
}

void job_get_handle(struct exchange *h) {
    struct http_child *c = h->child;
    if (!id_is_valid(h->match.id)) {
        respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
        goto out;
    }
    if (cached_job(h))
        goto out;
    queue_key(h->key_job, sizeof(h->key_job), c->cfg->redis_key_prefix, "job", h->match.id);
    const char *hgetall[] = {"HGETALL", h->key_job};
    const char *pttl[] = {"PTTL", h->key_job};
    h->op = (struct rasync_op){.cb = on_reply, .arg = h};
    if (rasync_command(c->redis, &h->op, 2, hgetall, NULL) < 0) {
        respond_error(h, "unavailable", NULL, RETRY_AFTER_UNAVAILABLE,
                      "the job store is unavailable; try again shortly");
        goto out;
    }
    exchange_redis_sent(h);
    if (rasync_command(c->redis, &h->op, 2, pttl, NULL) == 0)
        exchange_redis_sent(h);
out:
    exchange_settle(h);
}
