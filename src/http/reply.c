/* reply.c — what the handlers share about Redis replies. */
#include "handlers.h"
#include "respond.h"

#include "log.h"
#include "rasync.h"

void reply_failed(struct exchange *h, const redisReply *reply, const char *what) {
    enum rconn_reason reason = rconn_reason_of(reply);
    bool (*stale)(struct exchange *) = h->cache_stale;
    h->cache_stale = NULL;
    /* Redis cannot answer: a cache entry passed over for want of a
     * confirmation is better than a 503 (cached.h). */
    if (rconn_fault_of(reason) != RCONN_ERROR && stale && stale(h))
        return;
    switch (rconn_fault_of(reason)) {
    case RCONN_LOST:
        respond_unavailable(h);
        return;
    case RCONN_REFUSED:
        respond_refused(h, reason);
        return;
    default:
        break;
    }
    log_error("%s: redis answered: %s", what,
              reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected reply type");
    respond_error(h, "internal", NULL, 0, "internal error (request id %s)", h->rid);
}
