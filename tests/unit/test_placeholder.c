/* test_placeholder.c — BlurHash against the strings npm's blurhash makes of the
 * same synthetic images (tests/blurhash/vectors.js made the table), bad
 * arguments, and the dominant colour. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "placeholder.h"

/* The images of tests/blurhash/vectors.js, drawn by the same formulas. */
enum img_kind {
    IMG_BLACK,
    IMG_WHITE,
    IMG_GREY,
    IMG_ORANGE,
    IMG_HGRAD,
    IMG_VGRAD,
    IMG_CHECKER,
    IMG_SPLIT,
    IMG_PATTERN,
};

static void pixel(enum img_kind k, int x, int y, int w, int h, unsigned char *p) {
    int r = 0, g = 0, b = 0;
    switch (k) {
    case IMG_BLACK:
        break;
    case IMG_WHITE:
        r = g = b = 255;
        break;
    case IMG_GREY:
        r = g = b = 128;
        break;
    case IMG_ORANGE:
        r = 230, g = 120, b = 20;
        break;
    case IMG_HGRAD:
        r = w > 1 ? 255 * x / (w - 1) : 0;
        g = 100;
        b = 255 - r;
        break;
    case IMG_VGRAD:
        r = 40;
        g = h > 1 ? 255 * y / (h - 1) : 0;
        b = h > 1 ? 60 + 128 * y / (h - 1) : 60;
        break;
    case IMG_CHECKER:
        r = g = b = ((x >> 1) + (y >> 1)) & 1 ? 250 : 10;
        break;
    case IMG_SPLIT:
        if (x < w / 2)
            r = 220, g = 30, b = 40;
        else
            r = 30, g = 60, b = 200;
        break;
    case IMG_PATTERN:
        r = (x * 37 + y * 91) % 256;
        g = (x * x * 13 + y * 7) % 256;
        b = (x * y * 29 + 50) % 256;
        break;
    }
    p[0] = (unsigned char)r;
    p[1] = (unsigned char)g;
    p[2] = (unsigned char)b;
}

/* An image of kind k with rows stride bytes apart, the bytes between rows
 * 0xEE. Owned by the caller (free). */
static unsigned char *draw(enum img_kind k, int w, int h, size_t stride) {
    unsigned char *rgb = malloc(stride * (size_t)h);
    assert_non_null(rgb);
    memset(rgb, 0xEE, stride * (size_t)h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            pixel(k, x, y, w, h, rgb + (size_t)y * stride + (size_t)x * 3);
    return rgb;
}

struct vector {
    enum img_kind kind;
    int width, height, xcomp, ycomp;
    const char *hash;
};

/* node tests/blurhash/vectors.js: npm's blurhash 2.0.5, encode(pixels, w, h, xc, yc). */
static const struct vector vectors[] = {
    {IMG_BLACK, 8, 8, 4, 3, "L00000fQfQfQfQfQfQfQfQfQfQfQ"},
    {IMG_WHITE, 8, 8, 4, 3, "LfTSUA~qfQ~q~qt7fQt7fQfQfQfQ"},
    {IMG_GREY, 6, 5, 4, 3, "LDEyb[_3fQ_3~qxufQxufQfQfQfQ"},
    {IMG_ORANGE, 8, 8, 4, 3, "LWQYeC}WfQ}W}Ws-fQs-fQfQfQfQ"},
    {IMG_ORANGE, 1, 1, 4, 3, "L~QYeC~Q~Q~Q~Q~Q~Q~Q~Q~Q~Q~Q"},
    {IMG_HGRAD, 16, 8, 4, 3, "L@Hv$H77sakFxISijvj]fQfQfQfQ"},
    {IMG_HGRAD, 32, 32, 4, 3, "L.Hcz12gw%W@oMWrjufRfQfQfQfQ"},
    {IMG_HGRAD, 13, 1, 4, 3, "L~Hv$I77saoi}_77saoi}_77saoi"},
    {IMG_VGRAD, 8, 16, 4, 3, "LC4sMFqEfQqEl:i0fQi0hEg1fQg1"},
    {IMG_VGRAD, 3, 11, 4, 3, "LZ4sPNqEfQqEhgi1fQi1gHf$fQf$"},
    {IMG_VGRAD, 1, 12, 4, 3, "L~4sPMuiuiuih%h%h%h%f~f~f~f~"},
    {IMG_CHECKER, 8, 8, 4, 3, "LJLENU~qfQ~q~qD%fQ4nfQfQfQfQ"},
    {IMG_CHECKER, 16, 12, 4, 3, "LCLENU_3fQ_3~qM{fQM{fQfQfQfQ"},
    {IMG_SPLIT, 10, 6, 4, 3, "L~Iwb6{]#*Skw~wbn~bIfQfQfQfQ"},
    {IMG_SPLIT, 7, 4, 4, 3, "L~Ha=:|D;csr$m#+s8oMfQfQfQfQ"},
    {IMG_PATTERN, 7, 3, 4, 3, "LVGR^%qKQo-g~S9t9~XBRe72j_a%"},
    {IMG_PATTERN, 1, 9, 4, 3, "L|Fo1u|{|{|{NdNdNdNdjtjtjtjt"},
    {IMG_PATTERN, 32, 24, 4, 3, "L7HC7e+hqf%:,0L@hSq*T8MhP$RU"},
    {IMG_PATTERN, 32, 24, 1, 1, "00HC7e"},
    {IMG_PATTERN, 32, 24, 9, 9,
     "|7HC7e+hqf%:Vh*iVqz=QB,0L@hSq*cOZrZ8l[TET8MhP$RUVwk7RpV]S7--l8VrTaNNV;a8iJNeQmkPVhskRPX-O;"
     "icS1-gi_VabvgKorWSOiKGRfnNXArfXMs-i{x8O:?Ej2j3adnigPo|iw++RzTJX4V@XlRhVfRpOG"},
    {IMG_PATTERN, 5, 4, 3, 7, "uPFO.RUmse}+MyOFEa6}FiLJQ_oHA9|_;_LJQ_oHEa6}Fi"},
    {IMG_HGRAD, 16, 8, 5, 2, "D@Hv$H77sakFSQxISijvj]a}"},
    {IMG_CHECKER, 16, 12, 9, 9,
     "|ILENU?bfQ?bfQ?bfQ?bfQ_3RjfQRjfQM{fQD%4nfQfQfQfQfQfQfQfQfQ_3M{fQM{fQM{fQ9F4nfQfQfQfQfQfQfQfQ"
     "fQ_3D%fQD%fQ9FfQ0000fQ9FfQ9FfQ4nfQ0000_3%MfQ%MfQ-;fQ_3~qfQfQfQfQfQfQfQfQfQ"},
    {IMG_VGRAD, 8, 16, 1, 9, "=A4sMFl:hXo}dsp]dYqCdF"},
    {IMG_SPLIT, 10, 6, 9, 1, "8~Iwb6{]#*SkfQ$P#*oOfQ"},
};

/* Each vector twice: rows packed, and rows 5 bytes of 0xEE apart. */
static void test_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        for (size_t pad = 0; pad <= 5; pad += 5) {
            size_t stride = (size_t)v->width * 3 + pad;
            unsigned char *rgb = draw(v->kind, v->width, v->height, stride);
            char hash[167];
            int n = placeholder_blurhash(rgb, v->width, v->height, stride, v->xcomp, v->ycomp, hash,
                                         sizeof(hash));
            free(rgb);
            if (n < 0 || strcmp(hash, v->hash) != 0)
                print_error("vector %zu (kind %d, %dx%d, %dx%d components, stride %zu)\n", i,
                            (int)v->kind, v->width, v->height, v->xcomp, v->ycomp, stride);
            assert_int_equal(n, (int)strlen(v->hash));
            assert_string_equal(hash, v->hash);
        }
    }
}

/* The length is 4 + 2 x components; out of exactly that plus the NUL is
 * enough, one byte less is refused and out left alone. */
static void test_lengths(void **state) {
    (void)state;
    unsigned char *rgb = draw(IMG_PATTERN, 6, 4, 18);
    char out[200];
    for (int xc = 1; xc <= 9; xc++)
        for (int yc = 1; yc <= 9; yc++) {
            size_t want = 4 + 2 * (size_t)(xc * yc);
            memset(out, 'X', sizeof(out));
            assert_int_equal(placeholder_blurhash(rgb, 6, 4, 18, xc, yc, out, want + 1), want);
            assert_int_equal(strlen(out), want);
            assert_int_equal(out[0],
                             "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "#$%*+,-.:;=?@[]^_{|}~"[(xc - 1) + (yc - 1) * 9]);
            memset(out, 'X', sizeof(out));
            assert_int_equal(placeholder_blurhash(rgb, 6, 4, 18, xc, yc, out, want), -1);
            assert_int_equal(out[0], 'X');
        }
    /* 4x3, the usual size, needs 28 + 1. */
    assert_int_equal(placeholder_blurhash(rgb, 6, 4, 18, 4, 3, out, 29), 28);
    assert_int_equal(placeholder_blurhash(rgb, 6, 4, 18, 4, 3, out, 28), -1);
    free(rgb);
}

static void test_bad_arguments(void **state) {
    (void)state;
    unsigned char *rgb = draw(IMG_GREY, 4, 4, 12);
    char out[167];
    assert_int_equal(placeholder_blurhash(NULL, 4, 4, 12, 4, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 4, 3, NULL, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 0, 4, 12, 4, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 0, 12, 4, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, -4, 4, 12, 4, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, -1, 12, 4, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 11, 4, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 0, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 10, 3, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 4, 0, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 4, 10, out, sizeof(out)), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 4, 3, out, 0), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 9, 9, out, 166), -1);
    assert_int_equal(placeholder_blurhash(rgb, 4, 4, 12, 9, 9, out, 167), 166);
    free(rgb);
}

/* A solid image is its own colour; the bytes between rows (0xEE, more of them
 * than pixels) are not pixels. */
static void test_dominant_solid(void **state) {
    (void)state;
    unsigned char *rgb = draw(IMG_ORANGE, 2, 2, 6 + 30);
    unsigned char c[3];
    placeholder_dominant(rgb, 2, 2, 6 + 30, c);
    assert_int_equal(c[0], 230);
    assert_int_equal(c[1], 120);
    assert_int_equal(c[2], 20);
    free(rgb);
}

static void test_dominant_red_over_blue(void **state) {
    (void)state;
    unsigned char rgb[8 * 8 * 3];
    for (int i = 0; i < 64; i++) {
        unsigned char *p = rgb + i * 3;
        int red = i < 48; /* the top six rows */
        p[0] = red ? 200 : 20;
        p[1] = red ? 20 : 30;
        p[2] = red ? 30 : 200;
    }
    unsigned char c[3];
    placeholder_dominant(rgb, 8, 8, 24, c);
    assert_int_equal(c[0], 200);
    assert_int_equal(c[1], 20);
    assert_int_equal(c[2], 30);
}

/* 40 greens in four shades of one cell, 35 pixels of one blue, 25 of one
 * white, scattered: the greens' cell wins although the blue is the commonest
 * single colour, and its mean (r 3.75) rounds to 4. */
static void test_dominant_mixed(void **state) {
    (void)state;
    static const unsigned char greens[4][3] = {
        {1, 200, 9}, {2, 202, 11}, {5, 204, 13}, {7, 206, 15}};
    unsigned char rgb[10 * 10 * 3];
    for (int i = 0; i < 100; i++) {
        unsigned char *p = rgb + (size_t)(i * 37 % 100) * 3;
        if (i < 40)
            memcpy(p, greens[i % 4], 3);
        else if (i < 75)
            memcpy(p, (unsigned char[]){20, 40, 230}, 3);
        else
            memcpy(p, (unsigned char[]){250, 250, 250}, 3);
    }
    unsigned char c[3];
    placeholder_dominant(rgb, 10, 10, 30, c);
    assert_int_equal(c[0], 4);
    assert_int_equal(c[1], 203);
    assert_int_equal(c[2], 12);
}

static void test_dominant_bad_arguments(void **state) {
    (void)state;
    unsigned char rgb[12];
    memset(rgb, 200, sizeof(rgb));
    unsigned char c[3] = {1, 2, 3};
    placeholder_dominant(NULL, 2, 2, 6, c);
    assert_int_equal(c[0] | c[1] | c[2], 0);
    c[0] = 1;
    placeholder_dominant(rgb, 0, 2, 6, c);
    assert_int_equal(c[0] | c[1] | c[2], 0);
    c[0] = 1;
    placeholder_dominant(rgb, 2, 2, 5, c);
    assert_int_equal(c[0] | c[1] | c[2], 0);
    placeholder_dominant(rgb, 2, 2, 6, c);
    assert_int_equal(c[0], 200);
}

/* --- placeholder_shrink ------------------------------------------------ */

/* A w x h image of bands bytes per pixel, every pixel px, rows packed. */
static unsigned char *solid_px(int w, int h, int bands, const unsigned char *px) {
    unsigned char *im = malloc((size_t)w * h * bands);
    assert_non_null(im);
    for (int i = 0; i < w * h; i++)
        memcpy(im + (size_t)i * bands, px, bands);
    return im;
}

static void test_shrink_sizes(void **state) {
    (void)state;
    static const struct {
        int w, h, ow, oh;
    } cases[] = {
        {64, 32, 32, 16}, {32, 64, 16, 32}, {2560, 1600, 32, 20}, {1600, 2560, 20, 32},
        {10, 5, 10, 5},   {1, 100, 1, 32},  {100, 1, 32, 1},      {33, 33, 32, 32},
    };
    const unsigned char grey[3] = {90, 90, 90};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char *im = solid_px(cases[i].w, cases[i].h, 3, grey);
        unsigned char out[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3];
        int ow = 0, oh = 0;
        assert_int_equal(placeholder_shrink(im, cases[i].w, cases[i].h, (size_t)cases[i].w * 3, 3,
                                            out, &ow, &oh),
                         0);
        if (ow != cases[i].ow || oh != cases[i].oh)
            fail_msg("%dx%d shrinks to %dx%d, not %dx%d", cases[i].w, cases[i].h, ow, oh,
                     cases[i].ow, cases[i].oh);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                assert_memory_equal(out + (size_t)y * PLACEHOLDER_SIDE * 3 + (size_t)x * 3, grey,
                                    3);
        free(im);
    }
}

static void test_shrink_areas(void **state) {
    (void)state;
    /* 64x64, the left half red and the right half blue, with a padded stride:
     * 32x32, the left 16 columns red, the right 16 blue. */
    enum { W = 64, H = 64, STRIDE = W * 3 + 5 };
    unsigned char *im = calloc(H, STRIDE);
    assert_non_null(im);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char *p = im + (size_t)y * STRIDE + (size_t)x * 3;
            p[0] = x < W / 2 ? 255 : 0;
            p[2] = x < W / 2 ? 0 : 255;
        }
    unsigned char out[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3];
    int ow, oh;
    assert_int_equal(placeholder_shrink(im, W, H, STRIDE, 3, out, &ow, &oh), 0);
    assert_int_equal(ow, 32);
    assert_int_equal(oh, 32);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            const unsigned char *p = out + (size_t)y * PLACEHOLDER_SIDE * 3 + (size_t)x * 3;
            assert_int_equal(p[0], x < 16 ? 255 : 0);
            assert_int_equal(p[1], 0);
            assert_int_equal(p[2], x < 16 ? 0 : 255);
        }
    /* 96x1 of 0, 30, 60 repeating: 32x1, each pixel the mean of three, 30. */
    unsigned char row[96 * 3];
    for (int x = 0; x < 96; x++)
        row[x * 3] = row[x * 3 + 1] = row[x * 3 + 2] = (unsigned char)(30 * (x % 3));
    assert_int_equal(placeholder_shrink(row, 96, 1, sizeof(row), 3, out, &ow, &oh), 0);
    assert_int_equal(ow, 32);
    assert_int_equal(oh, 1);
    for (int x = 0; x < ow; x++)
        assert_int_equal(out[x * 3], 30);
    free(im);
}

static void test_shrink_alpha_on_white(void **state) {
    (void)state;
    static const struct {
        unsigned char px[4];
        unsigned char want[3];
    } cases[] = {
        {{0, 0, 0, 0}, {255, 255, 255}},      /* transparent: white */
        {{10, 20, 30, 255}, {10, 20, 30}},    /* opaque: itself */
        {{0, 0, 0, 128}, {127, 127, 127}},    /* half black on white */
        {{200, 100, 0, 51}, {244, 224, 204}}, /* 0.2 of it on white */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char *im = solid_px(40, 40, 4, cases[i].px);
        unsigned char out[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3];
        int ow, oh;
        assert_int_equal(placeholder_shrink(im, 40, 40, 40 * 4, 4, out, &ow, &oh), 0);
        assert_int_equal(ow, 32);
        assert_int_equal(oh, 32);
        for (int c = 0; c < 3; c++)
            if (abs(out[c] - cases[i].want[c]) > 1)
                fail_msg("%u %u %u alpha %u gives %u %u %u, not about %u %u %u", cases[i].px[0],
                         cases[i].px[1], cases[i].px[2], cases[i].px[3], out[0], out[1], out[2],
                         cases[i].want[0], cases[i].want[1], cases[i].want[2]);
        free(im);
    }
}

static void test_shrink_bad_arguments(void **state) {
    (void)state;
    unsigned char im[4 * 4 * 4] = {0}, out[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3];
    int ow = -7, oh = -7;
    assert_int_equal(placeholder_shrink(NULL, 4, 4, 12, 3, out, &ow, &oh), -1);
    assert_int_equal(placeholder_shrink(im, 0, 4, 12, 3, out, &ow, &oh), -1);
    assert_int_equal(placeholder_shrink(im, 4, 0, 12, 3, out, &ow, &oh), -1);
    assert_int_equal(placeholder_shrink(im, 4, 4, 12, 2, out, &ow, &oh), -1);
    assert_int_equal(placeholder_shrink(im, 4, 4, 11, 3, out, &ow, &oh), -1); /* stride too short */
    assert_int_equal(placeholder_shrink(im, 4, 4, 12, 4, out, &ow, &oh), -1);
    assert_int_equal(ow, -7);
    assert_int_equal(oh, -7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_dominant_solid),
        cmocka_unit_test(test_dominant_red_over_blue),
        cmocka_unit_test(test_dominant_mixed),
        cmocka_unit_test(test_dominant_bad_arguments),
        cmocka_unit_test(test_shrink_sizes),
        cmocka_unit_test(test_shrink_areas),
        cmocka_unit_test(test_shrink_alpha_on_white),
        cmocka_unit_test(test_shrink_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
