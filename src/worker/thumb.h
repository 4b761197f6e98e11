/* thumb.h — thumbnails from image bytes with libvips: header limits first,
 * then one shrink-on-load decode, each output's fit, colour and encodings.
 * Knows nothing of Redis. */
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
    int64_t max_job_pixels;    /* thumb_make_set: refuse outputs whose pixels times formats
                                  sum to more (0: no bound) */
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

/* One encoding of one output of a job (thumb_make_set). */
struct thumb_encoding {
    void *data; /* the encoded bytes; freed by thumb_set_free */
    size_t len;
    enum job_format format; /* as resolved (never JOB_FORMAT_ORIGINAL) */
    const char *mime;       /* static string */
    int output;             /* the index of its output in the job (0..nout-1) */
    int width;              /* of one frame */
    int height;
    int frames;    /* 1, or the frames of an animated output */
    char etag[33]; /* the first 32 hex digits of the SHA-256 of the bytes */
};

/* Every output of a job and what was learnt of its source. The encodings are
 * in output order, each output's in the order its formats were listed. */
struct thumb_set {
    struct thumb_encoding enc[JOB_RENDITIONS_MAX * JOB_FORMATS_MAX];
    int nenc;
    char blurhash[32];    /* the placeholder: BlurHash of 4x3 components, "" when none */
    char color[8];        /* its dominant colour, #rrggbb, "" when none */
    const char *src_mime; /* static string from the decoder, NULL until known */
    size_t src_bytes;
    int src_width; /* as displayed (EXIF orientation applied), 0 until known */
    int src_height;
    int src_pages;
    bool src_icc;
};

/* Initialises libvips for this process the way a worker runs it: one thread per
 * operation, no operation cache, operations marked untrusted blocked (but the
 * JPEG XL saver, which 8.14 marks so and which only encodes our own pixels),
 * GLib warnings routed to the log. Call after fork, before thumb_make. Returns 0 or
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

/* Makes every output of outs[0..nout) from len bytes at src, from one read
 * and one decode: the header is checked once (o's limits; o's width, height,
 * fit, crop, format and quality are not used), the source decoded once at
 * the scale the largest output needs (shrink-on-load), every output derived
 * from that image in memory and encoded in each of its formats; then the
 * placeholder. Limits: each output as thumb_make's (max_output_pixels), and
 * the sum over outputs of width x height x formats, as the header gives
 * them, at most o->max_job_pixels (0: no bound) else output_too_large;
 * max_result_bytes per encoding. With more than one output, a message about
 * one output starts "rendition <name>: ". out is overwritten (hand it no
 * encodings to keep). Returns 0, or -1 with err set as thumb_make's, or
 * invalid_job for nout or an output's nformats or size out of range; out holds
 * no encoding on -1 (its src_* fields known so far are filled either way).
 * Free with thumb_set_free. */
int thumb_make_set(const struct thumb_opts *o, const struct job_output *outs, int nout,
                   const void *src, size_t len, struct thumb_set *out, struct failure *err);

/* The primary encoding of output i of s (the last format it listed: what a
 * client that names none gets), or NULL when s has none for it. */
const struct thumb_encoding *thumb_set_primary(const struct thumb_set *s, int output);

/* Frees every encoding of s; the struct may be reused. */
void thumb_set_free(struct thumb_set *s);

#endif
