/* job.h — the job model: request parameters and their validation, the Redis
 * hash fields of a job, and the job document clients see (docs/API.md §4). */
#ifndef TH_JOB_H
#define TH_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum job_fit { JOB_FIT_INSIDE, JOB_FIT_COVER, JOB_FIT_CONTAIN, JOB_FIT_FILL };
enum job_crop { JOB_CROP_CENTRE, JOB_CROP_ATTENTION, JOB_CROP_ENTROPY };
enum job_format {
    JOB_FORMAT_ORIGINAL,
    JOB_FORMAT_JPEG,
    JOB_FORMAT_PNG,
    JOB_FORMAT_WEBP,
    JOB_FORMAT_AVIF,
    JOB_FORMAT_GIF,
    JOB_FORMAT_JXL
};

#define JOB_URL_MAX   2048
#define JOB_EMAIL_MAX 254

#define JOB_RENDITIONS_MAX 8  /* outputs of one job */
#define JOB_FORMATS_MAX    6  /* encodings of one output (a format list) */
#define JOB_NAME_MAX       32 /* bytes of a rendition's name, [a-z0-9_-] */

/* One output of a job (a rendition): its size, fit, options and the formats
 * it is encoded in. The top-level form of a request is one output named
 * "default". */
struct job_output {
    char name[JOB_NAME_MAX + 1];
    int width;
    int height; /* 0 until job_params_finish: then = width when not given */
    enum job_fit fit;
    enum job_crop crop;
    enum job_format formats[JOB_FORMATS_MAX]; /* in the client's order of preference */
    int nformats;                             /* 1..JOB_FORMATS_MAX */
    int quality;
    bool has_background;
    unsigned char background[4]; /* r, g, b, a: contain's padding, JPEG's flattening */
    bool has_focus;
    double focus_x, focus_y; /* 0..1: the point cover keeps */
    bool animated;           /* keep an animated source animated (gif, webp outputs) */
    bool progressive;        /* progressive JPEG, interlaced PNG */
    bool keep_icc;           /* keep a non-sRGB profile instead of converting to sRGB */
};

/* What a client asked for. Strings are owned (job_params_free). */
struct job_params {
    char *url; /* NULL for an upload */
    struct job_output out[JOB_RENDITIONS_MAX];
    int nout;        /* 1.. */
    bool renditions; /* given as renditions (else the top-level form: out[0], "default") */
    const char *top; /* the first output field given at the top level (static), or NULL */
    char *callback_url;
    char *email;
};

/* Bounds from the configuration. */
struct job_param_limits {
    int max_dimension;
    int default_quality;
    int64_t max_output_pixels; /* image.max_output_pixels; 0: no bound */
    int64_t max_job_pixels;    /* image.max_job_pixels: the sum over a job's outputs of
                                  width x height x formats; 0: no bound */
};

/* Why a request was refused: a stable code, the field to blame (or NULL) and a
 * message a person can act on. */
struct job_param_error {
    const char *code; /* "invalid_json" or "invalid_param" */
    char field[64];   /* empty when no single field is to blame */
    char message[256];
};

void job_params_init(struct job_params *p, const struct job_param_limits *lim);
void job_params_free(struct job_params *p);

/* Sets one field from its text form (a query-string parameter, percent-decoded):
 * value is len bytes, followed by a NUL. It is checked exactly as the field's
 * JSON form would be: no NUL byte among the len, no white space at either end,
 * and for width, height and quality the whole value an integer as JSON writes
 * one (-?(0|[1-9][0-9]*): no "+5", no "0100", no "100abc"); what is stored is
 * what was checked. Returns 0, or -1 with err filled (invalid_param, field). */
int job_params_set_text(struct job_params *p, const char *field, const char *value, size_t len,
                        const struct job_param_limits *lim, struct job_param_error *err);

/* Parses a JSON request body into p. A string with an embedded NUL (\u0000)
 * or white space at either end is refused (invalid_param, field) as in
 * job_params_set_text. Returns 0, or -1 with err filled. */
int job_params_from_json(struct job_params *p, const char *body, size_t len,
                         const struct job_param_limits *lim, struct job_param_error *err);

/* Applies the defaults that depend on other fields and checks what must be
 * present: a URL unless upload is true, and no URL when it is. Then the checks
 * across fields: with fit cover, contain or fill the thumbnail is the box
 * itself, so width x height over lim->max_output_pixels is refused (field
 * width); with inside the box only bounds it and the worker checks the size
 * the source's aspect gives. Returns 0, or -1 with err filled. */
int job_params_finish(struct job_params *p, bool upload, const struct job_param_limits *lim,
                      struct job_param_error *err);

/* Field checks shared with other callers. */
bool job_url_is_valid(const char *url);
bool job_email_is_valid(const char *email);

/* Whether the domain of email (after its @) is on list (smtp.allow_recipients),
 * matched as a host list (hostlist.h): an entry covers its domain and every
 * subdomain of it, case and a trailing dot ignored. An empty list matches
 * nothing: the caller decides what empty means. */
bool job_email_domain_listed(const char *list, const char *email);

const char *job_fit_name(enum job_fit f);
const char *job_crop_name(enum job_crop c);
const char *job_format_name(enum job_format f);
int job_fit_parse(const char *s, enum job_fit *out);
int job_crop_parse(const char *s, enum job_crop *out);
int job_format_parse(const char *s, enum job_format *out);
/* The MIME type of an output format (JOB_FORMAT_ORIGINAL: image/jpeg). */
const char *job_format_mime(enum job_format f);

/* A job as stored in the Redis hash {p}:job:<id>: field name -> text value. */
struct job_record {
    size_t count;
    char **names;
    char **values;
};

/* Appends the request fields of p (name/value pairs) to rec. Returns 0 or -1. */
int job_record_from_params(struct job_record *rec, const struct job_params *p);

/* Takes ownership of nothing: copies name and value. Replaces an existing field. */
int job_record_set(struct job_record *rec, const char *name, const char *value);

/* The value of a field, or NULL. */
const char *job_record_get(const struct job_record *rec, const char *name);

/* Integer value of a field, or def when missing or not a number. */
long long job_record_get_int(const struct job_record *rec, const char *name, long long def);

/* Rebuilds the request from a record (for the worker). Returns 0 or -1. */
int job_params_from_record(struct job_params *p, const struct job_record *rec);

void job_record_free(struct job_record *rec);

/* One encoding of one output of a done job, as the job hash's res_rend field
 * lists them: one line each, "<output> <rank> <name> <format> <mime> <bytes>
 * <width> <height> <etag> <offset>", each output's primary (the fallback, the
 * last format it listed) first, then its others in the order listed; rank is
 * the position in that list. The same order is that of the bytes in Redis
 * (offset into {p}:res:<id>) and of the objects in res_obj; the first line is
 * also the res_mime, res_bytes, res_width, res_height and res_etag fields. */
struct job_encoding {
    int output;
    int rank;
    char name[JOB_NAME_MAX + 1];
    enum job_format format;
    char mime[32];
    long long bytes;
    int width;
    int height;
    char etag[33];
    long long offset;
};

/* Parses res_rend (text may be NULL) into out[0..max). Returns the count, 0
 * for none, -1 for a line that is not one. */
int job_encodings_parse(const char *text, struct job_encoding *out, int max);

/* Writes e as a res_rend line (no newline) into buf. Returns its length, or
 * -1 when it does not fit. */
int job_encoding_line(const struct job_encoding *e, char *buf, size_t size);

/* With storage.public_url, the URL of the index'th object of a done job
 * (res_obj's order) into out: res_url is the first one's, the others share
 * its base. Returns false when the job has none. */
bool job_public_url(const struct job_record *rec, int index, char *out, size_t size);

/* The job document of docs/API.md §4 for the record of job id. Returns a new reference,
 * or NULL on allocation failure. */
json_t *job_document(const char *id, const struct job_record *rec);

/* The job document as served: compact JSON and a newline, NUL-terminated.
 * Returns a malloc'd string (free it), or NULL on allocation failure. */
char *job_document_text(const char *id, const struct job_record *rec, size_t *len);

/* Formats milliseconds since the epoch as 2026-11-28T09:14:54.123Z into out (48 bytes). */
void job_format_time(long long ms, char out[48]);

/* Whether the job asked for a callback or an e-mail that is not yet delivered
 * or given up: its document still changes, so caches keep it briefly. */
bool job_deliveries_pending(const struct job_record *rec);

/* Whether a status is terminal (done, failed, canceled). */
bool job_state_is_terminal(const char *state);

#endif
