/* cached.h — the http child's use of the shared cache: answer GET of a job or
 * its image from it when it can (X-Cache: hit), and keep what it had to read
 * from Redis (X-Cache: miss). */
#ifndef TH_HTTP_CACHED_H
#define TH_HTTP_CACHED_H

#include "exchange.h"

#include <stdbool.h>
#include <stddef.h>

/* Answers GET|HEAD /v1/thumbnails/<id> from the cache. Returns true when
 * answered (a hit), false when the caller must ask Redis. */
bool cached_job(struct exchange *h);

/* Like cached_job, but only with an entry of a job that has ended (done,
 * failed, canceled): what a long-poll may answer at once. */
bool cached_job_terminal(struct exchange *h);

/* Answers GET|HEAD /v1/thumbnails/<id>/image (200 or 304) from the cache when
 * it holds the done job with its image. Returns true when answered. */
bool cached_image(struct exchange *h);

/* Keeps job id as read from Redis: rec is its hash, ttl_ms what the job (or
 * its result) has left; body/len the image when it was read too (else NULL).
 * A job not yet ended is kept only cache.pending_ttl. */
void cached_store(struct http_child *c, const char *id, const struct job_record *rec,
                  long long ttl_ms, const void *body, size_t len);

/* Marks a response as answered from Redis (X-Cache: miss). */
void cached_mark_miss(struct exchange *h);

#endif
