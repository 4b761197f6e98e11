/* vips_loop.c — the pipeline limit: vips_thumbnail_buffer in a loop, one
 * process per core, no queue, no HTTP. Prints thumbnails per second.
 * usage: vips_loop IMAGE COUNT PROCESSES WIDTH HEIGHT */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {
    (void)domain;
    (void)level;
    (void)msg;
    (void)data;
}

static int run(const char *path, int count, int w, int h) {
    if (VIPS_INIT("vips_loop"))
        return 1;
    /* Photos carry odd EXIF; the daemon logs such warnings at debug level too. */
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, quiet, NULL);
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    gchar *buf;
    gsize len;
    if (!g_file_get_contents(path, &buf, &len, NULL))
        return 1;
    for (int i = 0; i < count; i++) {
        VipsImage *out;
        if (vips_thumbnail_buffer(buf, len, &out, w, "height", h, "crop", VIPS_INTERESTING_CENTRE,
                                  NULL))
            return 1;
        void *jpg;
        size_t jlen;
        if (vips_jpegsave_buffer(out, &jpg, &jlen, "Q", 80, "strip", TRUE, NULL))
            return 1;
        g_free(jpg);
        g_object_unref(out);
    }
    g_free(buf);
    vips_shutdown();
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s IMAGE COUNT PROCESSES WIDTH HEIGHT\n", argv[0]);
        return 1;
    }
    int count = atoi(argv[2]), procs = atoi(argv[3]), w = atoi(argv[4]), h = atoi(argv[5]);
    double t0 = now();
    for (int p = 0; p < procs; p++) {
        int share = count / procs + (p < count % procs ? 1 : 0);
        if (fork() == 0)
            _exit(run(argv[1], share, w, h));
    }
    int status, failed = 0;
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    double secs = now() - t0;
    if (failed) {
        fprintf(stderr, "vips_loop: a process failed\n");
        return 1;
    }
    printf("%d thumbnails in %.2f s = %.1f/s\n", count, secs, count / secs);
    return 0;
}
