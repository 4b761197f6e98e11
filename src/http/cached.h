/* cached.h — the http child's use of the shared cache: answer GET of a job or
 * its image from it when it can (X-Cache: hit), keep what it had to read from
 * Redis (X-Cache: miss), and drop what Redis says changed ({prefix}:changed).
 *
 * A finished job's entry is answered only when the child's subscription could
 * have told it of a change since the entry was read: the subscription is in
 * place and was confirmed before that read was sent (jobcache_confirmed with
 * cached_trust_after). Otherwise the route asks Redis, and falls back on the
 * entry only when Redis cannot answer (docs/ARCHITECTURE.md §4.3). */
#ifndef TH_HTTP_CACHED_H
#define TH_HTTP_CACHED_H

#include "exchange.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Answers GET|HEAD /v1/thumbnails/<id> from the cache. Returns true when
 * answered (a hit), false when the caller must ask Redis. */
bool cached_job(struct exchange *h);

/* Like cached_job, but only with an entry of a job that has ended (done,
 * failed, canceled): what a long-poll may answer at once. */
bool cached_job_terminal(struct exchange *h);

/* Answers GET|HEAD /v1/thumbnails/<id>/image (200 or 304) from the cache when
 * it holds the done job with its image. Returns true when answered. */
bool cached_image(struct exchange *h);

/* Keeps job id as read from Redis by a read sent at read_ms (CLOCK_MONOTONIC
 * ms): rec is its hash, ttl_ms what the job (or its result) has left;
 * body/len the image when it was read too (else NULL). A job not yet ended is
 * kept only cache.pending_ttl; nothing is kept when the job changed since
 * read_ms (a {prefix}:changed of it came after). */
void cached_store(struct http_child *c, const char *id, const struct job_record *rec,
                  long long ttl_ms, const void *body, size_t len, int64_t read_ms);

/* Marks a response as answered from Redis (X-Cache: miss). */
/* Keeps the bytes of encoding line (res_rend's, > 0) of done job id, read
 * at read_ms, as an entry of its own ("<id>.<line>", jobcache.h). */
void cached_store_encoding(struct http_child *c, const char *id, const struct job_record *rec,
                           int line, long long ttl_ms, const void *body, size_t len,
                           int64_t read_ms);

void cached_mark_miss(struct exchange *h);

/* A {prefix}:changed message: drops the entry of the job id it carries (len
 * bytes) and keeps any read of it sent before now out of the cache. */
void cached_changed(struct http_child *c, const char *id, size_t len);

/* The moment after which a read sent is one this child would hear the
 * changes of: when its subscription was confirmed, INT64_MAX while it is not
 * in place (jobcache_confirmed's trust_after_ms). */
int64_t cached_trust_after(const struct http_child *c);

/* A route found a finished job's entry that it cannot trust
 * (jobcache_confirmed false): counts it, and when Redis cannot be asked now
 * answers with stale(h) (an answer from the entry, ignoring the rule) and
 * returns what it returned; otherwise keeps stale in h->cache_stale, for
 * reply_failed to use if Redis fails to answer, and returns false: the route
 * reads Redis. */
bool cached_passed_over(struct exchange *h, bool (*stale)(struct exchange *h));

#endif
