/* longpoll.c — long-poll waiters, and the child's subscriber connection: to
 * {prefix}:done for the waiters and {prefix}:changed for the shared cache
 * (cached.c drops the entry of each id it carries, and trusts a finished job's
 * entry only while the subscription is in place); each waiter's timer (its
 * deadline, or a re-read every second while a completion could be missed). A
 * client that goes away is dropped at once, not at the deadline: the
 * connection layer reads on while a request is in hand and tells (exchange.c's
 * on_peer_closed, then gone).
 *
 * No completion is missed: a waiter registers before its first read, and
 * while the subscription is in place any PUBLISH after that read reaches us
 * (the scripts publish atomically with the state change). A completion that
 * comes while a read is in flight makes it read again afterwards. While the
 * subscription is down every waiter re-reads each second; when it is back,
 * every waiter reads once (what was published meanwhile is lost). */
#include "longpoll.h"
#include "cached.h"
#include "units.h"

#include "log.h"
#include "rasync.h"

#include <event2/event.h>
#include <stddef.h>
#include <time.h>

#define RETRY_MS 1000

static struct exchange *exchange_of(struct waiter *w) {
    return (struct exchange *)((char *)w - offsetof(struct exchange, waiter));
}

/* Arms h's timer: the deadline, or sooner while a completion could be missed
 * (no subscription) or the last read failed. */
static void arm(struct exchange *h) {
    long long now = units_mono_ms();
    long long next = h->wait_until_ms;
    if ((!rasync_subscribed(h->child->redis_sub) || h->wait_retry) && now + RETRY_MS < next)
        next = now + RETRY_MS;
    long long ms = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(h->wait_timer, &tv);
}

/* Reads the job again, or after the read in flight when there is one. */
static void recheck(struct exchange *h) {
    if (h->redis_pending > 0) {
        h->wait_recheck = true;
        return;
    }
    h->wait_check(h, false);
}

/* Ends the wait and answers the job's state as it is now. */
static void finish(struct exchange *h) {
    void (*check)(struct exchange *, bool) = h->wait_check;
    longpoll_end(h);
    check(h, true);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct exchange *h = arg;
    if (units_mono_ms() >= h->wait_until_ms) {
        finish(h);
    } else {
        h->wait_retry = false;
        arm(h);
        recheck(h);
    }
    exchange_settle(h);
}

static void on_done_of(struct waiter *w, void *arg) {
    (void)arg;
    recheck(exchange_of(w));
}

/* The subscriber's channels, in this order. */
enum { CHANNEL_DONE, CHANNEL_CHANGED, CHANNELS };

static void on_message(int channel, const char *payload, size_t len, void *arg) {
    struct http_child *c = arg;
    if (channel == CHANNEL_DONE)
        waiters_each_of(&c->waiters, payload, len, on_done_of, NULL);
    else if (channel == CHANNEL_CHANGED)
        cached_changed(c, payload, len);
}

static void on_subscribed(struct waiter *w, void *arg) {
    (void)arg;
    struct exchange *h = exchange_of(w);
    arm(h);
    recheck(h); /* a completion published while we were not subscribed is lost */
}

static void on_unsubscribed(struct waiter *w, void *arg) {
    (void)arg;
    arm(exchange_of(w)); /* re-read every second until the subscription is back */
}

static void on_state(bool subscribed, void *arg) {
    struct http_child *c = arg;
    if (subscribed)
        c->sub_since_ms = units_mono_ms();
    size_t n = waiters_each(&c->waiters, subscribed ? on_subscribed : on_unsubscribed, NULL);
    log_debug("long-poll subscription %s (%zu waiter(s))", subscribed ? "in place" : "lost", n);
}

int longpoll_init(struct http_child *c, const struct rconn_target *t) {
    char done[QUEUE_KEY_MAX], changed[QUEUE_KEY_MAX];
    const char *channels[CHANNELS] = {
        [CHANNEL_DONE] = queue_key(done, sizeof(done), c->cfg->redis_key_prefix, "done", NULL),
        [CHANNEL_CHANGED] =
            queue_key(changed, sizeof(changed), c->cfg->redis_key_prefix, "changed", NULL)};
    if (waiters_init(&c->waiters, (size_t)c->cfg->http_max_connections) < 0)
        return -1;
    c->redis_sub =
        rasync_new_subscriber(c->base, c->cfg, t, channels, CHANNELS, on_message, on_state, c);
    return c->redis_sub ? 0 : -1;
}

static void on_stop(struct waiter *w, void *arg) {
    (void)arg;
    struct exchange *h = exchange_of(w);
    finish(h);
    exchange_settle(h);
}

void longpoll_stop(struct http_child *c) {
    size_t n = waiters_each(&c->waiters, on_stop, NULL);
    if (n)
        log_info("stop: answered %zu long-poll(s) with their current state", n);
}

void longpoll_close(struct http_child *c) {
    rasync_free(c->redis_sub);
    c->redis_sub = NULL;
}

void longpoll_free(struct http_child *c) {
    waiters_free(&c->waiters);
}

/* The exchange's on_gone hook: h's connection is gone, stop waiting. */
static void gone(struct exchange *h) {
    log_debug("long-poll on %s: the client went away", h->match.id);
    longpoll_end(h);
}

int longpoll_begin(struct exchange *h, int seconds, void (*check)(struct exchange *h, bool final)) {
    struct http_child *c = h->child;
    if (c->waiters.buckets == NULL || h->conn == NULL)
        return -1;
    h->wait_timer = evtimer_new(c->base, on_timer, h);
    if (h->wait_timer == NULL)
        return -1;
    h->wait_check = check;
    h->held = true;
    h->on_gone = gone;
    h->wait_recheck = h->wait_retry = false;
    h->wait_until_ms = units_mono_ms() + (long long)seconds * 1000;
    waiters_add(&c->waiters, &h->waiter, h->match.id);
    arm(h);
    return 0;
}

void longpoll_end(struct exchange *h) {
    if (!h->held)
        return;
    waiters_remove(&h->child->waiters, &h->waiter);
    event_free(h->wait_timer);
    h->wait_timer = NULL;
    h->held = h->wait_recheck = h->wait_retry = false;
    h->on_gone = NULL;
}

void longpoll_read_failed(struct exchange *h) {
    if (!h->held)
        return;
    h->wait_retry = true;
    arm(h);
}

void longpoll_read_done(struct exchange *h) {
    if (h->held && h->wait_recheck && h->redis_pending == 0) {
        h->wait_recheck = false;
        h->wait_check(h, false);
    }
}
