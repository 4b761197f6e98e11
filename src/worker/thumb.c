/* thumb.c — the libvips part of the pipeline: header checks, vips_thumbnail_buffer,
 * fit, colour, encode. Every intermediate image hangs off one local context that
 * is unref'd at the end, so no path leaks. */
#include "thumb.h"
#include "log.h"

#include <ctype.h>
#include <lcms2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

static void on_vips_log(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                        gpointer data) {
    (void)data;
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        log_error("%s: %s", domain ? domain : "glib", msg);
    else /* decoder complaints about one input are not the operator's business */
        log_debug("%s: %s", domain ? domain : "glib", msg);
}

int thumb_init(void) {
    if (VIPS_INIT("thumbnailed") != 0) {
        log_error("thumb: libvips does not initialise: %s", vips_error_buffer());
        vips_error_clear();
        return -1;
    }
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    vips_block_untrusted_set(TRUE);
    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      on_vips_log, NULL);
    return 0;
}

void thumb_shutdown(void) {
    vips_shutdown();
}

void thumb_result_free(struct thumb_result *r) {
    g_free(r->data);
    r->data = NULL;
    r->len = 0;
}

/* Sets err from the libvips error buffer (one line, trimmed) and clears it. */
static int vips_failure(struct failure *err, const char *code, const char *what) {
    char detail[384];
    snprintf(detail, sizeof(detail), "%s", vips_error_buffer());
    vips_error_clear();
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t n = strlen(detail);
    while (n > 0 && isspace((unsigned char)detail[n - 1]))
        detail[--n] = '\0';
    if (n == 0)
        return failure_set(err, code, "%s", what);
    return failure_set(err, code, "%s: %s", what, detail);
}

/* The canonical MIME type of the loader libvips picked for im, or NULL. */
static const char *loader_mime(VipsImage *im) {
    static const struct {
        const char *loader;
        const char *mime;
    } loaders[] = {
        {"jpegload", "image/jpeg"},     {"pngload", "image/png"},   {"webpload", "image/webp"},
        {"gifload", "image/gif"},       {"tiffload", "image/tiff"}, {"svgload", "image/svg+xml"},
        {"pdfload", "application/pdf"},
    };
    const char *loader;
    if (vips_image_get_typeof(im, VIPS_META_LOADER) == 0 ||
        vips_image_get_string(im, VIPS_META_LOADER, &loader) != 0)
        return NULL;
    if (strncmp(loader, "heifload", 8) == 0) {
        const char *comp;
        if (vips_image_get_typeof(im, "heif-compression") &&
            vips_image_get_string(im, "heif-compression", &comp) == 0 && strcmp(comp, "av1") == 0)
            return "image/avif";
        return "image/heif";
    }
    for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++)
        if (strncmp(loader, loaders[i].loader, strlen(loaders[i].loader)) == 0)
            return loaders[i].mime;
    return NULL;
}

/* Whether the detected and the decoded type agree. HEIF and AVIF share one
 * container: libmagic goes by the brand, libvips by the codec inside. */
static bool same_type(const char *detected, const char *decoded) {
    if (decoded == NULL)
        return false;
    if (strcmp(detected, decoded) == 0)
        return true;
    bool heif_a = !strcmp(detected, "image/heif") || !strcmp(detected, "image/avif");
    bool heif_b = !strcmp(decoded, "image/heif") || !strcmp(decoded, "image/avif");
    return heif_a && heif_b;
}

/* The format JOB_FORMAT_ORIGINAL stands for, given the source's type. */
static enum job_format original_format(const char *src_mime) {
    static const struct {
        const char *mime;
        enum job_format fmt;
    } writable[] = {
        {"image/jpeg", JOB_FORMAT_JPEG}, {"image/png", JOB_FORMAT_PNG},
        {"image/webp", JOB_FORMAT_WEBP}, {"image/gif", JOB_FORMAT_GIF},
        {"image/avif", JOB_FORMAT_AVIF},
    };
    for (size_t i = 0; src_mime && i < sizeof(writable) / sizeof(writable[0]); i++)
        if (strcmp(src_mime, writable[i].mime) == 0)
            return writable[i].fmt;
    return JOB_FORMAT_JPEG;
}

static const char *format_mime(enum job_format f) {
    switch (f) {
    case JOB_FORMAT_PNG:
        return "image/png";
    case JOB_FORMAT_WEBP:
        return "image/webp";
    case JOB_FORMAT_AVIF:
        return "image/avif";
    case JOB_FORMAT_GIF:
        return "image/gif";
    case JOB_FORMAT_JXL:
        return "image/jxl";
    case JOB_FORMAT_JPEG:
    case JOB_FORMAT_ORIGINAL:
        break;
    }
    return "image/jpeg";
}

/* Whether an ICC profile describes sRGB (its description names it, as the
 * common sRGB IEC61966-2.1 and libvips' own do). A source tagged sRGB is in
 * the output's colour space already: building an sRGB-to-sRGB transform for
 * it costs more than shrinking a photo to a thumbnail. */
static bool icc_is_srgb(const void *data, size_t len) {
    if (data == NULL || len < 128 || len > UINT32_MAX)
        return false;
    cmsHPROFILE p = cmsOpenProfileFromMem(data, (cmsUInt32Number)len);
    if (p == NULL)
        return false;
    char desc[256] = "";
    bool srgb = cmsGetColorSpace(p) == cmsSigRgbData &&
                cmsGetProfileInfoASCII(p, cmsInfoDescription, "en", "US", desc, sizeof(desc)) > 0 &&
                strstr(desc, "sRGB") != NULL;
    cmsCloseProfile(p);
    return srgb;
}

/* The size of the thumbnail of a src_w x src_h source (as displayed): the box
 * for cover, contain and fill; for inside, the source scaled by the smaller of
 * the two ratios, as vips_thumbnail scales it (up or down), each side at least 1. */
static void output_size(const struct thumb_opts *o, int src_w, int src_h, int *w, int *h) {
    *w = o->width;
    *h = o->height;
    if (o->fit != JOB_FIT_INSIDE || src_w < 1 || src_h < 1)
        return;
    double sx = (double)o->width / src_w, sy = (double)o->height / src_h;
    double scale = sx < sy ? sx : sy;
    double fw = src_w * scale + 0.5, fh = src_h * scale + 0.5; /* rounded, as vips_resize */
    *w = fw < 1 ? 1 : fw > o->width ? o->width : (int)fw;
    *h = fh < 1 ? 1 : fh > o->height ? o->height : (int)fh;
}

/* Reads only the header: type, size, pages, whether the colours need
 * converting; refuses what is over the limits. */
static int check_header(const struct thumb_opts *o, const void *src, size_t len,
                        struct thumb_result *out, struct failure *err) {
    VipsImage *hdr =
        vips_image_new_from_buffer(src, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (hdr == NULL)
        return vips_failure(err, "decode_failed", "cannot read the image header");
    out->src_mime = loader_mime(hdr);
    int w = vips_image_get_width(hdr);
    int h = vips_image_get_height(hdr);
    int pages = 1; /* the raw tag: vips_image_get_n_pages() hides absurd counts */
    if (vips_image_get_typeof(hdr, VIPS_META_N_PAGES) &&
        vips_image_get_int(hdr, VIPS_META_N_PAGES, &pages) == 0 && pages < 1)
        pages = 1;
    bool swap = vips_image_get_orientation_swap(hdr);
    const void *icc = NULL;
    size_t icc_len = 0;
    out->src_icc = vips_image_get_typeof(hdr, VIPS_META_ICC_NAME) &&
                   vips_image_get_blob(hdr, VIPS_META_ICC_NAME, &icc, &icc_len) == 0 &&
                   !icc_is_srgb(icc, icc_len);
    g_object_unref(hdr);
    /* The header was read: what a loader left in the error buffer on the way
     * (libtiff's complaints) is not this job's error, nor the next one's. */
    vips_error_clear();
    out->src_width = swap ? h : w;
    out->src_height = swap ? w : h;
    out->src_pages = pages;

    if (o->expect_mime && !same_type(o->expect_mime, out->src_mime))
        return failure_set(err, "unsupported_type",
                           "the source was detected as %s but decodes as %s", o->expect_mime,
                           out->src_mime ? out->src_mime : "an unknown format");
    if (pages > o->max_frames)
        return failure_set(err, "too_many_frames",
                           "the source has %d frames, more than the limit of %lld", pages,
                           (long long)o->max_frames);
    /* Each factor is below 2^31, so the product fits in 94 bits: use double. */
    double pixels = (double)w * (double)h * (double)pages;
    if (pixels > (double)o->max_pixels) {
        char frames[48] = "";
        if (pages > 1)
            snprintf(frames, sizeof(frames), " x %d frames", pages);
        return failure_set(err, "too_many_pixels",
                           "the source is %dx%d%s (%.0f pixels), more than the limit of %lld", w, h,
                           frames, pixels, (long long)o->max_pixels);
    }
    /* cover scales the source until it fills the box, then crops: a source of
     * extreme aspect ratio (1x65000 for a 64x64 box) would first become a huge
     * image (64x4160000). Bound that image like a source (or by the box). */
    if (o->fit == JOB_FIT_COVER) {
        double sx = (double)o->width / out->src_width, sy = (double)o->height / out->src_height;
        double scale = sx > sy ? sx : sy;
        double scaled = (double)out->src_width * scale * (double)out->src_height * scale;
        double box = (double)o->width * (double)o->height;
        if (scaled > (double)o->max_pixels && scaled > box)
            return failure_set(err, "too_many_pixels",
                               "the %dx%d source would be scaled to %.0f pixels to cover %dx%d, "
                               "more than the limit of %lld",
                               out->src_width, out->src_height, scaled, o->width, o->height,
                               (long long)o->max_pixels);
    }
    int ow, oh;
    output_size(o, out->src_width, out->src_height, &ow, &oh);
    double opixels = (double)ow * (double)oh;
    if (o->max_output_pixels > 0 && opixels > (double)o->max_output_pixels)
        return failure_set(err, "output_too_large",
                           "the %dx%d source at %dx%d fit=%s makes a %dx%d thumbnail (%.0f "
                           "pixels), more than the limit of %lld (image.max_output_pixels)",
                           out->src_width, out->src_height, o->width, o->height,
                           job_fit_name(o->fit), ow, oh, opixels, (long long)o->max_output_pixels);
    return 0;
}

static VipsInteresting interesting(enum job_crop c) {
    switch (c) {
    case JOB_CROP_ATTENTION:
        return VIPS_INTERESTING_ATTENTION;
    case JOB_CROP_ENTROPY:
        return VIPS_INTERESTING_ENTROPY;
    case JOB_CROP_CENTRE:
        break;
    }
    return VIPS_INTERESTING_CENTRE;
}

/* A background of n bands, all value. */
static VipsArrayDouble *background(int bands, double value) {
    double v[4] = {value, value, value, value};
    return vips_array_double_new(v, bands > 4 ? 4 : bands);
}

/* Decodes, fits and converts: the final pixels, in memory, in *out (a new ref). */
static int render(const struct thumb_opts *o, const void *src, size_t len, enum job_format fmt,
                  bool icc, VipsImage **out, struct failure *err) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 6);
    int rc = -1;

    VipsSize size = o->fit == JOB_FIT_FILL ? VIPS_SIZE_FORCE : VIPS_SIZE_BOTH;
    VipsInteresting crop = o->fit == JOB_FIT_COVER ? interesting(o->crop) : VIPS_INTERESTING_NONE;
    /* A source with an ICC profile other than sRGB is converted to sRGB
     * through it. One without, or tagged sRGB, is sRGB already
     * (vips_colourspace below converts other interpretations, CMYK and B/W):
     * an sRGB export there would only build an identity colour transform,
     * which costs more than the shrink. */
    int r =
        icc ? vips_thumbnail_buffer((void *)src, len, &t[0], o->width, "height", o->height, "size",
                                    size, "crop", crop, "export_profile", "srgb", "option_string",
                                    "fail_on=truncated", NULL)
            : vips_thumbnail_buffer((void *)src, len, &t[0], o->width, "height", o->height, "size",
                                    size, "crop", crop, "option_string", "fail_on=truncated", NULL);
    if (r) {
        vips_failure(err, "decode_failed", "cannot decode the source");
        goto out;
    }
    VipsImage *cur = t[0];
    if (vips_image_get_interpretation(cur) != VIPS_INTERPRETATION_sRGB) {
        if (vips_colourspace(cur, &t[1], VIPS_INTERPRETATION_sRGB, NULL)) {
            vips_failure(err, "decode_failed", "cannot convert the source to sRGB");
            goto out;
        }
        cur = t[1];
    }
    if (vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        if (vips_cast(cur, &t[2], VIPS_FORMAT_UCHAR, NULL)) {
            vips_failure(err, "decode_failed", "cannot convert the source to 8 bits");
            goto out;
        }
        cur = t[2];
    }
    if (fmt == JOB_FORMAT_JPEG && vips_image_hasalpha(cur)) {
        VipsArrayDouble *white = background(cur->Bands - 1, 255.0);
        int r = vips_flatten(cur, &t[3], "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (r) {
            vips_failure(err, "decode_failed", "cannot flatten the alpha channel");
            goto out;
        }
        cur = t[3];
    }
    if (o->fit == JOB_FIT_CONTAIN) {
        VipsArrayDouble *bg =
            vips_image_hasalpha(cur) ? background(cur->Bands, 0.0) : background(cur->Bands, 255.0);
        int r = vips_gravity(cur, &t[4], VIPS_COMPASS_DIRECTION_CENTRE, o->width, o->height,
                             "extend", VIPS_EXTEND_BACKGROUND, "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (r) {
            vips_failure(err, "decode_failed", "cannot pad the thumbnail");
            goto out;
        }
        cur = t[4];
    }
    /* Run the whole pipeline now, so a decode error (a truncated file) is told
     * apart from an encoder failure. */
    if ((*out = vips_image_copy_memory(cur)) == NULL) {
        vips_failure(err, "decode_failed", "cannot decode the source");
        goto out;
    }
    rc = 0;
out:
    g_object_unref(ctx);
    return rc;
}

/* Removes the metadata from im (our own image). The savers' strip option
 * should do this, but libvips 8.14's webpsave ignores it: it keeps the ICC
 * profile and rebuilds EXIF from the exif-* and orientation fields. */
static void strip_metadata(VipsImage *im) {
    gchar **names = vips_image_get_fields(im);
    for (gchar **p = names; *p; p++) {
        if (!strcmp(*p, VIPS_META_ICC_NAME) || !strcmp(*p, VIPS_META_XMP_NAME) ||
            !strcmp(*p, VIPS_META_IPTC_NAME) || !strcmp(*p, VIPS_META_PHOTOSHOP_NAME) ||
            !strcmp(*p, VIPS_META_ORIENTATION) || !strcmp(*p, VIPS_META_RESOLUTION_UNIT) ||
            !strncmp(*p, "exif-", 5))
            vips_image_remove(im, *p);
    }
    g_strfreev(names);
}

static int encode(VipsImage *im, enum job_format fmt, int quality, int avif_effort, void **buf,
                  size_t *len) {
    switch (fmt) {
    case JOB_FORMAT_PNG:
        return vips_pngsave_buffer(im, buf, len, "strip", TRUE, NULL);
    case JOB_FORMAT_WEBP:
        return vips_webpsave_buffer(im, buf, len, "Q", quality, "strip", TRUE, NULL);
    case JOB_FORMAT_AVIF:
        return vips_heifsave_buffer(im, buf, len, "Q", quality, "compression",
                                    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "bitdepth", 8, "effort",
                                    avif_effort, "strip", TRUE, NULL);
    case JOB_FORMAT_GIF:
        return vips_gifsave_buffer(im, buf, len, "strip", TRUE, NULL);
    case JOB_FORMAT_JXL:
        return vips_jxlsave_buffer(im, buf, len, "Q", quality, "strip", TRUE, NULL);
    case JOB_FORMAT_JPEG:
    case JOB_FORMAT_ORIGINAL:
        break;
    }
    return vips_jpegsave_buffer(im, buf, len, "Q", quality, "strip", TRUE, "optimize_coding", TRUE,
                                NULL);
}

int thumb_make(const struct thumb_opts *o, const void *src, size_t len, struct thumb_result *out,
               struct failure *err) {
    memset(out, 0, sizeof(*out));
    out->src_bytes = len;
    vips_error_clear(); /* err tells of this source only */
    if (len == 0)
        return failure_set(err, "decode_failed", "the source is empty");
    if (check_header(o, src, len, out, err) < 0)
        return -1;
    enum job_format fmt =
        o->format == JOB_FORMAT_ORIGINAL ? original_format(out->src_mime) : o->format;

    VipsImage *im = NULL;
    if (render(o, src, len, fmt, out->src_icc, &im, err) < 0)
        return -1;
    void *buf = NULL;
    size_t n = 0;
    strip_metadata(im);
    if (encode(im, fmt, o->quality, o->avif_effort, &buf, &n)) {
        vips_failure(err, "encode_failed", "cannot encode the thumbnail");
        g_object_unref(im);
        return -1;
    }
    if (o->max_result_bytes > 0 && n > o->max_result_bytes) {
        failure_set(err, "result_too_large",
                    "the %dx%d thumbnail encodes to %zu bytes as %s, more than the limit of %zu "
                    "(image.max_result_bytes)",
                    vips_image_get_width(im), vips_image_get_height(im), n, format_mime(fmt),
                    o->max_result_bytes);
        g_free(buf);
        g_object_unref(im);
        vips_error_clear();
        return -1;
    }
    out->data = buf;
    out->len = n;
    out->mime = format_mime(fmt);
    out->width = vips_image_get_width(im);
    out->height = vips_image_get_height(im);
    g_object_unref(im);
    vips_error_clear(); /* a loader's complaints about a source it could read */
    return 0;
}
