/* counters.h — the node's monotonic counters in the segment's header: jobs by
 * outcome, the job-duration histogram, source bytes, child restarts and HTTP
 * requests by route and status. They live as long as the master, whatever
 * happens to the children and their scoreboard slots (docs/ARCHITECTURE.md §4.1). */
#ifndef TH_SHM_COUNTERS_H
#define TH_SHM_COUNTERS_H

#include "jobstats.h"

#include <stdatomic.h>
#include <stdint.h>

/* How an attempt of a job ended, as the worker's store said. */
enum shm_job_outcome {
    SHM_JOB_DONE,    /* completed */
    SHM_JOB_FAILED,  /* failed for good (dead set included) */
    SHM_JOB_RETRIED, /* failed, a retry scheduled */
    SHM_JOB_STALE,   /* dropped: canceled, deleted or taken over while it ran */
    SHM_JOB_OUTCOMES
};

/* Where a worker's source came from. */
enum shm_source { SHM_SOURCE_URL, SHM_SOURCE_UPLOAD, SHM_SOURCES };

#define SHM_JOB_BUCKETS (JOBSTATS_NBOUNDS + 1) /* the bounds, then +Inf */
#define SHM_ROUTES_MAX  32                     /* room for route.h's ROUTE_COUNT */
#define SHM_STATUSES    28                     /* shm_counters_status_code's set, then "other" */
#define SHM_CHILD_KINDS 4                      /* enum shm_slot_kind (segment.h) */

struct shm_counters {
    _Atomic uint64_t jobs[SHM_JOB_OUTCOMES];
    _Atomic uint64_t job_buckets[SHM_JOB_BUCKETS]; /* per bucket, not cumulative */
    _Atomic uint64_t job_ms_sum;                   /* milliseconds of every attempt counted */
    _Atomic uint64_t source_bytes[SHM_SOURCES];
    _Atomic uint64_t restarts[SHM_CHILD_KINDS]; /* by enum shm_slot_kind */
    _Atomic uint64_t http[SHM_ROUTES_MAX][SHM_STATUSES];
};

/* The outcome's label ("done", "failed", "retried", "stale"); "" out of range. */
const char *shm_job_outcome_name(enum shm_job_outcome o);

/* The source's label ("url", "upload"); "" out of range. */
const char *shm_source_name(enum shm_source s);

/* The histogram bucket of an attempt of ms milliseconds: the first bound of
 * JOBSTATS_BOUNDS_MS it is not above, JOBSTATS_NBOUNDS (+Inf) past the last. */
int shm_counters_bucket(int64_t ms);

/* The upper bound of bucket i in milliseconds, -1 for +Inf (or out of range). */
int64_t shm_counters_bound_ms(int i);

/* Counts one attempt of a job: its outcome and, in the histogram, its run time. */
void shm_counters_job(struct shm_counters *c, enum shm_job_outcome o, int64_t ms);

/* The index of an HTTP status in the fixed set, SHM_STATUSES - 1 ("other")
 * for any status outside it. */
int shm_counters_status_index(int status);

/* The status code of index i, 0 for "other" (or out of range). */
int shm_counters_status_code(int i);

/* Counts one answered request of route (route.h's enum route_id) with status;
 * a route beyond SHM_ROUTES_MAX is not counted. */
void shm_counters_http(struct shm_counters *c, int route, int status);

#endif
