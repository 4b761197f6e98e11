/* respond.c — the error table, the error document and JSON responses. */
#include "respond.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The one mapping from error code to HTTP status (docs/API.md §10.1). */
static const struct {
    const char *code;
    int status;
} error_table[] = {
    {"invalid_json", 400},       {"invalid_param", 400},    {"bad_request", 400},
    {"unauthorized", 401},       {"forbidden", 403},        {"not_found", 404},
    {"method_not_allowed", 405}, {"not_ready", 409},        {"conflict", 409},
    {"too_large", 413},          {"unsupported_type", 415}, {"unsupported_media_type", 415},
    {"expectation_failed", 417}, {"rate_limited", 429},     {"too_many_queued", 429},
    {"internal", 500},           {"not_implemented", 501},  {"queue_full", 503},
    {"store_full", 503},         {"store_read_only", 503},  {"unavailable", 503},
};

int respond_status_of(const char *code) {
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (strcmp(error_table[i].code, code) == 0)
            return error_table[i].status;
    return 500;
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data) {
    return evbuffer_add(data, buf, size);
}

int respond_json_body(struct evbuffer *out, const json_t *doc) {
    if (json_dump_callback(doc, dump_to_evbuffer, out, JSON_COMPACT) < 0)
        return -1;
    return evbuffer_add(out, "\n", 1);
}

static json_t *error_doc(const char *code, const char *message, const char *field) {
    json_t *err = json_object();
    json_t *root = json_object();
    if (err == NULL || root == NULL) {
        json_decref(err);
        json_decref(root);
        return NULL;
    }
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "message", json_string(message));
    if (field && *field)
        json_object_set_new(err, "field", json_string(field));
    json_object_set_new(root, "error", err);
    return root;
}

int respond_error_body(struct evbuffer *out, const char *code, const char *message,
                       const char *field) {
    json_t *doc = error_doc(code, message, field);
    if (doc == NULL)
        return -1;
    int rc = respond_json_body(out, doc);
    json_decref(doc);
    return rc;
}

static void send_doc(struct exchange *h, int status, const json_t *doc) {
    if (h->conn == NULL)
        return;
    struct evbuffer *body = exchange_body_out(h);
    if (doc == NULL || respond_json_body(body, doc) < 0) {
        evbuffer_drain(body, evbuffer_get_length(body));
        status = 500;
        evbuffer_add_printf(body, "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
                                  "memory\"}}\n");
    }
    exchange_set_header(h, "Content-Type", "application/json");
    exchange_send(h, status);
}

void respond_json(struct exchange *h, int status, const json_t *doc) {
    send_doc(h, status, doc);
}

static void add_retry_after(struct exchange *h, int seconds) {
    if (seconds > 0 && h->conn) {
        char num[16];
        snprintf(num, sizeof(num), "%d", seconds);
        exchange_set_header(h, "Retry-After", num);
    }
}

void respond_error(struct exchange *h, const char *code, const char *field, int retry_after,
                   const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_t *doc = error_doc(code, message, field);
    add_retry_after(h, retry_after);
    send_doc(h, respond_status_of(code), doc);
    json_decref(doc);
}

void respond_unavailable(struct exchange *h) {
    respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                  "the job store is unavailable; try again shortly");
}

void respond_refused(struct exchange *h, enum rconn_reason reason) {
    switch (reason) {
    case RCONN_REASON_OOM:
        respond_error(h, "store_full", NULL, RESPOND_RETRY_AFTER_FULL,
                      "the job store is full (Redis reached its maxmemory); try again later");
        return;
    case RCONN_REASON_MISCONF:
        respond_error(h, "store_full", NULL, RESPOND_RETRY_AFTER_FULL,
                      "the job store cannot write to its disk (full or failing); try again later");
        return;
    case RCONN_REASON_READONLY:
        respond_error(h, "store_read_only", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                      "the job store is read-only (a replica, or a failover under way); try "
                      "again shortly");
        return;
    case RCONN_REASON_NOREPLICAS:
        respond_error(h, "store_read_only", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                      "the job store has too few replicas to accept writes; try again shortly");
        return;
    case RCONN_REASON_LOADING:
        respond_error(h, "unavailable", NULL, RESPOND_RETRY_AFTER_UNAVAILABLE,
                      "the job store is loading its data; try again shortly");
        return;
    default:
        respond_unavailable(h);
        return;
    }
}

void respond_error_with_job(struct exchange *h, const char *code, const json_t *job_doc,
                            const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_t *doc = error_doc(code, message, NULL);
    if (doc && job_doc)
        json_object_set(doc, "job", (json_t *)job_doc);
    send_doc(h, respond_status_of(code), doc);
    json_decref(doc);
}
