/* placeholder.c — BlurHash as woltapp's Algorithm.md describes it, computed the way
 * npm's blurhash (the TypeScript encoder) computes it, step for step, so that the
 * two give the same string for the same pixels; and a dominant colour from a
 * coarse histogram. */
#include "placeholder.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_COMPONENTS 9

static const char base83_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "abcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

/* sRGB byte to linear light, filled once by srgb_table_fill. */
static double srgb_linear[256];
static pthread_once_t srgb_once = PTHREAD_ONCE_INIT;

static void srgb_table_fill(void) {
    for (int i = 0; i < 256; i++) {
        double v = i / 255.0;
        srgb_linear[i] = v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
    }
}

/* Linear light back to an sRGB byte: clamped to 0..1 first, then rounded half
 * up (the reference's trunc(x + 0.5)). */
static int linear_to_srgb(double v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    if (v <= 0.0031308)
        return (int)(v * 12.92 * 255 + 0.5);
    return (int)((1.055 * pow(v, 1 / 2.4) - 0.055) * 255 + 0.5);
}

/* floor(v) clamped to lo..hi, for values that may be far out of int's range. */
static int floor_clamp(double v, int lo, int hi) {
    v = floor(v);
    return v < lo ? lo : v > hi ? hi : (int)v;
}

/* One AC channel to 0..18: sign(v) * sqrt(|v|) of v relative to the maximum
 * (pow(|v|, 0.5) in the reference: the same correctly rounded value), mapped
 * from -1..1 onto 0..18. */
static int quantise_ac(double v, double maximum) {
    double q = v / maximum;
    q = q < 0 ? -sqrt(-q) : sqrt(q);
    return floor_clamp(q * 9 + 9.5, 0, 18);
}

/* value as len base-83 digits, most significant first. */
static char *encode83(char *p, int value, int len) {
    for (int i = len - 1; i >= 0; i--) {
        p[i] = base83_digits[value % 83];
        value /= 83;
    }
    return p + len;
}

int placeholder_blurhash(const unsigned char *rgb, int width, int height, size_t stride, int xcomp,
                         int ycomp, char *out, size_t outlen) {
    if (rgb == NULL || out == NULL || width < 1 || height < 1 || xcomp < 1 ||
        xcomp > MAX_COMPONENTS || ycomp < 1 || ycomp > MAX_COMPONENTS || stride < (size_t)width * 3)
        return -1;
    int ncomp = xcomp * ycomp;
    size_t len = 4 + 2 * (size_t)ncomp;
    if (outlen < len + 1)
        return -1;
    /* cos(pi j y / height) for every row y and component row j; a column's
     * cosines are computed as the walk reaches it. */
    double *cos_y = malloc(sizeof(*cos_y) * (size_t)height * (size_t)ycomp);
    if (cos_y == NULL)
        return -1;
    pthread_once(&srgb_once, srgb_table_fill);
    for (int j = 0; j < ycomp; j++)
        for (int y = 0; y < height; y++)
            cos_y[(size_t)j * height + y] = cos(M_PI * j * y / height);

    /* The reference sums each component over the pixels column by column; one
     * walk in that order feeds every component, each term rounded as there. */
    double sum[MAX_COMPONENTS * MAX_COMPONENTS][3] = {{0}};
    double cos_x[MAX_COMPONENTS];
    for (int x = 0; x < width; x++) {
        for (int i = 0; i < xcomp; i++)
            cos_x[i] = cos(M_PI * i * x / width);
        const unsigned char *column = rgb + (size_t)x * 3;
        for (int y = 0; y < height; y++) {
            const unsigned char *p = column + (size_t)y * stride;
            double r = srgb_linear[p[0]], g = srgb_linear[p[1]], b = srgb_linear[p[2]];
            for (int j = 0; j < ycomp; j++) {
                double cy = cos_y[(size_t)j * height + y];
                for (int i = 0; i < xcomp; i++) {
                    double basis = cos_x[i] * cy;
                    double *s = sum[j * xcomp + i];
                    s[0] += basis * r;
                    s[1] += basis * g;
                    s[2] += basis * b;
                }
            }
        }
    }
    free(cos_y);

    /* Each AC term carries a factor 2 in the reference; doubling is exact, so
     * it is applied to the sums. */
    double scale = 1 / ((double)width * height);
    double factor[MAX_COMPONENTS * MAX_COMPONENTS][3];
    for (int k = 0; k < ncomp; k++)
        for (int c = 0; c < 3; c++)
            factor[k][c] = (k == 0 ? 1 : 2) * sum[k][c] * scale;

    char *p = out;
    p = encode83(p, (xcomp - 1) + (ycomp - 1) * 9, 1);
    double maximum = 1;
    if (ncomp > 1) {
        /* The largest AC value, not the largest magnitude: so npm's encoder
         * does (the C reference takes fabs); a decoder reads either. */
        double largest = -INFINITY;
        for (int k = 1; k < ncomp; k++)
            for (int c = 0; c < 3; c++)
                largest = fmax(largest, factor[k][c]);
        int quantised = floor_clamp(largest * 166 - 0.5, 0, 82);
        maximum = (quantised + 1) / 166.0;
        p = encode83(p, quantised, 1);
    } else {
        p = encode83(p, 0, 1);
    }
    int dc = (linear_to_srgb(factor[0][0]) << 16) + (linear_to_srgb(factor[0][1]) << 8) +
             linear_to_srgb(factor[0][2]);
    p = encode83(p, dc, 4);
    for (int k = 1; k < ncomp; k++) {
        int ac = quantise_ac(factor[k][0], maximum) * 19 * 19 +
                 quantise_ac(factor[k][1], maximum) * 19 + quantise_ac(factor[k][2], maximum);
        p = encode83(p, ac, 2);
    }
    *p = '\0';
    return (int)len;
}

/* The histogram cell of a pixel: the top 4 bits of r, g and b. */
static unsigned cell_of(const unsigned char *p) {
    return (unsigned)(p[0] >> 4) << 8 | (unsigned)(p[1] >> 4) << 4 | (unsigned)(p[2] >> 4);
}

void placeholder_dominant(const unsigned char *rgb, int width, int height, size_t stride,
                          unsigned char out[3]) {
    out[0] = out[1] = out[2] = 0;
    if (rgb == NULL || width < 1 || height < 1 || stride < (size_t)width * 3)
        return;
    /* Two walks: count the cells, then average the pixels of the fullest. */
    uint64_t count[4096] = {0};
    for (int y = 0; y < height; y++) {
        const unsigned char *row = rgb + (size_t)y * stride;
        for (int x = 0; x < width; x++)
            count[cell_of(row + (size_t)x * 3)]++;
    }
    unsigned best = 0;
    for (unsigned i = 1; i < 4096; i++)
        if (count[i] > count[best])
            best = i;
    uint64_t total[3] = {0};
    for (int y = 0; y < height; y++) {
        const unsigned char *row = rgb + (size_t)y * stride;
        for (int x = 0; x < width; x++) {
            const unsigned char *p = row + (size_t)x * 3;
            if (cell_of(p) == best)
                for (int c = 0; c < 3; c++)
                    total[c] += p[c];
        }
    }
    uint64_t n = count[best];
    for (int c = 0; c < 3; c++)
        out[c] = (unsigned char)((total[c] + n / 2) / n);
}

int placeholder_shrink(const unsigned char *px, int width, int height, size_t stride, int bands,
                       unsigned char out[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3], int *out_w,
                       int *out_h) {
    if (px == NULL || out == NULL || width < 1 || height < 1 || (bands != 3 && bands != 4) ||
        stride < (size_t)width * bands)
        return -1;
    /* The scale of the side that binds, as vips_thumbnail's inside fit. */
    int ow = width, oh = height;
    if (width > PLACEHOLDER_SIDE || height > PLACEHOLDER_SIDE) {
        if (width >= height) {
            ow = PLACEHOLDER_SIDE;
            oh = (int)(((int64_t)height * PLACEHOLDER_SIDE + width / 2) / width);
        } else {
            oh = PLACEHOLDER_SIDE;
            ow = (int)(((int64_t)width * PLACEHOLDER_SIDE + height / 2) / height);
        }
        ow = ow < 1 ? 1 : ow;
        oh = oh < 1 ? 1 : oh;
    }
    for (int y = 0; y < oh; y++) {
        int y0 = (int)((int64_t)y * height / oh), y1 = (int)((int64_t)(y + 1) * height / oh);
        for (int x = 0; x < ow; x++) {
            int x0 = (int)((int64_t)x * width / ow), x1 = (int)((int64_t)(x + 1) * width / ow);
            uint64_t sum[3] = {0, 0, 0}, n = 0;
            for (int sy = y0; sy < y1; sy++) {
                const unsigned char *row = px + (size_t)sy * stride;
                for (int sx = x0; sx < x1; sx++) {
                    const unsigned char *p = row + (size_t)sx * bands;
                    unsigned a = bands == 4 ? p[3] : 255;
                    for (int c = 0; c < 3; c++) /* on white: c * a + 255 * (255 - a) */
                        sum[c] += (uint64_t)p[c] * a + 255u * (255u - a);
                    n++;
                }
            }
            unsigned char *o = out + (size_t)y * PLACEHOLDER_SIDE * 3 + (size_t)x * 3;
            for (int c = 0; c < 3; c++)
                o[c] = (unsigned char)((sum[c] + n * 255 / 2) / (n * 255));
        }
    }
    *out_w = ow;
    *out_h = oh;
    return 0;
}
