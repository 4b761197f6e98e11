/* fuzz_image.c — libFuzzer harness for the worker's image pipeline on a buffer:
 * libmagic detection against the default allowed types (imgtype_check), then
 * thumb_make with small limits, as pipeline.c runs them on an upload.
 *
 * Input layout: the source image, then one byte choosing the options:
 * format = b % 6 (enum job_format), fit = b / 6 % 4, crop = b / 24 % 3.
 * make_image_seeds.py appends that byte to the images it makes. */
#include "check.h"
#include "config.h"
#include "failure.h"
#include "imgtype.h"
#include "log.h"
#include "thumb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#define BOX        64
#define MAX_PIXELS (4 * 1000 * 1000)
#define MAX_FRAMES 10
#define QUALITY    75

static struct imgtype *types;
static char *allowed_types; /* the configuration's default image.allowed_types */

/* The decoders are system libraries built without coverage instrumentation, so
 * libFuzzer would only see the few branches of thumb.c and imgtype.c. These
 * extra counters (a section libFuzzer reads as coverage) give it one feature
 * per distinct outcome: failure code and decoder message (digits dropped), or
 * the source type and rough shape on success. An input that makes libjpeg
 * complain in a new way is then kept in the corpus. */
#define OUTCOMES 4096
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t outcomes[OUTCOMES];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Debian's libdav1d (the AV1 decoder libheif uses for AVIF) leaks two 40-byte
 * objects on some malformed AV1 data (after its own "in->data == NULL ||
 * in->sz" input check fails); found by fuzz.image in CI, the input kept in
 * tests/fuzz-regressions/image/. Our code never calls dav1d, and its frames
 * are unsymbolised, so the suppression names the library. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libdav1d.so\n";
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* Decoder complaints go to log_debug: keep the fuzzer's output readable. */
    log_init("fuzz_image", LOG_LEVEL_ERROR, "stderr");
    CHECK(thumb_init() == 0);
    types = imgtype_open();
    CHECK(types != NULL);
    struct config cfg;
    CHECK(config_defaults(&cfg) == 0);
    allowed_types = strdup(cfg.image_allowed_types);
    CHECK(allowed_types != NULL);
    config_free(&cfg);
    return 0;
}

static uint32_t hash_add(uint32_t h, const char *s, bool skip_digits) {
    for (; s && *s; s++) {
        if (skip_digits && *s >= '0' && *s <= '9')
            continue;
        h = (h ^ (uint8_t)*s) * 16777619u; /* FNV-1a */
    }
    return (h ^ 0xff) * 16777619u;
}

static uint32_t log2_class(int v) {
    uint32_t c = 0;
    while (v > 1 && c < 31) {
        v >>= 1;
        c++;
    }
    return c;
}

static void note_outcome(uint32_t h) {
    uint8_t *c = &outcomes[h % OUTCOMES];
    if (*c < 255)
        (*c)++;
}

static bool is_failure_code(const char *code) {
    static const char *const codes[] = {"too_many_pixels", "too_many_frames", "unsupported_type",
                                        "decode_failed", "encode_failed"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

/* A successful thumbnail: the box, the format asked for, and bytes libvips reads
 * back with the size claimed. */
static void check_result(const struct thumb_opts *o, const struct thumb_result *r) {
    CHECK(r->data != NULL && r->len > 0);
    CHECK(r->mime != NULL);
    CHECK(r->width >= 1 && r->width <= o->width && r->height >= 1 && r->height <= o->height);
    if (o->fit != JOB_FIT_INSIDE)
        CHECK(r->width == o->width && r->height == o->height);
    else
        CHECK(r->width == o->width || r->height == o->height);
    CHECK(r->src_width >= 1 && r->src_height >= 1 && r->src_pages >= 1);
    CHECK((double)r->src_width * r->src_height * r->src_pages <= (double)o->max_pixels);
    CHECK(r->src_pages <= o->max_frames);

    VipsImage *back = vips_image_new_from_buffer(r->data, r->len, "", NULL);
    if (back == NULL) {
        fprintf(stderr, "the %s thumbnail does not load: %s\n", r->mime, vips_error_buffer());
        abort();
    }
    CHECK(vips_image_get_width(back) == r->width);
    CHECK(vips_image_get_height(back) == r->height);
    g_object_unref(back);
    vips_error_clear(); /* the loaders tried on the way may leave complaints */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t sel = data[--size];

    char mime[IMGTYPE_MIME_MAX];
    struct failure err = {0};
    if (imgtype_check(types, data, size, allowed_types, mime, &err) < 0) {
        CHECK(strcmp(err.code, "unsupported_type") == 0);
        note_outcome(hash_add(1, mime, false));
        return 0;
    }
    CHECK(config_list_contains(allowed_types, mime));

    struct thumb_opts o = {
        .width = BOX,
        .height = BOX,
        .format = (enum job_format)(sel % 6),
        .fit = (enum job_fit)(sel / 6 % 4),
        .crop = (enum job_crop)(sel / 24 % 3),
        .quality = QUALITY,
        .max_pixels = MAX_PIXELS,
        .max_frames = MAX_FRAMES,
        .expect_mime = mime,
    };
    struct thumb_result r;
    int rc = thumb_make(&o, data, size, &r, &err);
    /* Its text belongs in err: left in the process-wide buffer, it would be
     * prefixed to the next job's error message. */
    if (vips_error_buffer()[0] != '\0') {
        fprintf(stderr, "thumb_make (%s) left in the libvips error buffer: %s\n",
                rc == 0 ? "ok" : err.code, vips_error_buffer());
        abort();
    }
    uint32_t h = hash_add(2166136261u, mime, false);
    if (rc == 0) {
        check_result(&o, &r);
        uint32_t shape = log2_class(r.src_width) << 6 | log2_class(r.src_height) << 1;
        h = hash_add(h, r.mime, false);
        h = (h ^ (shape | (r.src_pages > 1))) * 16777619u;
    } else {
        CHECK(r.data == NULL && r.len == 0);
        CHECK(is_failure_code(err.code));
        h = hash_add(h, err.code, false);
        h = hash_add(h, err.message, true);
    }
    note_outcome(h);
    thumb_result_free(&r);
    return 0;
}
