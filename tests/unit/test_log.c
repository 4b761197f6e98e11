/* test_log.c — the logger: levels, a repeated warning written once then
 * summarised when its window ends, different texts kept apart, info lines
 * never held back, and lines a full target does not take counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char path[256];

static int setup(void **state) {
    (void)state;
    snprintf(path, sizeof(path), "/tmp/th-test-log-%d.log", (int)getpid());
    unlink(path);
    char target[300];
    snprintf(target, sizeof(target), "file:%s", path);
    return log_init("test", LOG_LEVEL_INFO, target);
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    log_init("test", LOG_LEVEL_INFO, "stderr");
    return 0;
}

/* How many lines of the log file contain needle. */
static int lines_with(const char *needle) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_levels(void **state) {
    (void)state;
    log_debug("a debug line %d", 1);
    log_info("an info line %d", 1);
    assert_int_equal(lines_with("a debug line"), 0);
    assert_int_equal(lines_with("test["), 1);
    assert_int_equal(lines_with("info: an info line 1"), 1);
}

static void test_repeats_are_summarised(void **state) {
    (void)state;
    log_set_repeat_window(200);
    for (int i = 0; i < 100; i++)
        log_warn("redis BLMOVE failed: MISCONF no space left");
    log_error("another failure %d", 7); /* a different text is its own */
    log_error("another failure %d", 7);
    assert_int_equal(lines_with("redis BLMOVE failed: MISCONF no space left"), 1);
    assert_int_equal(lines_with("another failure 7"), 1);
    assert_int_equal(lines_with("repeated"), 0);
    sleep_ms(250);
    log_tick();
    assert_int_equal(lines_with("MISCONF no space left ... repeated 99 times in the last 1 s"), 1);
    assert_int_equal(lines_with("another failure 7 ... repeated 1 times"), 1);
    /* After its window a text is new again: written, then held back again. */
    log_warn("redis BLMOVE failed: MISCONF no space left");
    log_warn("redis BLMOVE failed: MISCONF no space left");
    assert_int_equal(lines_with("redis BLMOVE failed: MISCONF no space left"), 3);
    log_set_repeat_window(LOG_REPEAT_WINDOW_MS);
}

static void test_info_is_never_held_back(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++)
        log_info("job queued");
    assert_int_equal(lines_with("info: job queued"), 5);
}

static void test_lost_lines_are_counted(void **state) {
    (void)state;
    _Atomic uint64_t lost = 0;
    assert_int_equal(log_init("test", LOG_LEVEL_INFO, "file:/dev/full"), 0);
    log_count_lost(&lost);
    log_info("this line cannot be written");
    log_warn("nor this one");
    assert_int_equal(atomic_load(&lost), 2);
    log_count_lost(NULL);
    setup(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_repeats_are_summarised),
        cmocka_unit_test(test_info_is_never_held_back),
        cmocka_unit_test(test_lost_lines_are_counted),
    };
    return cmocka_run_group_tests_name("log", tests, setup, teardown);
}
