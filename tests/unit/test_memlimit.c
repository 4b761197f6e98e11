/* test_memlimit.c — worker.max_memory: in a forked child bounded the way a worker
 * is, a valid source within max_pixels that needs more memory than the bound to
 * decode fails cleanly with decode_failed; without the bound it thumbnails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vips/vips.h>

#include "failure.h"
#include "memlimit.h"
#include "thumb.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#define SIDE         7000         /* 49 M pixels, under the default max_pixels of 50 M */
#define LIMIT        (64LL << 20) /* the smallest worker.max_memory */
#define CHILD_NO_SRC 3

/* What the child reports through the pipe. */
struct report {
    int rc;
    struct failure err;
    int width;
    int64_t limit;
};

/* An interlaced (Adam7) PNG of SIDE x SIDE x 3 black pixels: a few hundred KB
 * that libvips can only decode whole, into SIDE * SIDE * 3 = 147 MB. */
static int make_source(void **data, size_t *len) {
    VipsImage *black = NULL;
    if (vips_black(&black, SIDE, SIDE, "bands", 3, NULL))
        return -1;
    VipsImage *rgb = NULL;
    int rc = vips_copy(black, &rgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
    g_object_unref(black);
    if (rc)
        return -1;
    VipsImage *u8 = NULL;
    rc = vips_cast(rgb, &u8, VIPS_FORMAT_UCHAR, NULL);
    g_object_unref(rgb);
    if (rc)
        return -1;
    rc = vips_pngsave_buffer(u8, data, len, "interlace", TRUE, "compression", 1, NULL);
    g_object_unref(u8);
    return rc ? -1 : 0;
}

/* Runs body(out, arg) in a forked child, which sends the size bytes of out
 * back through a pipe when body returns 0 and exits with body's code. The
 * child must exit normally; returns its exit code (0: out is filled). */
static int in_child(int (*body)(void *out, const void *arg), const void *arg, void *out,
                    size_t size) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        int rc = body(out, arg);
        if (rc == 0 && write(fds[1], out, size) != (ssize_t)size)
            rc = 1;
        _exit(rc);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], out, size);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("the child was killed by signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 0)
        assert_int_equal(n, size);
    return WEXITSTATUS(status);
}

/* in_child's body: thumbnails the source, bounded by memlimit_apply(*limit)
 * when *limit > 0, into a struct report. */
static int thumbnail_bounded(void *out, const void *arg) {
    struct report *r = out;
    int64_t limit = *(const int64_t *)arg;
    r->rc = -2;
    void *src = NULL;
    size_t len = 0;
    if (thumb_init() < 0 || make_source(&src, &len) < 0)
        return CHILD_NO_SRC;
    if (limit > 0)
        r->limit = memlimit_apply(limit);
    struct thumb_opts o = {
        .width = 200,
        .height = 200,
        .fit = JOB_FIT_INSIDE,
        .format = JOB_FORMAT_JPEG,
        .quality = 80,
        .max_pixels = 50000000,
        .max_frames = 100,
        .expect_mime = "image/png",
    };
    struct thumb_result res;
    r->rc = thumb_make(&o, src, len, &res, &r->err);
    r->width = res.width;
    thumb_result_free(&res);
    g_free(src);
    return 0;
}

/* Thumbnails the source in a child, bounded by memlimit_apply(limit) when
 * limit > 0; the child must exit normally. */
static struct report run_child(int64_t limit) {
    struct report r;
    memset(&r, 0, sizeof(r));
    int code = in_child(thumbnail_bounded, &limit, &r, sizeof(r));
    if (code == CHILD_NO_SRC)
        fail_msg("the child could not make the test image");
    assert_int_equal(code, 0);
    return r;
}

static void test_unbounded_thumbnails(void **state) {
    (void)state;
    struct report r = run_child(0);
    if (r.rc != 0)
        fail_msg("expected a thumbnail, got %s: %s", r.err.code, r.err.message);
    assert_int_equal(r.width, 200);
}

static void test_bounded_fails_cleanly(void **state) {
    (void)state;
#ifdef TEST_ASAN
    /* A legitimate skip: an AddressSanitizer build never enforces max_memory
     * (an address-space limit would break its shadow memory), so the bounded
     * decode cannot fail here. What such a build does do is asserted first:
     * memlimit_apply leaves the limit alone and says so with 0. */
    struct rlimit before, after;
    assert_int_equal(getrlimit(RLIMIT_AS, &before), 0);
    assert_int_equal(memlimit_apply(LIMIT), 0);
    assert_int_equal(getrlimit(RLIMIT_AS, &after), 0);
    assert_true(after.rlim_cur == before.rlim_cur);
    print_message("skipped: built with AddressSanitizer, which does not enforce "
                  "worker.max_memory (an RLIMIT_AS would break its shadow memory); "
                  "memlimit_apply left RLIMIT_AS alone, as it must\n");
    skip();
#endif
    struct report r = run_child(LIMIT);
    assert_true(r.limit > LIMIT);
    if (r.rc != -1 || strcmp(r.err.code, "decode_failed") != 0)
        fail_msg("expected decode_failed, got rc %d %s: %s", r.rc, r.err.code, r.err.message);
    print_message("limit %lld MiB: %s: %s\n", (long long)(r.limit >> 20), r.err.code,
                  r.err.message);
}

/* in_child's body: bounded like a worker, frees 48 MiB of heap and releases
 * twice, the bytes each release gave back into out (int64_t[2]). */
static int free_and_release(void *out, const void *arg) {
    (void)arg;
    int64_t *freed = out;
    freed[0] = freed[1] = -1;
    enum { CHUNKS = 48, CHUNK = 1 << 20 }; /* each under the mmap threshold: on the heap */
    void *p[CHUNKS];
    if (memlimit_apply(1LL << 30) < 0)
        return 0;
    for (int i = 0; i < CHUNKS; i++)
        if ((p[i] = malloc(CHUNK)) != NULL)
            memset(p[i], 0x5a, CHUNK);
    for (int i = 0; i < CHUNKS; i++)
        free(p[i]);
    freed[0] = memlimit_release();
    freed[1] = memlimit_release();
    return 0;
}

/* In a child bounded like a worker: what one job frees stays resident for the
 * next (the thresholds memlimit_apply sets) until memlimit_release gives it
 * back, and a second release finds next to nothing left. */
static void test_release_when_idle(void **state) {
    (void)state;
    int64_t freed[2] = {-1, -1};
    assert_int_equal(in_child(free_and_release, NULL, freed, sizeof(freed)), 0);
#ifdef TEST_ASAN
    /* AddressSanitizer's allocator is not glibc's: nothing to trim, and 0 says so. */
    assert_int_equal(freed[0], 0);
    assert_int_equal(freed[1], 0);
#else
    print_message("released %lld KiB, then %lld KiB\n", (long long)(freed[0] >> 10),
                  (long long)(freed[1] >> 10));
    assert_true(freed[0] >= 32LL << 20);
    assert_true(freed[1] < 1LL << 20);
#endif
}

static void test_address_space(void **state) {
    (void)state;
    int64_t before = memlimit_address_space();
    assert_true(before > 0);
    void *p = malloc(64 << 20); /* above the mmap threshold: a mapping of its own */
    assert_non_null(p);
    assert_true(memlimit_address_space() >= before + (64 << 20));
    free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_space),
        cmocka_unit_test(test_unbounded_thumbnails),
        cmocka_unit_test(test_bounded_fails_cleanly),
        cmocka_unit_test(test_release_when_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
