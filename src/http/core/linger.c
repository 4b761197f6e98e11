/* linger.c — drain-then-close for connections answered with an error before
 * their body was read (413, malformed requests). */
#include "linger.h"
#include "units.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINGER_IDLE_MS 5000
#define LINGER_MAX_MS  30000
#define LINGER_MAX     256 /* connections lingering at once; more just close */

struct linger_conn {
    struct http_child *child;
    int fd;                /* our duplicate of the connection's socket */
    struct event *ev;      /* reads on fd, created once libevent let go */
    long long deadline_ms; /* CLOCK_MONOTONIC */
    struct linger_conn *next, **prevp;
};

static int count(const struct http_child *c) {
    int n = 0;
    for (const struct linger_conn *l = c->lingers; l; l = l->next)
        n++;
    return n;
}

static void finish(struct linger_conn *l) {
    if (l->ev)
        event_free(l->ev);
    close(l->fd);
    *l->prevp = l->next;
    if (l->next)
        l->next->prevp = l->prevp;
    free(l);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    struct linger_conn *l = arg;
    if (what & EV_TIMEOUT) {
        finish(l);
        return;
    }
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        finish(l); /* EOF or error: the client has what it needs */
        return;
    }
    if (units_mono_ms() >= l->deadline_ms)
        finish(l);
}

/* libevent frees the connection: its answer is out, our duplicate lives on. */
static void on_close(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    struct linger_conn *l = arg;
    shutdown(l->fd, SHUT_WR);
    l->ev = event_new(l->child->base, l->fd, EV_READ | EV_PERSIST, on_readable, l);
    if (l->ev == NULL) {
        finish(l);
        return;
    }
    struct timeval idle = {LINGER_IDLE_MS / 1000, (LINGER_IDLE_MS % 1000) * 1000};
    event_add(l->ev, &idle);
}

int linger_arm(struct http_child *c, struct evhttp_request *req) {
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon == NULL || count(c) >= LINGER_MAX)
        return -1;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return -1;
    struct linger_conn *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (l->fd < 0) {
        free(l);
        return -1;
    }
    l->child = c;
    l->deadline_ms = units_mono_ms() + LINGER_MAX_MS;
    l->next = c->lingers;
    if (l->next)
        l->next->prevp = &l->next;
    l->prevp = &c->lingers;
    c->lingers = l;
    evhttp_connection_set_closecb(evcon, on_close, l);
    return 0;
}

void linger_close_all(struct http_child *c) {
    while (c->lingers)
        finish(c->lingers);
}
