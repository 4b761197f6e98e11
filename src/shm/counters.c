/* counters.c — the node's monotonic counters in the segment header (counters.h). */
#include "counters.h"

#include <stddef.h>

static const int64_t bounds_ms[JOBSTATS_NBOUNDS] = JOBSTATS_BOUNDS_MS;

/* The statuses counted on their own; the rest are "other". */
static const int statuses[SHM_STATUSES - 1] = {200, 201, 202, 204, 206, 301, 302, 304, 400,
                                               401, 403, 404, 405, 408, 409, 410, 411, 412,
                                               413, 415, 416, 417, 422, 429, 500, 501, 503};

_Static_assert(sizeof(statuses) / sizeof(statuses[0]) == SHM_STATUSES - 1,
               "SHM_STATUSES is the set plus other");

const char *shm_job_outcome_name(enum shm_job_outcome o) {
    static const char *const names[SHM_JOB_OUTCOMES] = {[SHM_JOB_DONE] = "done",
                                                        [SHM_JOB_FAILED] = "failed",
                                                        [SHM_JOB_RETRIED] = "retried",
                                                        [SHM_JOB_STALE] = "stale"};
    return (unsigned)o < SHM_JOB_OUTCOMES ? names[o] : "";
}

const char *shm_source_name(enum shm_source s) {
    static const char *const names[SHM_SOURCES] = {
        [SHM_SOURCE_URL] = "url", [SHM_SOURCE_UPLOAD] = "upload"};
    return (unsigned)s < SHM_SOURCES ? names[s] : "";
}

int shm_counters_bucket(int64_t ms) {
    int i = 0;
    while (i < JOBSTATS_NBOUNDS && ms > bounds_ms[i])
        i++;
    return i;
}

int64_t shm_counters_bound_ms(int i) {
    return i >= 0 && i < JOBSTATS_NBOUNDS ? bounds_ms[i] : -1;
}

void shm_counters_job(struct shm_counters *c, enum shm_job_outcome o, int64_t ms) {
    if ((unsigned)o >= SHM_JOB_OUTCOMES)
        return;
    if (ms < 0)
        ms = 0;
    atomic_fetch_add(&c->jobs[o], 1);
    atomic_fetch_add(&c->job_ms_sum, (uint64_t)ms);
    atomic_fetch_add(&c->job_buckets[shm_counters_bucket(ms)], 1);
}

int shm_counters_status_index(int status) {
    for (int i = 0; i < SHM_STATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return SHM_STATUSES - 1;
}

int shm_counters_status_code(int i) {
    return i >= 0 && i < SHM_STATUSES - 1 ? statuses[i] : 0;
}

void shm_counters_http(struct shm_counters *c, int route, int status) {
    if (route < 0 || route >= SHM_ROUTES_MAX)
        return;
    atomic_fetch_add(&c->http[route][shm_counters_status_index(status)], 1);
}
