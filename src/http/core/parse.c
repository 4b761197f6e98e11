/* parse.c — libhttp-parser under the rules of parse.h. The parser is paused at
 * the end of the head (to report it, and to scan the head's bytes for bare LF
 * and obs-fold, which the library lets through) and at the end of each
 * message (so that a pipelined request waits for parse_next). */
#include "parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int refuse(struct parse *ps, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(struct parse *ps, int status, const char *code, const char *fmt, ...) {
    if (!ps->failed) {
        ps->failed = true;
        ps->err.status = status;
        ps->err.code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err.message, sizeof(ps->err.message), fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Appends n bytes at to the growing buffer *buf (*len used of *cap), which
 * starts at first bytes and never grows past max. */
static int append(struct parse *ps, void **buf, size_t *len, size_t *cap, size_t first, size_t max,
                  const void *at, size_t n) {
    if (*len + n > *cap) {
        size_t want = *cap ? *cap : first;
        while (want < *len + n)
            want *= 2;
        if (want > max)
            want = max;
        void *grown = realloc(*buf, want);
        if (grown == NULL)
            return refuse(ps, 500, "internal", "out of memory");
        *buf = grown;
        *cap = want;
    }
    memcpy((char *)*buf + *len, at, n);
    *len += n;
    return 0;
}

/* The head storage holds the target and every name and value, each followed
 * by a NUL: at most max_header bytes of them, and the NULs. */
static size_t head_max(const struct parse *ps) {
    return ps->limits.max_header + 2 * PARSE_HEADERS_MAX + 1;
}

/* Appends to the head storage, bounded by max_header. */
static int head_add(struct parse *ps, const char *at, size_t len) {
    struct parse_request *r = &ps->req;
    if (r->head_len + len > head_max(ps))
        return refuse(ps, 400, "bad_request", "the request line and headers exceed %zu bytes",
                      ps->limits.max_header);
    return append(ps, (void **)&r->head, &r->head_len, &r->head_cap, 1024, head_max(ps), at, len);
}

/* Ends the string being stored (the target, a name or a value) with a NUL. */
static int head_end(struct parse *ps) {
    return head_add(ps, "", 1);
}

static struct parse *of(http_parser *p) {
    return p->data;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    struct parse *ps = of(p);
    if (head_add(ps, at, len) < 0)
        return -1;
    ps->req.target_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    struct parse *ps = of(p);
    struct parse_request *r = &ps->req;
    if (ps->last_was_value || r->nheaders == 0) {
        if (r->nheaders == PARSE_HEADERS_MAX)
            return refuse(ps, 400, "bad_request", "more than %d headers", PARSE_HEADERS_MAX);
        if (head_end(ps) < 0) /* the target, or the value before */
            return -1;
        r->headers[r->nheaders++] = (struct parse_header){.name_off = r->head_len};
        ps->last_was_value = false;
    }
    if (head_add(ps, at, len) < 0)
        return -1;
    r->headers[r->nheaders - 1].name_len += len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    struct parse *ps = of(p);
    struct parse_request *r = &ps->req;
    struct parse_header *h = &r->headers[r->nheaders - 1];
    if (!ps->last_was_value) {
        if (head_end(ps) < 0) /* the name */
            return -1;
        h->value_off = r->head_len;
        ps->last_was_value = true;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return refuse(ps, 400, "bad_request", "a header value holds a control character");
    }
    if (head_add(ps, at, len) < 0)
        return -1;
    h->value_len += len;
    return 0;
}

static bool value_is(const struct parse_request *r, const char *name, const char *want) {
    size_t len;
    const char *v = parse_header_get(r, name, &len);
    return v && len == strlen(want) && strncasecmp(v, want, len) == 0;
}

/* What the head must be, beyond what the library checks. */
static int check_head(struct parse *ps) {
    struct parse_request *r = &ps->req;
    r->method = (enum http_method)ps->parser.method;
    r->http_major = ps->parser.http_major;
    r->http_minor = ps->parser.http_minor;
    if (r->http_major != 1 || r->http_minor > 1)
        return refuse(ps, 505, "bad_request", "only HTTP/1.0 and HTTP/1.1 are served");
    size_t tlen;
    const char *t = parse_target(r, &tlen);
    bool star = tlen == 1 && t[0] == '*';
    if (!(tlen > 0 && t[0] == '/') && !(star && r->method == HTTP_OPTIONS))
        return refuse(ps, 400, "bad_request",
                      "the request target must be a path (origin-form), or * for OPTIONS");
    r->path_len = tlen;
    r->query_off = 0;
    if (!star) {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(t, tlen, 0, &u) != 0 || (u.field_set & (1 << UF_FRAGMENT)))
            return refuse(ps, 400, "bad_request", "the request target is not a valid path");
        if (u.field_set & (1 << UF_QUERY)) {
            r->query_off = u.field_data[UF_QUERY].off;
            r->path_len = r->query_off - 1;
        }
    }
    size_t n;
    const char *te = parse_header_get(r, "Transfer-Encoding", &n);
    if (te && !value_is(r, "Transfer-Encoding", "chunked"))
        return refuse(ps, 501, "not_implemented", "only Transfer-Encoding: chunked is understood");
    if (te && parse_header_get(r, "Content-Length", &n))
        return refuse(ps, 400, "bad_request",
                      "Content-Length and Transfer-Encoding together are refused");
    const char *expect = parse_header_get(r, "Expect", &n);
    if (expect && !value_is(r, "Expect", "100-continue"))
        return refuse(ps, 417, "expectation_failed", "only Expect: 100-continue is understood");
    r->expect_continue = expect != NULL && r->http_minor == 1;
    if ((ps->parser.flags & F_CONTENTLENGTH) && ps->parser.content_length > ps->limits.max_body)
        return refuse(ps, 413, "too_large", "the body exceeds %zu bytes", ps->limits.max_body);
    r->keep_alive = http_should_keep_alive(&ps->parser) != 0;
    r->body_expected =
        te != NULL || ((ps->parser.flags & F_CONTENTLENGTH) && ps->parser.content_length > 0);
    return 0;
}

static int on_headers_complete(http_parser *p) {
    struct parse *ps = of(p);
    struct parse_request *r = &ps->req;
    if (head_end(ps) < 0) /* the last value, or the target */
        return -1;
    if (r->nheaders > 0 && !ps->last_was_value) /* a name without a value: "" */
        r->headers[r->nheaders - 1].value_off = r->head_len - 1;
    ps->in_head = false;
    http_parser_pause(p, 1); /* parse_feed scans the head, then checks it */
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    struct parse *ps = of(p);
    struct parse_request *r = &ps->req;
    if (r->body_len + len > ps->limits.max_body)
        return refuse(ps, 413, "too_large", "the body exceeds %zu bytes", ps->limits.max_body);
    return append(ps, (void **)&r->body, &r->body_len, &r->body_cap, 4096, ps->limits.max_body, at,
                  len);
}

static int on_message_complete(http_parser *p) {
    struct parse *ps = of(p);
    ps->complete = true;
    http_parser_pause(p, 1); /* the next request waits for parse_next */
    return 0;
}

void parse_init(struct parse *ps, const struct parse_limits *limits) {
    memset(ps, 0, sizeof(*ps));
    ps->limits = *limits;
    http_parser_settings_init(&ps->settings);
    ps->settings.on_url = on_url;
    ps->settings.on_header_field = on_header_field;
    ps->settings.on_header_value = on_header_value;
    ps->settings.on_headers_complete = on_headers_complete;
    ps->settings.on_body = on_body;
    ps->settings.on_message_complete = on_message_complete;
    parse_next(ps);
}

void parse_next(struct parse *ps) {
    http_parser_init(&ps->parser, HTTP_REQUEST);
    ps->parser.data = ps;
    struct parse_request *r = &ps->req;
    r->head_len = r->target_len = r->body_len = r->path_len = r->query_off = 0;
    r->nheaders = 0;
    r->keep_alive = r->expect_continue = r->body_expected = false;
    ps->failed = ps->complete = ps->head_reported = ps->last_was_value = false;
    ps->scan_tail = false;
    ps->head_bytes = 0;
    ps->in_head = true;
    ps->prev = '\0';
    ps->line_start = false;
    ps->lines = 0;
}

void parse_trim(struct parse *ps, size_t keep) {
    struct parse_request *r = &ps->req;
    if (r->body_cap > keep) {
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
    if (r->head_cap > keep) {
        free(r->head);
        r->head = NULL;
        r->head_cap = 0;
    }
}

void parse_free(struct parse *ps) {
    free(ps->req.head);
    free(ps->req.body);
    memset(&ps->req, 0, sizeof(ps->req));
}

/* The head's bytes: a line ending in LF without CR (where the library is
 * lenient) and a header line starting with a space or tab (obs-fold) are
 * refused: both let a front end and this server see different requests. */
static int scan_head(struct parse *ps, const char *data, size_t len) {
    ps->head_bytes += len;
    if (ps->head_bytes > ps->limits.max_header)
        return refuse(ps, 400, "bad_request", "the request line and headers exceed %zu bytes",
                      ps->limits.max_header);
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (ch == '\n' && ps->prev != '\r')
            return refuse(ps, 400, "bad_request", "a line of the head ends in LF without CR");
        if (ps->line_start && ps->lines >= 1 && (ch == ' ' || ch == '\t'))
            return refuse(ps, 400, "bad_request", "a header folded over lines (obs-fold)");
        ps->line_start = ch == '\n';
        if (ch == '\n')
            ps->lines++;
        ps->prev = ch;
    }
    return 0;
}

static enum parse_status library_error(struct parse *ps) {
    enum http_errno e = HTTP_PARSER_ERRNO(&ps->parser);
    if (e == HPE_HEADER_OVERFLOW)
        refuse(ps, 400, "bad_request", "the request line and headers are too long");
    else if (e == HPE_UNEXPECTED_CONTENT_LENGTH)
        refuse(ps, 400, "bad_request",
               "Content-Length given twice, or with Transfer-Encoding: refused");
    else if (e == HPE_INVALID_METHOD)
        refuse(ps, 501, "not_implemented", "this method is not understood");
    else
        refuse(ps, 400, "bad_request", "malformed request: %s", http_errno_description(e));
    return PARSE_ERROR;
}

enum parse_status parse_feed(struct parse *ps, const char *data, size_t len, size_t *used) {
    *used = 0;
    if (ps->failed)
        return PARSE_ERROR;
    if (ps->complete)
        return PARSE_COMPLETE;
    if (len == 0)
        return PARSE_MORE;
    size_t off = 0;
    while (off < len) {
        bool head = ps->in_head, tail = ps->scan_tail;
        size_t n = http_parser_execute(&ps->parser, &ps->settings, data + off, len - off);
        if ((head && scan_head(ps, data + off, n) < 0) ||
            (tail && n > 0 && scan_head(ps, data + off, 1) < 0))
            return PARSE_ERROR;
        if (n > 0)
            ps->scan_tail = false;
        off += n;
        *used = off;
        if (ps->failed)
            return PARSE_ERROR;
        enum http_errno e = HTTP_PARSER_ERRNO(&ps->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&ps->parser, 0);
            if (ps->complete)
                return PARSE_COMPLETE;
            if (!ps->head_reported) {
                ps->head_reported = true;
                /* The head's last LF, left unconsumed by the pause: scanned
                 * now when it is here, else with the next call. */
                if (off < len) {
                    if (scan_head(ps, data + off, 1) < 0)
                        return PARSE_ERROR;
                } else {
                    ps->scan_tail = true;
                }
                if (check_head(ps) < 0)
                    return PARSE_ERROR;
                return PARSE_HEADERS;
            }
            continue;
        }
        if (e != HPE_OK)
            return library_error(ps);
        if (n == 0)
            break;
    }
    return PARSE_MORE;
}

const char *parse_target(const struct parse_request *r, size_t *len) {
    *len = r->target_len;
    return r->head;
}

const char *parse_header_get(const struct parse_request *r, const char *name, size_t *len) {
    size_t want = strlen(name);
    for (int i = 0; i < r->nheaders; i++) {
        const struct parse_header *h = &r->headers[i];
        if (h->name_len == want && strncasecmp(r->head + h->name_off, name, want) == 0) {
            *len = h->value_len;
            return r->head + h->value_off;
        }
    }
    return NULL;
}
