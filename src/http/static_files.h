/* static_files.h — answers a request with a file compiled into the binary
 * (embedded.h): its Content-Type from its name, a strong ETag (304 to a
 * matching If-None-Match), and the caller's Content-Security-Policy. */
#ifndef TH_HTTP_STATIC_FILES_H
#define TH_HTTP_STATIC_FILES_H

#include "embedded.h"
#include "exchange.h"

/* The file called name in table, or NULL. */
const struct embedded_file *static_files_find(const struct embedded_file *table, const char *name);

/* Answers h (GET or HEAD) with f: 200 with its bytes (referenced, not
 * copied), or 304 when If-None-Match names its ETag. csp is the
 * Content-Security-Policy to send, or NULL for none; every answer also says
 * X-Content-Type-Options: nosniff and Cache-Control: no-cache (revalidate:
 * a new build serves new bytes at once). Settles h. */
void static_files_send(struct exchange *h, const struct embedded_file *f, const char *csp);

/* The MIME type that name's extension stands for (application/octet-stream
 * when unknown). */
const char *static_files_type(const char *name);

#endif
