/* admin_doc.h — the pure parts of the admin API (docs/API.md §13): its query
 * parameters, the listing's cursor, the items of a page, and the overview's
 * percentiles from duration buckets. No I/O. */
#ifndef TH_HTTP_ADMIN_DOC_H
#define TH_HTTP_ADMIN_DOC_H

#include "jobstats.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The page size of GET /v1/admin/jobs: default and bound. */
#define ADMIN_LIMIT_DEFAULT 50
#define ADMIN_LIMIT_MAX     200

/* The minutes of the overview's series. */
#define ADMIN_SERIES_MINUTES 60

/* Whether state is one GET /v1/admin/jobs lists: queued, processing, done,
 * failed, dead. */
bool admin_state_is_valid(const char *state);

/* The kind of the key ("ready", "nodes", "recent:done", "recent:failed",
 * "dead") that holds the jobs of a valid state. */
const char *admin_state_index(const char *state);

/* A limit: digits only, 1..ADMIN_LIMIT_MAX, into *limit. Returns 0 or -1. */
int admin_limit_parse(const char *s, int *limit);

/* A cursor as admin_list.lua writes it, "<a>:<b>" with a and b whole numbers
 * (a at most 2^53, b at most 10^9, no sign, no leading zero but "0"), into *a
 * and *b. Returns 0, or -1 when s is not one. */
int admin_cursor_parse(const char *s, long long *a, long long *b);

/* The q-quantile (0 < q < 1) of the run times counted in counts (bucket i
 * has the attempts of at most JOBSTATS_BOUNDS_MS[i] ms and more than the one
 * before; the last is +Inf): linear interpolation inside the bucket where
 * the cumulative count reaches q of the total, the +Inf bucket answering its
 * lower bound. Returns -1 when counts are all 0. */
double admin_quantile(const long long counts[JOBSTATS_NBOUNDS + 1], double q);

/* One job of a page as admin_list.lua gives it ({id, state, created,
 * started, finished, attempts, src, url, err_code, err_msg}) as the item of
 * the answer. Returns a new reference, or NULL when item is not such an
 * array (or out of memory). */
json_t *admin_list_item(const redisReply *item);

/* Completes the document admin_overview.lua made (a borrowed reference,
 * changed in place): what cjson wrote {} for where a list belongs becomes [],
 * and series.buckets is replaced by series.p50_ms and series.p95_ms (a
 * number, or null for a minute without attempts). Returns 0, or -1 when doc
 * is not shaped so. */
int admin_overview_finish(json_t *doc);

#endif
