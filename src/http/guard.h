/* guard.h — who may use the API: API keys from http.api_keys_file
 * (Authorization: Bearer) and the token-bucket rate limit of http.rate_limit,
 * per key, or per client address without keys. */
#ifndef TH_HTTP_GUARD_H
#define TH_HTTP_GUARD_H

#include "exchange.h"

#include <stdbool.h>

/* Reads http.api_keys_file (one key per line; blank lines and lines starting
 * with # are skipped) into c, replacing the keys it had. With no file set,
 * authentication is off. Returns 0, or -1 when the file cannot be read or
 * holds no key (logged; c keeps its previous keys). */
int guard_load_keys(struct http_child *c);

/* Frees the keys. */
void guard_free(struct http_child *c);

/* Checks a request to an API route: answers 401 (no key), 403 (unknown key)
 * or 429 (over the rate limit, with Retry-After) and returns false; returns
 * true when the request may go on. */
bool guard_check(struct exchange *h);

#endif
