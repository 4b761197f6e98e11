/* fuzz_request.c — libFuzzer harness for everything a client's bytes reach before
 * a job exists: the JSON body and the upload query string (job_params_*,
 * request_params_from_query), the original service's body (compat_doc_params),
 * header values (If-None-Match, Idempotency-Key,
 * Content-Type), the route table, and the configuration file parser. Every input
 * goes through every parser; what succeeds is checked against the documented
 * ranges and round-tripped through the Redis record the worker reads. */
#include "check.h"
#include "compat_doc.h"
#include "config.h"
#include "job.h"
#include "request.h"
#include "route.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct job_param_limits limits; /* from the configuration's defaults */
static int conf_fd = -1;               /* a memfd the config parser reads through conf_path */
static char conf_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    struct config cfg;
    CHECK(config_defaults(&cfg) == 0);
    limits.max_dimension = (int)cfg.image_max_dimension;
    limits.default_quality = (int)cfg.image_default_quality;
    limits.max_output_pixels = cfg.image_max_output_pixels;
    config_free(&cfg);

    conf_fd = memfd_create("fuzz_request.conf", MFD_CLOEXEC);
    CHECK(conf_fd >= 0);
    snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", conf_fd);
    return 0;
}

static bool same_string(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* What the http child accepted: in range, and unchanged by the trip through the
 * job's Redis hash that the worker rebuilds it from. */
/* One output in range. */
static void check_output(const struct job_output *o) {
    CHECK(o->width >= 1 && o->width <= limits.max_dimension);
    CHECK(o->height >= 1 && o->height <= limits.max_dimension);
    CHECK(o->quality >= 1 && o->quality <= 100);
    CHECK(o->fit >= JOB_FIT_INSIDE && o->fit <= JOB_FIT_FILL);
    CHECK(o->crop >= JOB_CROP_CENTRE && o->crop <= JOB_CROP_ENTROPY);
    CHECK(o->nformats >= 1 && o->nformats <= JOB_FORMATS_MAX);
    for (int i = 0; i < o->nformats; i++) {
        CHECK(o->formats[i] >= JOB_FORMAT_ORIGINAL && o->formats[i] <= JOB_FORMAT_JXL);
        CHECK(o->nformats == 1 || o->formats[i] != JOB_FORMAT_ORIGINAL);
        for (int j = 0; j < i; j++)
            CHECK(o->formats[i] != o->formats[j]);
    }
    CHECK(o->fit == JOB_FIT_INSIDE || (long long)o->width * o->height <= limits.max_output_pixels);
    CHECK(!o->has_focus ||
          (o->fit == JOB_FIT_COVER && o->crop == JOB_CROP_CENTRE && o->focus_x >= 0 &&
           o->focus_x <= 1 && o->focus_y >= 0 && o->focus_y <= 1));
    size_t n = strlen(o->name);
    CHECK(n >= 1 && n <= JOB_NAME_MAX &&
          strspn(o->name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n);
}

/* Two outputs alike, as the job hash gives them back (focus to 6 digits). */
static void check_same_output(const struct job_output *a, const struct job_output *b) {
    CHECK(strcmp(a->name, b->name) == 0);
    CHECK(a->width == b->width && a->height == b->height && a->quality == b->quality);
    CHECK(a->fit == b->fit && a->crop == b->crop && a->nformats == b->nformats);
    CHECK(memcmp(a->formats, b->formats, sizeof(a->formats)) == 0);
    CHECK(a->has_background == b->has_background);
    CHECK(!a->has_background || memcmp(a->background, b->background, 4) == 0);
    CHECK(a->has_focus == b->has_focus);
    CHECK(!a->has_focus ||
          (fabs(a->focus_x - b->focus_x) < 1e-5 && fabs(a->focus_y - b->focus_y) < 1e-5));
    CHECK(a->animated == b->animated && a->progressive == b->progressive &&
          a->keep_icc == b->keep_icc);
}

/* What the http child accepted: in range, and unchanged by the trip through the
 * job's Redis hash that the worker rebuilds it from. */
static void check_accepted(const struct job_params *p, bool upload) {
    CHECK(p->nout >= 1 && p->nout <= JOB_RENDITIONS_MAX);
    CHECK(p->renditions || p->nout == 1);
    for (int i = 0; i < p->nout; i++) {
        check_output(&p->out[i]);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(p->out[i].name, p->out[j].name) != 0);
    }
    CHECK(upload ? p->url == NULL : p->url != NULL);
    CHECK(p->url == NULL || job_url_is_valid(p->url));
    CHECK(p->callback_url == NULL || job_url_is_valid(p->callback_url));
    CHECK(p->email == NULL || job_email_is_valid(p->email));

    struct job_record rec = {0};
    CHECK(job_record_from_params(&rec, p) == 0);
    struct job_params back;
    CHECK(job_params_from_record(&back, &rec) == 0);
    CHECK(back.nout == p->nout && back.renditions == p->renditions);
    for (int i = 0; i < p->nout; i++)
        check_same_output(&p->out[i], &back.out[i]);
    CHECK(same_string(back.url, p->url));
    CHECK(same_string(back.callback_url, p->callback_url));
    CHECK(same_string(back.email, p->email));
    job_params_free(&back);

    size_t len = 0;
    char *doc = job_document_text("fuzzid", &rec, &len);
    CHECK(doc != NULL && len == strlen(doc) && len >= 2 && doc[len - 1] == '\n');
    free(doc);
    job_record_free(&rec);
}

/* POST /v1/thumbnails with a JSON body, as submit.c reads it. */
static void fuzz_json(const uint8_t *data, size_t size) {
    struct job_params p;
    struct job_param_error err;
    job_params_init(&p, &limits);
    if (job_params_from_json(&p, (const char *)data, size, &limits, &err) == 0 &&
        job_params_finish(&p, false, &limits, &err) == 0)
        check_accepted(&p, false);
    else
        CHECK(err.code != NULL && err.message[0] != '\0');
    job_params_free(&p);
}

/* POST /api/thumb, as compat.c reads it, with e-mail on and off: a job of the
 * original service's shape, or FastAPI's 422 detail list. */
static void fuzz_compat(const uint8_t *data, size_t size) {
    for (int with_email = 0; with_email <= 1; with_email++) {
        struct job_params p;
        json_t *detail = NULL;
        job_params_init(&p, &limits);
        if (compat_doc_params(&p, (const char *)data, size, with_email, NULL, &detail) == 0) {
            CHECK(detail == NULL);
            CHECK(p.out[0].width == COMPAT_THUMB_SIDE && p.out[0].height == COMPAT_THUMB_SIDE);
            CHECK(p.out[0].fit == JOB_FIT_COVER && p.out[0].crop == JOB_CROP_CENTRE &&
                  p.out[0].formats[0] == JOB_FORMAT_ORIGINAL);
            CHECK(with_email ? p.email != NULL : p.email == NULL);
            check_accepted(&p, false);
        } else {
            CHECK(p.url == NULL && p.email == NULL);
            CHECK(json_array_size(json_object_get(detail, "detail")) > 0);
            json_decref(detail);
        }
        job_params_free(&p);
    }
}

/* POST /v1/thumbnails?<query> with an image body. */
static void fuzz_query(const char *s) {
    struct job_params p;
    struct job_param_error err;
    job_params_init(&p, &limits);
    if (request_params_from_query(&p, s, &limits, &err) == 0 &&
        job_params_finish(&p, true, &limits, &err) == 0)
        check_accepted(&p, true);
    else
        CHECK(err.code != NULL && err.message[0] != '\0');
    job_params_free(&p);
}

/* Header values: the input as one value, and its first line as If-None-Match
 * against the rest as the entity tag. */
static void fuzz_headers(const char *s, size_t len) {
    (void)request_body_kind(s);
    (void)request_idempotency_key_ok(s);
    (void)request_etag_matches(s, "0123456789abcdef");
    (void)request_etag_matches("*", s);

    char *copy = strdup(s);
    CHECK(copy != NULL);
    char *nl = memchr(copy, '\n', len);
    if (nl) {
        *nl = '\0';
        const char *etag = nl + 1;
        (void)request_etag_matches(copy, etag);
        /* Whatever comes before it, a list that ends with "<etag>" matches. */
        if (strchr(etag, '"') == NULL && strchr(copy, '"') == NULL) {
            char *inm = malloc(strlen(copy) + strlen(etag) + 8);
            CHECK(inm != NULL);
            sprintf(inm, "%s, \"%s\"", copy, etag);
            CHECK(request_etag_matches(inm, etag));
            free(inm);
        }
    }
    free(copy);
}

/* The request path, under every method. */
static void fuzz_route(const char *path) {
    static const enum http_method methods[] = {
        HTTP_GET,     HTTP_POST,  HTTP_HEAD,    HTTP_PUT,   HTTP_DELETE,
        HTTP_OPTIONS, HTTP_TRACE, HTTP_CONNECT, HTTP_PATCH,
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct route_match m;
        enum route_id r = route_match(methods[i], path, &m);
        CHECK(r == m.route && r >= ROUTE_NONE && r < ROUTE_COUNT);
        CHECK(route_name(r) != NULL);
        CHECK((m.allow == NULL) == (r == ROUTE_NONE));
        CHECK(strlen(m.id) <= ROUTE_ID_MAX);
        CHECK(strchr(m.id, '/') == NULL);
        /* Only routes with an {id} or {file} segment keep one. */
        if (r != ROUTE_NONE && strchr(route_template(r), '{') == NULL)
            CHECK(m.id[0] == '\0');
        if (r != ROUTE_NONE)
            CHECK(route_template(r) != NULL && (route_methods(r) & (1ULL << methods[i])) ==
                                                   (m.method_ok ? (1ULL << methods[i]) : 0));
        if (m.id[0])
            CHECK(strstr(path, m.id) != NULL);
    }
}

static void copy_diff(const char *section, const char *key, void *arg) {
    void **pair = arg;
    CHECK(config_copy_key(pair[0], pair[1], section, key) == 0);
}

static void no_diff(const char *section, const char *key, void *arg) {
    (void)arg;
    fprintf(stderr, "config_copy_key left %s.%s different\n", section, key);
    abort();
}

/* The input as a configuration file. A valid one is copied key by key onto the
 * defaults (what SIGHUP does), which must then compare equal. */
static void fuzz_config(const uint8_t *data, size_t size) {
    CHECK(ftruncate(conf_fd, 0) == 0);
    CHECK(pwrite(conf_fd, data, size, 0) == (ssize_t)size);
    struct config cfg;
    struct config_errors errs = {0};
    if (config_load(&cfg, conf_path, &errs) == 0) {
        CHECK(errs.count == 0);
        struct config def;
        CHECK(config_defaults(&def) == 0);
        void *pair[2] = {&def, &cfg};
        config_diff(&def, &cfg, copy_diff, pair);
        config_diff(&def, &cfg, no_diff, NULL);
        config_free(&def);
    } else {
        CHECK(errs.count > 0);
    }
    for (size_t i = 0; i < errs.count; i++)
        CHECK(errs.msgs[i] != NULL);
    config_free(&cfg);
    config_errors_free(&errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1); /* the C-string view: up to the first NUL */
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t slen = strlen(s);

    fuzz_json(data, size);
    fuzz_compat(data, size);
    fuzz_query(s);
    fuzz_headers(s, slen);
    fuzz_route(s);
    fuzz_config(data, size);
    free(s);
    return 0;
}
