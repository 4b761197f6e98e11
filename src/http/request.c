/* request.c — Content-Type classification, query-string parameters, the wait
 * parameter and any one parameter, If-None-Match, the client's address behind trusted proxies. */
#include "request.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* value percent-decoded, '+' as a space (as forms send it), into a malloc'd
 * string with its length in *len (a %00 is kept, and seen by the length).
 * NULL when out of memory. */
static char *query_decode(const char *value, size_t *len) {
    char *plus = strdup(value);
    if (plus == NULL)
        return NULL;
    for (char *c = plus; *c; c++)
        if (*c == '+')
            *c = ' ';
    int n = 0;
    char *decoded = curl_easy_unescape(NULL, plus, 0, &n);
    free(plus);
    char *out = decoded ? malloc((size_t)n + 1) : NULL;
    if (out) {
        memcpy(out, decoded, (size_t)n + 1);
        *len = (size_t)n;
    }
    curl_free(decoded);
    return out;
}

/* Whether header i of r is an X-Forwarded-For. */
static bool is_forwarded_for(const struct parse_request *r, int i) {
    static const char name[] = "X-Forwarded-For";
    return r->headers[i].name_len == sizeof(name) - 1 &&
           strncasecmp(r->head + r->headers[i].name_off, name, sizeof(name) - 1) == 0;
}

/* Whether [s, s + len) equals word, ignoring ASCII case. */
static bool token_is(const char *s, size_t len, const char *word) {
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

enum request_body_kind request_body_kind(const char *content_type) {
    if (content_type == NULL)
        return REQUEST_BODY_JSON;
    const char *s = content_type;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strcspn(s, ";");
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0)
        return REQUEST_BODY_JSON;
    if (token_is(s, len, "application/json"))
        return REQUEST_BODY_JSON;
    if (token_is(s, len, "application/octet-stream"))
        return REQUEST_BODY_UPLOAD;
    /* image/<subtype>, with a non-empty subtype */
    if (len > 6 && strncasecmp(s, "image/", 6) == 0 && memchr(s + 6, '/', len - 6) == NULL)
        return REQUEST_BODY_UPLOAD;
    return REQUEST_BODY_OTHER;
}

/* The fields a query string may set: each may be given once, so the names
 * seen are at most this many before a repeat or an unknown name ends it. */
#define QUERY_FIELDS_MAX 16

/* Fills err as invalid_param for field (NULL: none) with message. Returns -1. */
static int refuse(struct job_param_error *err, const char *field, const char *message) {
    err->code = "invalid_param";
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    snprintf(err->message, sizeof(err->message), "%s", message);
    return -1;
}

/* Whether every &-separated pair has a non-empty name and an '=' (a trailing &
 * allowed). */
static bool query_well_formed(const char *s) {
    while (*s != '\0') {
        size_t len = strcspn(s, "&");
        const char *eq = memchr(s, '=', len);
        if (eq == NULL || eq == s)
            return false;
        s += len;
        if (*s == '&')
            s++;
    }
    return true;
}

int request_params_from_query(struct job_params *p, const char *query,
                              const struct job_param_limits *lim, struct job_param_error *err) {
    if (query == NULL || *query == '\0')
        return 0;
    if (!query_well_formed(query))
        return refuse(err, NULL,
                      "the query string is malformed: expected name=value pairs joined by &");
    char *copy = strdup(query);
    if (copy == NULL)
        return refuse(err, NULL, "out of memory");
    const char *seen[QUERY_FIELDS_MAX];
    int nseen = 0, rc = 0;
    /* Split at & and =, each value decoded with its length, so that a %00 in
     * it is seen rather than ending it. */
    for (char *rest = copy; rest != NULL && *rest != '\0';) {
        char *value = strsep(&rest, "&");
        char *key = strsep(&value, "="); /* value != NULL: query_well_formed */
        for (int i = 0; rc == 0 && i < nseen; i++) {
            if (strcmp(seen[i], key) == 0) {
                char msg[96];
                snprintf(msg, sizeof(msg), "parameter '%.64s' is given twice", key);
                rc = refuse(err, key, msg);
            }
        }
        if (rc < 0)
            break;
        size_t len = 0;
        char *decoded = query_decode(value, &len);
        if (decoded == NULL) {
            rc = refuse(err, key, "out of memory");
            break;
        }
        rc = job_params_set_text(p, key, decoded, len, lim, err);
        free(decoded);
        if (rc < 0)
            break;
        if (nseen < QUERY_FIELDS_MAX)
            seen[nseen++] = key;
    }
    free(copy);
    return rc;
}

/* Skips spaces, tabs and commas. */
static const char *skip_separators(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    return s;
}

bool request_idempotency_key_ok(const char *key) {
    size_t n = 0;
    for (; key[n]; n++)
        if (key[n] < 0x20 || key[n] > 0x7e)
            return false;
    return n >= 1 && n <= 255;
}

bool request_etag_matches(const char *if_none_match, const char *etag) {
    if (if_none_match == NULL || etag == NULL)
        return false;
    size_t etag_len = strlen(etag);
    const char *s = skip_separators(if_none_match);
    while (*s) {
        if (*s == '*') {
            const char *after = s + 1;
            while (*after == ' ' || *after == '\t')
                after++;
            if (*after == '\0' || *after == ',')
                return true;
        }
        if (s[0] == 'W' && s[1] == '/')
            s += 2;
        if (*s == '"') {
            const char *end = strchr(s + 1, '"');
            if (end == NULL)
                return false;
            size_t len = (size_t)(end - s - 1);
            if (len == etag_len && memcmp(s + 1, etag, len) == 0)
                return true;
            s = end + 1;
        }
        /* Skip to the next list member (also past anything malformed). */
        s += strcspn(s, ",");
        s = skip_separators(s);
    }
    return false;
}

int request_query_value(const char *query, const char *name, char *out, size_t n) {
    size_t nlen = strlen(name);
    int found = 0;
    for (const char *s = query; s && *s;) {
        size_t len = strcspn(s, "&");
        if (len >= nlen && strncmp(s, name, nlen) == 0 && (len == nlen || s[nlen] == '=')) {
            if (found)
                return -1;
            found = 1;
            size_t vlen = len > nlen ? len - nlen - 1 : 0;
            char *raw = strndup(len > nlen ? s + nlen + 1 : "", vlen);
            size_t decoded = 0;
            char *value = raw ? query_decode(raw, &decoded) : NULL;
            free(raw);
            bool ok = value && strlen(value) == decoded && decoded < n; /* no %00 */
            if (ok)
                memcpy(out, value, decoded + 1);
            free(value);
            if (!ok)
                return -1;
        }
        s += len;
        if (*s == '&')
            s++;
    }
    return found;
}

int request_wait_seconds(const char *query, int max, int *seconds) {
    *seconds = 0;
    bool seen = false;
    for (const char *s = query; s && *s;) {
        size_t len = strcspn(s, "&");
        if (len >= 4 && strncmp(s, "wait", 4) == 0 && (len == 4 || s[4] == '=')) {
            if (seen)
                return -1;
            seen = true;
            char raw[16];
            size_t vlen = len > 4 ? len - 5 : 0;
            if (vlen == 0 || vlen >= sizeof(raw))
                return -1;
            memcpy(raw, s + 5, vlen);
            raw[vlen] = '\0';
            size_t decoded = 0;
            char *value = query_decode(raw, &decoded);
            if (value == NULL)
                return -1;
            long n = 0;
            bool ok = *value != '\0' && strlen(value) == decoded && decoded <= 9; /* no %00 */
            for (const char *d = value; ok && *d; d++) {
                ok = *d >= '0' && *d <= '9';
                n = n * 10 + (*d - '0');
            }
            free(value);
            if (!ok || n > max)
                return -1;
            *seconds = (int)n;
        }
        s += len;
        if (*s == '&')
            s++;
    }
    return 0;
}

char *request_forwarded_for(const struct parse_request *r) {
    size_t len = 0;
    for (int i = 0; i < r->nheaders; i++)
        if (is_forwarded_for(r, i))
            len += r->headers[i].value_len + 2;
    if (len == 0)
        return NULL;
    char *out = malloc(len + 1), *w = out;
    if (out == NULL)
        return NULL;
    for (int i = 0; i < r->nheaders; i++) {
        if (!is_forwarded_for(r, i))
            continue;
        if (w != out)
            w = stpcpy(w, ", ");
        w = stpcpy(w, r->head + r->headers[i].value_off);
    }
    *w = '\0';
    return out;
}

/* Parses the entry s[0..len) of X-Forwarded-For, blanks around it ignored. */
static int forwarded_entry(const char *s, size_t len, unsigned char addr[16]) {
    while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return cidr_addr_parse(s, len, addr);
}

int request_client_address(const char *peer, const char *xff, const struct cidr_list *trusted,
                           unsigned char addr[16]) {
    if (peer == NULL || cidr_addr_parse(peer, strcspn(peer, "%"), addr) < 0)
        return -1;
    if (!cidr_list_match(trusted, addr) || xff == NULL)
        return 0;
    /* From the right: end is one past the entry being read. */
    for (size_t end = strlen(xff);;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        unsigned char next[16];
        if (forwarded_entry(xff + start, end - start, next) < 0)
            return 0; /* not an address: the last one read stands */
        memcpy(addr, next, 16);
        if (!cidr_list_match(trusted, addr) || start == 0)
            return 0;
        end = start - 1; /* before the comma */
    }
}
