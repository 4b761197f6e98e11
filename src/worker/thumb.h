/* thumb.h — one thumbnail from image bytes with libvips: header limits first,
 * then shrink-on-load, fit, sRGB and encode. Knows nothing of Redis. */
#ifndef TH_THUMB_H
#define TH_THUMB_H

#include "failure.h"
#include "job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct thumb_opts {
    int width; /* the box, 1.. */
    int height;
    enum job_fit fit;
    enum job_crop crop; /* for JOB_FIT_COVER */
    enum job_format format;
    int quality;               /* 1..100, for jpeg, webp and avif */
    int avif_effort;           /* 0 (fastest)..9, libvips heifsave's effort for AV1 */
    int64_t max_pixels;        /* refuse a source of more than width x height x pages */
    int64_t max_frames;        /* refuse a source of more pages/frames */
    int64_t max_output_pixels; /* refuse, before resizing, a thumbnail of more pixels than
                                  this (0: no bound) */
    size_t max_result_bytes;   /* refuse a thumbnail that encodes to more bytes (0: no bound) */
    const char *expect_mime;   /* NULL, or the type the bytes were detected as: the
                                  source is refused when libvips reads it as another
                                  (image/heif and image/avif count as one) */
};

/* A thumbnail and what was learnt about its source. */
struct thumb_result {
    void *data; /* the encoded thumbnail, len bytes; free with thumb_result_free */
    size_t len;
    const char *mime; /* static string */
    int width;
    int height;
    const char *src_mime; /* static string from the decoder, NULL until known */
    size_t src_bytes;
    int src_width; /* as displayed (EXIF orientation applied), 0 until known */
    int src_height;
    int src_pages;
    bool src_icc; /* the source carries an ICC profile other than sRGB: converted with it */
};

/* Initialises libvips for this process the way a worker runs it: one thread per
 * operation, no operation cache, loaders marked untrusted blocked, GLib
 * warnings routed to the log. Call after fork, before thumb_make. Returns 0 or
 * -1 (logged). */
int thumb_init(void);

/* Shuts libvips down (at process exit). */
void thumb_shutdown(void);

/* Makes the thumbnail o asks for from len bytes at src into out. Fit modes:
 * inside fits the box keeping aspect (one side equals the box), cover fills
 * width x height and crops, contain fits then pads to width x height
 * (transparent when the output has alpha, else white), fill stretches to
 * width x height. JOB_FORMAT_ORIGINAL keeps the source format when it is jpeg, png,
 * webp, gif or avif, else jpeg. Metadata is stripped; output is sRGB.
 * The thumbnail's size is known from the header: the box for cover, contain and
 * fill, the source's aspect fitted in the box for inside; over max_output_pixels
 * it is refused before anything is decoded.
 * Returns 0, or -1 with err set to too_many_pixels, too_many_frames,
 * unsupported_type (expect_mime mismatch), output_too_large, decode_failed,
 * encode_failed or result_too_large (the encoded bytes are dropped); the src_*
 * fields known so far are filled either way and out->data is NULL on -1. */
int thumb_make(const struct thumb_opts *o, const void *src, size_t len, struct thumb_result *out,
               struct failure *err);

/* Frees out->data; the struct may be reused. */
void thumb_result_free(struct thumb_result *r);

#endif
