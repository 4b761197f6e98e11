/* admin_doc.c — the admin API's parameters, cursor, page items and
 * percentiles (pure). */
#include "admin_doc.h"
#include "job.h"

#include <stdlib.h>
#include <string.h>

static const char *const states[][2] = {
    {"queued", "ready"},         {"processing", "nodes"}, {"done", "recent:done"},
    {"failed", "recent:failed"}, {"dead", "dead"},
};

const char *admin_state_index(const char *state) {
    for (size_t i = 0; state && i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(state, states[i][0]) == 0)
            return states[i][1];
    return NULL;
}

bool admin_state_is_valid(const char *state) {
    return admin_state_index(state) != NULL;
}

/* Digits [s, s + len) as a whole number up to max, without a leading zero
 * (but "0"). Returns 0 or -1. */
static int whole(const char *s, size_t len, long long max, long long *out) {
    if (len == 0 || len > 16 || (len > 1 && s[0] == '0'))
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int admin_limit_parse(const char *s, int *limit) {
    long long v;
    if (whole(s, strlen(s), ADMIN_LIMIT_MAX, &v) < 0 || v < 1)
        return -1;
    *limit = (int)v;
    return 0;
}

int admin_cursor_parse(const char *s, long long *a, long long *b) {
    const char *colon = strchr(s, ':');
    if (colon == NULL)
        return -1;
    long long x, y;
    if (whole(s, (size_t)(colon - s), 1LL << 53, &x) < 0 ||
        whole(colon + 1, strlen(colon + 1), 1000000000, &y) < 0)
        return -1;
    *a = x;
    *b = y;
    return 0;
}

double admin_quantile(const long long counts[JOBSTATS_NBOUNDS + 1], double q) {
    static const int bounds[JOBSTATS_NBOUNDS] = JOBSTATS_BOUNDS_MS;
    long long total = 0;
    for (int i = 0; i <= JOBSTATS_NBOUNDS; i++)
        total += counts[i] > 0 ? counts[i] : 0;
    if (total == 0)
        return -1;
    double rank = q * (double)total, below = 0;
    for (int i = 0; i <= JOBSTATS_NBOUNDS; i++) {
        double n = counts[i] > 0 ? (double)counts[i] : 0;
        if (n > 0 && below + n >= rank) {
            double lower = i == 0 ? 0 : bounds[i - 1];
            if (i == JOBSTATS_NBOUNDS)
                return lower;
            return lower + (bounds[i] - lower) * (rank - below) / n;
        }
        below += n;
    }
    return bounds[JOBSTATS_NBOUNDS - 1];
}

/* Element i of item as a string, or NULL (nil: the field is not set). */
static const char *str_at(const redisReply *item, size_t i) {
    const redisReply *e = i < item->elements ? item->element[i] : NULL;
    return e && e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

/* Sets name to the time of milliseconds text ms, when there is one. */
static void set_time(json_t *o, const char *name, const char *ms) {
    char buf[48];
    if (ms == NULL || *ms == '\0')
        return;
    job_format_time(strtoll(ms, NULL, 10), buf);
    json_object_set_new(o, name, json_string(buf));
}

enum { I_ID, I_STATE, I_CREATED, I_STARTED, I_FINISHED, I_ATTEMPTS, I_SRC, I_URL, I_CODE, I_MSG };

json_t *admin_list_item(const redisReply *item) {
    if (item == NULL || item->type != REDIS_REPLY_ARRAY || item->elements <= I_MSG ||
        str_at(item, I_ID) == NULL || str_at(item, I_STATE) == NULL)
        return NULL;
    json_t *o = json_pack("{s:s, s:s}", "id", str_at(item, I_ID), "status", str_at(item, I_STATE));
    if (o == NULL)
        return NULL;
    set_time(o, "created_at", str_at(item, I_CREATED));
    set_time(o, "started_at", str_at(item, I_STARTED));
    set_time(o, "finished_at", str_at(item, I_FINISHED));
    const char *attempts = str_at(item, I_ATTEMPTS);
    json_object_set_new(o, "attempts", json_integer(attempts ? strtoll(attempts, NULL, 10) : 0));
    const char *src = str_at(item, I_SRC), *url = str_at(item, I_URL);
    if (src && strcmp(src, "upload") == 0)
        json_object_set_new(o, "source", json_pack("{s:b}", "upload", 1));
    else if (url)
        json_object_set_new(o, "source", json_pack("{s:s}", "url", url));
    const char *code = str_at(item, I_CODE), *msg = str_at(item, I_MSG);
    if (code)
        json_object_set_new(o, "error",
                            json_pack("{s:s, s:s}", "code", code, "message", msg ? msg : ""));
    return o;
}

/* o[name] as an array: an empty object (cjson's empty table) becomes []. */
static json_t *list_of(json_t *o, const char *name) {
    json_t *v = json_object_get(o, name);
    if (json_is_object(v) && json_object_size(v) == 0) {
        v = json_array();
        json_object_set_new(o, name, v);
    }
    return json_is_array(v) ? v : NULL;
}

/* series.p50_ms and p95_ms from series.buckets, which goes. */
static int percentiles(json_t *series) {
    json_t *buckets = list_of(series, "buckets");
    json_t *p50 = json_array(), *p95 = json_array();
    if (buckets == NULL || p50 == NULL || p95 == NULL) {
        json_decref(p50);
        json_decref(p95);
        return -1;
    }
    size_t i;
    json_t *minute;
    json_array_foreach(buckets, i, minute) {
        long long counts[JOBSTATS_NBOUNDS + 1] = {0};
        for (size_t b = 0; b <= JOBSTATS_NBOUNDS; b++)
            counts[b] = (long long)json_number_value(json_array_get(minute, b));
        double v50 = admin_quantile(counts, 0.5), v95 = admin_quantile(counts, 0.95);
        json_array_append_new(p50, v50 < 0 ? json_null() : json_real(v50));
        json_array_append_new(p95, v95 < 0 ? json_null() : json_real(v95));
    }
    json_object_set_new(series, "p50_ms", p50);
    json_object_set_new(series, "p95_ms", p95);
    json_object_del(series, "buckets");
    return 0;
}

int admin_overview_finish(json_t *doc) {
    json_t *series = json_object_get(doc, "series");
    json_t *nodes = list_of(doc, "nodes");
    if (!json_is_object(series) || nodes == NULL)
        return -1;
    static const char *const lists[] = {"minute_ms", "done", "failed", "retried", "bytes_fetched"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        if (list_of(series, lists[i]) == NULL)
            return -1;
    size_t i;
    json_t *node;
    json_array_foreach(nodes, i, node) {
        list_of(node, "workers");
        list_of(node, "http");
        list_of(node, "delivery");
    }
    return percentiles(series);
}
