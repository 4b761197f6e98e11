/* test_deliver.c — the delivery policy: the retry schedule, Retry-After, and
 * the e-mail envelope. (The deliveries themselves are tested end to end in
 * tests/integration/test_deliveries.py.) */
#include "deliver.h"
#include "mail.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void schedule_parses(void **state) {
    (void)state;
    int64_t d[DELIVER_SCHEDULE_MAX];
    assert_int_equal(deliver_schedule_parse("5s 5m 30m 2h 5h 10h", d, DELIVER_SCHEDULE_MAX), 6);
    assert_int_equal(d[0], 5000);
    assert_int_equal(d[1], 300000);
    assert_int_equal(d[5], 36000000);
    assert_int_equal(deliver_schedule_parse("  200ms\t1s ", d, DELIVER_SCHEDULE_MAX), 2);
    assert_int_equal(d[0], 200);
    assert_int_equal(deliver_schedule_parse("", d, DELIVER_SCHEDULE_MAX), 0);
    assert_int_equal(deliver_schedule_parse("5s soon", d, DELIVER_SCHEDULE_MAX), -1);
    assert_int_equal(deliver_schedule_parse("1s 2s 3s", d, 2), -1);
}

static void retries_follow_the_schedule(void **state) {
    (void)state;
    const int64_t sched[] = {1000, 60000};
    int64_t delay = -1;
    /* Attempt 1 failed: the first delay, jitter within [0.8, 1.2). */
    assert_int_equal(deliver_next(1, sched, 2, 0, 0.0, &delay), DELIVER_RETRY);
    assert_int_equal(delay, 800);
    assert_int_equal(deliver_next(1, sched, 2, 0, 0.9999, &delay), DELIVER_RETRY);
    assert_true(delay >= 1199 && delay < 1200);
    assert_int_equal(deliver_next(2, sched, 2, 0, 0.5, &delay), DELIVER_RETRY);
    assert_int_equal(delay, 60000);
    /* Attempt 3 failed: no delay left, given up. */
    assert_int_equal(deliver_next(3, sched, 2, 0, 0.5, &delay), DELIVER_FAILED);
    /* No schedule: the first failure is the last. */
    assert_int_equal(deliver_next(1, sched, 0, 0, 0.5, &delay), DELIVER_FAILED);
}

static void retry_after_wins_when_longer(void **state) {
    (void)state;
    const int64_t sched[] = {1000};
    int64_t delay = -1;
    assert_int_equal(deliver_next(1, sched, 1, 30000, 0.5, &delay), DELIVER_RETRY);
    assert_int_equal(delay, 30000);
    assert_int_equal(deliver_next(1, sched, 1, 10, 0.5, &delay), DELIVER_RETRY);
    assert_int_equal(delay, 1000);
    /* Capped at a day. */
    assert_int_equal(deliver_next(1, sched, 1, INT64_C(1) << 40, 0.5, &delay), DELIVER_RETRY);
    assert_int_equal(delay, 86400000);
}

static void retry_after_header(void **state) {
    (void)state;
    const int64_t now = 1614265330; /* Thu, 25 Feb 2021 15:02:10 GMT */
    assert_int_equal(deliver_retry_after("120", now), 120000);
    assert_int_equal(deliver_retry_after(" 2", now), 2000);
    assert_int_equal(deliver_retry_after("0", now), 0);
    assert_int_equal(deliver_retry_after("-5", now), 0);
    assert_int_equal(deliver_retry_after("", now), 0);
    assert_int_equal(deliver_retry_after("soon", now), 0);
    assert_int_equal(deliver_retry_after("99999999999", now), 86400000);
    assert_int_equal(deliver_retry_after("Thu, 25 Feb 2021 15:03:10 GMT", now), 60000);
    assert_int_equal(deliver_retry_after("Thu, 25 Feb 2021 15:00:00 GMT", now), 0); /* past */
}

static void envelope_of_from(void **state) {
    (void)state;
    char buf[128];
    assert_int_equal(mail_envelope("thumbs@example.test", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "<thumbs@example.test>");
    assert_int_equal(mail_envelope("Thumbnails <thumbs@example.test>", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "<thumbs@example.test>");
    assert_int_equal(mail_envelope("  a@b.test ", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "<a@b.test>");
    assert_int_equal(mail_envelope("", buf, sizeof(buf)), -1);
    assert_int_equal(mail_envelope("Nobody <>", buf, sizeof(buf)), -1);
    assert_int_equal(mail_envelope("no address", buf, sizeof(buf)), -1);
    assert_int_equal(mail_envelope("a@b.test", buf, 5), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedule_parses),
        cmocka_unit_test(retries_follow_the_schedule),
        cmocka_unit_test(retry_after_wins_when_longer),
        cmocka_unit_test(retry_after_header),
        cmocka_unit_test(envelope_of_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
