/* job_get.c — GET /v1/thumbnails/<id>: the job document from the job hash. */
#include "handlers.h"
#include "respond.h"

#include "id.h"

#define RETRY_AFTER_UNAVAILABLE 1

static void on_job(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    if (!exchange_redis_received(h))
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
    queue_key(h->key_job, sizeof(h->key_job), c->cfg->redis_key_prefix, "job", h->match.id);
    const char *argv[] = {"HGETALL", h->key_job};
    h->op = (struct rasync_op){.cb = on_job, .arg = h};
    if (rasync_command(c->redis, &h->op, 2, argv, NULL) < 0) {
        respond_error(h, "unavailable", NULL, RETRY_AFTER_UNAVAILABLE,
                      "the job store is unavailable; try again shortly");
        goto out;
    }
    exchange_redis_sent(h);
out:
    exchange_settle(h);
}
