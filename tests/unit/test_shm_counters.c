/* test_shm_counters.c — the node's counters: histogram buckets over
 * jobstats.h's bounds, outcomes, the fixed status set, routes out of range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "counters.h"

#include <string.h>

static void test_buckets(void **state) {
    (void)state;
    static const int64_t bounds[JOBSTATS_NBOUNDS] = JOBSTATS_BOUNDS_MS;
    assert_int_equal(shm_counters_bucket(0), 0);
    assert_int_equal(shm_counters_bucket(-5), 0);
    for (int i = 0; i < JOBSTATS_NBOUNDS; i++) {
        /* A bound is an upper bound, inclusive (Prometheus' le). */
        assert_int_equal(shm_counters_bucket(bounds[i]), i);
        assert_int_equal(shm_counters_bucket(bounds[i] + 1), i + 1);
        assert_int_equal(shm_counters_bound_ms(i), bounds[i]);
    }
    assert_int_equal(shm_counters_bucket(INT64_MAX), JOBSTATS_NBOUNDS);
    assert_int_equal(shm_counters_bound_ms(JOBSTATS_NBOUNDS), -1);
    assert_int_equal(shm_counters_bound_ms(-1), -1);
}

static void test_jobs(void **state) {
    (void)state;
    static struct shm_counters c;
    memset(&c, 0, sizeof(c));
    shm_counters_job(&c, SHM_JOB_DONE, 7);
    shm_counters_job(&c, SHM_JOB_DONE, 70000);
    shm_counters_job(&c, SHM_JOB_RETRIED, 100);
    shm_counters_job(&c, SHM_JOB_OUTCOMES, 100); /* not an outcome: not counted */
    assert_int_equal(c.jobs[SHM_JOB_DONE], 2);
    assert_int_equal(c.jobs[SHM_JOB_RETRIED], 1);
    assert_int_equal(c.jobs[SHM_JOB_FAILED], 0);
    assert_int_equal(c.job_ms_sum, 70107);
    assert_int_equal(c.job_buckets[0], 1);
    assert_int_equal(c.job_buckets[shm_counters_bucket(100)], 1);
    assert_int_equal(c.job_buckets[JOBSTATS_NBOUNDS], 1);
    assert_string_equal(shm_job_outcome_name(SHM_JOB_DONE), "done");
    assert_string_equal(shm_job_outcome_name(SHM_JOB_FAILED), "failed");
    assert_string_equal(shm_job_outcome_name(SHM_JOB_RETRIED), "retried");
    assert_string_equal(shm_job_outcome_name(SHM_JOB_STALE), "stale");
    assert_string_equal(shm_job_outcome_name(SHM_JOB_OUTCOMES), "");
    assert_string_equal(shm_source_name(SHM_SOURCE_URL), "url");
    assert_string_equal(shm_source_name(SHM_SOURCE_UPLOAD), "upload");
}

static void test_statuses(void **state) {
    (void)state;
    static const int known[] = {200, 202, 204, 304, 400, 401, 403, 404, 405,
                                408, 409, 413, 415, 417, 429, 500, 501, 503};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        int idx = shm_counters_status_index(known[i]);
        assert_true(idx < SHM_STATUSES - 1);
        assert_int_equal(shm_counters_status_code(idx), known[i]);
    }
    assert_int_equal(shm_counters_status_index(418), SHM_STATUSES - 1);
    assert_int_equal(shm_counters_status_index(0), SHM_STATUSES - 1);
    assert_int_equal(shm_counters_status_code(SHM_STATUSES - 1), 0);
    /* Every index names a distinct code. */
    for (int i = 0; i < SHM_STATUSES - 1; i++)
        assert_int_equal(shm_counters_status_index(shm_counters_status_code(i)), i);
}

static void test_http(void **state) {
    (void)state;
    static struct shm_counters c;
    memset(&c, 0, sizeof(c));
    shm_counters_http(&c, 3, 202);
    shm_counters_http(&c, 3, 202);
    shm_counters_http(&c, 3, 418);
    shm_counters_http(&c, SHM_ROUTES_MAX, 200); /* out of range: dropped */
    shm_counters_http(&c, -1, 200);
    assert_int_equal(c.http[3][shm_counters_status_index(202)], 2);
    assert_int_equal(c.http[3][SHM_STATUSES - 1], 1);
    uint64_t total = 0;
    for (int r = 0; r < SHM_ROUTES_MAX; r++)
        for (int s = 0; s < SHM_STATUSES; s++)
            total += c.http[r][s];
    assert_int_equal(total, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
