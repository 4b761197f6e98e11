/* fetch.h — downloads a source image over http(s) with libcurl: size and time
 * limits, redirects followed hop by hop, host allow/deny lists, and the SSRF
 * guard on every address connected to. */
#ifndef TH_FETCH_H
#define TH_FETCH_H

#include "config.h"
#include "failure.h"
#include "hostlist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The host lists are hostlist.h's (fetch.allow_hosts, fetch.deny_hosts). */
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

#endif
