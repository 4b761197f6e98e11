/* deadline.c — per-connection request deadlines, by file descriptor. The
 * bufferevent is never dereferenced outside libevent's own callbacks: the
 * sweep only shuts a socket down, after checking that it is still the same
 * connection (same peer address) and not a later one given the same fd. */
#include "deadline.h"

#include "log.h"
#include "segment.h"
#include "units.h"

#include <event2/buffer.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MIN_RATE 1024 /* bytes per second a slow request must at least send */

struct deadline_clock {
    const struct bufferevent *bev; /* identity only, never dereferenced */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int64_t started_ms; /* first byte of the request being received, 0 = none */
    uint64_t bytes;
};

/* libevent calls the buffer callback without our context: kept here. */
static struct http_child *deadline_child;

static struct deadline_clock *clock_of(struct http_child *c, int fd) {
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= c->nclocks) {
        size_t n = c->nclocks ? c->nclocks : 256;
        while (n <= (size_t)fd)
            n *= 2;
        struct deadline_clock *grown = realloc(c->clocks, n * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        memset(grown + c->nclocks, 0, (n - c->nclocks) * sizeof(*grown));
        c->clocks = grown;
        c->nclocks = n;
    }
    return &c->clocks[fd];
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    (void)buf;
    struct bufferevent *bev = arg;
    struct http_child *c = deadline_child;
    if (c == NULL || info->n_added == 0)
        return;
    int fd = (int)bufferevent_getfd(bev);
    struct deadline_clock *k = clock_of(c, fd);
    if (k == NULL)
        return;
    if (k->bev != bev) { /* a new connection on this fd */
        memset(k, 0, sizeof(*k));
        k->bev = bev;
        k->peer_len = sizeof(k->peer);
        if (getpeername(fd, (struct sockaddr *)&k->peer, &k->peer_len) < 0)
            k->peer_len = 0;
    }
    if (k->started_ms == 0)
        k->started_ms = units_mono_ms();
    k->bytes += info->n_added;
}

void deadline_watch(struct http_child *c, struct bufferevent *bev) {
    deadline_child = c;
    evbuffer_add_cb(bufferevent_get_input(bev), on_input, bev);
}

void deadline_request_done(struct http_child *c, struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct deadline_clock *k = bev ? clock_of(c, (int)bufferevent_getfd(bev)) : NULL;
    if (k && k->bev == bev) {
        k->started_ms = 0;
        k->bytes = 0;
    }
}

/* Whether fd is still the connection k was made for. */
static bool still_there(const struct deadline_clock *k, int fd) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    return k->peer_len && getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
           len == k->peer_len && memcmp(&peer, &k->peer, len) == 0;
}

/* Stops accepting while this child holds http.max_connections connections
 * (the others take the new ones), and starts again below it. */
static void limit_connections(struct http_child *c, size_t open) {
    struct evconnlistener *l = c->bound ? evhttp_bound_socket_get_listener(c->bound) : NULL;
    if (l == NULL)
        return;
    size_t max = (size_t)c->cfg->http_max_connections;
    if (open >= max && !c->accept_paused) {
        log_warn("%zu connections open (http.max_connections): not accepting more for now", open);
        evconnlistener_disable(l);
        c->accept_paused = true;
    } else if (open < max && c->accept_paused) {
        log_info("%zu connections open: accepting again", open);
        evconnlistener_enable(l);
        c->accept_paused = false;
    }
}

void deadline_sweep(struct http_child *c) {
    int64_t now = units_mono_ms();
    int64_t limit = c->cfg->http_timeout;
    size_t open = 0;
    for (size_t fd = 0; fd < c->nclocks; fd++) {
        struct deadline_clock *k = &c->clocks[fd];
        if (k->bev == NULL)
            continue;
        if (!still_there(k, (int)fd)) {
            memset(k, 0, sizeof(*k)); /* closed (or the fd went to another connection) */
            continue;
        }
        uint64_t fair = (uint64_t)(now - k->started_ms) * MIN_RATE / 1000;
        if (k->started_ms == 0 || now - k->started_ms <= limit || k->bytes >= fair) {
            open++; /* idle between requests, on time, or a big upload in progress */
            continue;
        }
        log_debug("closing a connection that sent %llu bytes in %lld ms without a whole request",
                  (unsigned long long)k->bytes, (long long)(now - k->started_ms));
        shutdown((int)fd, SHUT_RDWR);
        memset(k, 0, sizeof(*k));
    }
    limit_connections(c, open);
}

void deadline_free(struct http_child *c) {
    free(c->clocks);
    c->clocks = NULL;
    c->nclocks = 0;
    deadline_child = NULL;
}
