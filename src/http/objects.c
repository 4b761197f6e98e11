/* objects.c — the http child's requests to the object store (objects.h): each
 * a store_request on an easy handle of its own, run by the child's curlev;
 * the exchange waits for it as for a Redis reply (exchange_redis_sent and
 * _received), so it outlives its client if it must, never the reverse. */
#include "objects.h"
#include "curlev.h"
#include "exchange.h"
#include "http.h"

#include "log.h"
#include "units.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request in flight; h is NULL for a probe. */
struct xfer {
    struct xfer *prev, *next;
    struct objects *o;
    struct exchange *h;
    CURL *easy;
    struct store_request req;
    char *copy; /* a PUT's body: the request's own may go with its client */
    objects_done_fn done;
};

struct objects {
    struct http_child *c;
    struct curlev *ev;
    struct event *probe_timer;
    struct xfer *inflight;
    bool probing;
    int64_t ok_ms;   /* when a request last succeeded (CLOCK_MONOTONIC), 0 never */
    int64_t sent_ms; /* when the probe in flight went out */
    long rtt_ms;
    bool failed; /* a request failed since ok_ms */
    char why[sizeof(((struct store_error *)0)->message)];
};

static void xfer_free(struct xfer *x) {
    struct objects *o = x->o;
    if (x->prev)
        x->prev->next = x->next;
    else
        o->inflight = x->next;
    if (x->next)
        x->next->prev = x->prev;
    store_request_free(&x->req);
    if (x->easy)
        curl_easy_cleanup(x->easy);
    free(x->copy);
    free(x);
}

/* What every request says of the store's health. */
static void note(struct objects *o, enum store_rc rc, const struct store_error *err) {
    if (rc == STORE_OK || rc == STORE_NOT_FOUND) {
        o->ok_ms = units_mono_ms();
        o->failed = false;
        return;
    }
    if (!o->failed && o->ok_ms)
        log_warn("storage: %s", err->message);
    o->failed = true;
    snprintf(o->why, sizeof(o->why), "%s", err->message);
}

static void on_done(CURL *easy, CURLcode result, void *arg) {
    (void)easy;
    struct xfer *x = arg;
    struct objects *o = x->o;
    struct store_error err;
    enum store_rc rc = store_request_result(&x->req, result, &err);
    if (x->h == NULL) {
        o->probing = false;
        if (rc == STORE_NOT_FOUND) /* of the bucket itself */
            rc = STORE_REFUSED;
        if (rc == STORE_OK)
            o->rtt_ms = (long)(units_mono_ms() - o->sent_ms);
        note(o, rc, &err);
        xfer_free(x);
        return;
    }
    note(o, rc, &err);
    struct exchange *h = x->h;
    size_t len = 0;
    char *body = rc == STORE_OK ? store_request_take_body(&x->req, &len) : NULL;
    if (rc == STORE_OK && body == NULL) {
        rc = STORE_FAILED;
        snprintf(err.code, sizeof(err.code), "OutOfMemory");
        snprintf(err.message, sizeof(err.message), "out of memory for the object");
    }
    objects_done_fn done = x->done;
    xfer_free(x);
    exchange_redis_received(h);
    done(h, rc, &err, body, len);
    exchange_settle(h);
}

/* A request for h (NULL: a probe) set up and started; NULL when it cannot be. */
static struct xfer *start(struct objects *o, struct exchange *h, const char *method,
                          const char *key, const void *data, size_t len, const char *mime,
                          size_t max, objects_done_fn done) {
    struct xfer *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->o = o;
    x->h = h;
    x->done = done;
    if (len && (x->copy = malloc(len)) == NULL) {
        free(x);
        return NULL;
    }
    if (len)
        memcpy(x->copy, data, len);
    x->easy = curl_easy_init();
    if (x->easy == NULL || store_request_setup(o->c->cfg, &x->req, x->easy, method, key, NULL,
                                               x->copy, len, mime, max) < 0) {
        if (x->easy)
            curl_easy_cleanup(x->easy);
        free(x->copy);
        free(x);
        return NULL;
    }
    x->next = o->inflight;
    if (o->inflight)
        o->inflight->prev = x;
    o->inflight = x;
    if (curlev_add(o->ev, x->easy, on_done, x) < 0) {
        xfer_free(x);
        return NULL;
    }
    if (h)
        exchange_redis_sent(h);
    return x;
}

static void on_probe(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct objects *o = arg;
    if (!o->probing) {
        o->sent_ms = units_mono_ms();
        o->probing = start(o, NULL, "HEAD", "", NULL, 0, NULL, 0, NULL) != NULL;
    }
    struct timeval tv = {OBJECTS_PROBE_MS / 1000, (OBJECTS_PROBE_MS % 1000) * 1000};
    evtimer_add(o->probe_timer, &tv);
}

int objects_start(struct http_child *c) {
    if (c->cfg->storage_backend != CONFIG_STORAGE_S3)
        return 0;
    /* libcurl's once-per-process set-up: the child's only user of it is here. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("storage: libcurl does not initialise");
        return -1;
    }
    struct objects *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        curl_global_cleanup();
        return -1;
    }
    o->c = c;
    snprintf(o->why, sizeof(o->why), "no answer yet");
    o->ev = curlev_new(c->base);
    o->probe_timer = evtimer_new(c->base, on_probe, o);
    c->objects = o;
    if (o->ev == NULL || o->probe_timer == NULL) {
        log_error("storage: cannot set up the object store's client");
        return -1;
    }
    struct timeval now = {0, 0};
    evtimer_add(o->probe_timer, &now);
    return 0;
}

void objects_stop(struct http_child *c) {
    struct objects *o = c->objects;
    if (o == NULL)
        return;
    if (o->probe_timer)
        event_free(o->probe_timer);
    /* curlev first: no transfer may still use the handles freed below. */
    struct xfer *list = o->inflight;
    o->inflight = NULL;
    curlev_free(o->ev);
    while (list) {
        struct xfer *x = list;
        list = x->next;
        x->prev = x->next = NULL;
        o->inflight = x;
        struct exchange *h = x->h;
        objects_done_fn done = x->done;
        xfer_free(x);
        if (h) {
            struct store_error err = {.code = "Stopping"};
            snprintf(err.message, sizeof(err.message), "the http child is stopping");
            exchange_redis_received(h);
            done(h, STORE_FAILED, &err, NULL, 0);
            exchange_settle(h);
        }
    }
    free(o);
    c->objects = NULL;
    curl_global_cleanup();
}

int objects_get(struct exchange *h, const char *key, size_t max, objects_done_fn done) {
    struct objects *o = h->child->objects;
    return o && start(o, h, "GET", key, NULL, 0, NULL, max, done) ? 0 : -1;
}

int objects_put(struct exchange *h, const char *key, const void *data, size_t len, const char *mime,
                objects_done_fn done) {
    struct objects *o = h->child->objects;
    return o && start(o, h, "PUT", key, data, len, mime, 0, done) ? 0 : -1;
}

bool objects_answering(struct http_child *c, long *rtt_ms, char *why, size_t n) {
    struct objects *o = c->objects;
    if (o == NULL) {
        snprintf(why, n, "no object store is configured");
        return false;
    }
    *rtt_ms = o->rtt_ms;
    int64_t quiet = o->ok_ms ? units_mono_ms() - o->ok_ms : -1;
    if (!o->failed && quiet >= 0 && quiet <= OBJECTS_WINDOW_MS)
        return true;
    if (o->failed)
        snprintf(why, n, "%s", o->why);
    else if (quiet < 0)
        snprintf(why, n, "it has not answered yet");
    else
        snprintf(why, n, "no answer for %lld ms", (long long)quiet);
    return false;
}
