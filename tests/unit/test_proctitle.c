/* test_proctitle.c — the process title over argv's area: what ps reads
 * (/proc/self/cmdline), argv and the environment still usable after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proctitle.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int saved_argc;
static char **saved_argv;
static char first_arg[256];

/* /proc/self/cmdline up to its first NUL, into buf. */
static void cmdline(char *buf, size_t n) {
    int fd = open("/proc/self/cmdline", O_RDONLY);
    assert_true(fd >= 0);
    ssize_t got = read(fd, buf, n - 1);
    close(fd);
    assert_true(got > 0);
    buf[got] = '\0';
}

static void test_join(void **state) {
    (void)state;
    char *const argv[] = {"thumbnailed", "-f", "-c", "/etc/t.conf", NULL};
    char buf[64];
    size_t n = proctitle_join(buf, sizeof(buf), "thumbnailed: master process", 4, argv);
    assert_string_equal(buf, "thumbnailed: master process -f -c /etc/t.conf");
    assert_int_equal(n, strlen(buf));
    char small[16];
    n = proctitle_join(small, sizeof(small), "thumbnailed: master process", 4, argv);
    assert_int_equal(n, strlen("thumbnailed: master process -f -c /etc/t.conf"));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    n = proctitle_join(buf, sizeof(buf), "solo", 1, argv);
    assert_string_equal(buf, "solo");
}

static void test_set(void **state) {
    (void)state;
    assert_int_equal(proctitle_init(saved_argc, saved_argv), 0);
    assert_int_equal(proctitle_init(saved_argc, saved_argv), -1); /* once */
    assert_true(proctitle_room() > strlen(first_arg));
    /* argv and the environment were moved, intact. */
    assert_string_equal(saved_argv[0], first_arg);
    assert_int_equal(setenv("TH_PROCTITLE_TEST", "yes", 1), 0);
    assert_string_equal(getenv("TH_PROCTITLE_TEST"), "yes");

    char buf[4096];
    proctitle_set("thumbnailed: worker process");
    cmdline(buf, sizeof(buf));
    assert_string_equal(buf, "thumbnailed: worker process");
    proctitle_set("x");
    cmdline(buf, sizeof(buf));
    assert_string_equal(buf, "x");
    /* Longer than the room: cut, never past the area. */
    size_t room = proctitle_room();
    char *big = malloc(room + 100);
    assert_non_null(big);
    memset(big, 'a', room + 99);
    big[room + 99] = '\0';
    proctitle_set(big);
    cmdline(buf, sizeof(buf));
    assert_true(strlen(buf) <= room - 1);
    assert_true(buf[0] == 'a' && buf[strlen(buf) - 1] == 'a');
    free(big);
    assert_string_equal(saved_argv[0], first_arg);
}

int main(int argc, char **argv) {
    saved_argc = argc;
    saved_argv = argv;
    snprintf(first_arg, sizeof(first_arg), "%s", argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
