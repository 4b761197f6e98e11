/* reply.c — what the handlers share about Redis replies. */
#include "handlers.h"
#include "respond.h"

#include "log.h"
#include "rasync.h"

void reply_failed(struct exchange *h, const redisReply *reply, const char *what) {
    enum rconn_fault f = rconn_classify(reply);
    if (f == RCONN_LOST || f == RCONN_REFUSED) {
        respond_unavailable(h);
        return;
    }
    log_error("%s: redis answered: %s", what,
              reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected reply type");
    respond_error(h, "internal", NULL, 0, "internal error (request id %s)", h->rid);
}
