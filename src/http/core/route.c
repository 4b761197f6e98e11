/* route.c — the route table of docs/API.md §2: paths to resources, resources to methods. */
#include "route.h"

#include <stdio.h>
#include <string.h>

#define PREFIX     "/v1/thumbnails"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define ADMIN      "/v1/admin"
#define M(method)  (1ULL << (method))

struct route_def {
    const char *name;
    const char *path;           /* as docs/openapi.json writes it */
    unsigned long long methods; /* M(HTTP_*) bits */
    const char *allow;
};

#define GET_HEAD M(HTTP_GET) | M(HTTP_HEAD), "GET, HEAD"

static const struct route_def routes[] = {
    [ROUTE_NONE] = {"none", NULL, 0, NULL},
    [ROUTE_HEALTHZ] = {"healthz", "/healthz", GET_HEAD},
    [ROUTE_READYZ] = {"readyz", "/readyz", GET_HEAD},
    [ROUTE_METRICS] = {"metrics", "/metrics", GET_HEAD},
    [ROUTE_SUBMIT] = {"submit", PREFIX, M(HTTP_POST), "POST"},
    [ROUTE_JOB] = {"job", PREFIX "/{id}", M(HTTP_GET) | M(HTTP_HEAD) | M(HTTP_DELETE),
                   "GET, HEAD, DELETE"},
    [ROUTE_IMAGE] = {"image", PREFIX "/{id}/image", GET_HEAD},
    [ROUTE_IMAGE_RENDITION] = {"image_rendition", PREFIX "/{id}/image/{name}", GET_HEAD},
    [ROUTE_COMPAT_HEALTH] = {"compat_health", "/api/health", GET_HEAD},
    [ROUTE_COMPAT_SUBMIT] = {"compat_submit", "/api/thumb", M(HTTP_POST), "POST"},
    [ROUTE_COMPAT_THUMB] = {"compat_thumb", "/api/thumb/{id}", GET_HEAD},
    [ROUTE_ROOT] = {"root", "/", GET_HEAD},
    [ROUTE_OPENAPI] = {"openapi", "/openapi.json", GET_HEAD},
    [ROUTE_DOCS] = {"docs", "/docs", GET_HEAD},
    [ROUTE_DOCS_FILE] = {"docs_file", "/docs/{file}", GET_HEAD},
    [ROUTE_DASHBOARD] = {"dashboard", "/dashboard", GET_HEAD},
    [ROUTE_DASHBOARD_FILE] = {"dashboard_file", "/dashboard/{file}", GET_HEAD},
    [ROUTE_ADMIN_OVERVIEW] = {"admin_overview", ADMIN "/overview", GET_HEAD},
    [ROUTE_ADMIN_JOBS] = {"admin_jobs", ADMIN "/jobs", GET_HEAD},
    [ROUTE_ADMIN_JOB] = {"admin_job", ADMIN "/jobs/{id}", GET_HEAD},
    [ROUTE_ADMIN_JOB_IMAGE] = {"admin_job_image", ADMIN "/jobs/{id}/image", GET_HEAD},
    [ROUTE_ADMIN_RETRY] = {"admin_retry", ADMIN "/jobs/{id}/retry", M(HTTP_POST), "POST"},
    [ROUTE_ADMIN_DEAD] = {"admin_dead", ADMIN "/dead", M(HTTP_DELETE), "DELETE"},
    [ROUTE_ADMIN_PAUSE] = {"admin_pause", ADMIN "/pause", M(HTTP_POST), "POST"},
    [ROUTE_ADMIN_RESUME] = {"admin_resume", ADMIN "/resume", M(HTTP_POST), "POST"},
};

_Static_assert(sizeof(routes) / sizeof(routes[0]) == ROUTE_COUNT, "a route without its line");

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

/* A page ("" after its path) or one of its files ("/<file>", one segment). */
static enum route_id match_files(const char *rest, enum route_id page, enum route_id file,
                                 struct route_match *m) {
    if (*rest == '\0')
        return page;
    if (*rest != '/' || rest[1] == '\0' || strchr(rest + 1, '/') != NULL)
        return ROUTE_NONE;
    keep_id(m, rest + 1, strlen(rest + 1));
    return file;
}

/* The admin API; rest is the path after "/v1/admin". */
static enum route_id match_admin(const char *rest, struct route_match *m) {
    if (strcmp(rest, "/overview") == 0)
        return ROUTE_ADMIN_OVERVIEW;
    if (strcmp(rest, "/jobs") == 0)
        return ROUTE_ADMIN_JOBS;
    if (strcmp(rest, "/dead") == 0)
        return ROUTE_ADMIN_DEAD;
    if (strcmp(rest, "/pause") == 0)
        return ROUTE_ADMIN_PAUSE;
    if (strcmp(rest, "/resume") == 0)
        return ROUTE_ADMIN_RESUME;
    if (strncmp(rest, "/jobs/", 6) != 0)
        return ROUTE_NONE;
    const char *seg = rest + 6;
    size_t len = strcspn(seg, "/");
    if (len == 0)
        return ROUTE_NONE;
    enum route_id r = ROUTE_NONE;
    if (seg[len] == '\0')
        r = ROUTE_ADMIN_JOB;
    else if (strcmp(seg + len, "/image") == 0)
        r = ROUTE_ADMIN_JOB_IMAGE;
    else if (strcmp(seg + len, "/retry") == 0)
        r = ROUTE_ADMIN_RETRY;
    if (r != ROUTE_NONE)
        keep_id(m, seg, len);
    return r;
}

static enum route_id match_path(const char *path, struct route_match *m) {
    if (strcmp(path, "/") == 0)
        return ROUTE_ROOT;
    if (strcmp(path, "/openapi.json") == 0)
        return ROUTE_OPENAPI;
    if (strncmp(path, "/docs", 5) == 0)
        return match_files(path + 5, ROUTE_DOCS, ROUTE_DOCS_FILE, m);
    if (strncmp(path, "/dashboard", 10) == 0)
        return match_files(path + 10, ROUTE_DASHBOARD, ROUTE_DASHBOARD_FILE, m);
    if (strncmp(path, ADMIN "/", sizeof(ADMIN)) == 0)
        return match_admin(path + sizeof(ADMIN) - 1, m);
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
    if (strncmp(seg + len, "/image/", 7) == 0) {
        const char *name = seg + len + 7;
        size_t nlen = strlen(name);
        if (nlen == 0 || memchr(name, '/', nlen))
            return ROUTE_NONE;
        keep_id(m, seg, len);
        if (nlen <= ROUTE_NAME_MAX)
            memcpy(m->name, name, nlen + 1);
        return ROUTE_IMAGE_RENDITION;
    }
    return ROUTE_NONE;
}

enum route_id route_match(enum http_method method, const char *path, struct route_match *m) {
    m->id[0] = '\0';
    m->name[0] = '\0';
    m->route = match_path(path ? path : "", m);
    m->allow = routes[m->route].allow;
    m->method_ok = (unsigned)method < 64 && (routes[m->route].methods & M(method)) != 0;
    return m->route;
}

const char *route_name(enum route_id r) {
    return routes[r].name;
}

const char *route_template(enum route_id r) {
    return (unsigned)r < ROUTE_COUNT ? routes[r].path : NULL;
}

unsigned long long route_methods(enum route_id r) {
    return (unsigned)r < ROUTE_COUNT ? routes[r].methods : 0;
}
