/* dashboard.c — GET /dashboard and its files, compiled in from
 * src/http/dashboard/ (embed_files.cmake). */
#include "handlers.h"
#include "respond.h"
#include "static_files.h"

extern const struct embedded_file dashboard_files[];

/* Nothing from anywhere but this server; no inline script or style. */
#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "        \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

void dashboard_handle(struct exchange *h) {
    const char *name = h->match.route == ROUTE_DASHBOARD ? "index.html" : h->match.id;
    const struct embedded_file *f = static_files_find(dashboard_files, name);
    if (f == NULL) {
        respond_error(h, "not_found", NULL, 0, "the dashboard has no file %s", name);
        exchange_settle(h);
        return;
    }
    static_files_send(h, f, DASHBOARD_CSP);
}
