/* guard.h — who may use the API: API keys from http.api_keys_file
 * (Authorization: Bearer) and the token-bucket rate limit of http.rate_limit,
 * per key, or per client address without keys. */
#ifndef TH_HTTP_GUARD_H
#define TH_HTTP_GUARD_H

#include "exchange.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>

/* Reads http.api_keys_file (one key per line, "key" or "name key"; blank
 * lines and lines starting with # are skipped) into c, replacing the keys it
 * had. A key's name (else "key-" and 8 hex digits of its hash) is what logs
 * show; its owner (hex of 128 bits of its SHA-256) is what its jobs are
 * stored under. With no file set,
 * authentication is off. Returns 0, or -1 when the file cannot be read or
 * holds no key (logged; c keeps its previous keys). */
int guard_load_keys(struct http_child *c);

/* Frees the keys. */
void guard_free(struct http_child *c);

/* Checks a request to an API route: answers 401 (no key), 403 (unknown key)
 * or 429 (over the rate limit, with Retry-After) and returns false; returns
 * true when the request may go on, with h->owner and h->client set. */
bool guard_check(struct exchange *h);

/* Whether h may see the job of rec (its fields) / of reply (an HGETALL
 * reply): without API keys always; with them when the job is h's own (or was
 * stored before jobs had owners). Another key's job is answered as if it did
 * not exist. */
bool guard_allows(const struct exchange *h, const struct job_record *rec);
bool guard_allows_reply(const struct exchange *h, const redisReply *reply);

#endif
