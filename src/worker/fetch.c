/* fetch.c — libcurl download of a source URL into memory, bounded in size and
 * time; redirects followed here, hop by hop, each host checked against the
 * allow/deny lists; CURLOPT_OPENSOCKETFUNCTION refuses non-public addresses. */
#include "fetch.h"
#include "hostlist.h"
#include "netaddr.h"
#include "version.h"
#include "units.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define FETCH_INITIAL_CAP (64 * 1024)
/* What one read from the socket may take: libcurl's default of 16 KiB costs a
 * poll and a recv, and a wake-up of the worker, per 16 KiB, which on a loaded
 * machine is a good part of a small job (bench/RESULTS.md, issue 19). */
#define FETCH_BUFFER_BYTES    (256L * 1024)
#define FETCH_LOW_SPEED_BYTES 1024 /* slower than this ... */
#define FETCH_LOW_SPEED_SECS  10   /* ... for this long is a timeout */
#define FETCH_HOST_MAX        256  /* a host name as shown in messages */

struct fetch {
    CURL *curl;
    bool used;
    /* The policy its cached connections were opened under. */
    bool allow_private;
    char *allow_hosts;
    char errbuf[CURL_ERROR_SIZE];
};

enum body_mode {
    BODY_UNKNOWN, /* no byte of this response yet */
    BODY_KEEP,    /* the answer: collected */
    BODY_SKIP,    /* a redirect's body: counted and dropped */
};

/* The state of one transfer, shared with the callbacks. The per-hop fields are
 * reset before each request. */
struct transfer {
    CURL *curl;
    const struct fetch_opts *o;
    unsigned char *data;
    size_t len;
    size_t cap;
    bool no_memory;
    /* per hop */
    bool private_ok; /* this hop's host may connect to non-public addresses */
    enum body_mode body;
    size_t skipped;
    bool too_large;
    bool blocked;
    char blocked_addr[INET6_ADDRSTRLEN];
    enum netaddr_class blocked_class;
};

/* The hosts of a fetch, for messages: the URL's, and the current hop's. */
struct hosts {
    char origin[FETCH_HOST_MAX];
    char host[FETCH_HOST_MAX];
    char via[FETCH_HOST_MAX + 32]; /* " (redirected from <origin>)" or "" */
};

void fetch_opts_from_config(struct fetch_opts *o, const struct config *cfg) {
    o->connect_timeout_ms = (long)cfg->fetch_connect_timeout;
    o->timeout_ms = (long)cfg->fetch_timeout;
    o->max_bytes = cfg->fetch_max_bytes;
    o->max_redirects = (long)cfg->fetch_max_redirects;
    o->allow_private = cfg->fetch_allow_private;
    o->allow_hosts = cfg->fetch_allow_hosts;
    o->deny_hosts = cfg->fetch_deny_hosts;
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
    free(f->allow_hosts);
    free(f);
    curl_global_cleanup();
}

void fetch_body_free(struct fetch_body *b) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* --- callbacks ----------------------------------------------------------- */

static bool is_redirect(long status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg) {
    struct transfer *t = arg;
    size_t n = size * nmemb;
    size_t max = (size_t)t->o->max_bytes;
    if (t->body == BODY_UNKNOWN) {
        long status = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        t->body = is_redirect(status) ? BODY_SKIP : BODY_KEEP;
    }
    if (t->body == BODY_SKIP) {
        if (n > max - t->skipped) {
            t->too_large = true;
            return 0;
        }
        t->skipped += n;
        return n;
    }
    if (n > max - t->len) {
        t->too_large = true;
        return 0; /* aborts with CURLE_WRITE_ERROR */
    }
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : FETCH_INITIAL_CAP;
        /* The whole body at once when the response says how long it is (and
         * that is within the limit): no copy as it grows. */
        curl_off_t announced = -1;
        if (t->cap == 0 &&
            curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) ==
                CURLE_OK &&
            announced > 0 && (uint64_t)announced <= (uint64_t)max)
            cap = (size_t)announced;
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
    if (purpose != CURLSOCKTYPE_IPCXN || t == NULL)
        return CURL_SOCKET_BAD;
    if (!t->private_ok) {
        enum netaddr_class c = netaddr_classify(&a->addr);
        if (c != NETADDR_PUBLIC) {
            t->blocked = true;
            t->blocked_class = c;
            netaddr_to_text(&a->addr, t->blocked_addr, sizeof(t->blocked_addr));
            return CURL_SOCKET_BAD;
        }
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* --- the transfer -------------------------------------------------------- */

/* Gives f a fresh curl handle when o's private-address policy differs from the
 * one its cached connections were vetted under: a connection the guard let
 * through for an allowed host must not outlive that allowance. */
static int renew_if_policy_changed(struct fetch *f, const struct fetch_opts *o) {
    const char *allow = o->allow_hosts ? o->allow_hosts : "";
    if (f->used && f->allow_private == o->allow_private && strcmp(f->allow_hosts, allow) == 0)
        return 0;
    char *copy = strdup(allow);
    if (copy == NULL)
        return -1;
    if (f->used) {
        CURL *fresh = curl_easy_init();
        if (fresh == NULL) {
            free(copy);
            return -1;
        }
        curl_easy_cleanup(f->curl);
        f->curl = fresh;
    }
    free(f->allow_hosts);
    f->allow_hosts = copy;
    f->allow_private = o->allow_private;
    f->used = true;
    return 0;
}

/* The options every hop shares. */
static void set_options(struct fetch *f, const struct fetch_opts *o, struct transfer *t) {
    CURL *c = f->curl;
    curl_easy_reset(c); /* keeps the connection and DNS caches */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, FETCH_BUFFER_BYTES);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* followed by follow(), checked per hop */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
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

/* Vets the URL in u before it is requested (hop 0 is the job's URL): http or
 * https, a host not denied. Fills h->host (and h->origin on hop 0) and sets
 * the hop's private-address allowance, which an allow_hosts entry with a port
 * gives only on that port. */
static int check_target(const struct fetch_opts *o, CURLU *u, long hop, struct hosts *h,
                        struct transfer *t, struct failure *err) {
    char *scheme = NULL;
    bool web = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
               (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    char shown[16];
    snprintf(shown, sizeof(shown), "%s", scheme ? scheme : "?");
    curl_free(scheme);
    bool has_host = web && hostlist_curlu_host(u, h->host, sizeof(h->host)) == 0;
    if (hop == 0) {
        if (!has_host)
            return failure_set(err, "invalid_job",
                               "the job's URL is not an http or https URL with a usable host");
        snprintf(h->origin, sizeof(h->origin), "%s", h->host);
    } else if (!web) {
        return failure_set(err, "fetch_bad_redirect",
                           "the source server %s%s redirected to a URL of scheme %s; only http "
                           "and https are followed",
                           h->host, h->via, shown);
    } else if (!has_host) {
        return failure_set(err, "fetch_bad_redirect",
                           "the source server %s%s redirected to a URL without a usable host",
                           h->host, h->via);
    }
    if (strcmp(h->host, h->origin) != 0)
        snprintf(h->via, sizeof(h->via), " (redirected from %s)", h->origin);
    else
        h->via[0] = '\0';
    int port = hostlist_curlu_port(u);
    if (hostlist_match(o->deny_hosts, h->host, port))
        return failure_set(err, "fetch_blocked_host",
                           "fetching from %s%s is refused: the host is on the deny list", h->host,
                           h->via);
    t->private_ok = o->allow_private || hostlist_match(o->allow_hosts, h->host, port);
    return 0;
}

/* Maps the last hop's result (not a redirect) to 0 or a failure. */
static int classify(struct fetch *f, const struct fetch_opts *o, CURLcode rc, long status,
                    const struct transfer *t, const struct hosts *h, struct failure *err) {
    const char *detail = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);

    if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return failure_set(err, "fetch_too_large", "the source at %s%s is larger than %lld bytes",
                           h->host, h->via, (long long)o->max_bytes);
    if (t->blocked && rc != CURLE_OK) {
        const char *from = h->via[0] ? ", redirected from " : "";
        return failure_set(err, "fetch_blocked_address",
                           "refused to connect to %s (%s address) for host %s%s%s", t->blocked_addr,
                           netaddr_class_name(t->blocked_class), h->host, from,
                           h->via[0] ? h->origin : "");
    }
    switch (rc) {
    case CURLE_OK:
        if (status >= 400)
            break;
        if (status < 200 || status > 299)
            return failure_set(err, "fetch_failed", "the source server %s%s answered HTTP %ld",
                               h->host, h->via, status);
        return 0;
    case CURLE_HTTP_RETURNED_ERROR:
        break;
    case CURLE_OPERATION_TIMEDOUT:
        return failure_set(err, "fetch_timeout", "fetching from %s%s timed out: %s", h->host,
                           h->via, detail);
    case CURLE_WRITE_ERROR:
        if (t->no_memory)
            return failure_set(err, "internal_error", "out of memory fetching from %s%s", h->host,
                               h->via);
        return failure_set(err, "fetch_failed", "fetching from %s%s failed: %s", h->host, h->via,
                           detail);
    default:
        return failure_set(err, "fetch_failed", "fetching from %s%s failed: %s", h->host, h->via,
                           detail);
    }
    char code[FAILURE_CODE_MAX];
    snprintf(code, sizeof(code), "fetch_http_%ld", status);
    return failure_set(err, code, "the source server %s%s answered HTTP %ld", h->host, h->via,
                       status);
}

/* Requests u, and each redirect's target in turn, with f's handle until an
 * answer that is not a redirect; its body is left in t. */
static int follow(struct fetch *f, const struct fetch_opts *o, CURLU *u, struct transfer *t,
                  struct failure *err) {
    struct hosts h = {.origin = "", .host = "", .via = ""};
    int64_t deadline = units_mono_ms() + o->timeout_ms;
    for (long hop = 0;; hop++) {
        if (check_target(o, u, hop, &h, t, err) < 0)
            return -1;
        int64_t left = deadline - units_mono_ms();
        if (left <= 0)
            return failure_set(err, "fetch_timeout",
                               "fetching from %s%s timed out: more than %ld ms with redirects",
                               h.host, h.via, o->timeout_ms);
        t->body = BODY_UNKNOWN;
        t->skipped = 0;
        t->len = 0;
        t->too_large = false;
        t->blocked = false;
        f->errbuf[0] = '\0';
        curl_easy_setopt(f->curl, CURLOPT_CURLU, u);
        curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, (long)left);
        CURLcode rc = curl_easy_perform(f->curl);
        long status = 0;
        curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || !is_redirect(status))
            return classify(f, o, rc, status, t, &h, err);

        char *location = NULL;
        curl_easy_getinfo(f->curl, CURLINFO_REDIRECT_URL, &location);
        if (location == NULL)
            return failure_set(err, "fetch_bad_redirect",
                               "the source server %s%s answered HTTP %ld without a Location",
                               h.host, h.via, status);
        if (hop >= o->max_redirects)
            return failure_set(err, "fetch_too_many_redirects",
                               "fetching from %s took more than %ld redirects", h.origin,
                               o->max_redirects);
        /* Relative to the current URL, which u still holds. */
        if (curl_url_set(u, CURLUPART_URL, location, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
            return failure_set(err, "fetch_bad_redirect",
                               "the source server %s%s redirected to a URL that cannot be parsed",
                               h.host, h.via);
    }
}

int fetch_url(struct fetch *f, const struct fetch_opts *o, const char *url, struct fetch_body *out,
              struct failure *err) {
    out->data = NULL;
    out->len = 0;
    if (renew_if_policy_changed(f, o) < 0)
        return failure_set(err, "internal_error", "cannot make a new curl handle");
    CURLU *u = curl_url();
    if (u == NULL)
        return failure_set(err, "internal_error", "out of memory parsing the URL");
    struct transfer t = {.curl = f->curl, .o = o};
    int rc;
    if (url == NULL || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
        rc = failure_set(err, "invalid_job", "the job's URL cannot be parsed");
    } else {
        set_options(f, o, &t);
        rc = follow(f, o, u, &t, err);
        /* The callbacks and the URL point at this stack frame: unhook them. */
        curl_easy_setopt(f->curl, CURLOPT_CURLU, NULL);
        curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(f->curl, CURLOPT_OPENSOCKETDATA, NULL);
    }
    curl_url_cleanup(u);
    if (rc < 0) {
        free(t.data);
        return -1;
    }
    out->data = t.data;
    out->len = t.len;
    return 0;
}
