/* fetch.h — downloads a source image over http(s) with libcurl: size and time
 * limits, redirects followed hop by hop, host allow/deny lists, and the SSRF
 * guard on every address connected to. */
#ifndef TH_FETCH_H
#define TH_FETCH_H

#include "config.h"
#include "failure.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Host lists (fetch.allow_hosts, fetch.deny_hosts) are entries separated by
 * spaces (tabs and commas also work). An entry is a host name or an IP literal:
 *   - a name matches that host and every subdomain of it: "example.com" matches
 *     example.com and img.example.com, not badexample.com. Case and a trailing
 *     dot are ignored, as is a leading "." or "*." on the entry. Names are
 *     compared in ASCII (punycode) form: write internationalised names as
 *     xn--... . The port is not part of the match.
 *   - an IP literal (192.0.2.7, 2001:db8::1 or [2001:db8::1]) matches a URL
 *     whose host is that address however the URL writes it (127.1, 0x7f000001
 *     and [::ffff:127.0.0.1] are all 127.0.0.1). It does not match a name that
 *     resolves to the address, and there is no subnet syntax: the lists are
 *     about URL hosts; addresses are the guard's business.
 * deny_hosts: a URL whose host matches is not requested: fetch_blocked_host.
 * allow_hosts: a URL whose host matches may connect to any address, private,
 *   loopback, link-local and the rest included, even with allow_private off
 *   (an operator's internal image server). Other hosts keep the guard.
 * A host on both lists is denied. Every redirect hop is checked again, its
 * host against both lists and its connection against the guard with that
 * host's own allowance. */
struct fetch_opts {
    long connect_timeout_ms;
    long timeout_ms;         /* the whole transfer, redirects included */
    int64_t max_bytes;       /* each response body, counted while streaming */
    long max_redirects;      /* 301, 302, 303, 307 and 308 followed at most this often */
    bool allow_private;      /* false: refuse every address netaddr does not call public */
    const char *allow_hosts; /* NULL or "" for none; borrowed for the call */
    const char *deny_hosts;  /* ditto */
};

/* The body of a successful fetch: len bytes at data (malloc'd, free with
 * fetch_body_free). */
struct fetch_body {
    unsigned char *data;
    size_t len;
};

struct fetch; /* one reusable curl handle (keeps connections and DNS cache) */

/* The fetch limits and host lists of cfg (o borrows cfg's strings). */
void fetch_opts_from_config(struct fetch_opts *o, const struct config *cfg);

/* Makes a fetcher (initialising libcurl for this process). Returns NULL when
 * libcurl cannot be initialised. Free with fetch_free. */
struct fetch *fetch_new(void);

void fetch_free(struct fetch *f);

/* GETs url (absolute http or https) into out, following redirects itself so
 * that each hop's host is checked against o's lists and each connection
 * against the guard with that host's allowance. Connections are kept alive and
 * reused while the private-address policy (allow_private, allow_hosts) stays
 * the same, and dropped when it changes. Returns 0, or -1 with err set to one
 * of fetch_timeout (the whole chain took longer than timeout_ms),
 * fetch_too_large, fetch_http_<status> (status >= 400), fetch_blocked_host,
 * fetch_blocked_address, fetch_too_many_redirects, fetch_bad_redirect (a
 * Location that is missing, unparsable or not http/https), fetch_failed,
 * invalid_job (url unusable) or internal_error; the message names the hosts
 * involved, never credentials or paths. On -1 out is empty. */
int fetch_url(struct fetch *f, const struct fetch_opts *o, const char *url, struct fetch_body *out,
              struct failure *err);

void fetch_body_free(struct fetch_body *b);

/* The host of an absolute URL as fetch_host_listed takes it, into buf.
 * Returns 0, or -1 when the URL has no usable host. */
int fetch_url_host(const char *url, char *buf, size_t n);

/* Whether host (as in a URL: a name, an IPv4 literal or a bracketed IPv6 one)
 * matches an entry of list, by the rules above. NULL list or host: false. */
bool fetch_host_listed(const char *list, const char *host);

#endif
