/* route.h — which resource a request path names, and which methods it takes. Pure: no I/O. */
#ifndef TH_HTTP_ROUTE_H
#define TH_HTTP_ROUTE_H

#include <http_parser.h>
#include <stdbool.h>

enum route_id {
    ROUTE_NONE,            /* no such resource: 404 */
    ROUTE_HEALTHZ,         /* /healthz */
    ROUTE_READYZ,          /* /readyz */
    ROUTE_METRICS,         /* /metrics */
    ROUTE_SUBMIT,          /* /v1/thumbnails */
    ROUTE_JOB,             /* /v1/thumbnails/<id> */
    ROUTE_IMAGE,           /* /v1/thumbnails/<id>/image */
    ROUTE_IMAGE_RENDITION, /* /v1/thumbnails/<id>/image/<name> */
    /* The original service's API (compat.c). */
    ROUTE_COMPAT_HEALTH, /* /api/health */
    ROUTE_COMPAT_SUBMIT, /* /api/thumb */
    ROUTE_COMPAT_THUMB,  /* /api/thumb/<id> */
    /* For people: the pointers, the API described, the dashboard. */
    ROUTE_ROOT,           /* / */
    ROUTE_OPENAPI,        /* /openapi.json (openapi.c) */
    ROUTE_DOCS,           /* /docs (openapi.c) */
    ROUTE_DOCS_FILE,      /* /docs/<file> (openapi.c) */
    ROUTE_DASHBOARD,      /* /dashboard (dashboard.c) */
    ROUTE_DASHBOARD_FILE, /* /dashboard/<file> (dashboard.c) */
    /* The admin API (admin.c). */
    ROUTE_ADMIN_OVERVIEW,  /* /v1/admin/overview */
    ROUTE_ADMIN_JOBS,      /* /v1/admin/jobs */
    ROUTE_ADMIN_JOB,       /* /v1/admin/jobs/<id> */
    ROUTE_ADMIN_JOB_IMAGE, /* /v1/admin/jobs/<id>/image */
    ROUTE_ADMIN_RETRY,     /* /v1/admin/jobs/<id>/retry */
    ROUTE_ADMIN_DEAD,      /* /v1/admin/dead */
    ROUTE_ADMIN_PAUSE,     /* /v1/admin/pause */
    ROUTE_ADMIN_RESUME,    /* /v1/admin/resume */
    ROUTE_COUNT
};

/* Longest id segment kept; longer segments are never valid ids (404). */
#define ROUTE_ID_MAX 63
/* Longest rendition name kept (job.h's JOB_NAME_MAX); longer ones are "". */
#define ROUTE_NAME_MAX 32

struct route_match {
    enum route_id route;
    bool method_ok;    /* false: answer 405 with allow */
    const char *allow; /* the Allow header of the route (static), NULL for ROUTE_NONE */
    char id[ROUTE_ID_MAX +
            1]; /* the <id> (or <file>) segment as sent (not yet checked), "" when none */
    char name[ROUTE_NAME_MAX + 1]; /* the <name> segment of a rendition, "" when none */
};

/* Matches path (the raw path of the request URI, without query) and method.
 * Fills m and returns m->route. An <id> segment longer than ROUTE_ID_MAX is
 * kept truncated-to-empty so it can never pass id_is_valid. */
enum route_id route_match(enum http_method method, const char *path, struct route_match *m);

/* Name of the route for logs and metrics ("submit", ...). */
const char *route_name(enum route_id r);

/* The route's path as docs/openapi.json writes it ("/v1/thumbnails/{id}"),
 * NULL for ROUTE_NONE. */
const char *route_template(enum route_id r);

/* The route's methods: a bit (1ULL << HTTP_*) per method it takes. */
unsigned long long route_methods(enum route_id r);

#endif
