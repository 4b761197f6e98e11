/* vips_stages.c — what libvips alone spends on the outputs of bench/renditions.py,
 * stage by stage, in one process, vips concurrency 1 and the operation cache
 * off (as the worker runs it): the decode of the source into each width's box
 * (shrink-on-load), the resize of the largest box to each width, and each
 * encoding with the worker's options (avif effort 2, 8 bits; webp; jpeg with
 * optimised coding; Q 80, stripped). From them, the floor of both kinds:
 *   renditions: one decode into the largest box, a resize to each width, every encoding;
 *   separate:   a decode into each width's box per format, every encoding;
 * and the ratio of the floors, the best any daemon built on libvips can do.
 * Medians of ROUNDS rounds; wall ms (a libheif encoder may use threads of its
 * own: CPU beside it).
 * usage: vips_stages IMAGE [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vips/vips.h>

#define NWIDTHS     4
#define NFORMATS    3
#define ROUNDS_MAX  50
#define QUALITY     80
#define AVIF_EFFORT 2

static const int widths[NWIDTHS] = {1920, 1280, 640, 320};
static const char *const formats[NFORMATS] = {"avif", "webp", "jpeg"};

static double clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {
    (void)domain;
    (void)level;
    (void)msg;
    (void)data;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The source decoded into a w x w box (fit inside), in memory; NULL on error. */
static VipsImage *decode(const void *buf, size_t len, int w) {
    VipsImage *t, *m;
    if (vips_thumbnail_buffer((void *)buf, len, &t, w, "height", w, NULL))
        return NULL;
    m = vips_image_copy_memory(t);
    g_object_unref(t);
    return m;
}

static VipsImage *resize(VipsImage *in, int w) {
    VipsImage *t, *m;
    if (vips_thumbnail_image(in, &t, w, "height", w, "no_rotate", TRUE, NULL))
        return NULL;
    m = vips_image_copy_memory(t);
    g_object_unref(t);
    return m;
}

static int encode(VipsImage *im, int f) {
    void *out = NULL;
    size_t len = 0;
    int r;
    if (f == 0)
        r = vips_heifsave_buffer(im, &out, &len, "Q", QUALITY, "compression",
                                 VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "bitdepth", 8, "effort",
                                 AVIF_EFFORT, "strip", TRUE, NULL);
    else if (f == 1)
        r = vips_webpsave_buffer(im, &out, &len, "Q", QUALITY, "strip", TRUE, NULL);
    else
        r = vips_jpegsave_buffer(im, &out, &len, "Q", QUALITY, "strip", TRUE, "optimize_coding",
                                 TRUE, NULL);
    g_free(out);
    return r;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: vips_stages IMAGE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc == 3 ? atoi(argv[2]) : 5;
    if (rounds < 1 || rounds > ROUNDS_MAX) {
        fprintf(stderr, "vips_stages: ROUNDS is 1..%d\n", ROUNDS_MAX);
        return 2;
    }
    if (VIPS_INIT(argv[0]))
        return 1;
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, quiet, NULL);
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    gchar *buf;
    gsize len;
    if (!g_file_get_contents(argv[1], &buf, &len, NULL)) {
        fprintf(stderr, "vips_stages: cannot read %s\n", argv[1]);
        return 1;
    }

    static double dec[NWIDTHS][ROUNDS_MAX], rsz[NWIDTHS][ROUNDS_MAX];
    static double enc[NWIDTHS][NFORMATS][ROUNDS_MAX], cpu[NWIDTHS][NFORMATS][ROUNDS_MAX];
    for (int r = -1; r < rounds; r++) { /* round -1 warms up */
        int k = r < 0 ? 0 : r;
        for (int i = 0; i < NWIDTHS; i++) {
            double t = clock_ms(CLOCK_MONOTONIC);
            VipsImage *im = decode(buf, len, widths[i]);
            if (!im)
                goto fail;
            dec[i][k] = clock_ms(CLOCK_MONOTONIC) - t;
            g_object_unref(im);
        }
        VipsImage *big = decode(buf, len, widths[0]);
        if (!big)
            goto fail;
        for (int i = 0; i < NWIDTHS; i++) {
            double t = clock_ms(CLOCK_MONOTONIC);
            VipsImage *im = resize(big, widths[i]);
            if (!im)
                goto fail;
            rsz[i][k] = clock_ms(CLOCK_MONOTONIC) - t;
            for (int f = 0; f < NFORMATS; f++) {
                double w0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
                if (encode(im, f))
                    goto fail;
                enc[i][f][k] = clock_ms(CLOCK_MONOTONIC) - w0;
                cpu[i][f][k] = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
            g_object_unref(im);
        }
        g_object_unref(big);
    }

    printf("libvips %s, concurrency 1, %d round(s), medians, ms (encode: wall / CPU)\n\n",
           vips_version_string(), rounds);
    printf("| width | decode into its box | resize from the %d box | %s | %s | %s |\n", widths[0],
           formats[0], formats[1], formats[2]);
    printf("|---|---|---|---|---|---|\n");
    double dmax = 0, dsum = 0, rsum = 0, esum = 0;
    for (int i = 0; i < NWIDTHS; i++) {
        double d = median(dec[i], rounds), z = median(rsz[i], rounds);
        double e[NFORMATS], c[NFORMATS];
        for (int f = 0; f < NFORMATS; f++) {
            e[f] = median(enc[i][f], rounds);
            c[f] = median(cpu[i][f], rounds);
            esum += e[f];
        }
        if (i == 0)
            dmax = d;
        dsum += d * NFORMATS;
        rsum += z;
        printf("| %d | %.0f | %.0f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f |\n", widths[i], d, z,
               e[0], c[0], e[1], c[1], e[2], c[2]);
    }
    double one = dmax + rsum + esum, many = dsum + esum;
    printf("\nencodings, all %d: %.0f ms\n", NWIDTHS * NFORMATS, esum);
    printf("floor of renditions: decode %.0f + resizes %.0f + encodings = %.0f ms\n", dmax, rsum,
           one);
    printf("floor of separate:   decodes %.0f (%d) + encodings = %.0f ms\n", dsum,
           NWIDTHS * NFORMATS, many);
    printf("floor ratio renditions / separate: %.2fx\n", one / many);
    g_free(buf);
    vips_shutdown();
    return 0;
fail:
    fprintf(stderr, "vips_stages: %s\n", vips_error_buffer());
    return 1;
}
