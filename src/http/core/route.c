/* route.c — the route table of docs/API.md §2: paths to resources, resources to methods. */
#include "route.h"

#include <stdio.h>
#include <string.h>

#define PREFIX     "/v1/thumbnails"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define M(method)  (1ULL << (method))

struct route_def {
    const char *name;
    unsigned long long methods; /* M(HTTP_*) bits */
    const char *allow;
};

static const struct route_def routes[] = {
    [ROUTE_NONE] = {"none", 0, NULL},
    [ROUTE_HEALTHZ] = {"healthz", M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"},
    [ROUTE_READYZ] = {"readyz", M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"},
    [ROUTE_METRICS] = {"metrics", M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"},
    [ROUTE_SUBMIT] = {"submit", M(HTTP_POST), "POST"},
    [ROUTE_JOB] = {"job", M(HTTP_GET) | M(HTTP_HEAD) | M(HTTP_DELETE), "GET, HEAD, DELETE"},
    [ROUTE_IMAGE] = {"image", M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"},
    [ROUTE_COMPAT_HEALTH] = {"compat_health", M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"},
    [ROUTE_COMPAT_SUBMIT] = {"compat_submit", M(HTTP_POST), "POST"},
    [ROUTE_COMPAT_THUMB] = {"compat_thumb", M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"},
};

/* Copies the segment [s, s + len) into m->id, or "" when it cannot be an id. */
static void keep_id(struct route_match *m, const char *s, size_t len) {
    if (len > ROUTE_ID_MAX)
        len = 0;
    memcpy(m->id, s, len);
    m->id[len] = '\0';
}

/* The original service's routes; rest is the path after "/api". */
static enum route_id match_compat(const char *rest, struct route_match *m) {
    if (strcmp(rest, "/health") == 0)
        return ROUTE_COMPAT_HEALTH;
    if (strcmp(rest, "/thumb") == 0)
        return ROUTE_COMPAT_SUBMIT;
    if (strncmp(rest, "/thumb/", 7) != 0)
        return ROUTE_NONE;
    const char *seg = rest + 7;
    size_t len = strlen(seg);
    if (len == 0 || strchr(seg, '/') != NULL)
        return ROUTE_NONE;
    keep_id(m, seg, len);
    return ROUTE_COMPAT_THUMB;
}

static enum route_id match_path(const char *path, struct route_match *m) {
    if (strcmp(path, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(path, "/readyz") == 0)
        return ROUTE_READYZ;
    if (strcmp(path, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strncmp(path, "/api/", 5) == 0)
        return match_compat(path + 4, m);
    if (strncmp(path, PREFIX, PREFIX_LEN) != 0)
        return ROUTE_NONE;
    const char *rest = path + PREFIX_LEN;
    if (*rest == '\0')
        return ROUTE_SUBMIT;
    if (*rest != '/' || rest[1] == '\0' || rest[1] == '/')
        return ROUTE_NONE;
    const char *seg = rest + 1;
    size_t len = strcspn(seg, "/");
    if (seg[len] == '\0') {
        keep_id(m, seg, len);
        return ROUTE_JOB;
    }
    if (strcmp(seg + len, "/image") == 0) {
        keep_id(m, seg, len);
        return ROUTE_IMAGE;
    }
    return ROUTE_NONE;
}

enum route_id route_match(enum http_method method, const char *path, struct route_match *m) {
    m->id[0] = '\0';
    m->route = match_path(path ? path : "", m);
    m->allow = routes[m->route].allow;
    m->method_ok = (unsigned)method < 64 && (routes[m->route].methods & M(method)) != 0;
    return m->route;
}

const char *route_name(enum route_id r) {
    return routes[r].name;
}
