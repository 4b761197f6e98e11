/* test_thumb.c — the libvips pipeline on images made here: fit modes, formats,
 * EXIF rotation, alpha, limits, truncated and hostile input; the outputs of a
 * job from one decode (thumb_make_set); imgtype detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "config.h"
#include "imgtype.h"
#include "thumb.h"

/* libx265 leaks about 1 KB per HEVC encode; only this test encodes HEVC (to make
 * a HEIC source), the worker never does. Read by LeakSanitizer when built with
 * -DSANITIZE=ON, ignored otherwise. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libx265.so\n";
}

enum src_fmt { SRC_JPEG, SRC_PNG, SRC_WEBP, SRC_GIF, SRC_AVIF, SRC_HEIC, SRC_TIFF };

/* An encoded test image: noise of w x h with bands bands (3 or 4), or frames
 * stacked pages. Owned by the caller (g_free). */
struct blob {
    void *data;
    size_t len;
};

static VipsImage *noise(int w, int h, int bands) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 5);
    assert_int_equal(vips_gaussnoise(&t[0], w, h, "mean", 128.0, "sigma", 40.0, NULL), 0);
    assert_int_equal(vips_cast(t[0], &t[1], VIPS_FORMAT_UCHAR, NULL), 0);
    VipsImage *in[4] = {t[1], t[1], t[1], t[1]};
    assert_int_equal(vips_bandjoin(in, &t[2], bands, NULL), 0);
    VipsImage *out;
    assert_int_equal(vips_copy(t[2], &out, "interpretation",
                               bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB,
                               NULL),
                     0);
    g_object_unref(ctx);
    return out;
}

static struct blob encode_as(VipsImage *im, enum src_fmt f) {
    struct blob b = {0};
    int rc = -1;
    switch (f) {
    case SRC_JPEG:
        rc = vips_jpegsave_buffer(im, &b.data, &b.len, NULL);
        break;
    case SRC_PNG:
        rc = vips_pngsave_buffer(im, &b.data, &b.len, NULL);
        break;
    case SRC_WEBP:
        rc = vips_webpsave_buffer(im, &b.data, &b.len, NULL);
        break;
    case SRC_GIF:
        rc = vips_gifsave_buffer(im, &b.data, &b.len, NULL);
        break;
    case SRC_AVIF:
        rc = vips_heifsave_buffer(im, &b.data, &b.len, "compression",
                                  VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "bitdepth", 8, NULL);
        break;
    case SRC_HEIC:
        rc = vips_heifsave_buffer(im, &b.data, &b.len, "compression",
                                  VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, "bitdepth", 8, NULL);
        break;
    case SRC_TIFF:
        rc = vips_tiffsave_buffer(im, &b.data, &b.len, NULL);
        break;
    }
    if (rc != 0)
        fail_msg("encoding a test image failed: %s", vips_error_buffer());
    return b;
}

static struct blob make(int w, int h, int bands, enum src_fmt f) {
    VipsImage *im = noise(w, h, bands);
    struct blob b = encode_as(im, f);
    g_object_unref(im);
    return b;
}

static struct thumb_opts opts(int w, int h, enum job_fit fit, enum job_format fmt) {
    struct thumb_opts o = {
        .width = w,
        .height = h,
        .fit = fit,
        .crop = JOB_CROP_CENTRE,
        .format = fmt,
        .quality = 80,
        .avif_effort = 2,
        .max_pixels = 50000000,
        .max_frames = 100,
        .max_output_pixels = 4194304, /* the configuration's defaults */
        .max_result_bytes = 8 << 20,
        .expect_mime = NULL,
    };
    return o;
}

/* Runs thumb_make expecting success. */
static struct thumb_result ok(const struct thumb_opts *o, const struct blob *b) {
    struct thumb_result r;
    struct failure err = {0};
    if (thumb_make(o, b->data, b->len, &r, &err) != 0)
        fail_msg("thumb_make failed: %s: %s", err.code, err.message);
    assert_non_null(r.data);
    assert_true(r.len > 0);
    return r;
}

/* Runs thumb_make expecting failure with code. */
static void fails(const struct thumb_opts *o, const void *data, size_t len, const char *code) {
    struct thumb_result r;
    struct failure err = {0};
    int rc = thumb_make(o, data, len, &r, &err);
    if (rc != -1 || strcmp(err.code, code) != 0)
        fail_msg("expected %s, got rc %d code '%s' (%s)", code, rc, err.code, err.message);
    assert_null(r.data);
    assert_true(strlen(err.message) > 0);
    assert_null(strchr(err.message, '\n'));
    assert_int_equal(vips_error_buffer()[0], '\0'); /* cleared */
}

/* Decodes a result back and checks its size and loader. */
static void decodes_as(const struct thumb_result *r, const char *loader_prefix, int w, int h) {
    VipsImage *im = vips_image_new_from_buffer(r->data, r->len, "", NULL);
    if (im == NULL)
        fail_msg("result does not decode: %s", vips_error_buffer());
    const char *loader = NULL;
    assert_int_equal(vips_image_get_string(im, VIPS_META_LOADER, &loader), 0);
    if (strncmp(loader, loader_prefix, strlen(loader_prefix)) != 0)
        fail_msg("decoded by %s, expected %s", loader, loader_prefix);
    assert_int_equal(vips_image_get_width(im), w);
    assert_int_equal(vips_image_get_height(im), h);
    g_object_unref(im);
}

static int setup(void **state) {
    (void)state;
    return thumb_init();
}

static int teardown(void **state) {
    (void)state;
    thumb_shutdown();
    return 0;
}

/* --- fit modes --------------------------------------------------------- */

struct fit_case {
    enum job_fit fit;
    int src_w, src_h;
    int want_w, want_h;
};

static void test_fit_modes(void **state) {
    (void)state;
    /* Box 100x80: landscape 400x200 and portrait 200x400 sources. */
    static const struct fit_case cases[] = {
        {JOB_FIT_INSIDE, 400, 200, 100, 50},  {JOB_FIT_INSIDE, 200, 400, 40, 80},
        {JOB_FIT_COVER, 400, 200, 100, 80},   {JOB_FIT_COVER, 200, 400, 100, 80},
        {JOB_FIT_CONTAIN, 400, 200, 100, 80}, {JOB_FIT_CONTAIN, 200, 400, 100, 80},
        {JOB_FIT_FILL, 400, 200, 100, 80},    {JOB_FIT_FILL, 200, 400, 100, 80},
        {JOB_FIT_INSIDE, 40, 20, 100, 50}, /* a small source grows to the box */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct fit_case *c = &cases[i];
        struct blob b = make(c->src_w, c->src_h, 3, SRC_JPEG);
        struct thumb_opts o = opts(100, 80, c->fit, JOB_FORMAT_PNG);
        struct thumb_result r = ok(&o, &b);
        if (r.width != c->want_w || r.height != c->want_h)
            fail_msg("fit %s %dx%d: got %dx%d, want %dx%d", job_fit_name(c->fit), c->src_w,
                     c->src_h, r.width, r.height, c->want_w, c->want_h);
        decodes_as(&r, "pngload", c->want_w, c->want_h);
        assert_string_equal(r.src_mime, "image/jpeg");
        assert_int_equal(r.src_width, c->src_w);
        assert_int_equal(r.src_height, c->src_h);
        assert_int_equal(r.src_bytes, b.len);
        thumb_result_free(&r);
        g_free(b.data);
    }
}

static void test_cover_crops(void **state) {
    (void)state;
    struct blob b = make(300, 120, 3, SRC_PNG);
    const enum job_crop crops[] = {JOB_CROP_CENTRE, JOB_CROP_ATTENTION, JOB_CROP_ENTROPY};
    for (size_t i = 0; i < 3; i++) {
        struct thumb_opts o = opts(64, 64, JOB_FIT_COVER, JOB_FORMAT_JPEG);
        o.crop = crops[i];
        struct thumb_result r = ok(&o, &b);
        assert_int_equal(r.width, 64);
        assert_int_equal(r.height, 64);
        thumb_result_free(&r);
    }
    g_free(b.data);
}

/* --- formats ----------------------------------------------------------- */

static void test_output_formats(void **state) {
    (void)state;
    static const struct {
        enum job_format fmt;
        const char *mime;
        const char *loader;
    } cases[] = {
        {JOB_FORMAT_JPEG, "image/jpeg", "jpegload"}, {JOB_FORMAT_PNG, "image/png", "pngload"},
        {JOB_FORMAT_WEBP, "image/webp", "webpload"}, {JOB_FORMAT_AVIF, "image/avif", "heifload"},
        {JOB_FORMAT_GIF, "image/gif", "gifload"},
    };
    struct blob b = make(320, 240, 3, SRC_JPEG);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct thumb_opts o = opts(64, 64, JOB_FIT_INSIDE, cases[i].fmt);
        struct thumb_result r = ok(&o, &b);
        assert_string_equal(r.mime, cases[i].mime);
        decodes_as(&r, cases[i].loader, 64, 48);
        thumb_result_free(&r);
    }
    g_free(b.data);
}

/* image.avif_effort reaches the AV1 encoder: another effort, another bitstream
 * of the same pixels. */
static void test_avif_effort(void **state) {
    (void)state;
    struct blob b = make(160, 120, 3, SRC_PNG);
    struct thumb_opts o = opts(64, 64, JOB_FIT_INSIDE, JOB_FORMAT_AVIF);
    o.avif_effort = 0;
    struct thumb_result fast = ok(&o, &b);
    o.avif_effort = 8;
    struct thumb_result slow = ok(&o, &b);
    decodes_as(&fast, "heifload", 64, 48);
    decodes_as(&slow, "heifload", 64, 48);
    assert_true(fast.len != slow.len || memcmp(fast.data, slow.data, fast.len) != 0);
    thumb_result_free(&fast);
    thumb_result_free(&slow);
    g_free(b.data);
}

static void test_original_format(void **state) {
    (void)state;
    static const struct {
        enum src_fmt src;
        const char *src_mime;
        const char *out_mime;
    } cases[] = {
        {SRC_JPEG, "image/jpeg", "image/jpeg"}, {SRC_PNG, "image/png", "image/png"},
        {SRC_WEBP, "image/webp", "image/webp"}, {SRC_GIF, "image/gif", "image/gif"},
        {SRC_AVIF, "image/avif", "image/avif"}, {SRC_HEIC, "image/heif", "image/jpeg"},
        {SRC_TIFF, "image/tiff", "image/jpeg"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct blob b = make(120, 90, 3, cases[i].src);
        struct thumb_opts o = opts(40, 40, JOB_FIT_COVER, JOB_FORMAT_ORIGINAL);
        o.expect_mime = cases[i].src_mime;
        struct thumb_result r = ok(&o, &b);
        assert_string_equal(r.src_mime, cases[i].src_mime);
        assert_string_equal(r.mime, cases[i].out_mime);
        assert_int_equal(r.width, 40);
        assert_int_equal(r.height, 40);
        thumb_result_free(&r);
        g_free(b.data);
    }
}

static void test_quality_changes_size(void **state) {
    (void)state;
    struct blob b = make(400, 300, 3, SRC_PNG);
    struct thumb_opts lo = opts(200, 200, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    struct thumb_opts hi = lo;
    lo.quality = 10;
    hi.quality = 95;
    struct thumb_result a = ok(&lo, &b), c = ok(&hi, &b);
    assert_true(a.len < c.len);
    thumb_result_free(&a);
    thumb_result_free(&c);
    g_free(b.data);
}

/* --- rotation, metadata, colour ---------------------------------------- */

static void test_exif_rotation(void **state) {
    (void)state;
    VipsImage *im = noise(200, 100, 3);
    VipsImage *tagged;
    assert_int_equal(vips_copy(im, &tagged, NULL), 0);
    vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
    struct blob b = encode_as(tagged, SRC_JPEG);
    g_object_unref(tagged);
    g_object_unref(im);

    struct thumb_opts o = opts(100, 100, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    struct thumb_result r = ok(&o, &b);
    assert_int_equal(r.width, 50); /* 200x100 turned a quarter: 100x200, inside 100x100 */
    assert_int_equal(r.height, 100);
    assert_int_equal(r.src_width, 100); /* as displayed */
    assert_int_equal(r.src_height, 200);

    /* Stripped: no orientation (or any EXIF) left to rotate it twice. */
    VipsImage *back = vips_image_new_from_buffer(r.data, r.len, "", NULL);
    assert_non_null(back);
    assert_int_equal(vips_image_get_typeof(back, VIPS_META_EXIF_NAME), 0);
    assert_int_equal(vips_image_get_orientation(back), 1);
    g_object_unref(back);
    thumb_result_free(&r);
    g_free(b.data);
}

/* Every output format drops the source's metadata: its EXIF fields and its ICC
 * profile. (libvips 8.14's webpsave always writes a small EXIF block of its own
 * with the resolution; nothing of the source is in it.) */
static void test_every_format_stripped(void **state) {
    (void)state;
    VipsImage *im = noise(200, 100, 3);
    VipsImage *tagged;
    assert_int_equal(vips_copy(im, &tagged, NULL), 0);
    vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
    vips_image_set_string(tagged, "exif-ifd0-Artist", "somebody");
    struct blob b = encode_as(tagged, SRC_JPEG);
    g_object_unref(tagged);
    g_object_unref(im);
    VipsImage *src = vips_image_new_from_buffer(b.data, b.len, "", NULL);
    assert_non_null(src);
    assert_int_not_equal(vips_image_get_typeof(src, "exif-ifd0-Artist"), 0);
    g_object_unref(src);

    const enum job_format formats[] = {JOB_FORMAT_JPEG, JOB_FORMAT_PNG, JOB_FORMAT_WEBP,
                                       JOB_FORMAT_AVIF, JOB_FORMAT_GIF};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct thumb_opts o = opts(100, 100, JOB_FIT_INSIDE, formats[i]);
        struct thumb_result r = ok(&o, &b);
        VipsImage *back = vips_image_new_from_buffer(r.data, r.len, "", NULL);
        assert_non_null(back);
        if (vips_image_get_typeof(back, "exif-ifd0-Artist") != 0 ||
            vips_image_get_typeof(back, VIPS_META_ICC_NAME) != 0 ||
            vips_image_get_orientation(back) != 1)
            fail_msg("%s output keeps the source's metadata", job_format_name(formats[i]));
        g_object_unref(back);
        thumb_result_free(&r);
    }
    g_free(b.data);
}

/* Found by fuzzing: cover scales a source of extreme aspect ratio up before it
 * crops, so a 1x65000 JPEG for 512x512 would first become 512x33280000. */
static void test_cover_of_extreme_aspect_ratio_is_bounded(void **state) {
    (void)state;
    struct blob b = make(1, 65000, 3, SRC_JPEG);
    struct thumb_opts o = opts(512, 512, JOB_FIT_COVER, JOB_FORMAT_JPEG);
    fails(&o, b.data, b.len, "too_many_pixels");
    /* The same source fits inside a box without growing. */
    struct thumb_opts in = opts(512, 512, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    struct thumb_result r = ok(&in, &b);
    thumb_result_free(&r);
    g_free(b.data);
}

/* Found by fuzzing: a decoder's warning left in libvips' error buffer showed up
 * in the next failing job's message. */
static void test_no_error_text_left_behind(void **state) {
    (void)state;
    struct blob b = make(200, 100, 3, SRC_JPEG);
    vips_error("test", "an earlier complaint");
    struct thumb_opts o = opts(50, 50, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    struct thumb_result r = ok(&o, &b);
    assert_string_equal(vips_error_buffer(), "");
    thumb_result_free(&r);
    g_free(b.data);
}

static void test_grey_becomes_srgb(void **state) {
    (void)state;
    struct blob b = make(64, 64, 1, SRC_PNG);
    struct thumb_opts o = opts(32, 32, JOB_FIT_FILL, JOB_FORMAT_PNG);
    struct thumb_result r = ok(&o, &b);
    VipsImage *back = vips_image_new_from_buffer(r.data, r.len, "", NULL);
    assert_non_null(back);
    assert_int_equal(vips_image_get_bands(back), 3);
    assert_int_equal(vips_image_get_interpretation(back), VIPS_INTERPRETATION_sRGB);
    g_object_unref(back);
    thumb_result_free(&r);
    g_free(b.data);
}

/* CMYK and 16-bit sources come out as 8-bit sRGB. */
static void test_cmyk_and_16bit(void **state) {
    (void)state;
    VipsImage *im = noise(64, 48, 4), *cmyk, *rgb, *wide;
    assert_int_equal(vips_copy(im, &cmyk, "interpretation", VIPS_INTERPRETATION_CMYK, NULL), 0);
    struct blob b = encode_as(cmyk, SRC_JPEG);
    g_object_unref(cmyk);
    g_object_unref(im);
    struct thumb_opts o = opts(32, 32, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    o.expect_mime = "image/jpeg";
    struct thumb_result r = ok(&o, &b);
    VipsImage *back = vips_image_new_from_buffer(r.data, r.len, "", NULL);
    assert_non_null(back);
    assert_int_equal(vips_image_get_bands(back), 3);
    assert_int_equal(vips_image_get_interpretation(back), VIPS_INTERPRETATION_sRGB);
    g_object_unref(back);
    thumb_result_free(&r);
    g_free(b.data);

    im = noise(64, 48, 3);
    assert_int_equal(vips_cast(im, &wide, VIPS_FORMAT_USHORT, NULL), 0);
    assert_int_equal(vips_copy(wide, &rgb, "interpretation", VIPS_INTERPRETATION_RGB16, NULL), 0);
    b = encode_as(rgb, SRC_PNG);
    g_object_unref(rgb);
    g_object_unref(wide);
    g_object_unref(im);
    o.expect_mime = "image/png";
    r = ok(&o, &b);
    back = vips_image_new_from_buffer(r.data, r.len, "", NULL);
    assert_non_null(back);
    assert_int_equal(vips_image_get_format(back), VIPS_FORMAT_UCHAR);
    assert_int_equal(vips_image_get_bands(back), 3);
    g_object_unref(back);
    thumb_result_free(&r);
    g_free(b.data);
}

/* The pixel at x, y of an encoded image, n bands into px. */
static void pixel(const struct thumb_result *r, int x, int y, double *px, int *n) {
    VipsImage *im = vips_image_new_from_buffer(r->data, r->len, "", NULL);
    assert_non_null(im);
    double *v = NULL;
    assert_int_equal(vips_getpoint(im, &v, n, x, y, NULL), 0);
    memcpy(px, v, (size_t)*n * sizeof(double));
    g_free(v);
    g_object_unref(im);
}

static void test_contain_padding(void **state) {
    (void)state;
    double px[4];
    int n;
    /* No alpha: white bars. */
    struct blob b = make(400, 100, 3, SRC_JPEG);
    struct thumb_opts o = opts(100, 100, JOB_FIT_CONTAIN, JOB_FORMAT_PNG);
    struct thumb_result r = ok(&o, &b);
    pixel(&r, 0, 0, px, &n);
    assert_int_equal(n, 3);
    assert_true(px[0] == 255 && px[1] == 255 && px[2] == 255);
    thumb_result_free(&r);
    g_free(b.data);

    /* Alpha: transparent bars, for png and webp. */
    b = make(400, 100, 4, SRC_PNG);
    const enum job_format with_alpha[] = {JOB_FORMAT_PNG, JOB_FORMAT_WEBP};
    for (int i = 0; i < 2; i++) {
        o = opts(100, 100, JOB_FIT_CONTAIN, with_alpha[i]);
        r = ok(&o, &b);
        assert_int_equal(r.width, 100);
        assert_int_equal(r.height, 100);
        pixel(&r, 0, 0, px, &n);
        assert_int_equal(n, 4);
        assert_true(px[3] == 0);
        thumb_result_free(&r);
    }
    /* Alpha into jpeg: flattened on white, bars white too. */
    o = opts(100, 100, JOB_FIT_CONTAIN, JOB_FORMAT_JPEG);
    r = ok(&o, &b);
    pixel(&r, 0, 0, px, &n);
    assert_int_equal(n, 3);
    assert_true(px[0] > 250 && px[1] > 250 && px[2] > 250);
    thumb_result_free(&r);
    g_free(b.data);
}

/* A Display P3 source is converted to sRGB numbers, not just stripped of its
 * profile (which would desaturate it). */
static void test_p3_converted_to_srgb(void **state) {
    (void)state;
    VipsImage *black, *red, *srgb, *p3;
    double scale[3] = {0, 0, 0}, offset[3] = {255, 0, 0};
    assert_int_equal(vips_black(&black, 64, 64, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear(black, &red, scale, offset, 3, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_copy(red, &srgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    assert_int_equal(vips_icc_transform(srgb, &p3, "p3", "input_profile", "srgb", "depth", 8, NULL),
                     0);
    struct blob b = encode_as(p3, SRC_PNG);
    g_object_unref(p3);
    g_object_unref(srgb);
    g_object_unref(red);
    g_object_unref(black);

    struct thumb_opts o = opts(16, 16, JOB_FIT_FILL, JOB_FORMAT_PNG);
    struct thumb_result r = ok(&o, &b);
    assert_true(r.src_icc);
    double px[4];
    int n;
    pixel(&r, 8, 8, px, &n);
    if (!(px[0] > 250 && px[1] < 10 && px[2] < 10))
        fail_msg("P3 red came out as %.0f %.0f %.0f, not sRGB red", px[0], px[1], px[2]);
    thumb_result_free(&r);
    g_free(b.data);
}

/* A source tagged with an sRGB profile keeps its colours and needs no colour
 * transform; a Display P3 one is marked for one. */
static void test_srgb_profile_needs_no_transform(void **state) {
    (void)state;
    VipsImage *black, *red, *srgb, *tagged;
    double scale[3] = {0, 0, 0}, offset[3] = {200, 30, 60};
    assert_int_equal(vips_black(&black, 64, 64, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear(black, &red, scale, offset, 3, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_copy(red, &srgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    /* An sRGB-to-sRGB transform: the same numbers, with libvips' sRGB profile attached. */
    assert_int_equal(
        vips_icc_transform(srgb, &tagged, "srgb", "input_profile", "srgb", "depth", 8, NULL), 0);
    assert_true(vips_image_get_typeof(tagged, VIPS_META_ICC_NAME) != 0);
    struct blob b = encode_as(tagged, SRC_PNG);
    g_object_unref(tagged);
    g_object_unref(srgb);
    g_object_unref(red);
    g_object_unref(black);

    struct thumb_opts o = opts(16, 16, JOB_FIT_FILL, JOB_FORMAT_PNG);
    struct thumb_result r = ok(&o, &b);
    assert_false(r.src_icc);
    double px[4];
    int n;
    pixel(&r, 8, 8, px, &n);
    if (fabs(px[0] - 200) > 2 || fabs(px[1] - 30) > 2 || fabs(px[2] - 60) > 2)
        fail_msg("sRGB-tagged 200 30 60 came out as %.0f %.0f %.0f", px[0], px[1], px[2]);
    thumb_result_free(&r);
    g_free(b.data);
}

/* --- limits and hostile input ------------------------------------------ */

static void test_truncated(void **state) {
    (void)state;
    const enum src_fmt fmts[] = {SRC_JPEG, SRC_PNG};
    for (int i = 0; i < 2; i++) {
        struct blob b = make(600, 400, 3, fmts[i]);
        struct thumb_opts o = opts(100, 100, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
        fails(&o, b.data, b.len / 2, "decode_failed");
        g_free(b.data);
    }
}

static void test_too_many_pixels(void **state) {
    (void)state;
    struct blob b = make(400, 200, 3, SRC_JPEG);
    struct thumb_opts o = opts(100, 100, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    o.max_pixels = 400 * 200 - 1;
    fails(&o, b.data, b.len, "too_many_pixels");
    o.max_pixels = 400 * 200;
    struct thumb_result r = ok(&o, &b);
    thumb_result_free(&r);
    g_free(b.data);
}

/* The thumbnail's size is known from the header: the box for cover, contain and
 * fill, the source's aspect in the box for inside (grown or shrunk, rounded as
 * libvips rounds). Over max_output_pixels it fails before resizing. */
static void test_output_too_large(void **state) {
    (void)state;
    static const struct {
        enum job_fit fit;
        int src_w, src_h;
        int out_w, out_h; /* what the box 100x100 makes of it */
    } cases[] = {
        {JOB_FIT_INSIDE, 64, 64, 100, 100}, {JOB_FIT_INSIDE, 64, 16, 100, 25},
        {JOB_FIT_INSIDE, 3, 1, 100, 33},    {JOB_FIT_INSIDE, 1000, 400, 100, 40},
        {JOB_FIT_COVER, 64, 16, 100, 100},  {JOB_FIT_CONTAIN, 64, 16, 100, 100},
        {JOB_FIT_FILL, 64, 16, 100, 100},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct blob b = make(cases[i].src_w, cases[i].src_h, 3, SRC_PNG);
        struct thumb_opts o = opts(100, 100, cases[i].fit, JOB_FORMAT_PNG);
        o.max_output_pixels = (int64_t)cases[i].out_w * cases[i].out_h; /* at the bound */
        struct thumb_result r = ok(&o, &b);
        if (r.width != cases[i].out_w || r.height != cases[i].out_h)
            fail_msg("%s %dx%d in 100x100: %dx%d, want %dx%d", job_fit_name(cases[i].fit),
                     cases[i].src_w, cases[i].src_h, r.width, r.height, cases[i].out_w,
                     cases[i].out_h);
        thumb_result_free(&r);

        o.max_output_pixels--; /* one pixel less: refused, nothing decoded */
        struct failure err = {0};
        assert_int_equal(thumb_make(&o, b.data, b.len, &r, &err), -1);
        assert_string_equal(err.code, "output_too_large");
        char dims[32];
        snprintf(dims, sizeof(dims), "%dx%d thumbnail", cases[i].out_w, cases[i].out_h);
        if (strstr(err.message, dims) == NULL)
            fail_msg("'%s' does not name the %s", err.message, dims);
        assert_null(r.data);
        assert_int_equal(r.src_width, cases[i].src_w); /* the source is known */
        assert_string_equal(r.src_mime, "image/png");
        g_free(b.data);
    }
}

/* An encoded thumbnail over max_result_bytes fails, and its bytes are dropped. */
static void test_result_too_large(void **state) {
    (void)state;
    struct blob b = make(200, 200, 3, SRC_PNG);
    struct thumb_opts o = opts(200, 200, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    o.max_result_bytes = 0; /* no bound: how big it is */
    struct thumb_result r = ok(&o, &b);
    size_t len = r.len;
    thumb_result_free(&r);
    assert_true(len > 1000);

    o.max_result_bytes = len; /* at the bound */
    r = ok(&o, &b);
    assert_int_equal(r.len, len);
    thumb_result_free(&r);

    o.max_result_bytes = len - 1;
    struct failure err = {0};
    assert_int_equal(thumb_make(&o, b.data, b.len, &r, &err), -1);
    assert_string_equal(err.code, "result_too_large");
    assert_null(r.data);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.src_width, 200);
    assert_int_equal(vips_error_buffer()[0], '\0');
    fails(&o, b.data, b.len, "result_too_large");
    g_free(b.data);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A PNG whose header claims 50000x50000: refused from the header alone. */
static void test_png_bomb_header(void **state) {
    (void)state;
    struct blob b = make(16, 16, 3, SRC_PNG);
    unsigned char *p = b.data;
    assert_memory_equal(p + 12, "IHDR", 4);
    put_be32(p + 16, 50000);
    put_be32(p + 20, 50000);
    put_be32(p + 29, crc32_of(p + 12, 17));
    struct thumb_opts o = opts(100, 100, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    struct thumb_result r;
    struct failure err = {0};
    assert_int_equal(thumb_make(&o, b.data, b.len, &r, &err), -1);
    assert_string_equal(err.code, "too_many_pixels");
    assert_non_null(strstr(err.message, "50000x50000"));
    assert_int_equal(r.src_width, 50000);
    g_free(b.data);
}

static void test_too_many_frames(void **state) {
    (void)state;
    VipsImage *im = noise(32, 32 * 5, 3);
    VipsImage *paged;
    assert_int_equal(vips_copy(im, &paged, NULL), 0);
    vips_image_set_int(paged, VIPS_META_PAGE_HEIGHT, 32);
    struct blob b = encode_as(paged, SRC_GIF);
    g_object_unref(paged);
    g_object_unref(im);

    struct thumb_opts o = opts(16, 16, JOB_FIT_INSIDE, JOB_FORMAT_GIF);
    o.max_frames = 4;
    fails(&o, b.data, b.len, "too_many_frames");
    o.max_frames = 5;
    o.max_pixels = 32 * 32 * 5 - 1; /* pixels count every frame */
    fails(&o, b.data, b.len, "too_many_pixels");
    o.max_pixels = 32 * 32 * 5;
    struct thumb_result r = ok(&o, &b);
    assert_int_equal(r.src_pages, 5);
    assert_int_equal(r.width, 16);
    assert_int_equal(r.height, 16); /* the first frame */
    thumb_result_free(&r);
    g_free(b.data);
}

static void test_garbage_and_mismatch(void **state) {
    (void)state;
    struct thumb_opts o = opts(100, 100, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    const char *text = "<html><body>not an image</body></html>";
    fails(&o, text, strlen(text), "decode_failed");
    fails(&o, "", 0, "decode_failed");

    /* A PNG handed over as if libmagic had said jpeg. */
    struct blob b = make(50, 50, 3, SRC_PNG);
    o.expect_mime = "image/jpeg";
    fails(&o, b.data, b.len, "unsupported_type");
    g_free(b.data);
}

/* libvips loaders marked untrusted (svg, pdf, ...) are blocked. */
static void test_untrusted_loader_blocked(void **state) {
    (void)state;
    const char *svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"40\">"
                      "<rect width=\"40\" height=\"40\" fill=\"red\"/></svg>";
    struct thumb_opts o = opts(20, 20, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    fails(&o, svg, strlen(svg), "decode_failed");
}

/* --- thumb_make_set ---------------------------------------------------- */

/* An output of a job, as job_params_finish leaves one: formats in order. */
static struct job_output output(const char *name, int w, int h, enum job_fit fit, int nformats,
                                ...) {
    struct job_output jo = {.width = w, .height = h, .fit = fit, .quality = 80};
    snprintf(jo.name, sizeof(jo.name), "%s", name);
    va_list ap;
    va_start(ap, nformats);
    for (int i = 0; i < nformats; i++)
        jo.formats[i] = (enum job_format)va_arg(ap, int);
    va_end(ap);
    jo.nformats = nformats;
    return jo;
}

static void set_ok(const struct thumb_opts *o, const struct job_output *outs, int nout,
                   const struct blob *b, struct thumb_set *s) {
    struct failure err = {0};
    if (thumb_make_set(o, outs, nout, b->data, b->len, s, &err) != 0)
        fail_msg("thumb_make_set failed: %s: %s", err.code, err.message);
    assert_true(s->nenc > 0);
}

/* Runs thumb_make_set expecting failure with code; the message into msg. */
static void set_fails(const struct thumb_opts *o, const struct job_output *outs, int nout,
                      const void *data, size_t len, const char *code, char *msg, size_t msglen) {
    struct thumb_set s;
    struct failure err = {0};
    int rc = thumb_make_set(o, outs, nout, data, len, &s, &err);
    if (rc != -1 || strcmp(err.code, code) != 0)
        fail_msg("expected %s, got rc %d code '%s' (%s)", code, rc, err.code, err.message);
    assert_int_equal(s.nenc, 0);
    assert_null(strchr(err.message, '\n'));
    assert_int_equal(vips_error_buffer()[0], '\0');
    snprintf(msg, msglen, "%s", err.message);
    thumb_set_free(&s);
}

/* An encoding decoded back (all its frames when frames, for gif and webp):
 * jxlload is blocked with the other untrusted loaders, so it is let through
 * for this. */
static VipsImage *decode_enc(const struct thumb_encoding *e, bool frames) {
    bool paged = e->format == JOB_FORMAT_GIF || e->format == JOB_FORMAT_WEBP;
    vips_operation_block_set("VipsForeignLoadJxl", FALSE);
    VipsImage *im =
        vips_image_new_from_buffer(e->data, e->len, frames && paged ? "n=-1" : "", NULL);
    vips_operation_block_set("VipsForeignLoadJxl", TRUE);
    if (im == NULL)
        fail_msg("%s does not decode: %s", e->mime, vips_error_buffer());
    return im;
}

static void enc_decodes_as(const struct thumb_encoding *e, const char *loader_prefix, int w,
                           int h) {
    VipsImage *im = decode_enc(e, false);
    const char *loader = NULL;
    assert_int_equal(vips_image_get_string(im, VIPS_META_LOADER, &loader), 0);
    if (strncmp(loader, loader_prefix, strlen(loader_prefix)) != 0)
        fail_msg("%s decoded by %s, expected %s", e->mime, loader, loader_prefix);
    if (vips_image_get_width(im) != w || vips_image_get_height(im) != h)
        fail_msg("%s is %dx%d, expected %dx%d", e->mime, vips_image_get_width(im),
                 vips_image_get_height(im), w, h);
    g_object_unref(im);
}

static void enc_pixel(const struct thumb_encoding *e, int x, int y, double *px, int *n) {
    VipsImage *im = decode_enc(e, false);
    double *v = NULL;
    assert_int_equal(vips_getpoint(im, &v, n, x, y, NULL), 0);
    memcpy(px, v, (size_t)*n * sizeof(double));
    g_free(v);
    g_object_unref(im);
}

static bool near(const double *px, int r, int g, int b, int tolerance) {
    return fabs(px[0] - r) <= tolerance && fabs(px[1] - g) <= tolerance &&
           fabs(px[2] - b) <= tolerance;
}

/* A w x h image of bands bands (3 or 4), of the colour in v. */
static VipsImage *solid(int w, int h, int bands, const double *v) {
    VipsImage *black, *lin, *out;
    double zero[4] = {0, 0, 0, 0};
    assert_int_equal(vips_black(&black, w, h, "bands", bands, NULL), 0);
    assert_int_equal(vips_linear(black, &lin, zero, (double *)v, bands, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_copy(lin, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    g_object_unref(lin);
    g_object_unref(black);
    return out;
}

/* A smooth w x h sRGB image: quick to encode in every format, unlike noise. */
static VipsImage *gradient(int w, int h) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 3);
    assert_int_equal(vips_grey(&t[0], w, h, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_rot(t[0], &t[1], VIPS_ANGLE_D180, NULL), 0);
    VipsImage *in[3] = {t[0], t[1], t[0]};
    assert_int_equal(vips_bandjoin(in, &t[2], 3, NULL), 0);
    VipsImage *out;
    assert_int_equal(vips_copy(t[2], &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    g_object_unref(ctx);
    return out;
}

static void etag_hex(const void *data, size_t len, char out[33]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Four sizes in three formats from one 2560x1440 source: twelve encodings, in
 * output order and each output's in its formats' order, of the exact sizes. */
static void test_set_four_outputs(void **state) {
    (void)state;
    VipsImage *im = gradient(2560, 1440);
    struct blob b = encode_as(im, SRC_JPEG);
    g_object_unref(im);
    static const int widths[4] = {320, 640, 1280, 1920};
    struct job_output outs[4];
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", widths[i]);
        outs[i] = output(name, widths[i], widths[i], JOB_FIT_INSIDE, 3, JOB_FORMAT_AVIF,
                         JOB_FORMAT_WEBP, JOB_FORMAT_JPEG);
    }
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_JPEG);
    o.avif_effort = 0;
    struct thumb_set s;
    set_ok(&o, outs, 4, &b, &s);
    assert_int_equal(s.nenc, 12);
    assert_int_equal(strlen(s.blurhash), 28);
    assert_string_equal(s.src_mime, "image/jpeg");
    assert_int_equal(s.src_width, 2560);
    assert_int_equal(s.src_height, 1440);
    assert_int_equal(s.src_bytes, b.len);
    static const struct {
        enum job_format fmt;
        const char *mime, *loader;
    } fmts[3] = {{JOB_FORMAT_AVIF, "image/avif", "heifload"},
                 {JOB_FORMAT_WEBP, "image/webp", "webpload"},
                 {JOB_FORMAT_JPEG, "image/jpeg", "jpegload"}};
    for (int i = 0; i < 12; i++) {
        const struct thumb_encoding *e = &s.enc[i];
        int w = widths[i / 3], h = w * 9 / 16;
        assert_int_equal(e->output, i / 3);
        assert_int_equal(e->format, fmts[i % 3].fmt);
        assert_string_equal(e->mime, fmts[i % 3].mime);
        assert_int_equal(e->width, w);
        assert_int_equal(e->height, h);
        assert_int_equal(e->frames, 1);
        enc_decodes_as(e, fmts[i % 3].loader, w, h);
        char etag[33];
        etag_hex(e->data, e->len, etag);
        assert_string_equal(e->etag, etag);
    }
    thumb_set_free(&s);
    assert_int_equal(s.nenc, 0);
    g_free(b.data);
}

/* One output from the set is thumb_make's thumbnail, in every fit, also for
 * sizes where libvips' shrink-on-load rounds differently from the arithmetic;
 * and a set of several fits from one decode gives each its own size. */
static void test_set_of_one_is_thumb_make(void **state) {
    (void)state;
    static const struct {
        int src_w, src_h, box_w, box_h;
    } sizes[] = {
        {400, 200, 100, 80}, {1796, 1035, 194, 140}, {797, 1338, 567, 43}, {40, 20, 100, 80}};
    const enum job_fit fits[] = {JOB_FIT_INSIDE, JOB_FIT_COVER, JOB_FIT_CONTAIN, JOB_FIT_FILL};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        VipsImage *im = gradient(sizes[i].src_w, sizes[i].src_h);
        struct blob b = encode_as(im, SRC_JPEG);
        g_object_unref(im);
        for (size_t f = 0; f < 4; f++) {
            struct thumb_opts o = opts(sizes[i].box_w, sizes[i].box_h, fits[f], JOB_FORMAT_PNG);
            struct thumb_result r = ok(&o, &b);
            struct job_output jo =
                output("default", sizes[i].box_w, sizes[i].box_h, fits[f], 1, JOB_FORMAT_PNG);
            struct thumb_set s;
            set_ok(&o, &jo, 1, &b, &s);
            assert_int_equal(s.nenc, 1);
            if (s.enc[0].width != r.width || s.enc[0].height != r.height)
                fail_msg("%s %dx%d in %dx%d: set %dx%d, thumb_make %dx%d", job_fit_name(fits[f]),
                         sizes[i].src_w, sizes[i].src_h, sizes[i].box_w, sizes[i].box_h,
                         s.enc[0].width, s.enc[0].height, r.width, r.height);
            if (fits[f] == JOB_FIT_INSIDE) { /* what one vips_thumbnail_buffer makes */
                VipsImage *t;
                assert_int_equal(vips_thumbnail_buffer(b.data, b.len, &t, sizes[i].box_w, "height",
                                                       sizes[i].box_h, NULL),
                                 0);
                assert_int_equal(r.width, vips_image_get_width(t));
                assert_int_equal(r.height, vips_image_get_height(t));
                g_object_unref(t);
            }
            thumb_set_free(&s);
            thumb_result_free(&r);
        }
        g_free(b.data);
    }

    VipsImage *im = gradient(1600, 1000);
    struct blob b = encode_as(im, SRC_PNG);
    g_object_unref(im);
    struct job_output outs[5] = {
        output("a", 800, 800, JOB_FIT_INSIDE, 1, JOB_FORMAT_PNG),
        output("b", 160, 160, JOB_FIT_COVER, 1, JOB_FORMAT_PNG),
        output("c", 200, 100, JOB_FIT_CONTAIN, 1, JOB_FORMAT_PNG),
        output("d", 90, 70, JOB_FIT_FILL, 1, JOB_FORMAT_PNG),
        output("e", 320, 320, JOB_FIT_INSIDE, 1, JOB_FORMAT_PNG),
    };
    outs[1].crop = JOB_CROP_ATTENTION;
    static const int want[5][2] = {{800, 500}, {160, 160}, {200, 100}, {90, 70}, {320, 200}};
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    struct thumb_set s;
    set_ok(&o, outs, 5, &b, &s);
    assert_int_equal(s.nenc, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.enc[i].output, i);
        enc_decodes_as(&s.enc[i], "pngload", want[i][0], want[i][1]);
    }
    thumb_set_free(&s);
    g_free(b.data);
}

/* cover with a focal point keeps the corner it names: sources of four
 * coloured quadrants, landscape (the crop moves across) and portrait (down). */
static void test_set_cover_focus(void **state) {
    (void)state;
    static const double red[3] = {255, 0, 0}, green[3] = {0, 255, 0}, blue[3] = {0, 0, 255},
                        yellow[3] = {255, 255, 0};
    static const int dims[2][2] = {{400, 100}, {100, 400}};
    for (int d = 0; d < 2; d++) {
        int w = dims[d][0], h = dims[d][1];
        VipsImage *q[4] = {solid(w / 2, h / 2, 3, red), solid(w / 2, h / 2, 3, green),
                           solid(w / 2, h / 2, 3, blue), solid(w / 2, h / 2, 3, yellow)};
        VipsImage *src;
        assert_int_equal(vips_arrayjoin(q, &src, 4, "across", 2, NULL), 0);
        struct blob b = encode_as(src, SRC_PNG);
        g_object_unref(src);
        for (int i = 0; i < 4; i++)
            g_object_unref(q[i]);

        struct job_output outs[3] = {
            output("tl", 50, 50, JOB_FIT_COVER, 1, JOB_FORMAT_PNG),
            output("br", 50, 50, JOB_FIT_COVER, 1, JOB_FORMAT_PNG),
            output("centre", 50, 50, JOB_FIT_COVER, 1, JOB_FORMAT_PNG),
        };
        outs[0].has_focus = outs[1].has_focus = true;
        outs[0].focus_x = outs[0].focus_y = 0;
        outs[1].focus_x = outs[1].focus_y = 1;
        struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
        struct thumb_set s;
        set_ok(&o, outs, 3, &b, &s);
        assert_int_equal(s.nenc, 3);
        double px[4];
        int n;
        /* {0,0}: the crop starts at the top-left corner, its far end still
         * inside the top-left quadrant along the axis it moves on. */
        enc_pixel(&s.enc[0], 1, 1, px, &n);
        assert_true(near(px, 255, 0, 0, 2));
        enc_pixel(&s.enc[0], d == 0 ? 48 : 1, d == 0 ? 1 : 48, px, &n);
        assert_true(near(px, 255, 0, 0, 2));
        /* {1,1}: the bottom-right corner. */
        enc_pixel(&s.enc[1], 48, 48, px, &n);
        assert_true(near(px, 255, 255, 0, 2));
        enc_pixel(&s.enc[1], d == 0 ? 1 : 48, d == 0 ? 48 : 1, px, &n);
        assert_true(near(px, 255, 255, 0, 2));
        /* Without one, the centre: both halves along that axis. */
        enc_pixel(&s.enc[2], 1, 1, px, &n);
        assert_true(near(px, 255, 0, 0, 2));
        enc_pixel(&s.enc[2], d == 0 ? 48 : 1, d == 0 ? 1 : 48, px, &n);
        assert_true(near(px, d == 0 ? 0 : 0, d == 0 ? 255 : 0, d == 0 ? 0 : 255, 2));
        thumb_set_free(&s);
        g_free(b.data);
    }
}

/* contain pads with the output's background: all four channels where the
 * format has alpha (an alpha band added for a translucent one), r, g, b in
 * JPEG; and JPEG flattens alpha onto it. */
static void test_set_background(void **state) {
    (void)state;
    static const double grey[3] = {128, 128, 128};
    VipsImage *im = solid(400, 100, 3, grey);
    struct blob b = encode_as(im, SRC_PNG);
    g_object_unref(im);
    struct job_output outs[2] = {
        output("png", 100, 100, JOB_FIT_CONTAIN, 1, JOB_FORMAT_PNG),
        output("jpeg", 100, 100, JOB_FIT_CONTAIN, 1, JOB_FORMAT_JPEG),
    };
    static const unsigned char translucent_red[4] = {0xff, 0x00, 0x00, 0x80},
                               green[4] = {0x00, 0xff, 0x00, 0xff};
    outs[0].has_background = outs[1].has_background = true;
    memcpy(outs[0].background, translucent_red, 4);
    memcpy(outs[1].background, green, 4);
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    struct thumb_set s;
    set_ok(&o, outs, 2, &b, &s);
    double px[4];
    int n;
    enc_pixel(&s.enc[0], 0, 0, px, &n);
    assert_int_equal(n, 4);
    if (!(near(px, 255, 0, 0, 0) && px[3] == 128))
        fail_msg("png padding %.0f %.0f %.0f %.0f", px[0], px[1], px[2], px[3]);
    enc_pixel(&s.enc[0], 50, 50, px, &n); /* the image itself, opaque */
    assert_true(near(px, 128, 128, 128, 0) && px[3] == 255);
    enc_pixel(&s.enc[1], 0, 0, px, &n);
    assert_int_equal(n, 3);
    if (!near(px, 0, 255, 0, 3))
        fail_msg("jpeg padding %.0f %.0f %.0f", px[0], px[1], px[2]);
    thumb_set_free(&s);
    g_free(b.data);

    /* A transparent source into JPEG: the background shows through. */
    static const double clear[4] = {10, 200, 10, 0};
    im = solid(64, 64, 4, clear);
    b = encode_as(im, SRC_PNG);
    g_object_unref(im);
    struct job_output jo = output("default", 32, 32, JOB_FIT_INSIDE, 1, JOB_FORMAT_JPEG);
    static const unsigned char blue[4] = {0x00, 0x00, 0xff, 0xff};
    jo.has_background = true;
    memcpy(jo.background, blue, 4);
    set_ok(&o, &jo, 1, &b, &s);
    enc_pixel(&s.enc[0], 16, 16, px, &n);
    assert_int_equal(n, 3);
    if (!near(px, 0, 0, 255, 3))
        fail_msg("transparent source flattened to %.0f %.0f %.0f", px[0], px[1], px[2]);
    thumb_set_free(&s);
    g_free(b.data);
}

/* A 3-frame source of 40x30 frames, 100, 200 and 300 ms, looping twice. */
static struct blob animation(enum src_fmt f) {
    VipsImage *im = noise(40, 90, 3), *paged;
    assert_int_equal(vips_copy(im, &paged, NULL), 0);
    vips_image_set_int(paged, VIPS_META_PAGE_HEIGHT, 30);
    static const int delays[3] = {100, 200, 300};
    vips_image_set_array_int(paged, "delay", delays, 3);
    vips_image_set_int(paged, "loop", 2);
    struct blob b = encode_as(paged, f);
    g_object_unref(paged);
    g_object_unref(im);
    return b;
}

/* Decodes every frame of e: its frame count, and its delays and loop match
 * the source's. */
static void frames_are(const struct thumb_encoding *e, int frames, int w, int h) {
    VipsImage *im = decode_enc(e, true);
    if (vips_image_get_n_pages(im) != frames)
        fail_msg("%s has %d frames, expected %d", e->mime, vips_image_get_n_pages(im), frames);
    assert_int_equal(vips_image_get_width(im), w);
    assert_int_equal(vips_image_get_page_height(im), h);
    assert_int_equal(vips_image_get_height(im), h * frames);
    assert_int_equal(e->frames, frames);
    assert_int_equal(e->width, w);
    assert_int_equal(e->height, h);
    if (frames > 1) {
        int *delay = NULL, ndelay = 0, loop = -1;
        assert_int_equal(vips_image_get_array_int(im, "delay", &delay, &ndelay), 0);
        assert_int_equal(ndelay, 3);
        assert_int_equal(delay[0], 100);
        assert_int_equal(delay[1], 200);
        assert_int_equal(delay[2], 300);
        assert_int_equal(vips_image_get_int(im, "loop", &loop), 0);
        assert_int_equal(loop, 2);
    }
    g_object_unref(im);
}

/* animated keeps every frame (with its delay and the loop) in gif and webp,
 * resized per frame; jpeg of the same output, and animated false, take the
 * first frame. */
static void test_set_animated(void **state) {
    (void)state;
    const enum src_fmt srcs[] = {SRC_GIF, SRC_WEBP};
    for (int i = 0; i < 2; i++) {
        struct blob b = animation(srcs[i]);
        struct job_output outs[3] = {
            output("anim", 20, 20, JOB_FIT_INSIDE, 3, JOB_FORMAT_GIF, JOB_FORMAT_WEBP,
                   JOB_FORMAT_JPEG),
            output("still", 20, 20, JOB_FIT_INSIDE, 2, JOB_FORMAT_GIF, JOB_FORMAT_WEBP),
            output("square", 16, 16, JOB_FIT_COVER, 1, JOB_FORMAT_ORIGINAL),
        };
        outs[0].animated = outs[2].animated = true;
        struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
        struct thumb_set s;
        set_ok(&o, outs, 3, &b, &s);
        assert_int_equal(s.src_pages, 3);
        assert_int_equal(s.nenc, 6);
        frames_are(&s.enc[0], 3, 20, 15); /* gif */
        frames_are(&s.enc[1], 3, 20, 15); /* webp */
        frames_are(&s.enc[2], 1, 20, 15); /* jpeg: the first frame */
        assert_string_equal(s.enc[2].mime, "image/jpeg");
        frames_are(&s.enc[3], 1, 20, 15);
        frames_are(&s.enc[4], 1, 20, 15);
        frames_are(&s.enc[5], 3, 16, 16); /* cover crops each frame */
        assert_int_equal(s.enc[5].format, srcs[i] == SRC_GIF ? JOB_FORMAT_GIF : JOB_FORMAT_WEBP);
        thumb_set_free(&s);

        /* Frames count toward the source's pixels as before. */
        o.max_pixels = 40 * 30 * 3 - 1;
        char msg[FAILURE_MESSAGE_MAX];
        set_fails(&o, outs, 1, b.data, b.len, "too_many_pixels", msg, sizeof(msg));
        assert_non_null(strstr(msg, "3 frames"));
        g_free(b.data);
    }
}

/* Whether a PNG is interlaced, from its IHDR (the byte after the filter method). */
static int png_interlace_byte(const struct thumb_encoding *e) {
    const unsigned char *p = e->data;
    assert_true(e->len > 29);
    assert_memory_equal(p + 12, "IHDR", 4);
    return p[28];
}

static void test_set_progressive(void **state) {
    (void)state;
    struct blob b = make(120, 90, 3, SRC_JPEG);
    struct job_output outs[2] = {
        output("prog", 60, 60, JOB_FIT_INSIDE, 2, JOB_FORMAT_JPEG, JOB_FORMAT_PNG),
        output("plain", 60, 60, JOB_FIT_INSIDE, 2, JOB_FORMAT_JPEG, JOB_FORMAT_PNG),
    };
    outs[0].progressive = true;
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    struct thumb_set s;
    set_ok(&o, outs, 2, &b, &s);
    assert_int_equal(s.nenc, 4);
    VipsImage *im = decode_enc(&s.enc[0], false);
    int interlaced = 0;
    assert_int_not_equal(vips_image_get_typeof(im, "interlaced"), 0);
    assert_int_equal(vips_image_get_int(im, "interlaced", &interlaced), 0);
    assert_int_equal(interlaced, 1);
    g_object_unref(im);
    im = decode_enc(&s.enc[1], false); /* libvips 8.14's pngload reports it too */
    assert_int_not_equal(vips_image_get_typeof(im, "interlaced"), 0);
    g_object_unref(im);
    assert_int_equal(png_interlace_byte(&s.enc[1]), 1); /* Adam7 */
    im = decode_enc(&s.enc[2], false);
    assert_int_equal(vips_image_get_typeof(im, "interlaced"), 0);
    g_object_unref(im);
    assert_int_equal(png_interlace_byte(&s.enc[3]), 0);
    thumb_set_free(&s);
    g_free(b.data);
}

/* The ICC profile of an encoding, or NULL: a copy (g_free). */
static void *profile_of(const struct thumb_encoding *e, size_t *len) {
    VipsImage *im = decode_enc(e, false);
    const void *data = NULL;
    void *copy = NULL;
    *len = 0;
    if (vips_image_get_typeof(im, VIPS_META_ICC_NAME) &&
        vips_image_get_blob(im, VIPS_META_ICC_NAME, &data, len) == 0)
        copy = g_memdup2(data, *len);
    g_object_unref(im);
    return copy;
}

/* keep_icc keeps a Display P3 source's numbers and embeds its profile; without
 * it (and in gif, which cannot carry one) they are converted to sRGB. */
static void test_set_keep_icc(void **state) {
    (void)state;
    static const double colour[3] = {200, 30, 60};
    VipsImage *srgb = solid(64, 64, 3, colour), *p3;
    assert_int_equal(vips_icc_transform(srgb, &p3, "p3", "input_profile", "srgb", "depth", 8, NULL),
                     0);
    const void *icc;
    size_t icc_len;
    assert_int_equal(vips_image_get_blob(p3, VIPS_META_ICC_NAME, &icc, &icc_len), 0);
    double *v;
    int nv;
    assert_int_equal(vips_getpoint(p3, &v, &nv, 0, 0, NULL), 0);
    double p3px[3] = {v[0], v[1], v[2]};
    g_free(v);
    assert_false(near(p3px, 200, 30, 60, 4)); /* P3 numbers differ from sRGB's */
    struct blob b = encode_as(p3, SRC_PNG);

    struct job_output outs[2] = {
        output("kept", 16, 16, JOB_FIT_FILL, 6, JOB_FORMAT_PNG, JOB_FORMAT_JPEG, JOB_FORMAT_WEBP,
               JOB_FORMAT_AVIF, JOB_FORMAT_JXL, JOB_FORMAT_GIF),
        output("converted", 16, 16, JOB_FIT_FILL, 2, JOB_FORMAT_PNG, JOB_FORMAT_JPEG),
    };
    outs[0].keep_icc = true;
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    o.avif_effort = 0;
    struct thumb_set s;
    set_ok(&o, outs, 2, &b, &s);
    assert_true(s.src_icc);
    assert_int_equal(s.nenc, 8);
    for (int i = 0; i < 8; i++) {
        size_t len;
        void *prof = profile_of(&s.enc[i], &len);
        double px[4];
        int n;
        enc_pixel(&s.enc[i], 8, 8, px, &n);
        bool kept = i < 5; /* not the gif, nor the second output */
        if (kept) {
            /* libjxl stores a profile its own way: one comes back, not these bytes. */
            bool jxl = s.enc[i].format == JOB_FORMAT_JXL;
            if (prof == NULL || (!jxl && (len != icc_len || memcmp(prof, icc, len) != 0)))
                fail_msg("%s of keep_icc lost the P3 profile", s.enc[i].mime);
            if (!near(px, (int)p3px[0], (int)p3px[1], (int)p3px[2], 4))
                fail_msg("%s of keep_icc: %.0f %.0f %.0f, not the P3 numbers", s.enc[i].mime, px[0],
                         px[1], px[2]);
        } else {
            if (prof != NULL)
                fail_msg("%s (enc %d) carries a profile", s.enc[i].mime, i);
            if (!near(px, 200, 30, 60, i == 5 ? 12 : 4)) /* gif: a palette */
                fail_msg("%s (enc %d): %.0f %.0f %.0f, not converted to sRGB", s.enc[i].mime, i,
                         px[0], px[1], px[2]);
        }
        g_free(prof);
    }
    thumb_set_free(&s);
    g_free(b.data);
    g_object_unref(p3);

    /* A CMYK source is converted even when asked to keep its profile. */
    VipsImage *cmyk;
    assert_int_equal(vips_icc_transform(srgb, &cmyk, "cmyk", "input_profile", "srgb", NULL), 0);
    b = encode_as(cmyk, SRC_JPEG);
    g_object_unref(cmyk);
    struct job_output jo = output("default", 16, 16, JOB_FIT_FILL, 1, JOB_FORMAT_PNG);
    jo.keep_icc = true;
    set_ok(&o, &jo, 1, &b, &s);
    size_t len;
    void *prof = profile_of(&s.enc[0], &len);
    assert_null(prof);
    VipsImage *back = decode_enc(&s.enc[0], false);
    assert_int_equal(vips_image_get_bands(back), 3);
    g_object_unref(back);
    double px[4];
    int n;
    enc_pixel(&s.enc[0], 8, 8, px, &n);
    if (!near(px, 200, 30, 60, 12))
        fail_msg("CMYK came out as %.0f %.0f %.0f", px[0], px[1], px[2]);
    thumb_set_free(&s);
    g_free(b.data);
    g_object_unref(srgb);
}

/* JPEG XL: encoded with the output's quality, and it decodes. */
static void test_set_jxl(void **state) {
    (void)state;
    struct blob b = make(160, 120, 3, SRC_PNG);
    struct job_output jo = output("default", 64, 64, JOB_FIT_INSIDE, 1, JOB_FORMAT_JXL);
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    struct thumb_set lo, hi;
    jo.quality = 20;
    set_ok(&o, &jo, 1, &b, &lo);
    jo.quality = 95;
    set_ok(&o, &jo, 1, &b, &hi);
    assert_string_equal(hi.enc[0].mime, "image/jxl");
    assert_int_equal(hi.enc[0].format, JOB_FORMAT_JXL);
    enc_decodes_as(&hi.enc[0], "jxlload", 64, 48);
    assert_true(lo.enc[0].len < hi.enc[0].len);
    thumb_set_free(&lo);
    thumb_set_free(&hi);
    g_free(b.data);
}

/* The job's pixels (each output's size from the header times its formats)
 * are bounded before anything is decoded: a truncated source shows which
 * check came first. Each output is bounded too, named in the message. */
static void test_set_job_pixels(void **state) {
    (void)state;
    struct blob b = make(400, 200, 3, SRC_PNG);
    struct job_output outs[2] = {
        output("w100", 100, 100, JOB_FIT_INSIDE, 2, JOB_FORMAT_PNG, JOB_FORMAT_JPEG), /* 100x50 */
        output("sq", 60, 60, JOB_FIT_COVER, 1, JOB_FORMAT_PNG),
    };
    const int64_t sum = 100 * 50 * 2 + 60 * 60;
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    o.max_job_pixels = sum;
    struct thumb_set s;
    set_ok(&o, outs, 2, &b, &s);
    assert_int_equal(s.nenc, 3);
    thumb_set_free(&s);
    char msg[FAILURE_MESSAGE_MAX];
    set_fails(&o, outs, 2, b.data, b.len / 2, "decode_failed", msg, sizeof(msg));

    o.max_job_pixels = sum - 1;
    set_fails(&o, outs, 2, b.data, b.len / 2, "output_too_large", msg, sizeof(msg));
    assert_non_null(strstr(msg, "image.max_job_pixels"));
    set_fails(&o, outs, 2, b.data, b.len, "output_too_large", msg, sizeof(msg));

    o.max_job_pixels = 0; /* no bound */
    o.max_output_pixels = 100 * 50 - 1;
    set_fails(&o, outs, 2, b.data, b.len, "output_too_large", msg, sizeof(msg));
    if (strncmp(msg, "rendition w100: ", 16) != 0 || strstr(msg, "image.max_output_pixels") == NULL)
        fail_msg("'%s' does not name the output and the limit", msg);
    g_free(b.data);
}

/* An encoding over max_result_bytes fails the job, naming the output and the
 * format, and leaves no encoding behind. */
static void test_set_result_too_large(void **state) {
    (void)state;
    struct blob b = make(200, 200, 3, SRC_PNG);
    struct job_output outs[2] = {
        output("small", 20, 20, JOB_FIT_INSIDE, 1, JOB_FORMAT_JPEG),
        output("big", 200, 200, JOB_FIT_INSIDE, 2, JOB_FORMAT_JPEG, JOB_FORMAT_PNG),
    };
    struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
    o.max_result_bytes = 0;
    struct thumb_set s;
    set_ok(&o, outs, 2, &b, &s);
    assert_int_equal(s.nenc, 3);
    size_t png = s.enc[2].len;
    assert_true(png > s.enc[1].len);
    thumb_set_free(&s);

    o.max_result_bytes = png; /* at the bound */
    set_ok(&o, outs, 2, &b, &s);
    thumb_set_free(&s);
    o.max_result_bytes = png - 1;
    char msg[FAILURE_MESSAGE_MAX];
    set_fails(&o, outs, 2, b.data, b.len, "result_too_large", msg, sizeof(msg));
    if (strncmp(msg, "rendition big: ", 15) != 0 || strstr(msg, "image/png") == NULL ||
        strstr(msg, "image.max_result_bytes") == NULL)
        fail_msg("'%s' does not name the output, the format and the limit", msg);
    g_free(b.data);
}

/* The placeholder: a BlurHash of 4x3 components (28 characters, the first
 * one saying 4x3) and the dominant colour, near a solid source's own; alpha
 * is flattened on white first. */
static void test_set_placeholder(void **state) {
    (void)state;
    static const char base83[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
    static const struct {
        double px[4];
        int bands;
        int want[3];
    } cases[] = {
        {{200, 30, 60, 255}, 3, {200, 30, 60}},
        {{10, 120, 250, 255}, 3, {10, 120, 250}},
        {{0, 0, 0, 0}, 4, {255, 255, 255}}, /* transparent: white */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        VipsImage *im = solid(300, 200, cases[i].bands, cases[i].px);
        struct blob b = encode_as(im, cases[i].bands == 3 ? SRC_JPEG : SRC_PNG);
        g_object_unref(im);
        struct job_output jo = output("default", 64, 64, JOB_FIT_INSIDE, 1, JOB_FORMAT_WEBP);
        struct thumb_opts o = opts(1, 1, JOB_FIT_INSIDE, JOB_FORMAT_PNG);
        struct thumb_set s;
        set_ok(&o, &jo, 1, &b, &s);
        assert_int_equal(strlen(s.blurhash), 28);
        assert_int_equal(strspn(s.blurhash, base83), 28);
        assert_int_equal(s.blurhash[0], 'L'); /* (4 - 1) + (3 - 1) * 9 = 21 */
        assert_int_equal(strlen(s.color), 7);
        assert_int_equal(s.color[0], '#');
        assert_int_equal(strspn(s.color + 1, "0123456789abcdef"), 6);
        unsigned int r, g, bl;
        assert_int_equal(sscanf(s.color, "#%2x%2x%2x", &r, &g, &bl), 3);
        double got[3] = {r, g, bl};
        if (!near(got, cases[i].want[0], cases[i].want[1], cases[i].want[2], 6))
            fail_msg("a solid %d %d %d source has the colour %s", cases[i].want[0],
                     cases[i].want[1], cases[i].want[2], s.color);
        thumb_set_free(&s);
        g_free(b.data);
    }
}

/* --- imgtype ----------------------------------------------------------- */

static void test_imgtype_detects(void **state) {
    (void)state;
    struct imgtype *t = imgtype_open();
    assert_non_null(t);
    static const struct {
        enum src_fmt f;
        const char *mime;
    } cases[] = {
        {SRC_JPEG, "image/jpeg"}, {SRC_PNG, "image/png"},   {SRC_WEBP, "image/webp"},
        {SRC_GIF, "image/gif"},   {SRC_AVIF, "image/avif"}, {SRC_HEIC, "image/heif"},
        {SRC_TIFF, "image/tiff"},
    };
    const char *all = "image/jpeg image/png image/webp image/gif image/avif image/heif image/tiff";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct blob b = make(20, 20, 3, cases[i].f);
        char mime[IMGTYPE_MIME_MAX];
        struct failure err = {0};
        if (imgtype_check(t, b.data, b.len, all, mime, &err) != 0)
            fail_msg("%s: %s", cases[i].mime, err.message);
        assert_string_equal(mime, cases[i].mime);
        /* Not in the list: refused, naming the type. */
        assert_int_equal(imgtype_check(t, b.data, b.len, "image/x-none", mime, &err), -1);
        assert_string_equal(err.code, "unsupported_type");
        assert_non_null(strstr(err.message, cases[i].mime));
        g_free(b.data);
    }
    imgtype_close(t);
}

static void test_imgtype_refuses(void **state) {
    (void)state;
    struct imgtype *t = imgtype_open();
    assert_non_null(t);
    char mime[IMGTYPE_MIME_MAX];
    struct failure err = {0};
    const char *allowed = "image/jpeg image/png";

    assert_int_equal(imgtype_check(t, "", 0, allowed, mime, &err), -1);
    assert_string_equal(err.code, "unsupported_type");
    assert_non_null(strstr(err.message, "empty"));

    const char *html = "<!DOCTYPE html><html><head><title>x</title></head><body></body></html>\n";
    assert_int_equal(imgtype_check(t, html, strlen(html), allowed, mime, &err), -1);
    assert_string_equal(err.code, "unsupported_type");
    assert_string_equal(mime, "text/html");
    assert_non_null(strstr(err.message, "text/html"));

    const char *txt = "just some words\n";
    assert_int_equal(imgtype_check(t, txt, strlen(txt), allowed, mime, &err), -1);
    assert_string_equal(mime, "text/plain");

    const char *svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"></svg>";
    assert_int_equal(imgtype_check(t, svg, strlen(svg), allowed, mime, &err), -1);
    assert_string_equal(mime, "image/svg+xml");
    imgtype_close(t);
}

static void test_imgtype_canonical(void **state) {
    (void)state;
    assert_string_equal(config_mime_canonical("image/heic"), "image/heif");
    assert_string_equal(config_mime_canonical("image/heic-sequence"), "image/heif");
    assert_string_equal(config_mime_canonical("image/avif"), "image/avif");
    assert_string_equal(config_mime_canonical("image/png"), "image/png");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_modes),
        cmocka_unit_test(test_cover_crops),
        cmocka_unit_test(test_output_formats),
        cmocka_unit_test(test_avif_effort),
        cmocka_unit_test(test_original_format),
        cmocka_unit_test(test_quality_changes_size),
        cmocka_unit_test(test_exif_rotation),
        cmocka_unit_test(test_every_format_stripped),
        cmocka_unit_test(test_cover_of_extreme_aspect_ratio_is_bounded),
        cmocka_unit_test(test_no_error_text_left_behind),
        cmocka_unit_test(test_grey_becomes_srgb),
        cmocka_unit_test(test_contain_padding),
        cmocka_unit_test(test_cmyk_and_16bit),
        cmocka_unit_test(test_p3_converted_to_srgb),
        cmocka_unit_test(test_srgb_profile_needs_no_transform),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_too_many_pixels),
        cmocka_unit_test(test_output_too_large),
        cmocka_unit_test(test_result_too_large),
        cmocka_unit_test(test_png_bomb_header),
        cmocka_unit_test(test_too_many_frames),
        cmocka_unit_test(test_garbage_and_mismatch),
        cmocka_unit_test(test_untrusted_loader_blocked),
        cmocka_unit_test(test_set_four_outputs),
        cmocka_unit_test(test_set_of_one_is_thumb_make),
        cmocka_unit_test(test_set_cover_focus),
        cmocka_unit_test(test_set_background),
        cmocka_unit_test(test_set_animated),
        cmocka_unit_test(test_set_progressive),
        cmocka_unit_test(test_set_keep_icc),
        cmocka_unit_test(test_set_jxl),
        cmocka_unit_test(test_set_job_pixels),
        cmocka_unit_test(test_set_result_too_large),
        cmocka_unit_test(test_set_placeholder),
        cmocka_unit_test(test_imgtype_detects),
        cmocka_unit_test(test_imgtype_refuses),
        cmocka_unit_test(test_imgtype_canonical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
