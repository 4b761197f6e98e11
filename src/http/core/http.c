/* http.c — an http child: the connection layer on the inherited listen
 * socket, the Redis connections, libmagic, signals, heartbeat, and a graceful
 * stop (http.h). */
#include "http.h"
#include "objects.h"
#include "conn.h"
#include "guard.h"
#include "cache.h"

#include "exchange.h"
#include "handlers.h"
#include "longpoll.h"
#include "rasync.h"

#include "id.h"
#include "log.h"
#include "rconn.h"
#include "units.h"

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_POLL_MS 50

static struct timeval tv_ms(long long ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/* Adds what the connection layer counted since the last time to the
 * segment's sums, and our open connections to our line. */
static void publish_conn_stats(struct http_child *c) {
    if (c->server == NULL || c->shm == NULL)
        return;
    const struct conn_stats *now = conn_server_stats(c->server);
    struct shm_http_counters *sum = &c->shm->hdr->http;
    struct conn_stats *was = &c->published;
    atomic_fetch_add(&sum->accepted, now->accepted - was->accepted);
    atomic_fetch_add(&sum->refused_per_client, now->refused_per_client - was->refused_per_client);
    atomic_fetch_add(&sum->reused, now->reused - was->reused);
    atomic_fetch_add(&sum->head_timeouts, now->head_timeouts - was->head_timeouts);
    atomic_fetch_add(&sum->body_too_slow, now->body_too_slow - was->body_too_slow);
    atomic_fetch_add(&sum->write_timeouts, now->write_timeouts - was->write_timeouts);
    atomic_fetch_add(&sum->refused, now->refused - was->refused);
    atomic_fetch_add(&sum->accept_pauses, now->accept_pauses - was->accept_pauses);
    *was = *now;
    if (c->slot)
        atomic_store(&c->slot->conns_open, conn_server_open(c->server));
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct http_child *c = arg;
    if (c->slot)
        atomic_store(&c->slot->heartbeat_ms, units_mono_ms());
    publish_conn_stats(c);
    log_tick();
}

static void on_stop_poll(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct http_child *c = arg;
    if (c->active == 0)
        event_base_loopbreak(c->base);
}

static void on_stop_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct http_child *c = arg;
    log_warn("stop: %u request(s) still in flight after %lld ms; leaving", c->active,
             (long long)c->cfg->stop_timeout);
    event_base_loopbreak(c->base);
}

/* Stops accepting; the loop ends once every request in flight is answered. */
static void begin_stop(struct http_child *c, int sig) {
    if (c->stopping)
        return;
    c->stopping = true;
    log_info("signal %d: stopping (%u request(s) in flight)", sig, c->active);
    if (c->server)
        conn_server_stop(c->server); /* idle connections close; the others after their answer */
    longpoll_stop(c);                /* a stop is not held up by long-polls: they answer now */
    struct timeval poll = tv_ms(STOP_POLL_MS);
    struct timeval deadline = tv_ms(c->cfg->stop_timeout);
    event_add(c->stop_poll, &poll);
    event_add(c->stop_deadline, &deadline);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    struct http_child *c = arg;
    if (sig == SIGUSR1) {
        log_reopen();
        return;
    }
    if (sig == SIGHUP) {
        /* The master's reload: the keys file may have changed. */
        if (guard_load_keys(c) < 0)
            log_error("reload: keeping the API keys loaded before");
        log_reopen();
        return;
    }
    begin_stop(c, (int)sig);
}

static int setup_http(struct http_child *c, int listen_fd) {
    const struct config *cfg = c->cfg;
    struct conn_limits lim = {
        .max_header = (size_t)cfg->http_max_header,
        .max_body = (size_t)cfg->http_max_body,
        .timeout_ms = cfg->http_timeout,
        .max_connections = (size_t)cfg->http_max_connections,
        .max_per_client = (size_t)cfg->http_max_connections_per_client,
        .exempt = &c->trusted_proxies,
    };
    struct conn_callbacks cb = exchange_conn_callbacks;
    cb.arg = c;
    c->server = conn_server_new(c->base, &lim, &cb);
    c->listen_fd = listen_fd;
    return c->server ? 0 : -1;
}

/* Starts accepting on the listen socket (once; never while stopping). A new
 * child waits for its Redis connection first, so that it does not answer 503
 * just because it has only started (after a reload, say): meanwhile the other
 * children accept, or the kernel's backlog holds the connections. */
static void start_accepting(struct http_child *c) {
    if (c->accepting || c->stopping || c->server == NULL)
        return;
    if (c->accept_anyway)
        evtimer_del(c->accept_anyway);
    c->accepting = true;
    if (conn_server_listen(c->server, c->listen_fd) < 0) {
        log_error("cannot serve HTTP on the listen socket: %s", strerror(errno));
        c->accept_failed = true;
        event_base_loopbreak(c->base);
    }
}

static void on_redis_ready(void *arg) {
    start_accepting(arg);
}

/* Redis has not answered within redis.connect_timeout: serve anyway (reads the
 * cache holds work; the rest answers 503 until Redis is back). */
static void on_accept_anyway(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct http_child *c = arg;
    log_warn("Redis has not answered within redis.connect_timeout (%lld ms): accepting "
             "anyway; requests that need it answer 503 until it does",
             (long long)c->cfg->redis_connect_timeout);
    start_accepting(c);
}

static int setup_events(struct http_child *c) {
    c->sig_term = evsignal_new(c->base, SIGTERM, on_signal, c);
    c->sig_quit = evsignal_new(c->base, SIGQUIT, on_signal, c);
    c->sig_int = evsignal_new(c->base, SIGINT, on_signal, c);
    c->sig_usr1 = evsignal_new(c->base, SIGUSR1, on_signal, c);
    c->sig_hup = evsignal_new(c->base, SIGHUP, on_signal, c);
    c->heartbeat = event_new(c->base, -1, EV_PERSIST, on_heartbeat, c);
    c->stop_poll = event_new(c->base, -1, EV_PERSIST, on_stop_poll, c);
    c->stop_deadline = evtimer_new(c->base, on_stop_deadline, c);
    c->accept_anyway = evtimer_new(c->base, on_accept_anyway, c);
    if (!c->sig_term || !c->sig_quit || !c->sig_int || !c->sig_usr1 || !c->sig_hup ||
        !c->heartbeat || !c->stop_poll || !c->stop_deadline || !c->accept_anyway)
        return -1;
    struct timeval second = tv_ms(1000);
    if (event_add(c->sig_term, NULL) < 0 || event_add(c->sig_quit, NULL) < 0 ||
        event_add(c->sig_int, NULL) < 0 || event_add(c->sig_usr1, NULL) < 0 ||
        event_add(c->sig_hup, NULL) < 0 || event_add(c->heartbeat, &second) < 0)
        return -1;
    on_heartbeat(-1, 0, c);
    return 0;
}

static void free_event(struct event **ev) {
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

/* Teardown order matters: Redis first (pending replies are answered or
 * dropped while requests still exist), the long-poll subscriber, then the
 * connections, then the loop. */
static void teardown(struct http_child *c) {
    if (c->cache)
        shm_cache_detach(c->cache);
    c->cache = NULL;
    rasync_free(c->redis);
    c->redis = NULL;
    rasync_free(c->redis_bulk);
    c->redis_bulk = NULL;
    objects_stop(c); /* requests to the store still in flight end as failed */
    longpoll_close(c);
    conn_server_free(c->server); /* long-polls still held are dropped (exchange.c) */
    c->server = NULL;
    longpoll_free(c);
    free_event(&c->sig_term);
    free_event(&c->sig_quit);
    free_event(&c->sig_int);
    free_event(&c->sig_usr1);
    free_event(&c->sig_hup);
    guard_free(c);
    free_event(&c->heartbeat);
    free_event(&c->stop_poll);
    free_event(&c->stop_deadline);
    free_event(&c->accept_anyway);
    exchange_pool_free(c);
    if (c->magic)
        magic_close(c->magic);
    if (c->base)
        event_base_free(c->base);
}

static int open_magic(struct http_child *c) {
    c->magic = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_TAR |
                          MAGIC_NO_CHECK_ELF | MAGIC_NO_CHECK_CDF);
    if (c->magic == NULL)
        return -1;
    if (magic_load(c->magic, NULL) < 0) {
        log_error("libmagic: %s", magic_error(c->magic));
        return -1;
    }
    return 0;
}

struct rasync *http_redis_bulk(struct http_child *c) {
    return rasync_connected(c->redis_bulk) ? c->redis_bulk : c->redis;
}

int http_main(const struct child_args *args) {
    struct http_child child;
    struct http_child *c = &child;
    memset(c, 0, sizeof(*c));
    c->cfg = args->cfg;
    c->node_id = args->node_id ? args->node_id : "";
    c->shm = args->shm;
    c->slot = args->shm ? shm_segment_slot(args->shm, args->slot) : NULL;
    if (args->shm && (c->cache = shm_cache_attach(shm_segment_cache_area(args->shm))) == NULL)
        log_warn("the shared cache cannot be used; every read goes to Redis");
    c->limits.max_dimension = (int)c->cfg->image_max_dimension;
    c->limits.default_quality = (int)c->cfg->image_default_quality;
    c->limits.max_output_pixels = c->cfg->image_max_output_pixels;
    c->limits.max_job_pixels = c->cfg->image_max_job_pixels;
    const char *prefix = c->cfg->redis_key_prefix;
    queue_key(c->key_ready, sizeof(c->key_ready), prefix, "ready", NULL);
    queue_key(c->key_delayed, sizeof(c->key_delayed), prefix, "delayed", NULL);
    queue_key(c->key_dead, sizeof(c->key_dead), prefix, "dead", NULL);
    snprintf(c->max_queue, sizeof(c->max_queue), "%lld", (long long)c->cfg->redis_max_queue);
    snprintf(c->max_client, sizeof(c->max_client), "%lld",
             (long long)c->cfg->http_max_queued_per_client);
    /* Big buffers (an upload's body) are mapped and unmapped whole, so the
     * memory a closed connection held goes back to the system: glibc would
     * otherwise raise its mmap threshold after the first and keep the rest
     * on the heap. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    /* A write to a client that went away must be an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    struct rconn_target target;
    if (rconn_resolve(c->cfg, &target) < 0) {
        log_error("redis.url cannot be used: %s", c->cfg->redis_url);
        status = 2;
        goto out;
    }
    /* The changelist folds the add/del of a connection's events within one
     * loop turn into a single epoll_ctl: fewer system calls per request. */
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    c->base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    if (c->base == NULL) {
        log_error("cannot create the event loop");
        goto out;
    }
    if (guard_load_keys(c) < 0 || guard_load_lists(c) < 0) {
        status = 2; /* a restart will not fix the file */
        goto out;
    }
    if (open_magic(c) < 0) {
        log_error("cannot load the libmagic database");
        status = 2;
        goto out;
    }
    if (setup_events(c) < 0) {
        log_error("cannot set up signals and timers");
        goto out;
    }
    if (setup_http(c, args->listen_fd) < 0) {
        log_error("cannot set up the HTTP connections");
        goto out;
    }
    if ((c->redis = rasync_new(c->base, c->cfg, &target)) == NULL) {
        log_error("cannot create the redis client");
        goto out;
    }
    rasync_set_on_ready(c->redis, on_redis_ready, c);
    if (rasync_probe_start(c->redis) < 0) { /* /readyz: does Redis answer (rprobe.h) */
        log_error("cannot start the redis probe");
        goto out;
    }
    if ((c->redis_bulk = rasync_new(c->base, c->cfg, &target)) == NULL) {
        log_error("cannot create the redis client for bulk transfers");
        goto out;
    }
    if (objects_start(c) < 0)
        goto out;
    struct timeval wait = tv_ms(c->cfg->redis_connect_timeout);
    evtimer_add(c->accept_anyway, &wait);
    if (longpoll_init(c, &target) < 0) {
        log_error("cannot create the long-poll subscriber");
        goto out;
    }
    log_debug("serving (max body %lld bytes)", (long long)c->cfg->http_max_body);
    if (event_base_dispatch(c->base) < 0) {
        log_error("event loop failed");
        goto out;
    }
    status = c->accept_failed ? 1 : 0;
out:
    teardown(c);
    return status;
}
