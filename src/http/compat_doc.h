/* compat_doc.h — the documents of the original service's API (docs/API.md §12,
 * "Compatibility"): its request body, its FastAPI-shaped 422 errors, its job
 * statuses and its data-URL images. Pure: no I/O. */
#ifndef TH_HTTP_COMPAT_DOC_H
#define TH_HTTP_COMPAT_DOC_H

#include "job.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* What the original service made: a square of this side, centre-cropped. */
#define COMPAT_THUMB_SIDE 100

/* The original's name for one of our job states: queued -> "queued",
 * processing -> "started", done -> "finished", failed or canceled ->
 * "failed". NULL for anything else. */
const char *compat_doc_status(const char *state);

/* "data:<mime>;base64,<the bytes in base64>" (mime NULL or "" ->
 * application/octet-stream). Returns a malloc'd string (free it), or NULL on
 * allocation failure. */
char *compat_doc_data_url(const char *mime, const void *bytes, size_t len);

/* Reads the body of POST /api/thumb, {"email": str, "image_url": str}, into
 * p (already job_params_init'ed): the URL, a COMPAT_THUMB_SIDE square with
 * fit cover, crop centre, format original; the e-mail address only when
 * with_email (e-mail deliveries are on), else it is accepted and dropped.
 * With e-mail on and recipients neither NULL nor "" (smtp.allow_recipients),
 * an address whose domain is not on it is refused (job_email_domain_listed).
 * Fields other than these two are ignored, as the original did. Returns 0, or
 * -1 with *detail a new reference to the 422 body FastAPI would have sent,
 * {"detail": [{"loc": ["body", <field>], "msg": ..., "type": "value_error"}, ...]}
 * (NULL when out of memory). */
int compat_doc_params(struct job_params *p, const char *body, size_t len, bool with_email,
                      const char *recipients, json_t **detail);

/* The answer of GET /api/thumb/<id>: {"status": status, "image_base64":
 * data_url or null}. Returns a new reference, or NULL on allocation failure. */
json_t *compat_doc_thumb(const char *status, const char *data_url);

#endif
