/* rasync.c — hiredis async on the child's libevent loop: connect, AUTH and
 * SELECT, reconnect with capped backoff (all three from rconn.c), EVALSHA with an EVAL retry,
 * watchdog, a PING probe (rprobe.h); or, for a subscriber, SUBSCRIBE to its channels after
 * every (re)connection. */
#include "rasync.h"
#include "rprobe.h"
#include "units.h"

#include "log.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rasync {
    struct event_base *base;
    struct rconn_target target;
    long connect_timeout_ms;
    long reply_timeout_ms;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool ready;            /* connected and past AUTH/SELECT */
    bool freeing;
    bool down_logged; /* the current outage was logged */
    int handshake_pending;
    bool handshake_failed;
    long backoff_ms;
    long long down_since_ms;
    int outstanding; /* commands sent whose reply has not come */
    /* The size of each of those commands, oldest first (a ring), and their sum:
     * the reply timeout grows with the bytes Redis has to take in. */
    size_t *sizes;
    int sizes_cap, sizes_head;
    uint64_t pending_bytes;
    uint64_t progress; /* progress_mark at the last watchdog check */
    struct event *reconnect_timer;
    struct event *connect_timer;
    struct event *watchdog;
    /* subscriber only */
    char **channels; /* NULL for a command client */
    int nchannels;
    rasync_message_cb on_message;
    rasync_state_cb on_state;
    void *sub_arg;
    /* command client: told each time the connection becomes ready */
    void (*on_ready)(void *arg);
    void *ready_arg;
    bool subscribed;
    /* command client with rasync_probe_start: a PING every RPROBE_INTERVAL_MS */
    struct event *probe_timer; /* NULL: no probe */
    struct rprobe probe;
    int64_t connect_ms; /* when the current connection's handshake began */
};

static struct timeval tv_ms(long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Logs the first failure of an outage at warning level, the rest at debug. */
static void note_down(struct rasync *r, const char *what, const char *why) {
    if (!r->down_logged) {
        if (r->channels)
            log_warn("redis subscription to %s unavailable: %s: %s; long-polls re-read every "
                     "second and finished jobs are read from Redis until it is back",
                     r->channels[0], what, why);
        else
            log_warn("redis unavailable: %s: %s; requests answer 503 until it is back", what, why);
        r->down_logged = true;
        r->down_since_ms = units_mono_ms();
    } else {
        log_debug("redis still unavailable: %s: %s", what, why);
    }
}

static void drop(struct rasync *r);

static void schedule_reconnect(struct rasync *r) {
    if (r->freeing || evtimer_pending(r->reconnect_timer, NULL))
        return;
    r->backoff_ms = rconn_backoff_next(r->backoff_ms);
    struct timeval tv = tv_ms(r->backoff_ms);
    evtimer_add(r->reconnect_timer, &tv);
}

/* The subscription is gone (or never came): say so once. */
static void sub_lost(struct rasync *r) {
    if (!r->subscribed)
        return;
    r->subscribed = false;
    if (!r->freeing && r->on_state)
        r->on_state(false, r->sub_arg);
}

/* The index of channel name (len bytes) among the subscriber's, or -1. */
static int channel_index(const struct rasync *r, const char *name, size_t len) {
    for (int i = 0; i < r->nchannels; i++)
        if (strlen(r->channels[i]) == len && memcmp(r->channels[i], name, len) == 0)
            return i;
    return -1;
}

/* Every reply on a subscribed connection: the SUBSCRIBE confirmations (one
 * per channel, each with the count so far), then the messages; NULL when the
 * connection goes away. Subscribed once every channel is confirmed. */
static void on_sub(redisAsyncContext *ac, void *reply, void *arg) {
    (void)ac;
    struct rasync *r = arg;
    redisReply *rep = reply;
    if (rep == NULL) {
        sub_lost(r);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "subscribe") == 0 && !r->subscribed &&
        rep->element[2]->type == REDIS_REPLY_INTEGER && rep->element[2]->integer >= r->nchannels) {
        r->subscribed = true;
        if (r->on_state)
            r->on_state(true, r->sub_arg);
    } else if (strcmp(kind, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
        int i = channel_index(r, rep->element[1]->str, rep->element[1]->len);
        if (i >= 0)
            r->on_message(i, rep->element[2]->str, rep->element[2]->len, r->sub_arg);
    }
}

/* SUBSCRIBE to every channel at once (one command: Redis subscribes them
 * together). A TCP connection gets keep-alive probes, so that one that dies
 * silently (no FIN, no RST) is noticed: a subscriber never waits for a reply,
 * so the watchdog cannot see it stall. */
static void subscribe(struct rasync *r) {
    const char *argv[1 + RASYNC_MAX_CHANNELS];
    argv[0] = "SUBSCRIBE";
    for (int i = 0; i < r->nchannels; i++)
        argv[1 + i] = r->channels[i];
    if (r->target.unix_path[0] == '\0' && redisEnableKeepAlive(&r->ac->c) != REDIS_OK)
        log_debug("redis subscription: no TCP keep-alive: %s", r->ac->c.errstr);
    if (redisAsyncCommandArgv(r->ac, on_sub, r, 1 + r->nchannels, argv, NULL) != REDIS_OK) {
        note_down(r, "subscribe", "cannot send SUBSCRIBE");
        drop(r);
    }
}

static void set_ready(struct rasync *r) {
    r->ready = true;
    r->backoff_ms = 0;
    rprobe_ready(&r->probe, units_mono_ms(), r->connect_ms); /* the handshake's PING answered */
    evtimer_del(r->connect_timer);
    if (r->down_logged) {
        log_info("redis %s restored after %lld ms", r->channels ? "subscription" : "connection",
                 units_mono_ms() - r->down_since_ms);
        r->down_logged = false;
    }
    if (r->on_ready)
        r->on_ready(r->ready_arg);
    if (r->channels && r->ac)
        subscribe(r);
}

/* Drops the current connection: pending callbacks get NULL, then reconnect. */
static void drop(struct rasync *r) {
    redisAsyncContext *ac = r->ac;
    r->ready = false;
    sub_lost(r);
    if (ac == NULL)
        return;
    redisAsyncFree(ac); /* onDisconnect (when it was connected) clears r->ac */
    r->ac = NULL;
    schedule_reconnect(r);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    struct rasync *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns; the handshake
         * callbacks get NULL. Otherwise the PING reply makes us ready. */
        note_down(r, "connect", ac->errstr);
        r->ac = NULL;
        r->ready = false;
        sub_lost(r);
        evtimer_del(r->connect_timer);
        schedule_reconnect(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    struct rasync *r = ac->data;
    r->ac = NULL;
    r->ready = false;
    sub_lost(r);
    if (r->freeing)
        return;
    note_down(r, "connection lost", status == REDIS_OK ? "closed" : ac->errstr);
    schedule_reconnect(r);
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *arg) {
    struct rasync *r = arg;
    redisReply *rep = reply;
    r->handshake_pending--;
    if (rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR ||
        (rep->type == REDIS_REPLY_ARRAY && !rconn_role_is_master(rep))) {
        if (rep->type == REDIS_REPLY_ERROR)
            rconn_health_note(rep, false);
        if (!r->handshake_failed)
            note_down(r, "handshake (AUTH/SELECT/ROLE/PING)",
                      rep->type == REDIS_REPLY_ERROR ? rep->str
                                                     : "the server named master is no master");
        r->handshake_failed = true;
        redisAsyncDisconnect(ac);
        return;
    }
    if (r->handshake_pending == 0 && !r->handshake_failed && (ac->c.flags & REDIS_CONNECTED))
        set_ready(r);
}

static void send_handshake(int argc, const char **argv, void *arg) {
    struct rasync *r = arg;
    if (redisAsyncCommandArgv(r->ac, on_handshake, r, argc, argv, NULL) == REDIS_OK)
        r->handshake_pending++;
}

static void start_connect(struct rasync *r) {
    char err[256];
    redisAsyncContext *ac = rconn_open_async(&r->target, err, sizeof(err));
    if (ac == NULL) {
        note_down(r, "connect", err);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        note_down(r, "connect", "cannot attach to the event loop");
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->handshake_pending = 0;
    r->handshake_failed = false;
    r->connect_ms = units_mono_ms();
    rconn_handshake_args(&r->target, send_handshake, r);
    /* Ready only once Redis answers: a socket that connects to a server that
     * is loading or stuck is not a working connection. */
    const char *ping[] = {"PING"};
    send_handshake(1, ping, r);
    struct timeval tv = tv_ms(r->connect_timeout_ms);
    evtimer_add(r->connect_timer, &tv);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    start_connect(arg);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct rasync *r = arg;
    if (r->ready || r->ac == NULL)
        return;
    note_down(r, "connect", "timed out");
    drop(r);
}

/* How long the oldest reply may take: the reply timeout, plus the time the
 * bytes still on their way would take at a pessimistic RASYNC_BULK_BYTES_PER_MS. */
static long reply_budget_ms(const struct rasync *r) {
    return r->reply_timeout_ms + (long)(r->pending_bytes / RASYNC_BULK_BYTES_PER_MS);
}

/* What the connection has moved: bytes left to write, bytes read and parsed. */
static uint64_t progress_mark(const struct rasync *r) {
    const redisContext *c = &r->ac->c;
    uint64_t mark = c->obuf ? (uint64_t)sdslen(c->obuf) : 0;
    if (c->reader)
        mark = mark * 1000003u ^ ((uint64_t)c->reader->len << 20 ^ (uint64_t)c->reader->pos);
    return mark;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct rasync *r = arg;
    if (r->outstanding <= 0 || r->ac == NULL)
        return;
    /* Bytes moving, in either direction, are progress: a big upload or result
     * takes longer than a reply timeout without being a stall. */
    uint64_t mark = progress_mark(r);
    if (mark != r->progress) {
        r->progress = mark;
        struct timeval tv = tv_ms(reply_budget_ms(r));
        evtimer_add(r->watchdog, &tv);
        return;
    }
    char why[64];
    snprintf(why, sizeof(why), "no reply for %ld ms", r->reply_timeout_ms);
    note_down(r, "connection stalled", why);
    drop(r);
}

/* Re-arms the watchdog after progress, or stops it when nothing is pending. */
static void watchdog_progress(struct rasync *r) {
    if (r->outstanding > 0) {
        if (r->ac)
            r->progress = progress_mark(r);
        struct timeval tv = tv_ms(reply_budget_ms(r));
        evtimer_add(r->watchdog, &tv);
    } else {
        evtimer_del(r->watchdog);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *arg);

/* Remembers the size of a command sent (its reply comes in order). */
static int size_push(struct rasync *r, size_t bytes) {
    if (r->outstanding >= r->sizes_cap) {
        int cap = r->sizes_cap ? 2 * r->sizes_cap : 64;
        size_t *grown = malloc((size_t)cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        for (int i = 0; i < r->outstanding; i++)
            grown[i] = r->sizes[(r->sizes_head + i) % r->sizes_cap];
        free(r->sizes);
        r->sizes = grown;
        r->sizes_cap = cap;
        r->sizes_head = 0;
    }
    r->sizes[(r->sizes_head + r->outstanding) % r->sizes_cap] = bytes;
    r->pending_bytes += bytes;
    return 0;
}

/* Forgets the oldest command's size: its reply came (or the connection went). */
static void size_pop(struct rasync *r) {
    if (r->outstanding <= 0 || r->sizes_cap == 0)
        return;
    r->pending_bytes -= r->sizes[r->sizes_head];
    r->sizes_head = (r->sizes_head + 1) % r->sizes_cap;
}

static int send_argv(struct rasync *r, struct rasync_op *op, int argc, const char **argv,
                     const size_t *lens) {
    if (r == NULL || !r->ready || r->ac == NULL || r->channels)
        return -1;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += (lens ? lens[i] : strlen(argv[i])) + 16;
    if (size_push(r, bytes) < 0)
        return -1;
    if (redisAsyncCommandArgv(r->ac, on_reply, op, argc, argv, lens) != REDIS_OK) {
        r->pending_bytes -= bytes;
        return -1;
    }
    if (r->outstanding++ == 0)
        watchdog_progress(r);
    return 0;
}

/* Sends op's script as EVALSHA (eval false) or EVAL with the source (eval true). */
static int send_script(struct rasync *r, struct rasync_op *op, bool eval) {
    int total = op->nkeys + op->nargs;
    const char *av[3 + 64];
    size_t al[3 + 64];
    if (total > 64)
        return -1;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", op->nkeys);
    av[0] = eval ? "EVAL" : "EVALSHA";
    av[1] = eval ? queue_script_source(op->script) : queue_script_sha(op->script);
    av[2] = nk;
    for (int i = 0; i < 3; i++)
        al[i] = strlen(av[i]);
    for (int i = 0; i < total; i++) {
        av[3 + i] = op->argv[i];
        al[3 + i] = op->lens ? op->lens[i] : strlen(op->argv[i]);
    }
    return send_argv(r, op, total + 3, av, al);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *arg) {
    struct rasync *r = ac->data;
    struct rasync_op *op = arg;
    redisReply *rep = reply;
    size_pop(r);
    r->outstanding--;
    watchdog_progress(r);
    if (rep && op->is_script && rep->type == REDIS_REPLY_ERROR && !op->retried && !op->cancelled &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        op->retried = true;
        if (send_script(r, op, true) == 0)
            return;
    }
    rconn_health_note(rep, op->is_script);
    /* With Sentinels, a refusal that says this is not the master (any more)
     * drops the connection: the next one asks the Sentinels again. */
    enum rconn_reason reason =
        rep && rep->type == REDIS_REPLY_ERROR ? rconn_reason_of(rep) : RCONN_REASON_NONE;
    bool wrong_server = r->target.nsentinels > 0 &&
                        (reason == RCONN_REASON_READONLY || reason == RCONN_REASON_NOREPLICAS);
    op->cb(rep, op->arg);
    if (wrong_server && r->ac == ac)
        redisAsyncDisconnect(ac);
}

/* A client, not yet connecting; a command client (channels added after). */
static struct rasync *client_new(struct event_base *base, const struct config *cfg,
                                 const struct rconn_target *t) {
    struct rasync *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->target = *t;
    r->connect_timeout_ms = (long)cfg->redis_connect_timeout;
    /* A request waits for Redis at most redis.connect_timeout, then answers 503.
     * A submit that Redis stored but could not confirm in time is safe to send
     * again: the identical request finds its job (dedup). */
    r->reply_timeout_ms = (long)cfg->redis_connect_timeout;
    r->backoff_ms = 0;
    rprobe_init(&r->probe);
    r->reconnect_timer = evtimer_new(base, on_reconnect_timer, r);
    r->connect_timer = evtimer_new(base, on_connect_timeout, r);
    r->watchdog = evtimer_new(base, on_watchdog, r);
    if (!r->reconnect_timer || !r->connect_timer || !r->watchdog) {
        rasync_free(r);
        return NULL;
    }
    return r;
}

static void on_probe_reply(redisAsyncContext *ac, void *reply, void *arg) {
    (void)ac;
    struct rasync *r = arg;
    redisReply *rep = reply;
    if (rep == NULL)
        rprobe_lost(&r->probe);
    else
        rprobe_reply(&r->probe, units_mono_ms(), rep->type != REDIS_REPLY_ERROR);
}

/* Sends the probe's PING when none is outstanding. It goes outside the
 * commands' bookkeeping (no reply budget, no watchdog): the probe only
 * observes, and a server busy for a moment is the watchdog's to judge, with
 * the requests that wait on it. Replies come in order, so the commands' sizes
 * ring is unaffected. */
static void on_probe_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct rasync *r = arg;
    if (!r->ready || r->ac == NULL || !rprobe_due(&r->probe))
        return;
    if (redisAsyncCommand(r->ac, on_probe_reply, r, "PING") == REDIS_OK)
        rprobe_sent(&r->probe, units_mono_ms());
}

int rasync_probe_start(struct rasync *r) {
    if (r == NULL || r->channels || r->probe_timer)
        return -1;
    if ((r->probe_timer = event_new(r->base, -1, EV_PERSIST, on_probe_timer, r)) == NULL)
        return -1;
    struct timeval tv = tv_ms(RPROBE_INTERVAL_MS);
    if (event_add(r->probe_timer, &tv) < 0) {
        event_free(r->probe_timer);
        r->probe_timer = NULL;
        return -1;
    }
    return 0;
}

bool rasync_answering(const struct rasync *r, long *rtt_ms, long *silent_ms) {
    int64_t silent = -1;
    bool ok = r && r->ready && rprobe_answering(&r->probe, units_mono_ms(), &silent);
    if (rtt_ms)
        *rtt_ms = r ? (long)r->probe.rtt_ms : -1;
    if (silent_ms)
        *silent_ms = (long)silent;
    return ok;
}

struct rasync *rasync_new(struct event_base *base, const struct config *cfg,
                          const struct rconn_target *t) {
    struct rasync *r = client_new(base, cfg, t);
    if (r)
        start_connect(r);
    return r;
}

void rasync_free(struct rasync *r) {
    if (r == NULL)
        return;
    r->freeing = true;
    r->ready = false;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    if (r->reconnect_timer)
        event_free(r->reconnect_timer);
    if (r->connect_timer)
        event_free(r->connect_timer);
    if (r->watchdog)
        event_free(r->watchdog);
    if (r->probe_timer)
        event_free(r->probe_timer);
    for (int i = 0; i < r->nchannels; i++)
        free(r->channels[i]);
    free(r->channels);
    free(r->sizes);
    free(r);
}

struct rasync *rasync_new_subscriber(struct event_base *base, const struct config *cfg,
                                     const struct rconn_target *t, const char *const *channels,
                                     int nchannels, rasync_message_cb on_message,
                                     rasync_state_cb on_state, void *arg) {
    if (nchannels < 1 || nchannels > RASYNC_MAX_CHANNELS)
        return NULL;
    struct rasync *r = client_new(base, cfg, t);
    if (r == NULL)
        return NULL;
    if ((r->channels = calloc((size_t)nchannels, sizeof(*r->channels))) == NULL) {
        rasync_free(r);
        return NULL;
    }
    for (; r->nchannels < nchannels; r->nchannels++) {
        if ((r->channels[r->nchannels] = strdup(channels[r->nchannels])) == NULL) {
            rasync_free(r);
            return NULL;
        }
    }
    r->on_message = on_message;
    r->on_state = on_state;
    r->sub_arg = arg;
    start_connect(r);
    return r;
}

bool rasync_subscribed(const struct rasync *r) {
    return r && r->subscribed;
}

void rasync_set_on_ready(struct rasync *r, void (*fn)(void *arg), void *arg) {
    r->on_ready = fn;
    r->ready_arg = arg;
}

bool rasync_connected(const struct rasync *r) {
    return r && r->ready;
}

void rasync_peer(const struct rasync *r, char *buf, size_t n) {
    const redisContext *c = r && r->ready && r->ac ? &r->ac->c : NULL;
    buf[0] = '\0';
    if (c && c->connection_type == REDIS_CONN_UNIX && c->unix_sock.path)
        snprintf(buf, n, "%s", c->unix_sock.path);
    else if (c && c->tcp.host)
        snprintf(buf, n, "%s:%d", c->tcp.host, c->tcp.port);
}

int rasync_command(struct rasync *r, struct rasync_op *op, int argc, const char **argv,
                   const size_t *lens) {
    op->is_script = false;
    return send_argv(r, op, argc, argv, lens);
}

int rasync_script(struct rasync *r, struct rasync_op *op) {
    op->is_script = true;
    op->retried = false;
    return send_script(r, op, false);
}
