/* jobcache.h — what the shared cache holds for a job: a fixed head (state, the
 * image's type and ETag, lengths), the job document as served (compact JSON),
 * and, once done, its encodings' index (job.h's res_rend) and the first
 * encoding's bytes; a done job's other encodings are entries of their own,
 * "<id>.<line>", answered only beside the job's entry (whose invalidation
 * thus covers them) and when their ETag is the one the index names. Workers store a job when it
 * ends; http children store what they had to read from Redis, and answer from it. */
#ifndef TH_SHM_JOBCACHE_H
#define TH_SHM_JOBCACHE_H

#include "cache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOBCACHE_MAGIC 0x6a636834u /* "jch4" */

/* The owner of a job: hex of 128 bits of an API key's SHA-256, "" for none. */
#define JOBCACHE_OWNER_LEN 32

struct jobcache_head {
    uint32_t magic;
    uint32_t doc_len;
    uint32_t body_len;  /* 0 without the image */
    uint32_t index_len; /* the encodings' index after the document, 0 for none */
    uint8_t terminal;   /* done, failed or canceled: the document no longer changes */
    uint8_t done;
    uint8_t has_body;
    uint8_t pad;
    int64_t read_ms; /* CLOCK_MONOTONIC ms at which the Redis read this entry holds was sent */
    char mime[48];
    char etag[48];
    char owner[JOBCACHE_OWNER_LEN + 1]; /* the job's owner, "" for none */
};

/* Stores job id of owner ("" or NULL for none): doc (doc_len bytes of JSON),
 * index (res_rend, NUL-terminated; NULL for none) and, when body is not NULL,
 * the image. state is the job's status; mime and
 * etag may be NULL. expires_ms is absolute (CLOCK_MONOTONIC ms, units_mono_ms);
 * read_ms is when the Redis read that gave doc was sent (same clock). The
 * cache copies everything. Returns 0; 1 when the job changed since read_ms
 * (shm_cache_invalidate of id at or after it: nothing is stored, the entry
 * would be stale); -1 when the entry does not fit (nothing is stored). Callers
 * go on without the entry either way. */
int jobcache_put(struct shm_cache *c, const char *id, const char *owner, const char *state,
                 const char *doc, size_t doc_len, const char *index, const char *mime,
                 const char *etag, const void *body, size_t body_len, int64_t expires_ms,
                 int64_t read_ms);

/* The key of the entry of encoding line (> 0) of job id: "<id>.<line>". */
void jobcache_encoding_key(char key[SHM_CACHE_KEY_MAX + 1], const char *id, int line);

/* The index of an entry (head and doc as a jobcache_copy_fn gets them):
 * head->index_len bytes, not NUL-terminated; NULL when it has none. */
const char *jobcache_index(const struct jobcache_head *head, const char *doc);

/* Whether an entry may be answered by a reader whose change notices are
 * complete only for reads sent after trust_after_ms (CLOCK_MONOTONIC ms;
 * INT64_MAX: none are, INT64_MIN: all are): an entry of a job not ended
 * always (it lives cache.pending_ttl only), a terminal one when its read_ms is
 * later than trust_after_ms. */
bool jobcache_confirmed(const struct jobcache_head *head, int64_t trust_after_ms);

/* Called under the shard lock with the entry's parts: it may only copy
 * (no I/O, no locks, no logging). doc and body point into the entry and are
 * valid only during the call; body is NULL without the image. */
typedef void (*jobcache_copy_fn)(const struct jobcache_head *head, const char *doc,
                                 const void *body, int64_t expires_ms, void *arg);

/* Looks up job id for a client of owner ("" or NULL: the entry's owner is not
 * checked). On a hit calls fn and returns true; a miss, an expired entry, one
 * that is not a job entry or a job of another owner returns false. */
bool jobcache_get(struct shm_cache *c, const char *id, const char *owner, int64_t now_ms,
                  jobcache_copy_fn fn, void *arg);

#endif
