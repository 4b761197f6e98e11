/* job.c — request validation and the job document, shared by http children and workers. */
#include "job.h"
#include "hostlist.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const fit_names[] = {"inside", "cover", "contain", "fill", NULL};
static const char *const crop_names[] = {"centre", "attention", "entropy", NULL};
static const char *const format_names[] = {"original", "jpeg", "png", "webp", "avif", "gif", NULL};

static int parse_name(const char *const *names, const char *s, int *out) {
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

const char *job_fit_name(enum job_fit f) {
    return fit_names[f];
}
const char *job_crop_name(enum job_crop c) {
    return crop_names[c];
}
const char *job_format_name(enum job_format f) {
    return format_names[f];
}

int job_fit_parse(const char *s, enum job_fit *out) {
    int v;
    if (parse_name(fit_names, s, &v) < 0)
        return -1;
    *out = (enum job_fit)v;
    return 0;
}

int job_crop_parse(const char *s, enum job_crop *out) {
    int v;
    if (strcmp(s, "center") == 0)
        s = "centre";
    if (parse_name(crop_names, s, &v) < 0)
        return -1;
    *out = (enum job_crop)v;
    return 0;
}

int job_format_parse(const char *s, enum job_format *out) {
    int v;
    if (strcmp(s, "jpg") == 0)
        s = "jpeg";
    if (parse_name(format_names, s, &v) < 0)
        return -1;
    *out = (enum job_format)v;
    return 0;
}

static int fail(struct job_param_error *err, const char *code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int fail(struct job_param_error *err, const char *code, const char *field, const char *fmt,
                ...) {
    err->code = code;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

void job_params_init(struct job_params *p, const struct job_param_limits *lim) {
    memset(p, 0, sizeof(*p));
    p->width = 256;
    p->fit = JOB_FIT_INSIDE;
    p->crop = JOB_CROP_CENTRE;
    p->format = JOB_FORMAT_ORIGINAL;
    p->quality = lim->default_quality;
}

void job_params_free(struct job_params *p) {
    free(p->url);
    free(p->callback_url);
    free(p->email);
    p->url = p->callback_url = p->email = NULL;
}

bool job_url_is_valid(const char *url) {
    size_t len = strlen(url);
    if (len == 0 || len > JOB_URL_MAX)
        return false;
    /* ASCII only: anything else must be percent-encoded (and JSON can only
     * carry valid UTF-8 back in the job document). */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return false;
    CURLU *u = curl_url();
    if (u == NULL)
        return false;
    bool ok = false;
    char *scheme = NULL, *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        ok = (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) && host[0] != '\0';
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

bool job_email_is_valid(const char *email) {
    size_t len = strlen(email);
    if (len < 3 || len > JOB_EMAIL_MAX)
        return false;
    const char *at = strchr(email, '@');
    if (at == NULL || at == email || strchr(at + 1, '@') != NULL)
        return false;
    for (const char *c = email; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch <= 0x20 || ch >= 0x7f || strchr("<>()[]\\,;:\"", ch))
            return false;
    }
    const char *domain = at + 1;
    const char *dot = strrchr(domain, '.');
    return dot != NULL && dot != domain && dot[1] != '\0' && strstr(domain, "..") == NULL &&
           domain[0] != '.';
}

/* What a value must be whatever its field, in a query string as in JSON: no
 * NUL byte (C strings would keep only what precedes it, and the stored value
 * would not be the one checked) and no white space at either end (no valid
 * value has any, and " 100" must not pass for 100). */
static int check_text(const char *field, const char *value, size_t len,
                      struct job_param_error *err) {
    if (memchr(value, '\0', len) != NULL)
        return fail(err, "invalid_param", field, "%s must not contain a NUL byte", field);
    if (len > 0 && (isspace((unsigned char)value[0]) || isspace((unsigned char)value[len - 1])))
        return fail(err, "invalid_param", field, "%s must not begin or end with white space",
                    field);
    return 0;
}

/* An integer written as JSON writes one, -?(0|[1-9][0-9]*), and nothing else,
 * into *out. Returns 0, -1 when it is not one, or -2 when it is one too large
 * for a long long. */
static int parse_json_int(const char *value, size_t len, long long *out) {
    size_t i = len > 0 && value[0] == '-' ? 1 : 0;
    if (i >= len || !isdigit((unsigned char)value[i]) || (value[i] == '0' && i + 1 < len))
        return -1;
    for (size_t j = i; j < len; j++)
        if (!isdigit((unsigned char)value[j]))
            return -1;
    errno = 0;
    *out = strtoll(value, NULL, 10);
    return errno == ERANGE ? -2 : 0;
}

bool job_email_domain_listed(const char *list, const char *email) {
    const char *at = strrchr(email, '@');
    return at != NULL && hostlist_match(list, at + 1, 0);
}

static int parse_int_text(const char *value, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno)
        return -1;
    *out = v;
    return 0;
}

/* The typed core shared by the query and JSON paths. */
static int set_int(struct job_params *p, const char *field, long long v,
                   const struct job_param_limits *lim, struct job_param_error *err) {
    if (strcmp(field, "width") == 0 || strcmp(field, "height") == 0) {
        if (v < 1 || v > lim->max_dimension)
            return fail(err, "invalid_param", field, "%s must be an integer 1..%d", field,
                        lim->max_dimension);
        if (field[0] == 'w')
            p->width = (int)v;
        else
            p->height = (int)v;
        return 0;
    }
    if (strcmp(field, "quality") == 0) {
        if (v < 1 || v > 100)
            return fail(err, "invalid_param", "quality", "quality must be an integer 1..100");
        p->quality = (int)v;
        return 0;
    }
    return fail(err, "invalid_param", field, "unknown field '%s'", field);
}

static int set_string(struct job_params *p, const char *field, const char *value,
                      struct job_param_error *err) {
    if (strcmp(field, "fit") == 0) {
        if (job_fit_parse(value, &p->fit) < 0)
            return fail(err, "invalid_param", "fit",
                        "fit must be one of inside, cover, contain, fill");
        return 0;
    }
    if (strcmp(field, "crop") == 0) {
        if (job_crop_parse(value, &p->crop) < 0)
            return fail(err, "invalid_param", "crop",
                        "crop must be one of centre, attention, entropy");
        return 0;
    }
    if (strcmp(field, "format") == 0) {
        if (job_format_parse(value, &p->format) < 0)
            return fail(err, "invalid_param", "format",
                        "format must be one of original, jpeg, png, webp, avif, gif");
        return 0;
    }
    char **slot = NULL;
    if (strcmp(field, "url") == 0) {
        if (!job_url_is_valid(value))
            return fail(err, "invalid_param", "url",
                        "url must be an absolute http:// or https:// URL of at most %d bytes",
                        JOB_URL_MAX);
        slot = &p->url;
    } else if (strcmp(field, "callback_url") == 0) {
        if (!job_url_is_valid(value))
            return fail(err, "invalid_param", "callback_url",
                        "callback_url must be an absolute http:// or https:// URL of at most %d "
                        "bytes",
                        JOB_URL_MAX);
        slot = &p->callback_url;
    } else if (strcmp(field, "email") == 0) {
        if (!job_email_is_valid(value))
            return fail(err, "invalid_param", "email", "email must be an address like a@b.example");
        slot = &p->email;
    } else {
        return fail(err, "invalid_param", field, "unknown field '%s'", field);
    }
    char *dup = strdup(value);
    if (dup == NULL)
        return fail(err, "invalid_param", field, "out of memory");
    free(*slot);
    *slot = dup;
    return 0;
}

static bool is_int_field(const char *field) {
    return !strcmp(field, "width") || !strcmp(field, "height") || !strcmp(field, "quality");
}

static bool is_string_field(const char *field) {
    return !strcmp(field, "fit") || !strcmp(field, "crop") || !strcmp(field, "format") ||
           !strcmp(field, "url") || !strcmp(field, "callback_url") || !strcmp(field, "email");
}

int job_params_set_text(struct job_params *p, const char *field, const char *value, size_t len,
                        const struct job_param_limits *lim, struct job_param_error *err) {
    if (is_int_field(field)) {
        if (check_text(field, value, len, err) < 0)
            return -1;
        long long v;
        int r = parse_json_int(value, len, &v);
        if (r == -1)
            return fail(err, "invalid_param", field, "%s must be an integer", field);
        if (r == -2) /* out of range whatever the range */
            v = LLONG_MAX;
        return set_int(p, field, v, lim, err);
    }
    if (is_string_field(field)) {
        if (check_text(field, value, len, err) < 0)
            return -1;
        return set_string(p, field, value, err);
    }
    return fail(err, "invalid_param", field, "unknown parameter '%s'", field);
}

#define JSON_MAX_DEPTH 4

static int json_depth(const json_t *v) {
    int max = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach((json_t *)v, k, child) {
            int d = json_depth(child);
            if (d > max)
                max = d;
            if (max > JSON_MAX_DEPTH)
                break;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) {
            int d = json_depth(child);
            if (d > max)
                max = d;
            if (max > JSON_MAX_DEPTH)
                break;
        }
        return max + 1;
    }
    return 0;
}

int job_params_from_json(struct job_params *p, const char *body, size_t len,
                         const struct job_param_limits *lim, struct job_param_error *err) {
    json_error_t jerr;
    /* NUL is let through in string values so that it is refused naming the
     * field (jansson still refuses it in names). */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL)
        return fail(err, "invalid_json", NULL, "request body is not valid JSON: %s (line %d)",
                    jerr.text, jerr.line);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = fail(err, "invalid_json", NULL, "request body must be a JSON object");
        goto out;
    }
    if (json_depth(root) > JSON_MAX_DEPTH) {
        rc = fail(err, "invalid_json", NULL, "request body is nested too deeply");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (is_int_field(key)) {
            if (!json_is_integer(val)) {
                rc = fail(err, "invalid_param", key, "%s must be an integer", key);
                goto out;
            }
            if ((rc = set_int(p, key, json_integer_value(val), lim, err)) < 0)
                goto out;
        } else if (is_string_field(key)) {
            const char *field = key;
            if (!json_is_string(val)) {
                rc = fail(err, "invalid_param", field, "%s must be a string", field);
                goto out;
            }
            const char *s = json_string_value(val);
            if ((rc = check_text(field, s, json_string_length(val), err)) < 0 ||
                (rc = set_string(p, field, s, err)) < 0)
                goto out;
        } else {
            rc = fail(err, "invalid_param", key, "unknown field '%.64s'", key);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int job_params_finish(struct job_params *p, bool upload, const struct job_param_limits *lim,
                      struct job_param_error *err) {
    if (upload && p->url)
        return fail(err, "invalid_param", "url", "give either a url or an uploaded body, not both");
    if (!upload && p->url == NULL)
        return fail(err, "invalid_param", "url",
                    "url is required (or upload the image as the body)");
    if (p->height == 0)
        p->height = p->width;
    long long box = (long long)p->width * p->height;
    if (p->fit != JOB_FIT_INSIDE && lim->max_output_pixels > 0 && box > lim->max_output_pixels)
        return fail(err, "invalid_param", "width",
                    "%dx%d with fit=%s is a thumbnail of %lld pixels, more than the limit of %lld "
                    "(image.max_output_pixels): ask for a smaller box",
                    p->width, p->height, job_fit_name(p->fit), box,
                    (long long)lim->max_output_pixels);
    return 0;
}

int job_record_set(struct job_record *rec, const char *name, const char *value) {
    for (size_t i = 0; i < rec->count; i++) {
        if (strcmp(rec->names[i], name) == 0) {
            char *v = strdup(value);
            if (v == NULL)
                return -1;
            free(rec->values[i]);
            rec->values[i] = v;
            return 0;
        }
    }
    char **n = realloc(rec->names, (rec->count + 1) * sizeof(char *));
    if (n == NULL)
        return -1;
    rec->names = n;
    char **v = realloc(rec->values, (rec->count + 1) * sizeof(char *));
    if (v == NULL)
        return -1;
    rec->values = v;
    rec->names[rec->count] = strdup(name);
    rec->values[rec->count] = strdup(value);
    if (rec->names[rec->count] == NULL || rec->values[rec->count] == NULL) {
        free(rec->names[rec->count]);
        free(rec->values[rec->count]);
        return -1;
    }
    rec->count++;
    return 0;
}

const char *job_record_get(const struct job_record *rec, const char *name) {
    for (size_t i = 0; i < rec->count; i++)
        if (strcmp(rec->names[i], name) == 0)
            return rec->values[i];
    return NULL;
}

long long job_record_get_int(const struct job_record *rec, const char *name, long long def) {
    const char *v = job_record_get(rec, name);
    long long out;
    if (v == NULL || parse_int_text(v, &out) < 0)
        return def;
    return out;
}

void job_record_free(struct job_record *rec) {
    for (size_t i = 0; i < rec->count; i++) {
        free(rec->names[i]);
        free(rec->values[i]);
    }
    free(rec->names);
    free(rec->values);
    memset(rec, 0, sizeof(*rec));
}

int job_record_from_params(struct job_record *rec, const struct job_params *p) {
    char num[3][16];
    snprintf(num[0], sizeof(num[0]), "%d", p->width);
    snprintf(num[1], sizeof(num[1]), "%d", p->height);
    snprintf(num[2], sizeof(num[2]), "%d", p->quality);
    int rc = 0;
    rc |= job_record_set(rec, "src", p->url ? "url" : "upload");
    if (p->url)
        rc |= job_record_set(rec, "url", p->url);
    rc |= job_record_set(rec, "width", num[0]);
    rc |= job_record_set(rec, "height", num[1]);
    rc |= job_record_set(rec, "fit", job_fit_name(p->fit));
    rc |= job_record_set(rec, "crop", job_crop_name(p->crop));
    rc |= job_record_set(rec, "format", job_format_name(p->format));
    rc |= job_record_set(rec, "quality", num[2]);
    if (p->callback_url)
        rc |= job_record_set(rec, "callback_url", p->callback_url);
    if (p->email)
        rc |= job_record_set(rec, "email", p->email);
    return rc ? -1 : 0;
}

int job_params_from_record(struct job_params *p, const struct job_record *rec) {
    memset(p, 0, sizeof(*p));
    const char *v;
    if ((v = job_record_get(rec, "url")) && (p->url = strdup(v)) == NULL)
        return -1;
    if ((v = job_record_get(rec, "callback_url")) && (p->callback_url = strdup(v)) == NULL)
        return -1;
    if ((v = job_record_get(rec, "email")) && (p->email = strdup(v)) == NULL)
        return -1;
    p->width = (int)job_record_get_int(rec, "width", 0);
    p->height = (int)job_record_get_int(rec, "height", 0);
    p->quality = (int)job_record_get_int(rec, "quality", 80);
    if (p->width < 1 || p->height < 1)
        return -1;
    if ((v = job_record_get(rec, "fit")) == NULL || job_fit_parse(v, &p->fit) < 0)
        return -1;
    if ((v = job_record_get(rec, "crop")) == NULL || job_crop_parse(v, &p->crop) < 0)
        return -1;
    if ((v = job_record_get(rec, "format")) == NULL || job_format_parse(v, &p->format) < 0)
        return -1;
    return 0;
}

void job_format_time(long long ms, char out[48]) {
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Years past 9999 cannot come from Redis TIME; clamp so the format is fixed. */
    if (tm.tm_year > 9999 - 1900 || tm.tm_year < 0)
        tm.tm_year = 0;
    snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

char *job_document_text(const char *id, const struct job_record *rec, size_t *len) {
    json_t *doc = job_document(id, rec);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (out == NULL) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    *len = n + 1;
    return out;
}

bool job_state_is_terminal(const char *state) {
    return state &&
           (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "canceled"));
}

static void set_time(json_t *doc, const char *key, const struct job_record *rec,
                     const char *field) {
    long long ms = job_record_get_int(rec, field, -1);
    if (ms >= 0) {
        char buf[48];
        job_format_time(ms, buf);
        json_object_set_new(doc, key, json_string(buf));
    }
}

static void set_int_field(json_t *obj, const char *key, const struct job_record *rec,
                          const char *field) {
    long long v = job_record_get_int(rec, field, -1);
    if (v >= 0)
        json_object_set_new(obj, key, json_integer(v));
}

static void set_str_field(json_t *obj, const char *key, const struct job_record *rec,
                          const char *field) {
    const char *v = job_record_get(rec, field);
    if (v)
        json_object_set_new(obj, key, json_string(v));
}

/* A delivery's status object: {status, attempts, last_status, last_error}.
 * Before the job ends its status is pending with 0 attempts. */
static void set_delivery(json_t *doc, const char *key, const struct job_record *rec,
                         const char *kind, const char *target) {
    if (job_record_get(rec, target) == NULL)
        return;
    char f[32];
    json_t *d = json_object();
    snprintf(f, sizeof(f), "%s_status", kind);
    const char *status = job_record_get(rec, f);
    json_object_set_new(d, "status", json_string(status ? status : "pending"));
    snprintf(f, sizeof(f), "%s_attempts", kind);
    json_object_set_new(d, "attempts", json_integer(job_record_get_int(rec, f, 0)));
    snprintf(f, sizeof(f), "%s_last_status", kind);
    long long last = job_record_get_int(rec, f, 0);
    if (last > 0)
        json_object_set_new(d, "last_status", json_integer(last));
    snprintf(f, sizeof(f), "%s_last_error", kind);
    const char *err = job_record_get(rec, f);
    if (err && status && strcmp(status, "delivered") != 0)
        json_object_set_new(d, "last_error", json_string(err));
    json_object_set_new(doc, key, d);
}

bool job_deliveries_pending(const struct job_record *rec) {
    static const char *const kinds[][2] = {{"cb", "callback_url"}, {"mail", "email"}};
    for (size_t i = 0; i < 2; i++) {
        char f[32];
        snprintf(f, sizeof(f), "%s_status", kinds[i][0]);
        const char *status = job_record_get(rec, f);
        if (job_record_get(rec, kinds[i][1]) && (status == NULL || !strcmp(status, "pending")))
            return true;
    }
    return false;
}

json_t *job_document(const char *id, const struct job_record *rec) {
    json_t *doc = json_object();
    if (doc == NULL)
        return NULL;
    const char *state = job_record_get(rec, "state");
    json_object_set_new(doc, "id", json_string(id));
    json_object_set_new(doc, "status", json_string(state ? state : "queued"));
    set_time(doc, "created_at", rec, "created");
    set_time(doc, "started_at", rec, "started");
    set_time(doc, "finished_at", rec, "finished");
    json_object_set_new(doc, "attempts", json_integer(job_record_get_int(rec, "attempts", 0)));

    json_t *req = json_object();
    set_str_field(req, "url", rec, "url");
    if (job_record_get(rec, "src") && !strcmp(job_record_get(rec, "src"), "upload"))
        json_object_set_new(req, "upload", json_true());
    set_int_field(req, "width", rec, "width");
    set_int_field(req, "height", rec, "height");
    set_str_field(req, "fit", rec, "fit");
    set_str_field(req, "crop", rec, "crop");
    set_str_field(req, "format", rec, "format");
    set_int_field(req, "quality", rec, "quality");
    set_str_field(req, "callback_url", rec, "callback_url");
    set_str_field(req, "email", rec, "email");
    json_object_set_new(doc, "request", req);

    if (job_record_get(rec, "src_mime")) {
        json_t *src = json_object();
        set_str_field(src, "mime", rec, "src_mime");
        set_int_field(src, "bytes", rec, "src_bytes");
        set_int_field(src, "width", rec, "src_width");
        set_int_field(src, "height", rec, "src_height");
        json_object_set_new(doc, "source", src);
    }
    if (state && strcmp(state, "done") == 0) {
        json_t *res = json_object();
        set_str_field(res, "mime", rec, "res_mime");
        set_int_field(res, "bytes", rec, "res_bytes");
        set_int_field(res, "width", rec, "res_width");
        set_int_field(res, "height", rec, "res_height");
        char url[64];
        snprintf(url, sizeof(url), "/v1/thumbnails/%s/image", id);
        /* With storage.public_url, where clients fetch the object themselves. */
        const char *public_url = job_record_get(rec, "res_url");
        json_object_set_new(res, "image_url", json_string(public_url ? public_url : url));
        const char *objects = job_record_get(rec, "res_obj");
        if (objects && objects[0]) { /* in the object store: bucket and key */
            json_t *o = json_object();
            set_str_field(o, "bucket", rec, "res_bucket");
            json_object_set_new(o, "key", json_stringn(objects, strcspn(objects, " ")));
            json_object_set_new(res, "object", o);
        }
        json_object_set_new(doc, "result", res);
    }
    if (job_record_get(rec, "err_code")) {
        json_t *e = json_object();
        set_str_field(e, "code", rec, "err_code");
        set_str_field(e, "message", rec, "err_msg");
        json_object_set_new(doc, "error", e);
    }
    set_delivery(doc, "callback", rec, "cb", "callback_url");
    set_delivery(doc, "email_delivery", rec, "mail", "email");
    return doc;
}
