/* handlers.h — one function per route of docs/API.md, called by the dispatcher in
 * routes.c with an exchange whose route and method are already checked. Each
 * answers through respond.h, now or from a Redis callback, and ends with
 * exchange_settle. */
#ifndef TH_HTTP_HANDLERS_H
#define TH_HTTP_HANDLERS_H

#include "exchange.h"

#include <hiredis/hiredis.h>

/* A whole request on k (the connection layer's callback, via exchange.c):
 * route, method, then the handler. */
void routes_dispatch(struct http_child *c, struct conn *k);

/* POST /v1/thumbnails (submit.c). */
void submit_handle(struct exchange *h);

/* Stores the job of p with the enqueue script, as every submit route does
 * (submit.c): answers 503 / 500 itself when it cannot send the script, 503
 * when the queue is full or Redis fails; once the job is stored (or a repeat
 * found) answer says what the route answers. body/len are an upload's bytes
 * when upload is true, idem the Idempotency-Key or NULL. The caller settles h. */
void submit_enqueue(struct exchange *h, const struct job_params *p, const unsigned char *body,
                    size_t len, bool upload, const char *idem, submit_answer_fn answer);

/* The original service's API (compat.c): GET /api/health, POST /api/thumb,
 * GET /api/thumb/<id>. */
void compat_health_handle(struct exchange *h);
void compat_submit_handle(struct exchange *h);
void compat_thumb_handle(struct exchange *h);

/* GET|HEAD /v1/thumbnails/<id> (job_get.c). */
void job_get_handle(struct exchange *h);

/* GET /metrics: Prometheus text (metrics.c). */
void metrics_handle(struct exchange *h);

/* DELETE /v1/thumbnails/<id> (job_delete.c). */
void job_delete_handle(struct exchange *h);

/* GET|HEAD /v1/thumbnails/<id>/image and /image/<name> (image.c). */
void image_handle(struct exchange *h);

/* Which encoding of a done job a request asks for (image.c): the output
 * named (NULL: the first), then ?format= when given, else the Accept header
 * among that output's formats (accept.h; the last listed is the fallback). */
struct image_choice {
    int line;              /* its line in the job's res_rend (0 without one) */
    struct job_encoding e; /* that line, when the job has res_rend */
    bool vary;             /* chosen by Accept among several: Vary: Accept */
    char have[256];        /* for errors: the job's names, or the output's formats */
};
enum image_choose_rc { IMAGE_CHOSEN, IMAGE_NO_RENDITION, IMAGE_NO_FORMAT };

/* Chooses by index (res_rend, index_len bytes; NULL or "" for a job without
 * one, whose one encoding is res_mime's). */
enum image_choose_rc image_choose(const char *index, size_t index_len, const char *res_mime,
                                  const char *name, const char *format, const char *accept,
                                  struct image_choice *c);

/* The request's rendition and ?format= into h (name "" for the first, format
 * "" for none). Returns 0, or -1 after answering 404/400. */
int image_request(struct exchange *h, const char **name, char format[16]);

/* GET|HEAD /openapi.json, /docs and /docs/<file>: the API described, and
 * Swagger UI showing it (openapi.c). */
void openapi_handle(struct exchange *h);

/* GET|HEAD /dashboard and /dashboard/<file>: the operator's page (dashboard.c). */
void dashboard_handle(struct exchange *h);

/* The admin API, /v1/admin/... (admin.c): every ROUTE_ADMIN_* route, access
 * already checked (guard_admin). */
void admin_handle(struct exchange *h);

/* What image_read_job asks for of the result. */
enum image_read {
    IMAGE_READ_WHOLE,  /* GET: all of it (compat: it goes into a document) */
    IMAGE_READ_LENGTH, /* STRLEN (HEAD) */
    IMAGE_READ_FIRST,  /* GETRANGE of the first chunk (GET, streamed beyond) */
};

/* Asks Redis, pipelined, for job h->match.id's hash, a PTTL (of the job when
 * ttl_of_job, else of its result) and its result as what says; the three
 * replies go to cb in that order. Returns 0, or -1 after answering 503
 * (replies already asked for still come). */
int image_read_job(struct exchange *h, rasync_cb cb, bool ttl_of_job, enum image_read what);

/* The object store's name for h->rec's result (res_obj: its first key), or
 * NULL for a result kept in Redis. */
const char *image_object_key(const struct exchange *h);

/* Of len bytes read from the start of {p}:res:<id>, those of the job's first
 * encoding (res_bytes): the others follow it. */
size_t image_first_len(const struct exchange *h, size_t len);

/* Fetches h->rec's result from the object store (objects.h), puts it in the
 * shared cache, then calls then. Returns 0, -1 when it could not start (then
 * is not called: answer 503). */
int image_fetch_object(struct exchange *h, image_object_fn then);

/* Answers a Redis failure by its class (rconn.h): no reply -> 503
 * unavailable; a refusal -> 503 with its own code (respond_refused); any other
 * error -> 500 internal (logged). For the first two, a cache entry the route
 * passed over (h->cache_stale, cached.h) answers instead when it still can.
 * what names the operation for the log (reply.c). */
void reply_failed(struct exchange *h, const redisReply *reply, const char *what);

#endif
