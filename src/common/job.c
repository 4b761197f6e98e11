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
static const char *const format_names[] = {"original", "jpeg", "png", "webp",
                                           "avif",     "gif",  "jxl", NULL};

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

const char *job_format_mime(enum job_format f) {
    static const char *const mimes[] = {"image/jpeg", "image/jpeg", "image/png", "image/webp",
                                        "image/avif", "image/gif",  "image/jxl"};
    return (unsigned)f < sizeof(mimes) / sizeof(mimes[0]) ? mimes[f] : "image/jpeg";
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

/* The defaults of one output. */
static void output_init(struct job_output *o, const char *name, int quality) {
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->width = 256;
    o->fit = JOB_FIT_INSIDE;
    o->crop = JOB_CROP_CENTRE;
    o->formats[0] = JOB_FORMAT_ORIGINAL;
    o->nformats = 1;
    o->quality = quality;
}

void job_params_init(struct job_params *p, const struct job_param_limits *lim) {
    memset(p, 0, sizeof(*p));
    output_init(&p->out[0], "default", lim->default_quality);
    p->nout = 1;
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

/* The fields of one output: at the top level (the one-output form) or in
 * each of renditions. */
static const char *const output_fields[] = {"width",    "height",      "fit",        "crop",
                                            "format",   "quality",     "background", "focus",
                                            "animated", "progressive", "keep_icc",   NULL};

/* The static name of an output field, or NULL when field is not one. */
static const char *output_field(const char *field) {
    for (int i = 0; output_fields[i]; i++)
        if (strcmp(output_fields[i], field) == 0)
            return output_fields[i];
    return NULL;
}

static bool is_output_field(const char *field) {
    return output_field(field) != NULL;
}

/* The typed cores shared by the query and JSON paths; path names the field
 * in errors ("width", "renditions[2].width"). */
static int set_int(struct job_output *o, const char *field, const char *path, long long v,
                   const struct job_param_limits *lim, struct job_param_error *err) {
    if (strcmp(field, "width") == 0 || strcmp(field, "height") == 0) {
        if (v < 1 || v > lim->max_dimension)
            return fail(err, "invalid_param", path, "%s must be an integer 1..%d", path,
                        lim->max_dimension);
        if (field[0] == 'w')
            o->width = (int)v;
        else
            o->height = (int)v;
        return 0;
    }
    if (strcmp(field, "quality") == 0) {
        if (v < 1 || v > 100)
            return fail(err, "invalid_param", path, "%s must be an integer 1..100", path);
        o->quality = (int)v;
        return 0;
    }
    return fail(err, "invalid_param", path, "unknown field '%s'", path);
}

#define FORMAT_CHOICES "original, jpeg, png, webp, avif, gif, jxl"

/* One format of a list (or the only one) at position i of n. */
static int add_format(struct job_output *o, const char *s, int i, int n, const char *path,
                      struct job_param_error *err) {
    enum job_format f;
    if (job_format_parse(s, &f) < 0)
        return fail(err, "invalid_param", path, "%s must be one of " FORMAT_CHOICES "%s", path,
                    n > 1 ? ", each at most once" : "");
    if (f == JOB_FORMAT_ORIGINAL && n > 1)
        return fail(err, "invalid_param", path,
                    "%s: original is the source's own format and cannot be one of a list", path);
    for (int j = 0; j < i; j++)
        if (o->formats[j] == f)
            return fail(err, "invalid_param", path, "%s lists %s twice", path, job_format_name(f));
    o->formats[i] = f;
    return 0;
}

/* #rrggbb or #rrggbbaa, hex digits of either case. */
static int set_background(struct job_output *o, const char *s, const char *path,
                          struct job_param_error *err) {
    size_t n = strlen(s);
    bool ok = (n == 7 || n == 9) && s[0] == '#';
    for (size_t i = 1; ok && i < n; i++)
        ok = isxdigit((unsigned char)s[i]);
    if (!ok)
        return fail(err, "invalid_param", path,
                    "%s must be a colour written #rrggbb or #rrggbbaa (hex digits)", path);
    for (size_t i = 0; i < 4; i++) {
        if (2 * i + 1 >= n) { /* #rrggbb: opaque */
            o->background[i] = 255;
            continue;
        }
        char byte[3] = {s[1 + 2 * i], s[2 + 2 * i], '\0'};
        o->background[i] = (unsigned char)strtoul(byte, NULL, 16);
    }
    o->has_background = true;
    return 0;
}

static int set_focus(struct job_output *o, double x, double y, const char *path,
                     struct job_param_error *err) {
    if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1))
        return fail(err, "invalid_param", path, "%s.x and %s.y must be numbers 0..1", path, path);
    o->focus_x = x;
    o->focus_y = y;
    o->has_focus = true;
    return 0;
}

static int set_bool(struct job_output *o, const char *field, bool v) {
    if (strcmp(field, "animated") == 0)
        o->animated = v;
    else if (strcmp(field, "progressive") == 0)
        o->progressive = v;
    else
        o->keep_icc = v;
    return 0;
}

static int set_output_string(struct job_output *o, const char *field, const char *path,
                             const char *value, struct job_param_error *err) {
    if (strcmp(field, "fit") == 0) {
        if (job_fit_parse(value, &o->fit) < 0)
            return fail(err, "invalid_param", path,
                        "%s must be one of inside, cover, contain, fill", path);
        return 0;
    }
    if (strcmp(field, "crop") == 0) {
        if (job_crop_parse(value, &o->crop) < 0)
            return fail(err, "invalid_param", path, "%s must be one of centre, attention, entropy",
                        path);
        return 0;
    }
    if (strcmp(field, "format") == 0) {
        o->nformats = 1;
        return add_format(o, value, 0, 1, path, err);
    }
    if (strcmp(field, "background") == 0)
        return set_background(o, value, path, err);
    return fail(err, "invalid_param", path, "%s must not be a string", path);
}

static int set_string(struct job_params *p, const char *field, const char *value,
                      struct job_param_error *err) {
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

static bool is_bool_field(const char *field) {
    return !strcmp(field, "animated") || !strcmp(field, "progressive") ||
           !strcmp(field, "keep_icc");
}

static bool is_string_field(const char *field) {
    return !strcmp(field, "url") || !strcmp(field, "callback_url") || !strcmp(field, "email");
}

/* One output field from its JSON value. */
static int output_set_json(struct job_output *o, const char *field, const char *path, json_t *val,
                           const struct job_param_limits *lim, struct job_param_error *err) {
    if (is_int_field(field)) {
        if (!json_is_integer(val))
            return fail(err, "invalid_param", path, "%s must be an integer", path);
        return set_int(o, field, path, json_integer_value(val), lim, err);
    }
    if (is_bool_field(field)) {
        if (!json_is_boolean(val))
            return fail(err, "invalid_param", path, "%s must be true or false", path);
        return set_bool(o, field, json_is_true(val));
    }
    if (strcmp(field, "focus") == 0) {
        json_t *x = json_object_get(val, "x"), *y = json_object_get(val, "y");
        if (!json_is_object(val) || json_object_size(val) != 2 || !json_is_number(x) ||
            !json_is_number(y))
            return fail(err, "invalid_param", path,
                        "%s must be an object {\"x\": 0..1, \"y\": 0..1} and nothing else", path);
        return set_focus(o, json_number_value(x), json_number_value(y), path, err);
    }
    if (strcmp(field, "format") == 0 && json_is_array(val)) {
        size_t n = json_array_size(val);
        if (n < 1 || n > JOB_FORMATS_MAX)
            return fail(err, "invalid_param", path, "%s as a list has 1..%d formats", path,
                        JOB_FORMATS_MAX);
        for (size_t i = 0; i < n; i++) {
            json_t *f = json_array_get(val, i);
            if (!json_is_string(f))
                return fail(err, "invalid_param", path, "%s must list formats as strings", path);
            if (add_format(o, json_string_value(f), (int)i, (int)n, path, err) < 0)
                return -1;
        }
        o->nformats = (int)n;
        return 0;
    }
    if (!json_is_string(val))
        return fail(err, "invalid_param", path, "%s must be a string%s", path,
                    strcmp(field, "format") == 0 ? " or a list of strings" : "");
    const char *s = json_string_value(val);
    if (check_text(path, s, json_string_length(val), err) < 0)
        return -1;
    return set_output_string(o, field, path, s, err);
}

/* A rendition's name: 1..JOB_NAME_MAX of [a-z0-9_-]. */
static bool name_is_valid(const char *s, size_t len) {
    if (len < 1 || len > JOB_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* renditions: 1..JOB_RENDITIONS_MAX objects, each a name and output fields. */
static int set_renditions(struct job_params *p, json_t *val, const struct job_param_limits *lim,
                          struct job_param_error *err) {
    size_t n = json_array_size(val);
    if (!json_is_array(val) || n < 1 || n > JOB_RENDITIONS_MAX)
        return fail(err, "invalid_param", "renditions",
                    "renditions must be a list of 1..%d objects", JOB_RENDITIONS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(val, i);
        struct job_output *o = &p->out[i];
        char path[64];
        snprintf(path, sizeof(path), "renditions[%zu]", i);
        if (!json_is_object(r))
            return fail(err, "invalid_param", path, "%s must be an object", path);
        json_t *name = json_object_get(r, "name");
        snprintf(path, sizeof(path), "renditions[%zu].name", i);
        if (!json_is_string(name) ||
            !name_is_valid(json_string_value(name), json_string_length(name)))
            return fail(err, "invalid_param", path,
                        "%s is required: 1..%d characters of a-z, 0-9, _ and -", path,
                        JOB_NAME_MAX);
        output_init(o, json_string_value(name), lim->default_quality);
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->out[j].name, o->name) == 0)
                return fail(err, "invalid_param", path, "%s: two renditions are named %s", path,
                            o->name);
        const char *key;
        json_t *v;
        json_object_foreach(r, key, v) {
            if (strcmp(key, "name") == 0)
                continue;
            snprintf(path, sizeof(path), "renditions[%zu].%.32s", i, key);
            if (!is_output_field(key))
                return fail(err, "invalid_param", path, "unknown field '%s'", path);
            if (output_set_json(o, key, path, v, lim, err) < 0)
                return -1;
        }
    }
    p->nout = (int)n;
    p->renditions = true;
    return 0;
}

/* A text form's bool: true or false, as JSON writes them. */
static int parse_bool_text(const char *value, bool *out) {
    if (strcmp(value, "true") == 0)
        *out = true;
    else if (strcmp(value, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* The text forms of the fields that are not plain strings or integers: a
 * format list "avif,webp,jpeg", focus "x,y", a bool, renditions as JSON. */
static int output_set_text(struct job_params *p, const char *field, const char *value, size_t len,
                           const struct job_param_limits *lim, struct job_param_error *err) {
    struct job_output *o = &p->out[0];
    if (is_bool_field(field)) {
        bool v;
        if (parse_bool_text(value, &v) < 0)
            return fail(err, "invalid_param", field, "%s must be true or false", field);
        return set_bool(o, field, v);
    }
    if (strcmp(field, "focus") == 0) {
        char *end;
        double x = strtod(value, &end), y = -1;
        if (end != value && *end == ',') {
            const char *ys = end + 1;
            y = strtod(ys, &end);
            if (end == ys || *end != '\0')
                y = -1;
        }
        if (y < 0 || !isdigit((unsigned char)value[0]))
            return fail(err, "invalid_param", "focus",
                        "focus must be x,y: two numbers 0..1 (as focus=0.5,0.25)");
        return set_focus(o, x, y, "focus", err);
    }
    if (strcmp(field, "format") == 0 && memchr(value, ',', len)) {
        char list[128];
        if (len >= sizeof(list))
            return fail(err, "invalid_param", "format", "format lists 1..%d formats",
                        JOB_FORMATS_MAX);
        memcpy(list, value, len + 1);
        int n = 1;
        for (size_t i = 0; i < len; i++)
            n += list[i] == ',';
        if (n > JOB_FORMATS_MAX)
            return fail(err, "invalid_param", "format", "format lists 1..%d formats",
                        JOB_FORMATS_MAX);
        char *rest = list;
        for (int i = 0; i < n; i++)
            if (add_format(o, strsep(&rest, ","), i, n, "format", err) < 0)
                return -1;
        o->nformats = n;
        return 0;
    }
    if (strcmp(field, "renditions") == 0) {
        json_error_t jerr;
        json_t *v = json_loadb(value, len, JSON_REJECT_DUPLICATES, &jerr);
        if (v == NULL)
            return fail(err, "invalid_param", "renditions",
                        "renditions must be a JSON list of objects: %s", jerr.text);
        int rc = set_renditions(p, v, lim, err);
        json_decref(v);
        return rc;
    }
    return set_output_string(o, field, field, value, err);
}

int job_params_set_text(struct job_params *p, const char *field, const char *value, size_t len,
                        const struct job_param_limits *lim, struct job_param_error *err) {
    bool known = is_output_field(field) || is_string_field(field) || !strcmp(field, "renditions");
    if (!known)
        return fail(err, "invalid_param", field, "unknown parameter '%s'", field);
    if (check_text(field, value, len, err) < 0)
        return -1;
    if (is_int_field(field)) {
        long long v;
        int r = parse_json_int(value, len, &v);
        if (r == -1)
            return fail(err, "invalid_param", field, "%s must be an integer", field);
        if (r == -2) /* out of range whatever the range */
            v = LLONG_MAX;
        p->top = p->top ? p->top : output_field(field);
        return set_int(&p->out[0], field, field, v, lim, err);
    }
    if (is_string_field(field))
        return set_string(p, field, value, err);
    if (is_output_field(field))
        p->top = p->top ? p->top : output_field(field);
    return output_set_text(p, field, value, len, lim, err);
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
    json_t *renditions = NULL;
    json_object_foreach(root, key, val) {
        if (is_output_field(key)) {
            p->top = p->top ? p->top : output_field(key);
            if ((rc = output_set_json(&p->out[0], key, key, val, lim, err)) < 0)
                goto out;
        } else if (is_string_field(key)) {
            if (!json_is_string(val)) {
                rc = fail(err, "invalid_param", key, "%s must be a string", key);
                goto out;
            }
            const char *s = json_string_value(val);
            if ((rc = check_text(key, s, json_string_length(val), err)) < 0 ||
                (rc = set_string(p, key, s, err)) < 0)
                goto out;
        } else if (strcmp(key, "renditions") == 0) {
            renditions = val;
        } else {
            rc = fail(err, "invalid_param", key, "unknown field '%.64s'", key);
            goto out;
        }
    }
    if (renditions)
        rc = set_renditions(p, renditions, lim, err);
out:
    json_decref(root);
    return rc;
}

/* An output's own checks: its height, focus with cover alone. Its pixels
 * (width x height x formats, exact for the fits that fill the box) into *px,
 * 0 for inside, which the worker checks once it knows the source's aspect. */
static int output_finish(struct job_output *o, const char *path, bool top,
                         const struct job_param_limits *lim, long long *px,
                         struct job_param_error *err) {
    char field[64];
    if (o->height == 0)
        o->height = o->width;
    if (o->has_focus && o->fit != JOB_FIT_COVER) {
        snprintf(field, sizeof(field), "%s%sfocus", path, top ? "" : ".");
        return fail(err, "invalid_param", field,
                    "%s is the point fit=cover keeps: it needs fit cover, not %s", field,
                    job_fit_name(o->fit));
    }
    if (o->has_focus && o->crop != JOB_CROP_CENTRE) {
        snprintf(field, sizeof(field), "%s%sfocus", path, top ? "" : ".");
        return fail(err, "invalid_param", field,
                    "%s and crop=%s both choose what cover keeps: give one of them", field,
                    job_crop_name(o->crop));
    }
    long long box = (long long)o->width * o->height;
    snprintf(field, sizeof(field), "%s%swidth", path, top ? "" : ".");
    if (o->fit != JOB_FIT_INSIDE && lim->max_output_pixels > 0 && box > lim->max_output_pixels)
        return fail(err, "invalid_param", field,
                    "%dx%d with fit=%s is a thumbnail of %lld pixels, more than the limit of %lld "
                    "(image.max_output_pixels): ask for a smaller box",
                    o->width, o->height, job_fit_name(o->fit), box,
                    (long long)lim->max_output_pixels);
    *px = o->fit == JOB_FIT_INSIDE ? 0 : box * o->nformats;
    return 0;
}

int job_params_finish(struct job_params *p, bool upload, const struct job_param_limits *lim,
                      struct job_param_error *err) {
    if (upload && p->url)
        return fail(err, "invalid_param", "url", "give either a url or an uploaded body, not both");
    if (!upload && p->url == NULL)
        return fail(err, "invalid_param", "url",
                    "url is required (or upload the image as the body)");
    if (p->renditions && p->top)
        return fail(err, "invalid_param", p->top,
                    "%s is an output field: give the outputs either at the top level (one "
                    "output) or as renditions, not both",
                    p->top);
    long long sum = 0;
    for (int i = 0; i < p->nout; i++) {
        char path[32] = "";
        if (p->renditions)
            snprintf(path, sizeof(path), "renditions[%d]", i);
        long long px = 0;
        if (output_finish(&p->out[i], path, !p->renditions, lim, &px, err) < 0)
            return -1;
        sum += px;
    }
    if (lim->max_job_pixels > 0 && sum > lim->max_job_pixels)
        return fail(err, "invalid_param", p->renditions ? "renditions" : "format",
                    "the outputs add up to %lld pixels (width x height x formats of each), more "
                    "than the limit of %lld (image.max_job_pixels): ask for fewer or smaller "
                    "outputs",
                    sum, (long long)lim->max_job_pixels);
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

/* The text of an output's background: #rrggbb, or #rrggbbaa when not opaque. */
static void background_text(const struct job_output *o, char out[10]) {
    const unsigned char *b = o->background;
    if (b[3] == 255)
        snprintf(out, 10, "#%02x%02x%02x", b[0], b[1], b[2]);
    else
        snprintf(out, 10, "#%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

/* The formats of an output as the record keeps them: comma-separated. */
static void formats_text(const struct job_output *o, char *out, size_t size) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < o->nformats && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "",
                              job_format_name(o->formats[i]));
}

/* An output as JSON, every field written: the record's renditions, and the
 * document's. */
static json_t *output_json(const struct job_output *o) {
    json_t *j = json_pack("{s:s, s:i, s:i, s:s, s:s, s:i}", "name", o->name, "width", o->width,
                          "height", o->height, "fit", job_fit_name(o->fit), "crop",
                          job_crop_name(o->crop), "quality", o->quality);
    if (j == NULL)
        return NULL;
    if (o->nformats == 1) {
        json_object_set_new(j, "format", json_string(job_format_name(o->formats[0])));
    } else {
        json_t *list = json_array();
        for (int i = 0; i < o->nformats; i++)
            json_array_append_new(list, json_string(job_format_name(o->formats[i])));
        json_object_set_new(j, "format", list);
    }
    if (o->has_background) {
        char bg[10];
        background_text(o, bg);
        json_object_set_new(j, "background", json_string(bg));
    }
    if (o->has_focus)
        json_object_set_new(j, "focus", json_pack("{s:f, s:f}", "x", o->focus_x, "y", o->focus_y));
    if (o->animated)
        json_object_set_new(j, "animated", json_true());
    if (o->progressive)
        json_object_set_new(j, "progressive", json_true());
    if (o->keep_icc)
        json_object_set_new(j, "keep_icc", json_true());
    return j;
}

/* The one-output form's fields: today's, then the options that are set. */
static int record_output(struct job_record *rec, const struct job_output *o) {
    char num[3][16], formats[64], bg[10], focus[40];
    snprintf(num[0], sizeof(num[0]), "%d", o->width);
    snprintf(num[1], sizeof(num[1]), "%d", o->height);
    snprintf(num[2], sizeof(num[2]), "%d", o->quality);
    formats_text(o, formats, sizeof(formats));
    int rc = 0;
    rc |= job_record_set(rec, "width", num[0]);
    rc |= job_record_set(rec, "height", num[1]);
    rc |= job_record_set(rec, "fit", job_fit_name(o->fit));
    rc |= job_record_set(rec, "crop", job_crop_name(o->crop));
    rc |= job_record_set(rec, "format", formats);
    rc |= job_record_set(rec, "quality", num[2]);
    if (o->has_background) {
        background_text(o, bg);
        rc |= job_record_set(rec, "background", bg);
    }
    if (o->has_focus) {
        snprintf(focus, sizeof(focus), "%.6g,%.6g", o->focus_x, o->focus_y);
        rc |= job_record_set(rec, "focus", focus);
    }
    if (o->animated)
        rc |= job_record_set(rec, "animated", "true");
    if (o->progressive)
        rc |= job_record_set(rec, "progressive", "true");
    if (o->keep_icc)
        rc |= job_record_set(rec, "keep_icc", "true");
    return rc;
}

int job_record_from_params(struct job_record *rec, const struct job_params *p) {
    int rc = 0;
    rc |= job_record_set(rec, "src", p->url ? "url" : "upload");
    if (p->url)
        rc |= job_record_set(rec, "url", p->url);
    if (p->renditions) { /* one field: the outputs as JSON, all their fields written */
        json_t *list = json_array();
        for (int i = 0; list && i < p->nout; i++)
            json_array_append_new(list, output_json(&p->out[i]));
        char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
        rc |= text ? job_record_set(rec, "renditions", text) : -1;
        free(text);
        json_decref(list);
    } else {
        rc |= record_output(rec, &p->out[0]);
    }
    if (p->callback_url)
        rc |= job_record_set(rec, "callback_url", p->callback_url);
    if (p->email)
        rc |= job_record_set(rec, "email", p->email);
    return rc ? -1 : 0;
}

int job_params_from_record(struct job_params *p, const struct job_record *rec) {
    /* What was stored was checked against the limits of its day: the worker
     * checks them again against its own (pipeline.c). */
    static const struct job_param_limits any = {.max_dimension = 65535, .default_quality = 80};
    struct job_param_error err;
    job_params_init(p, &any);
    const char *v;
    if ((v = job_record_get(rec, "url")) && (p->url = strdup(v)) == NULL)
        return -1;
    if ((v = job_record_get(rec, "callback_url")) && (p->callback_url = strdup(v)) == NULL)
        return -1;
    if ((v = job_record_get(rec, "email")) && (p->email = strdup(v)) == NULL)
        return -1;
    if ((v = job_record_get(rec, "renditions")) != NULL) {
        json_t *list = json_loads(v, JSON_REJECT_DUPLICATES, NULL);
        int rc = list ? set_renditions(p, list, &any, &err) : -1;
        json_decref(list);
        return rc;
    }
    static const char *const required[] = {"width", "height", "fit", "crop", "format", NULL};
    for (int i = 0; required[i]; i++)
        if (job_record_get(rec, required[i]) == NULL)
            return -1;
    for (int i = 0; output_fields[i]; i++)
        if ((v = job_record_get(rec, output_fields[i])) != NULL &&
            job_params_set_text(p, output_fields[i], v, strlen(v), &any, &err) < 0)
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

/* The request's format: a string, or a list when it names several. */
static void request_format(json_t *req, const struct job_record *rec) {
    const char *v = job_record_get(rec, "format");
    if (v == NULL || strchr(v, ',') == NULL) {
        set_str_field(req, "format", rec, "format");
        return;
    }
    json_t *list = json_array();
    for (const char *s = v; *s;) {
        size_t n = strcspn(s, ",");
        json_array_append_new(list, json_stringn(s, n));
        s += n + (s[n] == ',');
    }
    json_object_set_new(req, "format", list);
}

/* The options of the one-output form that were given, and renditions. */
static void request_options(json_t *req, const struct job_record *rec) {
    set_str_field(req, "background", rec, "background");
    const char *focus = job_record_get(rec, "focus");
    double x, y;
    if (focus && sscanf(focus, "%lf,%lf", &x, &y) == 2)
        json_object_set_new(req, "focus", json_pack("{s:f, s:f}", "x", x, "y", y));
    static const char *const flags[] = {"animated", "progressive", "keep_icc", NULL};
    for (int i = 0; flags[i]; i++)
        if (job_record_get(rec, flags[i]))
            json_object_set_new(req, flags[i], json_true());
    const char *list = job_record_get(rec, "renditions");
    json_t *r = list ? json_loads(list, 0, NULL) : NULL;
    if (r)
        json_object_set_new(req, "renditions", r);
}

int job_encoding_line(const struct job_encoding *e, char *buf, size_t size) {
    int n = snprintf(buf, size, "%d %d %s %s %s %lld %d %d %s %lld", e->output, e->rank, e->name,
                     job_format_name(e->format), e->mime, e->bytes, e->width, e->height,
                     e->etag[0] ? e->etag : "-", e->offset);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int job_encodings_parse(const char *text, struct job_encoding *out, int max) {
    int n = 0;
    for (const char *s = text; s && *s && n < max;) {
        size_t len = strcspn(s, "\n");
        char line[256], format[16];
        struct job_encoding *e = &out[n];
        if (len >= sizeof(line))
            return -1;
        memcpy(line, s, len);
        line[len] = '\0';
        int end = 0;
        if (sscanf(line, "%d %d %32s %15s %31s %lld %d %d %32s %lld%n", &e->output, &e->rank,
                   e->name, format, e->mime, &e->bytes, &e->width, &e->height, e->etag, &e->offset,
                   &end) != 10 ||
            (size_t)end != len || job_format_parse(format, &e->format) < 0 || e->output < 0 ||
            e->output >= JOB_RENDITIONS_MAX || e->rank < 0 || e->rank >= JOB_FORMATS_MAX)
            return -1;
        if (strcmp(e->etag, "-") == 0)
            e->etag[0] = '\0';
        n++;
        s += len + (s[len] == '\n');
    }
    return n;
}

/* Where a result's object is served from with storage.public_url: res_url is
 * the first object's URL, so the others' are it with their own key at the end. */
bool job_public_url(const struct job_record *rec, int index, char *out, size_t size) {
    const char *url = job_record_get(rec, "res_url"), *objects = job_record_get(rec, "res_obj");
    if (url == NULL || objects == NULL)
        return false;
    size_t first = strcspn(objects, " "), ulen = strlen(url);
    if (ulen < first || strncmp(url + ulen - first, objects, first) != 0)
        return false;
    const char *key = objects;
    for (int i = 0; i < index && *key; i++) {
        key += strcspn(key, " ");
        key += *key == ' ';
    }
    size_t klen = strcspn(key, " ");
    if (klen == 0)
        return false;
    int n = snprintf(out, size, "%.*s%.*s", (int)(ulen - first), url, (int)klen, key);
    return n > 0 && (size_t)n < size;
}

/* result.renditions: each output with its primary encoding's figures and
 * every encoding in the order listed. */
static void result_renditions(json_t *res, const char *id, const struct job_record *rec) {
    struct job_encoding enc[JOB_RENDITIONS_MAX * JOB_FORMATS_MAX];
    int n = job_encodings_parse(job_record_get(rec, "res_rend"), enc,
                                JOB_RENDITIONS_MAX * JOB_FORMATS_MAX);
    if (n <= 0)
        return;
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        if (i > 0 && enc[i].output == enc[i - 1].output)
            continue;   /* not an output's first line: done with its first */
        char url[2304]; /* a public object URL (STORE_URL_MAX) or a route */
        if (!job_public_url(rec, i, url, sizeof(url)))
            snprintf(url, sizeof(url), "/v1/thumbnails/%s/image/%s", id, enc[i].name);
        json_t *r = json_pack("{s:s, s:s, s:I, s:i, s:i, s:s}", "name", enc[i].name, "mime",
                              enc[i].mime, "bytes", (json_int_t)enc[i].bytes, "width", enc[i].width,
                              "height", enc[i].height, "image_url", url);
        json_t *formats = json_array();
        for (int rank = 0; rank < JOB_FORMATS_MAX; rank++) {
            for (int j = i; j < n && enc[j].output == enc[i].output; j++) {
                if (enc[j].rank != rank)
                    continue;
                if (!job_public_url(rec, j, url, sizeof(url)))
                    snprintf(url, sizeof(url), "/v1/thumbnails/%s/image/%s?format=%s", id,
                             enc[j].name, job_format_name(enc[j].format));
                json_array_append_new(
                    formats, json_pack("{s:s, s:s, s:I, s:s}", "format",
                                       job_format_name(enc[j].format), "mime", enc[j].mime, "bytes",
                                       (json_int_t)enc[j].bytes, "image_url", url));
            }
        }
        json_object_set_new(r, "formats", formats);
        json_array_append_new(list, r);
    }
    json_object_set_new(res, "renditions", list);
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
    request_format(req, rec);
    set_int_field(req, "quality", rec, "quality");
    request_options(req, rec);
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
        result_renditions(res, id, rec);
        if (job_record_get(rec, "ph_hash")) {
            json_t *ph = json_object();
            set_str_field(ph, "blurhash", rec, "ph_hash");
            set_str_field(ph, "color", rec, "ph_color");
            json_object_set_new(res, "placeholder", ph);
        }
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
