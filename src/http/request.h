/* request.h — the pure parts of reading a request: body kind from Content-Type,
 * job parameters from a query string, If-None-Match against an ETag. No I/O. */
#ifndef TH_HTTP_REQUEST_H
#define TH_HTTP_REQUEST_H

#include "cidr.h"
#include "job.h"

#include <stdbool.h>
#include <stddef.h>

#include "parse.h"

enum request_body_kind {
    REQUEST_BODY_JSON,   /* application/json, or no Content-Type at all */
    REQUEST_BODY_UPLOAD, /* image/<anything> or application/octet-stream: the image itself */
    REQUEST_BODY_OTHER,  /* anything else: 415 unsupported_media_type */
};

/* Classifies a Content-Type header value (NULL when absent). Parameters such
 * as "; charset=utf-8" are ignored; type names compare case-insensitively. */
enum request_body_kind request_body_kind(const char *content_type);

/* Sets job parameters from an upload's query string (NULL or "" for none):
 * every key=value is percent-decoded ('+' as a space) with its length and goes
 * through job_params_set_text, so every field and range is checked there as
 * its JSON twin would be, a %00 included. Names are taken as written. A
 * malformed string (a pair without '=' or with an empty name) or a name given
 * twice is refused. Does not call job_params_finish. Returns 0, or -1 with err
 * filled. */
int request_params_from_query(struct job_params *p, const char *query,
                              const struct job_param_limits *lim, struct job_param_error *err);

/* Reads the wait parameter of a query string (NULL or "" for none) into
 * *seconds: 0 when absent, else a whole number 0..max (digits only). Returns
 * 0, or -1 when the value is not one, or wait is given twice. Other
 * parameters are ignored. */
int request_wait_seconds(const char *query, int max, int *seconds);

/* Reads parameter name of a query string (NULL or "" for none) into out (n
 * bytes), percent-decoded ('+' as a space). Returns 1 when found, 0 when
 * absent, -1 when it is given twice, decodes to a NUL byte, or does not fit
 * in n - 1 bytes. Other parameters are ignored. */
int request_query_value(const char *query, const char *name, char *out, size_t n);

/* Whether an If-None-Match header value (a list of entity tags, or "*")
 * matches the strong entity tag etag, given without its quotes. Weak tags
 * (W/"x") match by the weak comparison RFC 9110 prescribes for this header. */
bool request_etag_matches(const char *if_none_match, const char *etag);

/* Every X-Forwarded-For header of the request r (its head complete), in the
 * order they came, joined with ", " into one malloc'd string (free it). NULL
 * when there is none (or out of memory). */
char *request_forwarded_for(const struct parse_request *r);

/* The client of a request into addr (16 bytes, IPv4 as IPv4-mapped IPv6, as
 * cidr.h holds them; cidr_addr_text writes it canonically). peer is the
 * connection's address as text (a zone after % is ignored); xff
 * the joined X-Forwarded-For (NULL for none).
 *   - a peer that is not in trusted is the client, whatever xff says;
 *   - from a trusted peer, xff's addresses are read from the right: the first
 *     that is not in trusted is the client; when all are, the leftmost;
 *   - an entry that is not a bare address (empty, "unknown", a name, a port,
 *     brackets) ends the walk: the client is the last address read, a trusted
 *     one (the peer when it is the rightmost entry). So what a client writes
 *     left of its own address is never believed.
 * Returns 0, or -1 when peer is not an IP address (NULL, a unix socket): no
 * client address then, and xff is not looked at. */
int request_client_address(const char *peer, const char *xff, const struct cidr_list *trusted,
                           unsigned char addr[16]);

/* Whether an Idempotency-Key header value is usable: 1 to 255 printable ASCII
 * characters. */
bool request_idempotency_key_ok(const char *key);

#endif
