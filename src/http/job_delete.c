/* job_delete.c — DELETE /v1/thumbnails/<id>: cancel a queued or running job,
 * or delete a finished one and its result (one script, QUEUE_SCRIPT_DELETE). */
#include "handlers.h"
#include "respond.h"

#include "cache.h"
#include "id.h"
#include "units.h"

#include <stdio.h>

static void on_deleted(redisReply *reply, void *arg) {
    struct exchange *h = arg;
    bool live = exchange_redis_received(h);
    /* Whatever this node kept of it, at once (the script's {p}:changed tells
     * every node, this one too, a moment later). */
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 && h->child->cache)
        shm_cache_invalidate(h->child->cache, h->match.id, units_mono_ms());
    if (!live)
        goto out;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        reply_failed(h, reply, "job delete");
        goto out;
    }
    if (reply->integer == 0) {
        respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
        goto out;
    }
    exchange_send(h, 204);
out:
    exchange_settle(h);
}

void job_delete_handle(struct exchange *h) {
    struct http_child *c = h->child;
    const char *prefix = c->cfg->redis_key_prefix;
    if (!id_is_valid(h->match.id)) {
        respond_error(h, "not_found", NULL, 0, "no job with this id (unknown or expired)");
        goto out;
    }
    queue_key(h->key_job, sizeof(h->key_job), prefix, "job", h->match.id);
    queue_key(h->key_res, sizeof(h->key_res), prefix, "res", h->match.id);
    queue_key(h->key_src, sizeof(h->key_src), prefix, "src", h->match.id);
    snprintf(h->failure_ttl, sizeof(h->failure_ttl), "%lld", (long long)c->cfg->redis_failure_ttl);
    h->argv[0] = h->key_job;
    h->argv[1] = h->key_res;
    h->argv[2] = h->key_src;
    h->argv[3] = c->key_ready;
    h->argv[4] = c->key_delayed;
    h->argv[5] = h->match.id;
    h->argv[6] = h->failure_ttl;
    h->argv[7] = prefix;
    h->argv[8] = h->owner; /* another key's job is not ours to delete: 404 */
    h->op = (struct rasync_op){.cb = on_deleted,
                               .arg = h,
                               .script = QUEUE_SCRIPT_DELETE,
                               .nkeys = 5,
                               .nargs = 4,
                               .argv = h->argv,
                               .lens = NULL};
    if (rasync_script(c->redis, &h->op) < 0) {
        respond_unavailable(h);
        goto out;
    }
    exchange_redis_sent(h);
out:
    exchange_settle(h);
}
