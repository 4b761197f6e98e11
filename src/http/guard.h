/* guard.h — who may use the API: the client's address (the peer, or behind
 * http.trusted_proxies what X-Forwarded-For says), API keys from
 * http.api_keys_file (Authorization: Bearer), the token-bucket rate limit of
 * http.rate_limit, per key, or per client address without keys, and who may
 * read /metrics (http.metrics_allow). */
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
/* (It reads http.admin_keys_file the same way, into the admin keys; either
 * file failing keeps both sets as they were.) */

/* Checks a request to the admin API (page false) or the dashboard's page and
 * files (page true). Without http.admin_keys_file only a loopback client (its
 * address as guard_identify found it) may; others get 403 forbidden. With
 * admin keys the page is anyone's (it holds no data) and the API needs one
 * (401 / 403). Returns false after answering. */
bool guard_admin(struct exchange *h, bool page);

/* Parses http.trusted_proxies and http.metrics_allow into c (once, at start).
 * Returns 0, or -1 (logged) when one does not parse, which config_load would
 * have refused already. */
int guard_load_lists(struct http_child *c);

/* Frees the keys and the lists. */
void guard_free(struct http_child *c);

/* Sets h->client, h->client_addr and h->client_is_ip from the connection's
 * peer and, when the peer is a trusted proxy, its X-Forwarded-For headers
 * (request_client_address). Call before anything that names or counts the
 * client. */
void guard_identify(struct exchange *h);

/* Checks a /metrics request against http.metrics_allow (empty: anyone):
 * answers 403 forbidden and returns false for a client not in it (also a
 * unix-socket client, which has no address); else returns true. */
bool guard_metrics(struct exchange *h);

/* Checks a request to an API route: answers 401 (no key), 403 (unknown key)
 * or 429 (over the rate limit, with Retry-After) and returns false; returns
 * true when the request may go on, with h->owner and h->client set. */
bool guard_check(struct exchange *h);

/* What is counted per API key (shown by /metrics under the key's name). */
enum guard_event { GUARD_SUBMIT, GUARD_RATE_LIMITED, GUARD_TOO_MANY_QUEUED };

/* Counts what for h's API key; nothing without API keys. */
void guard_count(const struct exchange *h, enum guard_event what);

/* Whether h may see the job of reply (its HGETALL): without API keys always;
 * with them when the job is h's own (or was stored before jobs had owners).
 * Another key's job is answered as if it did not exist. */
bool guard_allows_reply(const struct exchange *h, const redisReply *reply);

#endif
