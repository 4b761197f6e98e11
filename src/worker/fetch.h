/* fetch.h — downloads a source image over http(s) with libcurl: size and time
 * limits, bounded redirects, and the SSRF guard on every address connected to. */
#ifndef TH_FETCH_H
#define TH_FETCH_H

#include "config.h"
#include "failure.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fetch_opts {
    long connect_timeout_ms;
    long timeout_ms; /* the whole transfer, redirects included */
    int64_t max_bytes;
    long max_redirects;
    bool allow_private; /* false: refuse every address netaddr does not call public */
};

/* The body of a successful fetch: len bytes at data (malloc'd, free with
 * fetch_body_free). */
struct fetch_body {
    unsigned char *data;
    size_t len;
};

struct fetch; /* one reusable curl handle (keeps connections and DNS cache) */

/* The fetch limits of cfg. */
void fetch_opts_from_config(struct fetch_opts *o, const struct config *cfg);

/* Makes a fetcher (initialising libcurl for this process). Returns NULL when
 * libcurl cannot be initialised. Free with fetch_free. */
struct fetch *fetch_new(void);

void fetch_free(struct fetch *f);

/* GETs url into out. Returns 0, or -1 with err set to one of fetch_timeout,
 * fetch_too_large, fetch_http_<status> (status >= 400), fetch_blocked_address,
 * fetch_too_many_redirects or fetch_failed; the message names the URL's host,
 * never its credentials. On -1 out is empty. */
int fetch_url(struct fetch *f, const struct fetch_opts *o, const char *url, struct fetch_body *out,
              struct failure *err);

void fetch_body_free(struct fetch_body *b);

#endif
