/* fetch.c — libcurl download of a source URL into memory, bounded in size, time
 * and redirects; CURLOPT_OPENSOCKETFUNCTION refuses non-public addresses. */
#include "fetch.h"
#include "netaddr.h"
#include "version.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FETCH_INITIAL_CAP     (64 * 1024)
#define FETCH_LOW_SPEED_BYTES 1024 /* slower than this ... */
#define FETCH_LOW_SPEED_SECS  10   /* ... for this long is a timeout */

struct fetch {
    CURL *curl;
    bool used;
    bool allow_private; /* the policy its cached connections were opened under */
    char errbuf[CURL_ERROR_SIZE];
};

/* The state of one transfer, shared with the callbacks. */
struct transfer {
    const struct fetch_opts *o;
    unsigned char *data;
    size_t len;
    size_t cap;
    bool too_large;
    bool no_memory;
    bool blocked;
    char blocked_addr[INET6_ADDRSTRLEN];
    enum netaddr_class blocked_class;
};

void fetch_opts_from_config(struct fetch_opts *o, const struct config *cfg) {
    o->connect_timeout_ms = (long)cfg->fetch_connect_timeout;
    o->timeout_ms = (long)cfg->fetch_timeout;
    o->max_bytes = cfg->fetch_max_bytes;
    o->max_redirects = (long)cfg->fetch_max_redirects;
    o->allow_private = cfg->fetch_allow_private;
}

struct fetch *fetch_new(void) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->curl = curl_easy_init()) == NULL) {
        free(f);
        curl_global_cleanup();
        return NULL;
    }
    return f;
}

void fetch_free(struct fetch *f) {
    if (f == NULL)
        return;
    curl_easy_cleanup(f->curl);
    free(f);
    curl_global_cleanup();
}

void fetch_body_free(struct fetch_body *b) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg) {
    struct transfer *t = arg;
    size_t n = size * nmemb;
    size_t max = (size_t)t->o->max_bytes;
    if (n > max - t->len) {
        t->too_large = true;
        return 0; /* aborts with CURLE_WRITE_ERROR */
    }
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : FETCH_INITIAL_CAP;
        while (cap < t->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        unsigned char *p = realloc(t->data, cap);
        if (p == NULL) {
            t->no_memory = true;
            return 0;
        }
        t->data = p;
        t->cap = cap;
    }
    memcpy(t->data + t->len, ptr, n);
    t->len += n;
    return n;
}

static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a) {
    struct transfer *t = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!t->o->allow_private) {
        enum netaddr_class c = netaddr_classify(&a->addr);
        if (c != NETADDR_PUBLIC) {
            t->blocked = true;
            t->blocked_class = c;
            const void *raw = NULL;
            if (a->family == AF_INET)
                raw = &((const struct sockaddr_in *)&a->addr)->sin_addr;
            else if (a->family == AF_INET6)
                raw = &((const struct sockaddr_in6 *)&a->addr)->sin6_addr;
            if (raw == NULL ||
                inet_ntop(a->family, raw, t->blocked_addr, sizeof(t->blocked_addr)) == NULL)
                snprintf(t->blocked_addr, sizeof(t->blocked_addr), "(address family %d)",
                         a->family);
            return CURL_SOCKET_BAD;
        }
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The host part of url (no user, password, port or path) into buf. */
static void host_of(const char *url, char *buf, size_t n) {
    snprintf(buf, n, "(unparsable URL)");
    CURLU *u = curl_url();
    if (u == NULL)
        return;
    char *host = NULL;
    if (url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        snprintf(buf, n, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

static void set_options(struct fetch *f, const struct fetch_opts *o, const char *url,
                        struct transfer *t) {
    CURL *c = f->curl;
    curl_easy_reset(c); /* keeps the connection and DNS caches */
    f->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, o->max_redirects);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)FETCH_LOW_SPEED_BYTES);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)FETCH_LOW_SPEED_SECS);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "thumbnailed/" THUMBNAILED_VERSION);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, t);
}

/* Maps a finished transfer to 0 or a failure. */
static int classify(struct fetch *f, const struct fetch_opts *o, const char *url, CURLcode rc,
                    const struct transfer *t, struct failure *err) {
    long status = 0;
    curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
    char host[256];
    host_of(url, host, sizeof(host));
    const char *detail = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);

    if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return failure_set(err, "fetch_too_large", "the source at %s is larger than %lld bytes",
                           host, (long long)o->max_bytes);
    if (t->blocked && rc != CURLE_OK) {
        char *eff = NULL;
        char last[256];
        curl_easy_getinfo(f->curl, CURLINFO_EFFECTIVE_URL, &eff);
        host_of(eff ? eff : url, last, sizeof(last));
        char via[300] = "";
        if (strcmp(last, host) != 0)
            snprintf(via, sizeof(via), ", redirected from %s", host);
        return failure_set(err, "fetch_blocked_address",
                           "refused to connect to %s (%s address) for host %s%s", t->blocked_addr,
                           netaddr_class_name(t->blocked_class), last, via);
    }
    switch (rc) {
    case CURLE_OK:
        if (status >= 400)
            break;
        if (status < 200 || status > 299)
            return failure_set(err, "fetch_failed", "the source server %s answered HTTP %ld", host,
                               status);
        return 0;
    case CURLE_HTTP_RETURNED_ERROR:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        return failure_set(err, "fetch_timeout", "fetching from %s timed out: %s", host, detail);
    case CURLE_TOO_MANY_REDIRECTS:
        return failure_set(err, "fetch_too_many_redirects",
                           "fetching from %s took more than %ld redirects", host, o->max_redirects);
    case CURLE_WRITE_ERROR:
        if (t->no_memory)
            return failure_set(err, "internal_error", "out of memory fetching from %s", host);
        return failure_set(err, "fetch_failed", "fetching from %s failed: %s", host, detail);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return failure_set(err, "fetch_failed",
                           "fetching from %s failed: only http and https are followed (%s)", host,
                           detail);
    default:
        return failure_set(err, "fetch_failed", "fetching from %s failed: %s", host, detail);
    }
    char code[FAILURE_CODE_MAX];
    snprintf(code, sizeof(code), "fetch_http_%ld", status);
    return failure_set(err, code, "the source server %s answered HTTP %ld", host, status);
}

int fetch_url(struct fetch *f, const struct fetch_opts *o, const char *url, struct fetch_body *out,
              struct failure *err) {
    out->data = NULL;
    out->len = 0;
    if (f->used && f->allow_private != o->allow_private) {
        /* Cached connections were vetted under the other policy: drop them all. */
        CURL *fresh = curl_easy_init();
        if (fresh == NULL)
            return failure_set(err, "internal_error", "cannot make a new curl handle");
        curl_easy_cleanup(f->curl);
        f->curl = fresh;
    }
    f->used = true;
    f->allow_private = o->allow_private;
    struct transfer t = {.o = o};
    set_options(f, o, url, &t);
    CURLcode rc = curl_easy_perform(f->curl);
    /* The callbacks point at this stack frame: unhook them before returning. */
    curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(f->curl, CURLOPT_OPENSOCKETDATA, NULL);
    if (classify(f, o, url, rc, &t, err) < 0) {
        free(t.data);
        return -1;
    }
    out->data = t.data;
    out->len = t.len;
    return 0;
}
