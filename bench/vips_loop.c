/* vips_loop.c — the pipeline limit: libvips making one thumbnail after another
 * in one process per core, no queue, no HTTP, with the worker's per-process
 * settings (concurrency 1, operation cache off) and the worker's operations
 * (thumbnail from the buffer, fail on truncation, centre crop for cover;
 * JPEG Q 80 stripped with optimised coding, WebP Q 80 stripped).
 *
 * The allocator is the one setting that is not the worker's own choice to
 * copy: ALLOC picks it.
 *   glibc  glibc's defaults (a dynamic mmap threshold: the large decode
 *          buffers are mapped afresh, and page-faulted, on many images);
 *   tuned  one arena, mmap threshold and trim threshold raised (THRESHOLD
 *          below), so the buffers of one image are reused by the next;
 *   best   both, one after the other, each a full run: prints both and
 *          takes the faster as the limit (the default).
 * Prints thumbnails per second and the largest peak RSS of the processes
 * (getrusage's ru_maxrss, the file pages of the libraries included), each
 * allocator's:
 *   <alloc>: <count> thumbnails in <secs> s = <rate>/s
 *   <alloc> peak RSS: <MB> MB, less file pages <MB> MB
 * (the second: each process's VmHWM less its RssFile at its end, the
 * libraries' pages, which differ between programs; the largest)
 * and last the limit:
 *   limit: <rate>/s (<alloc>)
 * usage: vips_loop IMAGE COUNT PROCESSES WIDTH HEIGHT [cover|inside] [jpeg|webp] [glibc|tuned|best]
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

/* The tuned allocator's mmap and trim threshold: above the largest buffer
 * a decode of a 5120x2880 photo allocates, so none is mapped per image. */
#define THRESHOLD (128 * 1024 * 1024)

enum alloc { ALLOC_GLIBC, ALLOC_TUNED };
static const char *const alloc_names[] = {"glibc", "tuned"};

struct spec {
    const char *path;
    int count, procs, width, height;
    bool cover, webp;
};

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

static int tune(void) {
    if (!mallopt(M_ARENA_MAX, 1) || !mallopt(M_MMAP_THRESHOLD, THRESHOLD) ||
        !mallopt(M_TRIM_THRESHOLD, THRESHOLD)) {
        fprintf(stderr, "vips_loop: mallopt refused the tuned settings\n");
        return -1;
    }
    return 0;
}

static int one(const struct spec *s, const gchar *buf, gsize len) {
    VipsImage *out;
    if (vips_thumbnail_buffer((void *)buf, len, &out, s->width, "height", s->height, "crop",
                              s->cover ? VIPS_INTERESTING_CENTRE : VIPS_INTERESTING_NONE,
                              "option_string", "fail_on=truncated", NULL))
        return -1;
    void *data;
    size_t n;
    int r = s->webp ? vips_webpsave_buffer(out, &data, &n, "Q", 80, "strip", TRUE, NULL)
                    : vips_jpegsave_buffer(out, &data, &n, "Q", 80, "strip", TRUE,
                                           "optimize_coding", TRUE, NULL);
    g_object_unref(out);
    if (r)
        return -1;
    g_free(data);
    return 0;
}

/* kB of a field of /proc/self/status, or -1. */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = atol(line + n + 1);
            break;
        }
    fclose(f);
    return kb;
}

/* One process's share: share thumbnails of the image; its peak RSS less its
 * file pages, in kB, written to fd at the end. */
static int run(const struct spec *s, int share, enum alloc a, int fd) {
    if (a == ALLOC_TUNED && tune() < 0)
        return 1;
    if (VIPS_INIT("vips_loop"))
        return 1;
    /* Photos carry odd EXIF; the daemon logs such warnings at debug level too. */
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, quiet, NULL);
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    gchar *buf;
    gsize len;
    if (!g_file_get_contents(s->path, &buf, &len, NULL))
        return 1;
    for (int i = 0; i < share; i++)
        if (one(s, buf, len) < 0) {
            fprintf(stderr, "vips_loop: %s\n", vips_error_buffer());
            return 1;
        }
    g_free(buf);
    long priv = status_kb("VmHWM") - status_kb("RssFile");
    if (write(fd, &priv, sizeof(priv)) != sizeof(priv))
        return 1;
    vips_shutdown();
    return 0;
}

/* A full run with allocator a: thumbnails per second, or -1. */
static double rate(const struct spec *s, enum alloc a) {
    int fds[2];
    if (pipe(fds) < 0) {
        perror("vips_loop: pipe");
        return -1;
    }
    double t0 = now();
    for (int p = 0; p < s->procs; p++) {
        int share = s->count / s->procs + (p < s->count % s->procs ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0) {
            perror("vips_loop: fork");
            return -1;
        }
        if (pid == 0)
            _exit(run(s, share, a, fds[1]));
    }
    close(fds[1]);
    int status, failed = 0;
    long peak_kb = 0;
    struct rusage ru;
    while (wait4(-1, &status, 0, &ru) > 0) {
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        if (ru.ru_maxrss > peak_kb)
            peak_kb = ru.ru_maxrss;
    }
    double secs = now() - t0;
    long priv, priv_kb = 0;
    while (read(fds[0], &priv, sizeof(priv)) == sizeof(priv))
        if (priv > priv_kb)
            priv_kb = priv;
    close(fds[0]);
    if (failed) {
        fprintf(stderr, "vips_loop: a process failed\n");
        return -1;
    }
    printf("%s: %d thumbnails in %.2f s = %.1f/s\n", alloc_names[a], s->count, secs,
           s->count / secs);
    printf("%s peak RSS: %.1f MB, less file pages %.1f MB\n", alloc_names[a], peak_kb / 1024.0,
           priv_kb / 1024.0);
    fflush(stdout);
    return s->count / secs;
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s IMAGE COUNT PROCESSES WIDTH HEIGHT [cover|inside] [jpeg|webp] "
            "[glibc|tuned|best]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 9)
        return usage(argv[0]);
    struct spec s = {.path = argv[1],
                     .count = atoi(argv[2]),
                     .procs = atoi(argv[3]),
                     .width = atoi(argv[4]),
                     .height = atoi(argv[5]),
                     .cover = true};
    const char *fit = argc > 6 ? argv[6] : "cover", *fmt = argc > 7 ? argv[7] : "jpeg",
               *alloc = argc > 8 ? argv[8] : "best";
    if (s.count < 1 || s.procs < 1 || s.width < 1 || s.height < 1)
        return usage(argv[0]);
    if (strcmp(fit, "cover") && strcmp(fit, "inside"))
        return usage(argv[0]);
    if (strcmp(fmt, "jpeg") && strcmp(fmt, "webp"))
        return usage(argv[0]);
    s.cover = strcmp(fit, "cover") == 0;
    s.webp = strcmp(fmt, "webp") == 0;

    double best = -1;
    enum alloc which = ALLOC_GLIBC;
    for (enum alloc a = ALLOC_GLIBC; a <= ALLOC_TUNED; a++) {
        if (strcmp(alloc, "best") && strcmp(alloc, alloc_names[a]))
            continue;
        double r = rate(&s, a);
        if (r < 0)
            return 1;
        if (r > best) {
            best = r;
            which = a;
        }
    }
    if (best < 0)
        return usage(argv[0]);
    printf("limit: %.1f/s (%s)\n", best, alloc_names[which]);
    return 0;
}
