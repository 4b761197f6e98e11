/* thumb.c — the libvips part of the pipeline: header checks, one decode of the
 * source (vips_thumbnail_buffer to the largest output's scale, in memory), then
 * each output's fit, colour and encodings from that image. Every intermediate
 * image hangs off a local context that is unref'd at the end, so no path leaks. */
#include "thumb.h"
#include "log.h"
#include "placeholder.h"

#include <ctype.h>
#include <lcms2.h>
#include <openssl/evp.h>
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
    /* libvips 8.14 marks its JPEG XL saver untrusted along with the loader;
     * the saver only encodes pixels we made, so it stays usable. */
    vips_operation_block_set("VipsForeignSaveJxl", FALSE);
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

/* What a source's ICC profile asks of the pipeline. */
enum icc_kind {
    ICC_NONE,  /* none, or sRGB: the pixels are sRGB already */
    ICC_RGB,   /* an RGB space other than sRGB (Display P3, Adobe RGB): convert, or keep */
    ICC_OTHER, /* grey, CMYK, Lab...: always converted */
};

/* Classifies an ICC profile. sRGB is told by its description naming it, as the
 * common sRGB IEC61966-2.1 and libvips' own do: a source tagged sRGB is in the
 * output's colour space already, and building an sRGB-to-sRGB transform for
 * it costs more than shrinking a photo to a thumbnail. */
static enum icc_kind icc_kind_of(const void *data, size_t len) {
    if (data == NULL)
        return ICC_NONE;
    if (len < 128 || len > UINT32_MAX)
        return ICC_OTHER; /* unreadable: let libvips' transform judge it, as before */
    cmsHPROFILE p = cmsOpenProfileFromMem(data, (cmsUInt32Number)len);
    if (p == NULL)
        return ICC_OTHER;
    char desc[256] = "";
    enum icc_kind kind = ICC_OTHER;
    if (cmsGetColorSpace(p) == cmsSigRgbData)
        kind = cmsGetProfileInfoASCII(p, cmsInfoDescription, "en", "US", desc, sizeof(desc)) > 0 &&
                       strstr(desc, "sRGB") != NULL
                   ? ICC_NONE
                   : ICC_RGB;
    cmsCloseProfile(p);
    return kind;
}

/* The size of output jo of a src_w x src_h source (as displayed): the box for
 * cover, contain and fill; for inside, the source scaled by the smaller of the
 * two ratios, as vips_thumbnail scales it (up or down), each side at least 1. */
static void output_size(const struct job_output *jo, int src_w, int src_h, int *w, int *h) {
    *w = jo->width;
    *h = jo->height;
    if (jo->fit != JOB_FIT_INSIDE || src_w < 1 || src_h < 1)
        return;
    double sx = (double)jo->width / src_w, sy = (double)jo->height / src_h;
    double scale = sx < sy ? sx : sy;
    double fw = src_w * scale + 0.5, fh = src_h * scale + 0.5; /* rounded, as vips_resize */
    *w = fw < 1 ? 1 : fw > jo->width ? jo->width : (int)fw;
    *h = fh < 1 ? 1 : fh > jo->height ? jo->height : (int)fh;
}

/* What the header told beyond the thumb_set's src_* fields. */
struct source {
    enum icc_kind icc;
    bool cmyk;
};

/* Reads only the header: type, size, pages, whether the colours need
 * converting; refuses a source over o's limits. */
static int check_header(const struct thumb_opts *o, const void *src, size_t len,
                        struct thumb_set *out, struct source *s, struct failure *err) {
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
    if (vips_image_get_typeof(hdr, VIPS_META_ICC_NAME) == 0 ||
        vips_image_get_blob(hdr, VIPS_META_ICC_NAME, &icc, &icc_len) != 0)
        icc = NULL;
    s->icc = icc_kind_of(icc, icc_len);
    s->cmyk = vips_image_get_interpretation(hdr) == VIPS_INTERPRETATION_CMYK;
    if (s->icc == ICC_RGB && (s->cmyk || vips_image_get_bands(hdr) < 3))
        s->icc = ICC_OTHER; /* an RGB profile on pixels that are not RGB: convert */
    out->src_icc = s->icc != ICC_NONE;
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
    return 0;
}

/* Refuses output jo of the source before anything is decoded; who prefixes
 * the messages ("" for a job of one output). */
static int check_output(const struct thumb_opts *o, const struct job_output *jo, const char *who,
                        const struct thumb_set *s, struct failure *err) {
    /* cover scales the source until it fills the box, then crops: a source of
     * extreme aspect ratio (1x65000 for a 64x64 box) would first become a huge
     * image (64x4160000). Bound that image like a source (or by the box). */
    if (jo->fit == JOB_FIT_COVER) {
        double sx = (double)jo->width / s->src_width, sy = (double)jo->height / s->src_height;
        double scale = sx > sy ? sx : sy;
        double scaled = (double)s->src_width * scale * (double)s->src_height * scale;
        double box = (double)jo->width * (double)jo->height;
        if (scaled > (double)o->max_pixels && scaled > box)
            return failure_set(err, "too_many_pixels",
                               "%sthe %dx%d source would be scaled to %.0f pixels to cover %dx%d, "
                               "more than the limit of %lld",
                               who, s->src_width, s->src_height, scaled, jo->width, jo->height,
                               (long long)o->max_pixels);
    }
    int ow, oh;
    output_size(jo, s->src_width, s->src_height, &ow, &oh);
    double opixels = (double)ow * (double)oh;
    if (o->max_output_pixels > 0 && opixels > (double)o->max_output_pixels)
        return failure_set(err, "output_too_large",
                           "%sthe %dx%d source at %dx%d fit=%s makes a %dx%d thumbnail (%.0f "
                           "pixels), more than the limit of %lld (image.max_output_pixels)",
                           who, s->src_width, s->src_height, jo->width, jo->height,
                           job_fit_name(jo->fit), ow, oh, opixels, (long long)o->max_output_pixels);
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

/* The scale of the source output jo needs: inside and contain fit the box,
 * cover and fill fill it (fill stretches one axis, so it needs the larger). */
static double scale_needed(const struct job_output *jo, int src_w, int src_h) {
    double sx = (double)jo->width / src_w, sy = (double)jo->height / src_h;
    if (jo->fit == JOB_FIT_COVER || jo->fit == JOB_FIT_FILL)
        return sx > sy ? sx : sy;
    return sx < sy ? sx : sy;
}

/* The box to decode the source into, as vips_thumbnail takes it (keeping the
 * source's aspect, no crop): that of the output needing the most of the
 * source, so that every output is a downscale of the intermediate, and the
 * largest one is exactly what vips_thumbnail_buffer made of it alone. An
 * output growing the source makes the source itself the intermediate. */
static void intermediate_box(const struct job_output *outs, int nout, int src_w, int src_h, int *bw,
                             int *bh) {
    int best = 0;
    for (int i = 1; i < nout; i++)
        if (scale_needed(&outs[i], src_w, src_h) > scale_needed(&outs[best], src_w, src_h))
            best = i;
    const struct job_output *jo = &outs[best];
    if (scale_needed(jo, src_w, src_h) >= 1.0) {
        *bw = src_w;
        *bh = src_h;
    } else if (jo->fit == JOB_FIT_INSIDE || jo->fit == JOB_FIT_CONTAIN) {
        *bw = jo->width;
        *bh = jo->height;
    } else if ((double)jo->width / src_w >= (double)jo->height / src_h) {
        *bw = jo->width; /* the width binds: any height */
        *bh = VIPS_MAX_COORD;
    } else {
        *bw = VIPS_MAX_COORD;
        *bh = jo->height;
    }
}

/* How the source is decoded: into the box bw x bh, sized and cropped as
 * vips_thumbnail takes it (VIPS_SIZE_BOTH and no crop for an intermediate;
 * an output's own for a job made straight from the decode). */
struct decode_box {
    int width, height;
    VipsSize size;
    VipsInteresting crop;
};

/* The box of output jo as vips_thumbnail makes it: its size, fill stretched,
 * cover cropped by its crop (a focal point is fit_frame's own). */
static struct decode_box output_box(const struct job_output *jo) {
    return (struct decode_box){.width = jo->width,
                               .height = jo->height,
                               .size = jo->fit == JOB_FIT_FILL ? VIPS_SIZE_FORCE : VIPS_SIZE_BOTH,
                               .crop = jo->fit == JOB_FIT_COVER ? interesting(jo->crop)
                                                                : VIPS_INTERESTING_NONE};
}

/* Decodes the source once into the box (shrink-on-load, then resize), every
 * frame when frames, EXIF orientation applied, 8-bit sRGB: converted through
 * its ICC profile when to_srgb, else with an RGB profile kept as it is.
 * The intermediate, in memory, in *out (a new ref). */
static int decode(const void *src, size_t len, const struct decode_box *box, bool frames,
                  bool to_srgb, VipsImage **out, struct failure *err) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 3);
    int rc = -1;
    const char *load = frames ? "n=-1,fail_on=truncated" : "fail_on=truncated";
    /* A source with an ICC profile other than sRGB is converted to sRGB
     * through it. One without, or tagged sRGB, is sRGB already
     * (vips_colourspace below converts other interpretations, CMYK and B/W):
     * an sRGB export there would only build an identity colour transform,
     * which costs more than the shrink. */
    int bw = box->width, bh = box->height;
    int r = to_srgb
                ? vips_thumbnail_buffer((void *)src, len, &t[0], bw, "height", bh, "size",
                                        box->size, "crop", box->crop, "export_profile", "srgb",
                                        "option_string", load, NULL)
                : vips_thumbnail_buffer((void *)src, len, &t[0], bw, "height", bh, "size",
                                        box->size, "crop", box->crop, "option_string", load, NULL);
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
    /* Run the whole decode now, so a decode error (a truncated file) is told
     * apart from an encoder failure, and every output reads from memory. */
    if ((*out = vips_image_copy_memory(cur)) == NULL) {
        vips_failure(err, "decode_failed", "cannot decode the source");
        goto out;
    }
    rc = 0;
out:
    g_object_unref(ctx);
    return rc;
}

/* Frame f of the intermediate (a view of its memory), a new ref. */
static VipsImage *frame_of(VipsImage *inter, int page_height, int f) {
    VipsImage *fr = NULL;
    if (vips_extract_area(inter, &fr, 0, f * page_height, inter->Xsize, page_height, NULL))
        return NULL;
    return fr;
}

/* Resizes one frame of the intermediate to output jo and crops it (cover):
 * the output's pixels before colour, in memory, in *out (a new ref). */
static int fit_frame(VipsImage *frame, const struct job_output *jo, VipsImage **out) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 2);
    int rc = -1;
    VipsImage *cur;
    if (jo->fit == JOB_FIT_COVER && jo->has_focus) {
        /* Cover the box keeping aspect, then crop it around the focal point,
         * moved in as far as the edges require. */
        bool wide = (double)jo->width / frame->Xsize >= (double)jo->height / frame->Ysize;
        if (vips_thumbnail_image(frame, &t[0], wide ? jo->width : VIPS_MAX_COORD, "height",
                                 wide ? VIPS_MAX_COORD : jo->height, "no_rotate", TRUE, NULL))
            goto out;
        int cw = t[0]->Xsize, ch = t[0]->Ysize;
        int w = VIPS_MIN(jo->width, cw), h = VIPS_MIN(jo->height, ch);
        double left = VIPS_CLIP(0.0, jo->focus_x * cw - w / 2.0, (double)(cw - w));
        double top = VIPS_CLIP(0.0, jo->focus_y * ch - h / 2.0, (double)(ch - h));
        if (vips_crop(t[0], &t[1], (int)(left + 0.5), (int)(top + 0.5), w, h, NULL))
            goto out;
        cur = t[1];
    } else {
        struct decode_box box = output_box(jo);
        if (vips_thumbnail_image(frame, &t[0], box.width, "height", box.height, "size", box.size,
                                 "crop", box.crop, "no_rotate", TRUE, NULL))
            goto out;
        cur = t[0];
    }
    if ((*out = vips_image_copy_memory(cur)) != NULL)
        rc = 0;
out:
    g_object_unref(ctx);
    return rc;
}

/* Whether format f can carry an alpha channel. */
static bool format_has_alpha(enum job_format f) {
    return f != JOB_FORMAT_JPEG;
}

/* A background of n bands: jo's colour (r, g, b, then a) when it has one,
 * else all value. */
static VipsArrayDouble *background(const struct job_output *jo, int bands, double value) {
    double v[4] = {value, value, value, value};
    if (jo->has_background)
        for (int i = 0; i < 4; i++)
            v[i] = jo->background[i];
    return vips_array_double_new(v, bands > 4 ? 4 : bands);
}

/* One frame of one encoding from the output's fitted frame: sRGB (through the
 * kept profile when convert), 8 bits, flattened for JPEG, padded for contain;
 * a new ref in *out. */
static int finish_frame(VipsImage *in, const struct job_output *jo, enum job_format fmt,
                        bool convert, VipsImage **out) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 6);
    int rc = -1;
    VipsImage *cur = in;
    if (convert) {
        if (vips_icc_transform(cur, &t[0], "srgb", "embedded", TRUE, "depth", 8, NULL))
            goto out;
        cur = t[0];
    }
    if (vips_image_get_interpretation(cur) != VIPS_INTERPRETATION_sRGB) {
        if (vips_colourspace(cur, &t[1], VIPS_INTERPRETATION_sRGB, NULL))
            goto out;
        cur = t[1];
    }
    if (vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        if (vips_cast(cur, &t[2], VIPS_FORMAT_UCHAR, NULL))
            goto out;
        cur = t[2];
    }
    if (!format_has_alpha(fmt) && vips_image_hasalpha(cur)) {
        VipsArrayDouble *bg = background(jo, cur->Bands - 1, 255.0);
        int r = vips_flatten(cur, &t[3], "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (r)
            goto out;
        cur = t[3];
    }
    if (jo->fit == JOB_FIT_CONTAIN) {
        /* A translucent background needs an alpha channel where the format has one. */
        if (jo->has_background && jo->background[3] < 255 && format_has_alpha(fmt) &&
            !vips_image_hasalpha(cur)) {
            if (vips_bandjoin_const1(cur, &t[4], 255.0, NULL))
                goto out;
            cur = t[4];
        }
        bool alpha = vips_image_hasalpha(cur);
        VipsArrayDouble *bg = background(jo, cur->Bands, alpha ? 0.0 : 255.0);
        int r = vips_gravity(cur, &t[5], VIPS_COMPASS_DIRECTION_CENTRE, jo->width, jo->height,
                             "extend", VIPS_EXTEND_BACKGROUND, "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (r)
            goto out;
        cur = t[5];
    }
    g_object_ref(cur);
    *out = cur;
    rc = 0;
out:
    g_object_unref(ctx);
    return rc;
}

/* Removes the metadata from im (our own image), all but the ICC profile when
 * keep_icc. The savers' strip option should do this, but libvips 8.14's
 * webpsave ignores it: it keeps the ICC profile and rebuilds EXIF from the
 * exif-* and orientation fields; and with strip FALSE (to keep a profile) the
 * savers would write the comments of the source too. */
static void strip_metadata(VipsImage *im, bool keep_icc) {
    gchar **names = vips_image_get_fields(im);
    for (gchar **p = names; *p; p++) {
        if ((!keep_icc && !strcmp(*p, VIPS_META_ICC_NAME)) || !strcmp(*p, VIPS_META_XMP_NAME) ||
            !strcmp(*p, VIPS_META_IPTC_NAME) || !strcmp(*p, VIPS_META_PHOTOSHOP_NAME) ||
            !strcmp(*p, VIPS_META_ORIENTATION) || !strcmp(*p, VIPS_META_RESOLUTION_UNIT) ||
            !strncmp(*p, "exif-", 5) || !strncmp(*p, "jpeg-comment", 12) ||
            !strncmp(*p, "png-comment", 11) || !strcmp(*p, "gif-comment"))
            vips_image_remove(im, *p);
    }
    g_strfreev(names);
}

static int encode(VipsImage *im, const struct job_output *jo, enum job_format fmt, bool keep_icc,
                  int avif_effort, void **buf, size_t *len) {
    gboolean strip = !keep_icc;
    switch (fmt) {
    case JOB_FORMAT_PNG:
        return vips_pngsave_buffer(im, buf, len, "strip", strip, "interlace", jo->progressive,
                                   NULL);
    case JOB_FORMAT_WEBP:
        return vips_webpsave_buffer(im, buf, len, "Q", jo->quality, "strip", strip, NULL);
    case JOB_FORMAT_AVIF:
        return vips_heifsave_buffer(im, buf, len, "Q", jo->quality, "compression",
                                    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "bitdepth", 8, "effort",
                                    avif_effort, "strip", strip, NULL);
    case JOB_FORMAT_GIF:
        return vips_gifsave_buffer(im, buf, len, "strip", TRUE, NULL);
    case JOB_FORMAT_JXL:
        return vips_jxlsave_buffer(im, buf, len, "Q", jo->quality, "strip", strip, NULL);
    case JOB_FORMAT_JPEG:
    case JOB_FORMAT_ORIGINAL:
        break;
    }
    return vips_jpegsave_buffer(im, buf, len, "Q", jo->quality, "strip", strip, "optimize_coding",
                                TRUE, "interlace", jo->progressive, NULL);
}

/* The first 32 hex digits of the SHA-256 of data, as the worker's etags. */
static void etag_of(const void *data, size_t len, char out[33]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n < 16)
        return;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* What every output of a job is made from. */
struct job_src {
    const struct thumb_opts *o;
    int nout;
    VipsImage *inter; /* the decoded source, in memory: every frame when animated */
    int page_height;  /* of one frame of inter */
    int nframes;      /* 1, or the frames of an animated source decoded whole */
    bool icc_kept;    /* inter is in the source's RGB profile, not converted to sRGB */
    bool fitted;      /* inter is the job's one output already (see make_set) */
};

static bool is_animated(const struct job_src *js, const struct job_output *jo,
                        enum job_format fmt) {
    return jo->animated && js->nframes > 1 && (fmt == JOB_FORMAT_GIF || fmt == JOB_FORMAT_WEBP);
}

/* One encoding of output jo in fmt from its fitted frames fit[0..n): joined,
 * stripped, encoded, checked, appended to set. */
static int make_encoding(const struct job_src *js, const struct job_output *jo, int index,
                         const char *who, VipsImage **fit, int n, enum job_format fmt,
                         struct thumb_set *set, struct failure *err) {
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), n + 1);
    VipsImage *im = NULL;
    int rc = -1;
    char what[96];
    bool keep = js->icc_kept && jo->keep_icc && fmt != JOB_FORMAT_GIF;
    for (int f = 0; f < n; f++)
        if (finish_frame(fit[f], jo, fmt, js->icc_kept && !keep, &t[f]) < 0) {
            snprintf(what, sizeof(what), "%scannot convert the thumbnail", who);
            vips_failure(err, "decode_failed", what);
            goto out;
        }
    VipsImage *cur = t[0];
    if (n > 1) {
        if (vips_arrayjoin(t, &t[n], n, "across", 1, NULL)) {
            snprintf(what, sizeof(what), "%scannot join the frames", who);
            vips_failure(err, "decode_failed", what);
            goto out;
        }
        cur = t[n];
    }
    if ((im = vips_image_copy_memory(cur)) == NULL) {
        snprintf(what, sizeof(what), "%scannot convert the thumbnail", who);
        vips_failure(err, "decode_failed", what);
        goto out;
    }
    int width = vips_image_get_width(im), height = vips_image_get_height(im) / n;
    if (n > 1)
        vips_image_set_int(im, VIPS_META_PAGE_HEIGHT, height);
    else
        vips_image_remove(im, VIPS_META_PAGE_HEIGHT);
    strip_metadata(im, keep);
    void *buf = NULL;
    size_t len = 0;
    if (encode(im, jo, fmt, keep, js->o->avif_effort, &buf, &len)) {
        snprintf(what, sizeof(what), "%scannot encode the thumbnail", who);
        vips_failure(err, "encode_failed", what);
        goto out;
    }
    if (js->o->max_result_bytes > 0 && len > js->o->max_result_bytes) {
        failure_set(err, "result_too_large",
                    "%sthe %dx%d thumbnail encodes to %zu bytes as %s, more than the limit of %zu "
                    "(image.max_result_bytes)",
                    who, width, height, len, format_mime(fmt), js->o->max_result_bytes);
        g_free(buf);
        goto out;
    }
    struct thumb_encoding *e = &set->enc[set->nenc++];
    e->data = buf;
    e->len = len;
    e->format = fmt;
    e->mime = format_mime(fmt);
    e->output = index;
    e->width = width;
    e->height = height;
    e->frames = n;
    etag_of(buf, len, e->etag);
    rc = 0;
out:
    if (im)
        g_object_unref(im);
    g_object_unref(ctx);
    return rc;
}

/* Every encoding of output jo (outs[index]) from the intermediate. */
static int make_output(const struct job_src *js, const struct job_output *jo, int index,
                       struct thumb_set *set, struct failure *err) {
    char who[JOB_NAME_MAX + 16] = "";
    if (js->nout > 1)
        snprintf(who, sizeof(who), "rendition %s: ", jo->name);
    enum job_format fmts[JOB_FORMATS_MAX];
    int n = 1; /* frames to fit: all of them when an encoding is animated */
    for (int k = 0; k < jo->nformats; k++) {
        fmts[k] =
            jo->formats[k] == JOB_FORMAT_ORIGINAL ? original_format(set->src_mime) : jo->formats[k];
        if (is_animated(js, jo, fmts[k]))
            n = js->nframes;
    }
    VipsImage *ctx = vips_image_new();
    VipsImage **fit = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), n);
    int rc = -1;
    for (int f = 0; f < n; f++) {
        VipsImage *frame = frame_of(js->inter, js->page_height, f);
        int r = -1;
        if (frame && js->fitted) { /* the decode made the output: fit it is */
            fit[f] = frame;
            frame = NULL;
            r = 0;
        } else if (frame) {
            r = fit_frame(frame, jo, &fit[f]);
        }
        if (frame)
            g_object_unref(frame);
        if (r < 0) {
            char what[96];
            snprintf(what, sizeof(what), "%scannot resize the source", who);
            vips_failure(err, "decode_failed", what);
            goto out;
        }
    }
    for (int k = 0; k < jo->nformats; k++)
        if (make_encoding(js, jo, index, who, fit, is_animated(js, jo, fmts[k]) ? n : 1, fmts[k],
                          set, err) < 0)
            goto out;
    rc = 0;
out:
    g_object_unref(ctx);
    return rc;
}

/* The placeholder's pixels from the first frame of the intermediate: fitted
 * in 32x32 (never grown), flattened on white, 8-bit sRGB, 3 bytes per pixel.
 * An 8-bit sRGB intermediate in memory, the common case, is shrunk in C into
 * small (a libvips pipeline for 32 x 32 pixels costs more than the pixels);
 * any other through libvips, its images kept in ctx. NULL when neither can. */
static const unsigned char *placeholder_pixels(const struct job_src *js, VipsImage *ctx,
                                               unsigned char *small, int *w, int *h,
                                               size_t *stride) {
    VipsImage *in = js->inter;
    const unsigned char *px;
    if (!js->icc_kept && vips_image_get_format(in) == VIPS_FORMAT_UCHAR &&
        (in->Bands == 3 || in->Bands == 4) && in->Type == VIPS_INTERPRETATION_sRGB &&
        (px = vips_image_get_data(in)) != NULL &&
        placeholder_shrink(px, in->Xsize, js->page_height, VIPS_IMAGE_SIZEOF_LINE(in), in->Bands,
                           small, w, h) == 0) {
        *stride = PLACEHOLDER_SIDE * 3;
        return small;
    }
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 4);
    struct job_output box = {.width = PLACEHOLDER_SIDE,
                             .height = PLACEHOLDER_SIDE,
                             .fit = JOB_FIT_INSIDE,
                             .has_background = true};
    memset(box.background, 255, sizeof(box.background));
    if ((t[0] = frame_of(in, js->page_height, 0)) == NULL ||
        vips_thumbnail_image(t[0], &t[1], PLACEHOLDER_SIDE, "height", PLACEHOLDER_SIDE, "size",
                             VIPS_SIZE_DOWN, "no_rotate", TRUE, NULL) ||
        finish_frame(t[1], &box, JOB_FORMAT_JPEG, js->icc_kept, &t[2]) < 0 ||
        (t[3] = vips_image_copy_memory(t[2])) == NULL || t[3]->Bands != 3 ||
        (px = vips_image_get_data(t[3])) == NULL) {
        log_debug("thumb: no placeholder: %s", vips_error_buffer());
        vips_error_clear();
        return NULL;
    }
    *w = t[3]->Xsize;
    *h = t[3]->Ysize;
    *stride = VIPS_IMAGE_SIZEOF_LINE(t[3]);
    return px;
}

/* The placeholder of the set: the BlurHash of 4x3 components and the dominant
 * colour of placeholder_pixels. Best effort: both "" when it cannot be made. */
static void make_placeholder(const struct job_src *js, struct thumb_set *set) {
    VipsImage *ctx = vips_image_new();
    unsigned char small[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3];
    int w, h;
    size_t stride;
    set->blurhash[0] = '\0';
    set->color[0] = '\0';
    const unsigned char *rgb = placeholder_pixels(js, ctx, small, &w, &h, &stride);
    if (rgb == NULL)
        goto out;
    if (placeholder_blurhash(rgb, w, h, stride, 4, 3, set->blurhash, sizeof(set->blurhash)) < 0) {
        log_debug("thumb: no BlurHash of a %dx%d placeholder", w, h);
        set->blurhash[0] = '\0';
        goto out;
    }
    unsigned char c[3];
    placeholder_dominant(rgb, w, h, stride, c);
    snprintf(set->color, sizeof(set->color), "#%02x%02x%02x", c[0], c[1], c[2]);
out:
    g_object_unref(ctx);
}

const struct thumb_encoding *thumb_set_primary(const struct thumb_set *s, int output) {
    const struct thumb_encoding *last = NULL;
    for (int i = 0; i < s->nenc; i++)
        if (s->enc[i].output == output)
            last = &s->enc[i];
    return last;
}

void thumb_set_free(struct thumb_set *s) {
    for (int i = 0; i < s->nenc; i++) {
        g_free(s->enc[i].data);
        s->enc[i].data = NULL;
        s->enc[i].len = 0;
    }
    s->nenc = 0;
}

/* thumb_make_set, and thumb_make without the placeholder. */
static int make_set(const struct thumb_opts *o, const struct job_output *outs, int nout,
                    const void *src, size_t len, bool placeholder, struct thumb_set *out,
                    struct failure *err) {
    memset(out, 0, sizeof(*out));
    out->src_bytes = len;
    vips_error_clear(); /* err tells of this source only */
    if (nout < 1 || nout > JOB_RENDITIONS_MAX)
        return failure_set(err, "invalid_job", "a job has 1..%d outputs, not %d",
                           JOB_RENDITIONS_MAX, nout);
    for (int i = 0; i < nout; i++)
        if (outs[i].nformats < 1 || outs[i].nformats > JOB_FORMATS_MAX || outs[i].width < 1 ||
            outs[i].height < 1)
            return failure_set(err, "invalid_job", "output %d is %dx%d in %d formats", i,
                               outs[i].width, outs[i].height, outs[i].nformats);
    if (len == 0)
        return failure_set(err, "decode_failed", "the source is empty");
    struct source s = {0};
    if (check_header(o, src, len, out, &s, err) < 0)
        return -1;
    double sum = 0;
    for (int i = 0; i < nout; i++) {
        char who[JOB_NAME_MAX + 16] = "";
        if (nout > 1)
            snprintf(who, sizeof(who), "rendition %s: ", outs[i].name);
        if (check_output(o, &outs[i], who, out, err) < 0)
            return -1;
        int ow, oh;
        output_size(&outs[i], out->src_width, out->src_height, &ow, &oh);
        sum += (double)ow * (double)oh * outs[i].nformats;
    }
    if (o->max_job_pixels > 0 && sum > (double)o->max_job_pixels)
        return failure_set(err, "output_too_large",
                           "the outputs add up to %.0f pixels (width x height x formats of "
                           "each), more than the limit of %lld (image.max_job_pixels)",
                           sum, (long long)o->max_job_pixels);

    /* Decode every frame only for an output that keeps them; keep the source's
     * RGB profile only for an output that keeps it (gif cannot carry one). */
    bool animatable = out->src_pages > 1 && out->src_mime &&
                      (!strcmp(out->src_mime, "image/gif") || !strcmp(out->src_mime, "image/webp"));
    bool frames = false, keep_icc = false;
    for (int i = 0; i < nout; i++)
        for (int k = 0; k < outs[i].nformats; k++) {
            enum job_format f = outs[i].formats[k] == JOB_FORMAT_ORIGINAL
                                    ? original_format(out->src_mime)
                                    : outs[i].formats[k];
            frames |=
                outs[i].animated && animatable && (f == JOB_FORMAT_GIF || f == JOB_FORMAT_WEBP);
            keep_icc |= outs[i].keep_icc && s.icc == ICC_RGB && f != JOB_FORMAT_GIF;
        }
    /* A job of one output in one format, of one frame and without a focal
     * point, is made by the decode itself, as vips_thumbnail makes a
     * thumbnail: sized and cropped at once, with no intermediate to fit
     * (libvips' own cost: bench/vips_loop). Otherwise the intermediate. */
    const struct job_output *one = &outs[0];
    bool fitted = nout == 1 && one->nformats == 1 && !frames &&
                  !(one->fit == JOB_FIT_COVER && one->has_focus);
    struct decode_box box = {.size = VIPS_SIZE_BOTH, .crop = VIPS_INTERESTING_NONE};
    if (fitted)
        box = output_box(one);
    else
        intermediate_box(outs, nout, out->src_width, out->src_height, &box.width, &box.height);
    struct job_src js = {.o = o, .nout = nout, .icc_kept = keep_icc, .fitted = fitted};
    if (decode(src, len, &box, frames, s.icc != ICC_NONE && !keep_icc, &js.inter, err) < 0)
        return -1;
    js.page_height = vips_image_get_page_height(js.inter);
    js.nframes = frames ? js.inter->Ysize / js.page_height : 1;
    if (!frames)
        js.page_height = js.inter->Ysize;

    int rc = 0;
    for (int i = 0; i < nout && rc == 0; i++)
        rc = make_output(&js, &outs[i], i, out, err);
    if (rc == 0 && placeholder)
        make_placeholder(&js, out);
    g_object_unref(js.inter);
    if (rc < 0)
        thumb_set_free(out);
    vips_error_clear(); /* a loader's complaints about a source it could read */
    return rc;
}

int thumb_make_set(const struct thumb_opts *o, const struct job_output *outs, int nout,
                   const void *src, size_t len, struct thumb_set *out, struct failure *err) {
    return make_set(o, outs, nout, src, len, true, out, err);
}

int thumb_make(const struct thumb_opts *o, const void *src, size_t len, struct thumb_result *out,
               struct failure *err) {
    struct job_output jo = {
        .name = "default",
        .width = o->width,
        .height = o->height,
        .fit = o->fit,
        .crop = o->crop,
        .formats = {o->format},
        .nformats = 1,
        .quality = o->quality,
    };
    struct thumb_set set;
    int rc = make_set(o, &jo, 1, src, len, false, &set, err);
    memset(out, 0, sizeof(*out));
    out->src_mime = set.src_mime;
    out->src_bytes = set.src_bytes;
    out->src_width = set.src_width;
    out->src_height = set.src_height;
    out->src_pages = set.src_pages;
    out->src_icc = set.src_icc;
    if (rc < 0)
        return -1;
    out->data = set.enc[0].data;
    out->len = set.enc[0].len;
    out->mime = set.enc[0].mime;
    out->width = set.enc[0].width;
    out->height = set.enc[0].height;
    return 0;
}
