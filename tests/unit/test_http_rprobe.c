/* test_http_rprobe.c — when Redis counts as answering: a PONG within the
 * window and no PING outstanding longer; error replies and lost ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rprobe.h"

static void test_never_answered(void **state) {
    (void)state;
    struct rprobe p;
    rprobe_init(&p);
    int64_t silent = 0;
    assert_false(rprobe_answering(&p, 1000, &silent));
    assert_int_equal(silent, -1);
    assert_int_equal(p.rtt_ms, -1);
    assert_true(rprobe_due(&p));
}

static void test_ready_then_pongs(void **state) {
    (void)state;
    struct rprobe p;
    rprobe_init(&p);
    rprobe_ready(&p, 1000, 990);
    assert_int_equal(p.rtt_ms, 10);
    assert_true(rprobe_answering(&p, 1000, NULL));
    assert_true(rprobe_answering(&p, 1000 + RPROBE_WINDOW_MS, NULL));
    assert_false(rprobe_answering(&p, 1001 + RPROBE_WINDOW_MS, NULL));

    rprobe_sent(&p, 1500);
    assert_false(rprobe_due(&p));
    rprobe_reply(&p, 1503, true);
    assert_true(rprobe_due(&p));
    assert_int_equal(p.rtt_ms, 3);
    int64_t silent = 0;
    assert_true(rprobe_answering(&p, 2000, &silent));
    assert_int_equal(silent, 497);
}

static void test_stuck_ping(void **state) {
    (void)state;
    struct rprobe p;
    rprobe_init(&p);
    rprobe_ready(&p, 1000, 1000);
    rprobe_sent(&p, 1500); /* Redis stops here */
    assert_true(rprobe_answering(&p, 1900, NULL));
    assert_false(rprobe_answering(&p, 1000 + RPROBE_WINDOW_MS + 1, NULL));
    assert_false(rprobe_answering(&p, 9000, NULL));
    /* It answers again. */
    rprobe_reply(&p, 9001, true);
    assert_true(rprobe_answering(&p, 9001, NULL));
    assert_int_equal(p.rtt_ms, 7501);
}

static void test_error_and_lost(void **state) {
    (void)state;
    struct rprobe p;
    rprobe_init(&p);
    rprobe_ready(&p, 1000, 1000);
    rprobe_sent(&p, 1500);
    rprobe_reply(&p, 1501, false); /* -BUSY: answered, but not a PONG */
    assert_true(rprobe_due(&p));
    assert_false(rprobe_answering(&p, 2100, NULL));
    rprobe_sent(&p, 2200);
    rprobe_lost(&p); /* the connection went away */
    assert_true(rprobe_due(&p));
    rprobe_reply(&p, 2300, true); /* nothing outstanding: ignored */
    assert_false(rprobe_answering(&p, 2300, NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_answered),
        cmocka_unit_test(test_ready_then_pongs),
        cmocka_unit_test(test_stuck_ping),
        cmocka_unit_test(test_error_and_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
