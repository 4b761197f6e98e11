/* openapi.c — GET /openapi.json (docs/openapi.json) and GET /docs, Swagger UI
 * on it: our page and init.js (src/http/docs/) and swagger-ui-dist's files,
 * all compiled in (embed_files.cmake). */
#include "handlers.h"
#include "respond.h"
#include "static_files.h"

extern const struct embedded_file openapi_files[];
extern const struct embedded_file docs_files[];
extern const struct embedded_file swagger_ui[];

/* Nothing from anywhere but this server, no inline script or style.
 * Swagger UI sets styles on its elements, but through the DOM's style
 * property (React's style props), which CSP does not govern, not through
 * style attributes in markup: style-src needs no 'unsafe-inline' (checked in
 * Chromium, tests/integration/test_docs.py, with every operation
 * opened). Its icons are data: URLs. */
#define DOCS_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; "                                    \
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; "                 \
    "form-action 'none'; frame-ancestors 'none'"

/* The document is data, not a page: it may load nothing. */
#define OPENAPI_CSP "default-src 'none'; frame-ancestors 'none'"

void openapi_handle(struct exchange *h) {
    if (h->match.route == ROUTE_OPENAPI) {
        static_files_send(h, static_files_find(openapi_files, "openapi.json"), OPENAPI_CSP);
        return;
    }
    const char *name = h->match.route == ROUTE_DOCS ? "index.html" : h->match.id;
    const struct embedded_file *f = static_files_find(docs_files, name);
    if (f == NULL)
        f = static_files_find(swagger_ui, name);
    if (f == NULL) {
        respond_error(h, "not_found", NULL, 0, "the documentation has no file %s", name);
        exchange_settle(h);
        return;
    }
    static_files_send(h, f, DOCS_CSP);
}
