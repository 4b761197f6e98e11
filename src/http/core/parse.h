/* parse.h — HTTP/1.1 requests out of a connection's bytes, one at a time, by
 * Debian's libhttp-parser: the request line, headers, a Content-Length or
 * chunked body, pipelining, keep-alive and Expect, with what request smuggling
 * needs refused. conn.c runs one per connection. */
#ifndef TH_HTTP_PARSE_H
#define TH_HTTP_PARSE_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#define PARSE_HEADERS_MAX 64

/* One header, as offsets into the request's head storage. */
struct parse_header {
    size_t name_off, name_len;
    size_t value_off, value_len;
};

/* The request being read, then read. Once the head is complete, the target
 * and each header's name and value are NUL-terminated in head; use
 * parse_target and parse_header_get. */
struct parse_request {
    enum http_method method;
    unsigned short http_major, http_minor;
    char *head; /* the target, then each header's name and value */
    size_t head_len, head_cap;
    size_t target_len; /* the target is head[0, target_len) */
    size_t path_len;   /* its path is head[0, path_len) */
    size_t query_off;  /* its query is head + query_off to the NUL; 0: none */
    struct parse_header headers[PARSE_HEADERS_MAX];
    int nheaders;
    unsigned char *body;
    size_t body_len, body_cap;
    bool keep_alive;      /* the connection may carry another request after this one */
    bool expect_continue; /* Expect: 100-continue (answer 100 before reading the body) */
    bool body_expected;   /* a body follows the head (Content-Length > 0, or chunked) */
};

/* Why a request is refused: the connection is closed after the answer. */
struct parse_error {
    int status;       /* 400, 413, 417, 501, 505 (a head over the limit: 400, as docs/API.md) */
    const char *code; /* the error code of docs/API.md §10.1 */
    char message[160];
};

struct parse_limits {
    size_t max_header; /* the request line and headers, bytes */
    size_t max_body;   /* bytes of body, after dechunking */
};

enum parse_status {
    PARSE_MORE,     /* every byte was taken; the request is not complete */
    PARSE_HEADERS,  /* the head is complete (req has it, no body yet): decide on Expect */
    PARSE_COMPLETE, /* a whole request is in req; bytes after it are the next one's */
    PARSE_ERROR,    /* refused: err says how to answer; then close */
};

/* One connection's parser. */
struct parse {
    http_parser parser;
    http_parser_settings settings;
    struct parse_limits limits;
    struct parse_request req;
    struct parse_error err;
    bool failed;
    bool in_head;       /* the head is being read */
    bool head_reported; /* PARSE_HEADERS was returned for this request */
    bool complete;
    bool last_was_value; /* header callbacks: a value ended the previous piece */
    /* the scan of the head's bytes for bare LF and obs-fold */
    char prev;
    bool line_start;
    int lines;
    bool scan_tail;    /* the head's last LF comes with the next call */
    size_t head_bytes; /* of the head so far, as sent */
};

/* Prepares ps for a connection with limits. */
void parse_init(struct parse *ps, const struct parse_limits *limits);

/* Frees the head and body buffers of a request just forgotten (parse_next)
 * when they grew larger than keep bytes: a big upload's memory is not kept
 * for the connection's next requests. */
void parse_trim(struct parse *ps, size_t keep);

/* Frees what ps holds. */
void parse_free(struct parse *ps);

/* Feeds data[0, len); *used is how many bytes were taken. Returns PARSE_MORE
 * (all taken), PARSE_HEADERS (once per request, when its head is complete;
 * feed the rest after deciding), PARSE_COMPLETE (bytes from *used on belong to
 * the next request: call parse_next, then feed them) or PARSE_ERROR. */
enum parse_status parse_feed(struct parse *ps, const char *data, size_t len, size_t *used);

/* Forgets the request just completed, ready for the next on the connection. */
void parse_next(struct parse *ps);

/* The request target (origin-form, or "*" for OPTIONS) into *len;
 * NUL-terminated once the head is complete. */
const char *parse_target(const struct parse_request *r, size_t *len);

/* The value of the first header called name (case-insensitive) into *len,
 * or NULL; NUL-terminated once the head is complete. */
const char *parse_header_get(const struct parse_request *r, const char *name, size_t *len);

#endif
