/* route.h — which resource a request path names, and which methods it takes. Pure: no I/O. */
#ifndef TH_HTTP_ROUTE_H
#define TH_HTTP_ROUTE_H

#include <http_parser.h>
#include <stdbool.h>

enum route_id {
    ROUTE_NONE,    /* no such resource: 404 */
    ROUTE_HEALTHZ, /* /healthz */
    ROUTE_READYZ,  /* /readyz */
    ROUTE_METRICS, /* /metrics */
    ROUTE_SUBMIT,  /* /v1/thumbnails */
    ROUTE_JOB,     /* /v1/thumbnails/<id> */
    ROUTE_IMAGE,   /* /v1/thumbnails/<id>/image */
    /* The original service's API (compat.c). */
    ROUTE_COMPAT_HEALTH, /* /api/health */
    ROUTE_COMPAT_SUBMIT, /* /api/thumb */
    ROUTE_COMPAT_THUMB,  /* /api/thumb/<id> */
};

/* Longest id segment kept; longer segments are never valid ids (404). */
#define ROUTE_ID_MAX 63

struct route_match {
    enum route_id route;
    bool method_ok;            /* false: answer 405 with allow */
    const char *allow;         /* the Allow header of the route (static), NULL for ROUTE_NONE */
    char id[ROUTE_ID_MAX + 1]; /* the <id> segment as sent (not yet checked), "" when none */
};

/* Matches path (the raw path of the request URI, without query) and method.
 * Fills m and returns m->route. An <id> segment longer than ROUTE_ID_MAX is
 * kept truncated-to-empty so it can never pass id_is_valid. */
enum route_id route_match(enum http_method method, const char *path, struct route_match *m);

/* Name of the route for logs and metrics ("submit", ...). */
const char *route_name(enum route_id r);

#endif
