/* reply.c — what the handlers share about Redis replies. */
#include "handlers.h"
#include "respond.h"

#include "log.h"
#include "redis_async.h"

#define RETRY_AFTER_UNAVAILABLE 1

void reply_failed(struct exchange *h, const redisReply *reply, const char *what) {
    if (reply == NULL || rasync_error_is_transient(reply)) {
        respond_error(h, "unavailable", NULL, RETRY_AFTER_UNAVAILABLE,
                      "the job store is unavailable; try again shortly");
        return;
    }
    log_error("%s: redis answered: %s", what,
              reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected reply type");
    respond_error(h, "internal", NULL, 0, "internal error (request id %s)", h->rid);
}
