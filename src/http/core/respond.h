/* respond.h — how every response is written: the one table from error code to
 * HTTP status, the JSON error document, JSON bodies. */
#ifndef TH_HTTP_RESPOND_H
#define TH_HTTP_RESPOND_H

#include "exchange.h"
#include "rconn.h"

#include <event2/buffer.h>
#include <jansson.h>

/* The HTTP status for an error code of docs/API.md ("invalid_param" -> 400, ...);
 * 500 for a code not in the table. */
int respond_status_of(const char *code);

/* Appends {"error": {"code", "message", "field"?}} to out (field NULL or ""
 * for none). Returns 0 or -1. */
int respond_error_body(struct evbuffer *out, const char *code, const char *message,
                       const char *field);

/* Appends doc as compact JSON to out. Returns 0 or -1. */
int respond_json_body(struct evbuffer *out, const json_t *doc);

/* Sends doc (a borrowed reference) as the JSON body with status. */
void respond_json(struct exchange *h, int status, const json_t *doc);

/* Sends the error document of code with the status from the table. With
 * retry_after > 0 adds Retry-After (seconds). */
void respond_error(struct exchange *h, const char *code, const char *field, int retry_after,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Seconds a client is asked to wait (Retry-After) when the job store cannot
 * be reached or refuses for a moment, and when it is full (the queue, its
 * memory or its disk: that takes longer to change). */
#define RESPOND_RETRY_AFTER_UNAVAILABLE 1
#define RESPOND_RETRY_AFTER_FULL        5

/* 503 unavailable with Retry-After RESPOND_RETRY_AFTER_UNAVAILABLE: the job
 * store (Redis) cannot be reached or refuses for now. */
void respond_unavailable(struct exchange *h);

/* 503 for a refusal of Redis, with a code that says why: store_full (out of
 * memory, or its disk), store_read_only (a replica, too few replicas), else
 * unavailable; Retry-After either way. */
void respond_refused(struct exchange *h, enum rconn_reason reason);

/* Like respond_error, with "job": job_doc (borrowed) beside "error". */
void respond_error_with_job(struct exchange *h, const char *code, const json_t *job_doc,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
