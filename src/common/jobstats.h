/* jobstats.h — the job-duration buckets that the Prometheus histogram of
 * /metrics (per node) and the per-minute figures in Redis (fleet-wide, the
 * admin overview's p50 and p95) both count in, so the two agree. */
#ifndef TH_COMMON_JOBSTATS_H
#define TH_COMMON_JOBSTATS_H

/* Upper bounds in milliseconds of a job attempt's run time, ascending; a
 * last bucket, +Inf, follows them. */
#define JOBSTATS_BOUNDS_MS                                                                         \
    { 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000 }
#define JOBSTATS_NBOUNDS 12

#endif
